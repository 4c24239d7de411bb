"""Helpers shared by the benchmarks: percentiles, child processes, JSON results.

Benchmarks here start servers in subprocesses and must never leave one behind, whether the
run ends normally, fails, or is interrupted; ``ProcessGroup`` owns that. Percentiles are
computed here (linear interpolation, as ``numpy.percentile`` does by default) so the
benchmarks need nothing beyond strata's own dependencies.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _load_libc() -> ctypes.CDLL | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded here, in the parent, so the pre-exec hook below imports and locks nothing.
_LIBC = _load_libc()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Linux only: the child gets SIGKILL if the benchmark itself is killed outright."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ServerProcess:
    """One child server: its own process group, its output in a log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 600) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the child's whole process group, then SIGKILL whatever is left."""
        if self.popen.poll() is not None:
            return
        pgid = self.popen.pid  # start_new_session=True: the child leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace_s)


class ProcessGroup:
    """Starts servers and, on ``close`` (or leaving the ``with``), stops every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ServerProcess] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> ServerProcess:
        log = self.log_dir / f"{name}.log"
        handle: IO[bytes] = log.open("wb")
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=REPO_ROOT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children ourselves
                preexec_fn=_die_with_parent if _LIBC is not None else None,  # noqa: PLW1509
            )
        finally:
            handle.close()
        process = ServerProcess(name, popen, log)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


@contextlib.contextmanager
def interrupts_end_the_run() -> Iterator[None]:
    """Ctrl-C and SIGTERM both end the run as ``KeyboardInterrupt``, so ``finally`` blocks
    (stopping children) run. SIGTERM is forwarded as SIGINT so that, inside an event loop,
    ``asyncio.Runner`` cancels its task cleanly; SIGINT is re-armed in case the launcher
    ignored it (as shells do for background jobs)."""

    def forward(signum: int, frame: FrameType | None) -> None:
        signal.raise_signal(signal.SIGINT)

    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def wait_http(
    url: str,
    process: ServerProcess,
    *,
    timeout_s: float,
    method: str = "GET",
    json_body: Mapping[str, Any] | None = None,
) -> None:
    """Poll ``url`` until it answers 200; raise with the child's log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(
                    f"{process.name} exited with status {process.popen.returncode}: "
                    f"{process.log_tail()}"
                )
            try:
                response = client.request(method, url, json=json_body)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
    raise RuntimeError(
        f"{process.name} not ready after {timeout_s:.0f}s ({last}): {process.log_tail()}"
    )
