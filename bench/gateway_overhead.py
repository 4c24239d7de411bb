"""Gateway overhead: what strata costs in front of a remote model, next to LiteLLM.

Why: for a remote model strata's job is admission, accounting and one API, and all of it
should be close to free. This benchmark puts one instant, canned OpenAI-compatible backend
behind four targets and measures each on loopback with the same chat request:

* ``direct``: the canned backend itself (the floor);
* ``strata``: ``strata serve`` with the backend configured as an ``openai`` model;
* ``litellm``: LiteLLM's proxy, installed in its own venv (``.venv-bench-litellm``) so its
  pins can never disturb strata's environment;
* ``passthrough``: a bare Starlette + httpx forwarder, the least any Python gateway does.

Per target: latency p50/p99 at concurrency 1 (one keep-alive ``httpx.Client``, as an SDK user
would) and requests/s at concurrency 16. Throughput is driven by a minimal raw asyncio
HTTP/1.1 client, because the load generator shares the CPUs with the servers and httpx's own
per-request cost would otherwise dominate what is measured. The machine is small and noisy,
so targets are interleaved round by round (rotating the order) and the medians across rounds
are reported. The issue's targets: strata adds at most 1.5 ms p50 over direct and serves at
least 4x LiteLLM's requests/s at concurrency 16.

Usage: ``python bench/gateway_overhead.py --json OUT [--requests N] [--seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from _common import (
    ProcessGroup,
    ServerProcess,
    interrupts_end_the_run,
    median,
    percentile,
    write_json,
)
from _gateway_launch import (
    LITELLM_VENV,
    issue_key,
    start_direct,
    start_litellm,
    start_passthrough,
    start_strata,
)
from _gateway_wire import BODY_BYTES, CHAT_PATH, HEADERS, HOST, run_async, throughput

TARGETS = ("direct", "strata", "litellm", "passthrough")
KEY_TARGETS = ("strata-key", "strata-limits")
LIMITS = (
    "--budget-usd",
    "1000000",
    "--period",
    "day",
    "--rpm",
    "100000000",
    "--tpm",
    "1000000000000",
)
MAX_KEY_ADDED_P50_MS = 0.1
CONCURRENCY = 16
MAX_STRATA_ADDED_P50_MS = 1.5
MIN_STRATA_VS_LITELLM_RPS = 4.0

# What a target that misbehaves (dies, hangs, answers garbage) can raise while measured.
FAILURES = (
    httpx.HTTPError,
    OSError,
    RuntimeError,
    TimeoutError,
    EOFError,
    ValueError,
    KeyError,
    asyncio.LimitOverrunError,
)


# ---- measurement -------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    port: int = 0
    process: ServerProcess | None = None
    error: str | None = None
    client: httpx.Client | None = None
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    errors: int = 0
    authorization: str = HEADERS["authorization"]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{CHAT_PATH}"

    def http(self) -> httpx.Client:
        if self.client is None:
            headers = {**HEADERS, "authorization": self.authorization}
            self.client = httpx.Client(headers=headers, timeout=30.0)
        return self.client

    def result(self) -> dict[str, Any]:
        if self.error is not None or not self.p50_ms or not self.rps:
            return {"error": self.error or "no measurements"}
        return {
            "p50_ms": round(median(self.p50_ms), 3),
            "p99_ms": round(median(self.p99_ms), 3),
            "rps_c16": round(median(self.rps), 1),
            "errors": self.errors,
            "rounds": {
                "p50_ms": [round(v, 3) for v in self.p50_ms],
                "p99_ms": [round(v, 3) for v in self.p99_ms],
                "rps_c16": [round(v, 1) for v in self.rps],
            },
        }


def check_answer(target: Target) -> None:
    """One request; the answer must be a chat.completion with content and usage."""
    response = target.http().post(target.url, content=BODY_BYTES)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    payload = response.json()
    content = payload["choices"][0]["message"]["content"]
    if not content or not payload.get("usage"):
        raise RuntimeError(f"unexpected answer: {response.text[:300]}")


def latency_c1(target: Target, requests: int, warmup: int) -> list[float]:
    """Sequential requests on one keep-alive client; the timed ones' latencies in ms."""
    client = target.http()
    samples: list[float] = []
    for i in range(warmup + requests):
        started = time.perf_counter()
        response = client.post(target.url, content=BODY_BYTES)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if response.status_code != 200:
            target.errors += 1
            if target.errors > 10:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            continue
        if i >= warmup:
            samples.append(elapsed_ms)
    return samples


def rps_c16(target: Target, seconds: float, warmup_s: float) -> float:
    if warmup_s > 0:
        run_async(throughput(target.port, CONCURRENCY, warmup_s, target.authorization))
    ok, bad, elapsed = run_async(
        throughput(target.port, CONCURRENCY, seconds, target.authorization)
    )
    target.errors += bad
    if ok == 0:
        raise RuntimeError(f"no successful answers at concurrency {CONCURRENCY} ({bad} errors)")
    return ok / elapsed


