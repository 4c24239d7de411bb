"""A sandboxed Python runner: untrusted code in a fresh bubblewrap sandbox, one per run.

Why bubblewrap and not a container runtime: it is one small setuid-free binary from Debian
that builds a throw-away mount, pid, network, IPC and user namespace per run and tears it
down when the run ends, in milliseconds, without a daemon.

What the code sees and may do:

- No network: a private network namespace with only its own loopback.
- Read-only system: ``/usr`` (and the ``/bin``, ``/lib`` links), a handful of ``/etc`` files
  the dynamic loader needs, and the interpreter's own prefix. Nothing else of the host: not
  ``/etc/shadow``, not the host's home, not strata's data directory (``hidden`` paths are
  covered by an empty tmpfs should they lie under a bound directory).
- A private work directory ``/work`` (also ``/tmp``): a tmpfs of ``disk_bytes``, gone after
  the run.
- A clean environment: none of the server's variables (API keys, ``STRATA_*``).
- Limits: wall time (enforced here: the sandbox is killed), CPU time, address space,
  processes and open files (``setrlimit`` inside the sandbox, before the user's code
  starts), and output size (enforced here while reading the pipes).

Why an unprivileged uid: the kernel never applies ``RLIMIT_NPROC`` to real root, and a user
namespace entered by root maps the sandbox's uid back to root. When strata runs as root we
start bubblewrap itself as a throw-away uid from a pool (one per concurrent run, so runs do
not share a process count), so the process limit binds and host files owned by root stay
unreadable. As a normal user, bubblewrap runs as that user, where the limit binds already.

Which limit a run broke is read from how it ended: killed here (wall time, output), killed
by ``SIGXCPU`` (CPU time), or a last traceback line the limit produces in Python
(``MemoryError``, ``BlockingIOError`` from fork, ``ENOSPC``). User code can forge the last
kind, but only about its own run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from strata.core.errors import ConfigError, QueueFull

LimitName = Literal["wall_time", "cpu_time", "memory", "processes", "output", "disk"]

_MIB = 1 << 20
_KILLED = -int(signal.SIGKILL)
_WORK = "/work"

# Runs inside the sandbox before the user's code: lowers its own limits (always allowed)
# and execs the interpreter on the user's file, so the limits hold for every descendant.
_BOOT = """\
import os, resource, sys
i = sys.argv.index("--")
cpu, mem, nproc, nofile = (int(v) for v in sys.argv[1:i])
for what, soft, hard in (
    (resource.RLIMIT_CPU, cpu, cpu + 1),
    (resource.RLIMIT_AS, mem, mem),
    (resource.RLIMIT_NPROC, nproc, nproc),
    (resource.RLIMIT_NOFILE, nofile, nofile),
    (resource.RLIMIT_CORE, 0, 0),
):
    resource.setrlimit(what, (soft, hard))
os.execv(sys.argv[i + 1], sys.argv[i + 1 :])
"""

# The /etc files a dynamically linked interpreter needs; nothing with secrets.
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")

_LAST_LINE_LIMITS: tuple[tuple[re.Pattern[str], LimitName], ...] = (
    (re.compile(r"^MemoryError\b"), "memory"),
    (re.compile(r"^BlockingIOError: \[Errno 11\]"), "processes"),
    (re.compile(r"^OSError: \[Errno 28\]"), "disk"),
)


class SandboxLimits(BaseModel):
    """What one run may use; the defaults are the ones issue 10 sets for the server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_seconds: float = Field(10.0, gt=0, description="Wall-clock time before the kill.")
    cpu_seconds: int = Field(10, ge=1, description="CPU time (RLIMIT_CPU), all threads.")
    memory_bytes: int = Field(512 * _MIB, ge=64 * _MIB, description="Address space (RLIMIT_AS).")
    processes: int = Field(64, ge=2, description="Processes and threads (RLIMIT_NPROC).")
    output_bytes: int = Field(_MIB, ge=1, description="stdout + stderr kept before the kill.")
    disk_bytes: int = Field(64 * _MIB, ge=_MIB, description="Size of the private /work tmpfs.")
    open_files: int = Field(256, ge=16, description="Open file descriptors (RLIMIT_NOFILE).")


