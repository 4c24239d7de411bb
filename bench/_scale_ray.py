"""The Ray Serve sections of ``bench/scale.py``: more gateway replicas, more model replicas.

``gateway``: requests per second through strata's gateway deployed on a local Ray Serve, at
concurrency 64, with one and then two gateway replicas. The model is the instant canned
OpenAI-compatible server of the gateway benchmark (``_gateway_wire.py``, a child process): a
remote model stays remote, so every request is the gateway's own work (parse, admit, call,
bill, answer) plus Ray Serve's HTTP proxy, and nothing else.

``replicas``: generated tokens per second of the bundled 0.5B model on one and then two
``ModelServer`` replicas, each with one llama.cpp thread and one Ray CPU, under the same
concurrent greedy requests through the gateway.

Rounds alternate the replica counts (Ray Serve scales the deployment in place between them);
each figure is the median of the rounds, and the ratio is two replicas over one. Beside the
rate per second, each section reports the rate per CPU-second the measured processes used
(read from ``/proc``): on a shared machine the kernel's autogroup scheduler gives all of one
session's processes (every Ray worker included) one fair share of the cores, so a second
replica there cannot get more CPU, and the rate per second says little; the rate per
CPU-second says whether a second replica costs extra work, which is what the arithmetic for
N machines (in the README) needs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _common import ProcessGroup, free_port, median, wait_http
from _gateway_wire import HOST, MODEL, throughput
from strata.core.settings import ModelSpec, default_home, load_settings

console = Console()
SMALL_GGUF = "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway-seconds", type=float, default=10.0, help="seconds of load per round (gateway)"
    )
    parser.add_argument(
        "--gateway-concurrency", type=int, default=64, help="connections at once (gateway)"
    )
    parser.add_argument(
        "--model-requests", type=int, default=4, help="concurrent generations per round (replicas)"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=32, help="tokens per generation (replicas)"
    )


@contextmanager
def ray_serve(port: int) -> Iterator[None]:
    """A local Ray with every core of this machine, Ray Serve's proxy on ``port``."""
    import ray
    from ray import serve

    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": HOST, "port": port})
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def replica_pids(*titles: str) -> list[int]:
    """Processes of this machine whose title (Ray sets ``ray::ServeReplica:APP:NAME``,
    ``ray::ProxyActor``) contains one of ``titles``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and any(t in title for t in titles):
            found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def alternate(
    counts: list[int], rounds: int, measure: Callable[[int], dict[str, float]], what: str
) -> dict[int, list[dict[str, float]]]:
    samples: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    for r in range(rounds):
        for n in counts:
            values = measure(n)
            samples[n].append(values)
            shown = ", ".join(f"{k} {v:.2f}" for k, v in values.items())
            console.log(f"{what} round {r + 1}/{rounds}, {n} replica(s): {shown}")
    return samples


def summary(samples: dict[int, list[dict[str, float]]], title: str) -> dict[str, Any]:
    """Per metric: the median of the rounds for each replica count, and two over one."""
    metrics = list(samples[1][0])
    table = Table(title=title)
    table.add_column("replicas", justify="right")
    for metric in metrics:
        table.add_column(f"{metric} (median)", justify="right")
    medians = {n: {m: median([v[m] for v in rows]) for m in metrics} for n, rows in samples.items()}
    for n in samples:
        table.add_row(str(n), *(f"{medians[n][m]:.2f}" for m in metrics))
    ratios = {m: medians[2][m] / medians[1][m] for m in metrics}
    table.add_row("2 / 1", *(f"{ratios[m]:.2f}" for m in metrics))
    console.print(table)
    return {
        "by_replicas": {
            str(n): {
                **{m: round(medians[n][m], 3) for m in metrics},
                "rounds": [{m: round(v[m], 3) for m in metrics} for v in rows],
            }
            for n, rows in samples.items()
        },
        "ratio_2_over_1": {m: round(r, 3) for m, r in ratios.items()},
        "load_average_at_end": round(os.getloadavg()[0], 1),
    }


def gateway_section(args: argparse.Namespace) -> dict[str, Any]:
    from strata.edges.ray.app import deploy

    port, canned = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp, ProcessGroup(Path(tmp)) as group:
        backend = group.start(
            "canned", [sys.executable, "bench/_gateway_wire.py", "backend", str(canned)]
        )
        wait_http(f"http://{HOST}:{canned}/v1/models", backend, timeout_s=60)
        spec = ModelSpec(backend="openai", url=f"http://{HOST}:{canned}/v1", max_concurrency=256)

        def measure(replicas: int) -> dict[str, float]:
            settings = load_settings(
                home=Path(tmp) / "home",
                host=HOST,
                port=port,
                bundled_models=False,
                max_queue=1024,
                models={MODEL: spec},
                ray={"gateway": {"num_replicas": replicas, "num_cpus": 0}},
            )
            deploy(settings)
            asyncio.run(throughput(port, args.gateway_concurrency, 2.0))  # warm up
            pids = replica_pids("ServeReplica:strata:gateway", "ProxyActor")
            cpu = cpu_seconds(pids)
            ok, bad, seconds = asyncio.run(
                throughput(port, args.gateway_concurrency, args.gateway_seconds)
            )
            cpu = cpu_seconds(pids) - cpu
            if bad:
                console.log(f"[red]{bad} answers were not 200[/red]")
            return {"requests_per_s": ok / seconds, "requests_per_cpu_s": ok / max(cpu, 1e-9)}

        with ray_serve(port):
            samples = alternate([1, 2], args.rounds, measure, "gateway")
    title = f"gateway replicas on Ray Serve, concurrency {args.gateway_concurrency}"
    return {
        "concurrency": args.gateway_concurrency,
        "seconds_per_round": args.gateway_seconds,
        "cpu": "gateway replicas and Ray Serve's HTTP proxy",
        **summary(samples, title),
    }


async def generate_all(port: int, requests: int, max_tokens: int) -> tuple[int, float]:
    """``requests`` greedy chat generations at once; (completion tokens, seconds)."""
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=600) as client:

        async def one(i: int) -> int:
            body = {
                "model": "small",
                "messages": [
                    {"role": "user", "content": f"Write a Python function number {i} that adds."}
                ],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            response = await client.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        started = time.perf_counter()
        tokens = await asyncio.gather(*(one(i) for i in range(requests)))
        return sum(tokens), time.perf_counter() - started


def replicas_section(args: argparse.Namespace) -> dict[str, Any]:
    from strata.edges.ray.app import deploy

    gguf = default_home() / SMALL_GGUF
    if not gguf.is_file():
        sys.exit(f"the 0.5B model is not assembled at {gguf}: run `make models-test`")
    port = free_port()
    spec = ModelSpec(path=gguf, n_threads=1, n_ctx=1024, max_queue=256)
    with tempfile.TemporaryDirectory() as tmp:

        def measure(replicas: int) -> dict[str, float]:
            settings = load_settings(
                home=Path(tmp) / "home",
                host=HOST,
                port=port,
                bundled_models=False,
                models={"small": spec},
                ray={
                    "gateway": {"num_cpus": 0},
                    "model": {"num_replicas": replicas, "num_cpus": 1},
                },
            )
            deploy(settings)
            asyncio.run(generate_all(port, 2 * replicas, 4))  # every replica loads its weights
            pids = replica_pids("ServeReplica:strata:model-small")
            cpu = cpu_seconds(pids)
            tokens, seconds = asyncio.run(generate_all(port, args.model_requests, args.max_tokens))
            cpu = cpu_seconds(pids) - cpu
            return {"tokens_per_s": tokens / seconds, "tokens_per_cpu_s": tokens / max(cpu, 1e-9)}

        with ray_serve(port):
            samples = alternate([1, 2], args.rounds, measure, "replicas")
    return {
        "model": "qwen2.5-coder-0.5b-instruct Q4_K_M, 1 llama.cpp thread per replica",
        "concurrent_requests": args.model_requests,
        "max_tokens": args.max_tokens,
        "cpu": "model replicas",
        **summary(samples, "0.5B model replicas on Ray Serve, generated tokens"),
    }


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "gateway": gateway_section,
    "replicas": replicas_section,
}