def summarize(targets: dict[str, Target], meta: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {name: target.result() for name, target in targets.items()}

    def value(name: str, key: str) -> float | None:
        entry = results[name]
        return None if "error" in entry else float(entry[key])

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 3)

    direct_p50 = value("direct", "p50_ms")
    strata_rps, litellm_rps = value("strata", "rps_c16"), value("litellm", "rps_c16")
    results["strata_added_p50_ms"] = diff(value("strata", "p50_ms"), direct_p50)
    results["litellm_added_p50_ms"] = diff(value("litellm", "p50_ms"), direct_p50)
    results["passthrough_added_p50_ms"] = diff(value("passthrough", "p50_ms"), direct_p50)
    results["strata_vs_litellm_rps"] = (
        round(strata_rps / litellm_rps, 2) if strata_rps and litellm_rps else None
    )
    added = results["strata_added_p50_ms"]
    ratio = results["strata_vs_litellm_rps"]
    results["targets"] = {
        "strata_added_p50_ms_max": MAX_STRATA_ADDED_P50_MS,
        "strata_vs_litellm_rps_min": MIN_STRATA_VS_LITELLM_RPS,
        "latency_met": None if added is None else added <= MAX_STRATA_ADDED_P50_MS,
        "throughput_met": None if ratio is None else ratio >= MIN_STRATA_VS_LITELLM_RPS,
    }
    if "strata-key" in targets:
        strata_p50 = value("strata", "p50_ms")
        for name in KEY_TARGETS:
            results[f"{name}_added_p50_ms"] = diff(value(name, "p50_ms"), strata_p50)
        key_added = results["strata-key_added_p50_ms"]
        results["targets"]["key_added_p50_ms_max"] = MAX_KEY_ADDED_P50_MS
        results["targets"]["key_met"] = (
            None if key_added is None else key_added <= MAX_KEY_ADDED_P50_MS
        )
    results["meta"] = meta
    return results


def print_table(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="Gateway overhead (canned instant backend, loopback)")
    columns = ("target", "p50_ms", "p99_ms", "rps_c16", "+p50 vs direct", "rps vs litellm")
    for column in columns:
        table.add_column(column, justify="left" if column == "target" else "right")
    direct, litellm = results["direct"], results["litellm"]
    names = [name for name in (*TARGETS, *KEY_TARGETS) if name in results]
    for name in names:
        entry = results[name]
        if "error" in entry:
            table.add_row(name, "error", "-", "-", "-", "-")
            continue
        added = "-" if "error" in direct else f"{entry['p50_ms'] - direct['p50_ms']:+.3f} ms"
        ratio = "-" if "error" in litellm else f"{entry['rps_c16'] / litellm['rps_c16']:.2f}x"
        table.add_row(
            name,
            f"{entry['p50_ms']:.3f}",
            f"{entry['p99_ms']:.3f}",
            f"{entry['rps_c16']:.0f}",
            added,
            ratio,
        )
    console.print(table)
    for name in names:
        if "error" in results[name]:
            console.print(f"[red]{name}: {results[name]['error']}[/red]")
    goals = results["targets"]
    added, ratio = results["strata_added_p50_ms"], results["strata_vs_litellm_rps"]

    def verdict(met: bool | None) -> str:
        if met is None:
            return "n/a"
        return "[green]met[/green]" if met else "[red]missed[/red]"

    added_text = "n/a" if added is None else f"{added:.3f} ms"
    ratio_text = "n/a" if ratio is None else f"{ratio:.2f}x"
    console.print(
        f"strata adds {added_text} p50 over direct (target <= {MAX_STRATA_ADDED_P50_MS} ms): "
        f"{verdict(goals['latency_met'])}"
    )
    console.print(
        f"strata serves {ratio_text} LiteLLM's requests/s at c{CONCURRENCY} "
        f"(target >= {MIN_STRATA_VS_LITELLM_RPS:g}x): {verdict(goals['throughput_met'])}"
    )
    for name in KEY_TARGETS:
        added = results.get(f"{name}_added_p50_ms")
        if f"{name}_added_p50_ms" in results:
            shown = "n/a" if added is None else f"{added:+.3f} ms"
            goal = f" (target <= {MAX_KEY_ADDED_P50_MS} ms): {verdict(goals['key_met'])}"
            console.print(
                f"{name} adds {shown} p50 over strata without auth"
                + (goal if name == "strata-key" else "")
            )