class SandboxConfig(BaseModel):
    """Where the sandbox comes from; operators rarely change these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bwrap: str = Field("bwrap", description="The bubblewrap binary (name on PATH or a path).")
    python: Path | None = Field(
        None, description="Interpreter inside the sandbox; default /usr/bin/python3 if present."
    )
    hidden: tuple[Path, ...] = Field(
        (), description="Host paths never visible inside, e.g. strata's data directory."
    )
    uid_base: int = Field(1_990_000, ge=1000, description="First uid of the pool used as root.")
    uid_count: int = Field(256, ge=1, description="Pool size: the most concurrent runs as root.")


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``exit_code`` is the process's status (128 + signal when a signal
    ended it, as bubblewrap reports it), or -9 when the sandbox was killed from outside."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    limit: LimitName | None
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_bwrap(name: str = "bwrap") -> str | None:
    """Path of the bubblewrap binary, or None where it is not installed."""
    return shutil.which(name)


class _UidPool:
    """Distinct throw-away uids for concurrent runs, so each run's process count is its own.
    A threading lock, because runs may start from the event loop and from worker threads."""

    def __init__(self, base: int, count: int) -> None:
        self._free = list(range(base + count - 1, base - 1, -1))
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if not self._free:
                raise QueueFull("every sandbox slot is busy", retry_after=1.0)
            return self._free.pop()

    def give(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid)


def _default_python() -> Path:
    system = Path("/usr/bin/python3")
    if system.exists():
        return system
    return Path(sys.base_prefix) / "bin" / "python3"


def _become(uid: int) -> None:
    """In the child, before bubblewrap starts: the throw-away uid, no supplementary groups."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _final_error_lines(text: str, lines: int = 20) -> list[str]:
    """The last ``lines`` exception lines of ``text`` (``Name: message``), newest first.
    Several processes may write tracebacks at once (a fork bomb's children), so the one a
    limit produced is not always the very last line."""
    found = []
    for raw in reversed(text.splitlines()[-200:]):
        line = raw.strip()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line):
            found.append(line)
            if len(found) == lines:
                break
    return found


