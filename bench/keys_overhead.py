"""Keys: what authenticating a request and admitting it through the key's limits cost, per
request, in-process.

Why: the issue's target is that auth with an issued key adds at most 0.1 ms p50 to a request.
``gateway_overhead.py --keys`` measures that end to end over HTTP, but on a small shared
machine its p50s move by milliseconds between rounds, far more than the cost in question.
This isolates exactly what a request through strata runs for its key, in the real objects
(``create_app``'s authenticator, the chat service's gates), with nothing else in the way:

* ``no auth``: no keys anywhere; the client sends a token anyway (as the gateway benchmark
  does), which buys a fair queue;
* ``configured``: the key is in ``api_keys``;
* ``issued``: a key from ``strata keys create`` without limits;
* ``issued + limits``: a key with a budget, rpm and tpm, so each request is estimated,
  reserved and settled (and its spending queued for the background writer, which flushes
  in the same run and is counted).

Per variant: authenticate + admit + settle, timed in batches, variants interleaved round by
round; medians of the per-call means across rounds, and each one's added cost over ``no auth``.

    python bench/keys_overhead.py --json OUT [--calls 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from starlette.requests import Request

from _common import median, write_json
from strata.core.models.base import GenerationRequest, SamplingParams, Usage
from strata.core.settings import ModelSpec, Settings
from strata.core.turn import Generation
from strata.edges.http.app import create_app
from strata.features.keys.feature import Keys

VARIANTS = ("no auth", "configured", "issued", "issued + limits")
MAX_ADDED_US = 100.0  # the 0.1 ms
GEN = GenerationRequest(
    kind="chat",
    params=SamplingParams(max_tokens=16),
    messages=[{"role": "user", "content": "Say hello in one word."}],
)
DONE = [Generation("canned", Usage(14, 2), 0.0)]


def request(token: str) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    return Request({"type": "http", "headers": headers, "client": ("127.0.0.1", 1)})


def variant(home: Path, name: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """The app for one variant and one request's worth of key handling on it."""
    settings = Settings(
        home=home / name.replace(" ", "-"),
        bundled_models=False,
        models={"canned": ModelSpec(backend="fake", price_output_per_mtok=1.0)},
        api_keys=["sk-bench"] if name == "configured" else [],
    )
    app = create_app(settings)
    keys = app.state.kernel.feature("keys", Keys)
    token = "sk-bench"
    if name.startswith("issued"):
        limits: dict[str, Any] = {}
        if name == "issued + limits":
            limits = {"budget_usd": 1e6, "period": "day", "rpm": 10**9, "tpm": 10**12}
        token, _ = keys.store.create("bench", **limits)
        keys.cache.reload()
    authenticate, service = app.state.authenticate, app.state.kernel.service
    incoming = request(token)

    async def one() -> None:
        caller = await authenticate(incoming)
        admission = await service.admit(caller, "canned", [GEN])
        await admission.settle(DONE)

    return app, one


async def measure(calls: int, rounds: int, home: Path) -> dict[str, list[float]]:
    apps = {name: variant(home, name) for name in VARIANTS}
    per_call: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _, one in apps.values():  # warm up: first lookups, the first period's read
        for _ in range(200):
            await one()
    for round_no in range(rounds):
        order = VARIANTS[round_no % len(VARIANTS) :] + VARIANTS[: round_no % len(VARIANTS)]
        for name in order:
            app, one = apps[name]
            keys = app.state.kernel.feature("keys", Keys)
            started = time.perf_counter()
            for _ in range(calls):
                await one()
            await keys.limits.writer.flush()  # the background writes count too
            per_call[name].append((time.perf_counter() - started) / calls * 1e6)
    for app, _ in apps.values():
        await app.state.kernel.shutdown()
    return per_call


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--calls", type=int, default=20000, help="requests per variant a round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strata-keys-bench-") as tmp:
        per_call = asyncio.run(measure(args.calls, args.rounds, Path(tmp)))
    base = median(per_call["no auth"])
    results: dict[str, Any] = {}
    table = Table(title="Key handling per request (authenticate + admit + settle), in-process")
    for column in ("variant", "µs per request", "added vs no auth", "rounds (µs)"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name in VARIANTS:
        us = median(per_call[name])
        results[name] = {
            "us_per_request": round(us, 2),
            "added_us": round(us - base, 2),
            "rounds_us": [round(v, 2) for v in per_call[name]],
        }
        rounds = " ".join(f"{v:.1f}" for v in per_call[name])
        table.add_row(name, f"{us:.2f}", f"{us - base:+.2f}", rounds)
    added = results["issued"]["added_us"]
    results["target"] = {"issued_added_us_max": MAX_ADDED_US, "met": added <= MAX_ADDED_US}
    results["meta"] = {"calls": args.calls, "rounds": args.rounds}
    console = Console()
    console.print(table)
    verdict = "[green]met[/green]" if added <= MAX_ADDED_US else "[red]missed[/red]"
    console.print(
        f"an issued key adds {added:+.2f} µs per request over no auth "
        f"(target <= {MAX_ADDED_US:.0f} µs): {verdict}; with limits "
        f"{results['issued + limits']['added_us']:+.2f} µs"
    )
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