# ---- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="write the results here (JSON)")
    parser.add_argument(
        "--requests", type=int, default=500, help="timed c1 requests per target per round"
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="timed c16 seconds per target per round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM row")
    parser.add_argument(
        "--keys", action="store_true", help="add strata with an issued key, and with limits"
    )
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    args = parser.parse_args(argv)
    if args.json is None:
        parser.error("--json OUT is required")
    if args.requests < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--requests, --seconds and --rounds must be positive")
    return args


def measure(
    targets: dict[str, Target], args: argparse.Namespace, progress: Progress, console: Console
) -> None:
    live = [t for t in targets.values() if t.error is None]
    task = progress.add_task("measuring", total=args.rounds * len(live) * 2)
    warmup_requests = min(50, args.requests)
    warmup_s = min(1.0, args.seconds / 4)
    for round_no in range(args.rounds):
        shift = round_no % len(live) if live else 0
        order = live[shift:] + live[:shift]
        for phase in ("c1", "c16"):
            for target in order:
                label = f"round {round_no + 1}/{args.rounds} · {target.name} · {phase}"
                progress.update(task, description=label)
                if target.error is None:
                    try:
                        if phase == "c1":
                            samples = latency_c1(target, args.requests, warmup_requests)
                            target.p50_ms.append(percentile(samples, 50))
                            target.p99_ms.append(percentile(samples, 99))
                        else:
                            target.rps.append(rps_c16(target, args.seconds, warmup_s))
                    except FAILURES as exc:
                        target.error = f"{phase} failed: {type(exc).__name__}: {exc}"
                        console.print(f"[red]{target.name}: {target.error}[/red]")
                progress.advance(task)


def start_all(
    group: ProcessGroup,
    targets: dict[str, Target],
    args: argparse.Namespace,
    work: Path,
    progress: Progress,
) -> None:
    direct = targets["direct"]
    task = progress.add_task("starting the canned backend", total=len(targets))
    start_direct(group, direct)  # everything else depends on it: a failure ends the run
    check_answer(direct)
    progress.advance(task)
    backend_url = f"http://{HOST}:{direct.port}/v1"
    steps = {
        "strata": lambda t: start_strata(group, t, backend_url, work),
        "litellm": lambda t: start_litellm(group, t, backend_url, work),
        "passthrough": lambda t: start_passthrough(group, t, backend_url),
    }
    for name in KEY_TARGETS:
        if name in targets:
            steps[name] = partial(start_keyed, group, backend_url, work, name)
    for name, start in steps.items():
        target = targets[name]
        if name == "litellm" and args.no_litellm:
            target.error = "skipped (--no-litellm)"
            progress.advance(task)
            continue
        exe = LITELLM_VENV / "bin" / "litellm"
        first_install = name == "litellm" and not exe.exists()
        what = "installing LiteLLM into .venv-bench-litellm (one time)" if first_install else ""
        progress.update(task, description=what or f"starting {name}")
        try:
            start(target)
            check_answer(target)
            latency_c1(target, 100, 0)  # initial warm-up (imports, pools, caches)
            rps_c16(target, 1.0, 0.0)
        except FAILURES as exc:
            target.error = f"{type(exc).__name__}: {exc}"
            progress.console.print(f"[red]{name} unavailable: {target.error}[/red]")
        progress.advance(task)
    latency_c1(direct, 100, 0)
    rps_c16(direct, 1.0, 0.0)


def start_keyed(group: ProcessGroup, backend_url: str, work: Path, name: str, t: Target) -> None:
    """strata with one issued key (``strata-limits``: with a budget, rpm and tpm)."""
    limits = LIMITS if name == "strata-limits" else ()
    t.authorization = "Bearer " + issue_key(work / f"{name}-home", *limits)
    start_strata(group, t, backend_url, work, name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    began = time.perf_counter()
    names = (*TARGETS, *KEY_TARGETS) if args.keys else TARGETS
    targets = {name: Target(name) for name in names}
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        interrupts_end_the_run(),
        tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp,
        ProcessGroup(args.logs or Path(tmp)) as group,
    ):
        work = Path(tmp)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
        try:
            with Progress(*columns, console=console, transient=False) as progress:
                start_all(group, targets, args, work, progress)
                measure(targets, args, progress, console)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping servers[/yellow]")
            return 130
        except FAILURES as exc:  # only the canned backend's own start gets here
            console.print(f"[red]error: {type(exc).__name__}: {exc}[/red]")
            return 1
        finally:
            for target in targets.values():
                if target.client is not None:
                    target.client.close()
            group.close()

    meta = {
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "seconds_per_round": args.seconds,
        "concurrency": CONCURRENCY,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "duration_s": round(time.perf_counter() - began, 1),
    }
    results = summarize(targets, meta)
    print_table(console, results)
    write_json(args.json, results)
    console.print(f"wrote {args.json} in {meta['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