class Sandbox:
    """Runs Python code, each call in a fresh sandbox. Safe to share across tasks/threads."""

    def __init__(
        self, limits: SandboxLimits | None = None, config: SandboxConfig | None = None
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.config = config or SandboxConfig()
        self._uids = _UidPool(self.config.uid_base, self.config.uid_count)

    def available(self) -> bool:
        return find_bwrap(self.config.bwrap) is not None

    def _bwrap(self) -> str:
        path = find_bwrap(self.config.bwrap)
        if path is None:
            raise ConfigError(
                "the Python sandbox needs bubblewrap: run scripts/install-system-deps.sh "
                "(Debian/Ubuntu: apt-get install bubblewrap)"
            )
        return path

    def _mounts(self, python: Path) -> list[str]:
        args = ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        for name in _ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        prefix = Path(os.path.realpath(python)).parent.parent
        if not prefix.is_relative_to("/usr"):
            # e.g. a pyenv build under /root: bind that prefix only, never its parents.
            args += ["--ro-bind", str(prefix), str(prefix)]
        for hidden in self.config.hidden:
            real = Path(os.path.realpath(hidden))
            if real.is_relative_to("/usr") or real.is_relative_to(prefix):
                args += ["--tmpfs", str(real)]
        return args

    def _command(self, uid_inside: int, python: Path, fds: Mapping[str, int]) -> list[str]:
        lim = self.limits
        args = [
            self._bwrap(),
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid", str(uid_inside),
            "--gid", str(uid_inside),
            "--hostname", "sandbox",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
            "--setenv", "HOME", _WORK,
            "--setenv", "TMPDIR", _WORK,
            "--setenv", "LANG", "C.UTF-8",
            *self._mounts(python),
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(lim.disk_bytes),
            "--tmpfs", _WORK,
            "--symlink", _WORK, "/tmp",
        ]  # fmt: skip
        for name, fd in fds.items():
            args += ["--file", str(fd), f"{_WORK}/{name}"]
        limits = (lim.cpu_seconds, lim.memory_bytes, lim.processes, lim.open_files)
        args += ["--chdir", _WORK, "--remount-ro", "/", "--", str(python), "-E", "-s", "-c"]
        args += [_BOOT, *(str(v) for v in limits), "--", str(python), "-E", "-s", "-B", "main.py"]
        return args

    async def run_python(
        self,
        code: str,
        *,
        files: Mapping[str, str | bytes] | None = None,
        stdin: str | None = None,
    ) -> RunResult:
        """Run ``code`` as ``/work/main.py``; ``files`` are written beside it first.

        Awaits a subprocess, so the event loop keeps serving while the code runs."""
        all_files: dict[str, str | bytes] = {"main.py": code, **(files or {})}
        for name in all_files:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"sandbox file names are plain names, not paths: {name!r}")
        python = self.config.python or _default_python()
        fds: dict[str, int] = {}
        uid: int | None = None
        try:
            for name, content in all_files.items():
                fd = os.memfd_create(f"sandbox-{name}")
                os.write(fd, content.encode() if isinstance(content, str) else content)
                os.lseek(fd, 0, os.SEEK_SET)
                fds[name] = fd
            drop: dict[str, Any] = {}
            if os.geteuid() == 0:
                uid = self._uids.take()
                # preexec_fn, not user=/group=: uvloop (the server's loop) refuses those.
                drop = {"preexec_fn": functools.partial(_become, uid)}
            return await self._execute(self._command(65534, python, fds), fds, stdin, drop)
        finally:
            for fd in fds.values():
                os.close(fd)
            if uid is not None:
                self._uids.give(uid)

    async def _execute(
        self,
        argv: list[str],
        fds: Mapping[str, int],
        stdin: str | None,
        drop: Mapping[str, Any],
    ) -> RunResult:
        lim = self.limits
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=tuple(fds.values()),
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,
            **drop,
        )
        budget = [lim.output_bytes]
        over = asyncio.Event()
        out, err = bytearray(), bytearray()

        async def pump(stream: asyncio.StreamReader | None, sink: bytearray) -> None:
            assert stream is not None
            # Past the budget, keep reading to EOF (and drop it): the pipe then closes, and
            # the kill that ``over`` triggers is what makes that EOF come soon.
            while chunk := await stream.read(65536):
                keep = chunk[: budget[0]]
                sink += keep
                budget[0] -= len(keep)
                if len(keep) < len(chunk):
                    over.set()

        async def feed() -> None:
            if stdin is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(stdin.encode())
                    await proc.stdin.drain()
                    proc.stdin.close()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        async def finish() -> None:
            await asyncio.gather(pump(proc.stdout, out), pump(proc.stderr, err), feed())
            await proc.wait()

        done = asyncio.ensure_future(finish())
        watch = asyncio.ensure_future(over.wait())
        killed: LimitName | None = None
        try:
            finished, _ = await asyncio.wait(
                {done, watch}, timeout=lim.wall_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if done not in finished:
                killed = "output" if over.is_set() else "wall_time"
                _kill(proc)
                # The pumps end once the pipes close: every holder dies with the namespace.
                await asyncio.wait({done}, timeout=5.0)
        finally:
            watch.cancel()
            if not done.done():
                _kill(proc)
                done.cancel()
        duration = time.monotonic() - started
        stdout = out.decode(errors="replace")
        stderr = err.decode(errors="replace")
        code = _KILLED if killed else (proc.returncode if proc.returncode is not None else _KILLED)
        limit = killed or _limit_from_exit(code, stderr)
        return RunResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=code,
            timed_out=limit in ("wall_time", "cpu_time"),
            limit=limit,
            duration=round(duration, 4),
        )

    def run_python_sync(self, code: str, **kwargs: Any) -> RunResult:
        """The same run for callers without an event loop (the operator CLI, scripts)."""
        return asyncio.run(self.run_python(code, **kwargs))


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL to bubblewrap; its sandbox init dies with it (``--die-with-parent``), and the
    kernel then kills every process left in the sandbox's pid namespace."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _limit_from_exit(code: int, stderr: str) -> LimitName | None:
    if code == 0:
        return None
    if code in (128 + int(signal.SIGXCPU), -int(signal.SIGXCPU)):
        return "cpu_time"
    for line in _final_error_lines(stderr):
        for pattern, name in _LAST_LINE_LIMITS:
            if pattern.match(line):
                return name
    return None
