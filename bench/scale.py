"""Scale out: what strata's distributed pieces give, section by section.

Each section is one function in ``SECTIONS`` (name → function of the parsed arguments,
returning its results and printing its table), run in turn and written under its name in one
JSON file, so sections slot in beside each other and ``--sections`` picks any subset.

``gateway`` and ``replicas`` (``_scale_ray.py``): requests/s through one vs two gateway
replicas on Ray Serve, and tokens/s of the bundled 0.5B model on one vs two model replicas.

``ledger``: the ledger's write path, SQLite against PostgreSQL, rows per second. Each row is
what the server writes per answered request (``Ledger.record``: one INSERT, its own durable
transaction),
with the server's durability settings: SQLite in WAL with ``synchronous=FULL``, PostgreSQL
with ``fsync`` and ``synchronous_commit`` on (a cluster started here with
``scripts/postgres.sh start --durable`` on the same disk, or the one ``--database`` names).
Writers are threads, as the server's are (``db.run`` moves each write to a worker thread):
at concurrency 1 it is the commit latency; at higher concurrency PostgreSQL commits many
writers' rows in one flush of its log (group commit) while SQLite takes one writer at a time.
Rounds alternate the engines; the figure is the median of the rounds.

    python bench/scale.py --json OUT [--sections ledger gateway replicas] [--rounds 5]
        [--rows 400] [--concurrency 1 16] [--database postgresql://…]
        [--gateway-seconds 10] [--gateway-concurrency 64] [--model-requests 8] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import _scale_ray
from _common import REPO_ROOT, median, write_json
from strata.features.routing.ledger import Ledger

console = Console()


def ledger_row(i: int) -> dict[str, Any]:
    return {
        "ts": time.time(),
        "tenant": f"k{i % 7:024x}",
        "model": "auto",
        "route": "auto",
        "answered_by": "small" if i % 3 else "big",
        "tiers": json.dumps(["small", "big"]),
        "prompt_tokens": 120 + i % 50,
        "completion_tokens": 40 + i % 30,
        "latency_s": 0.25,
        "confidence": 0.8,
        "cost_usd": 1.2e-5,
        "baseline_usd": 3.4e-5,
        "degraded": 0,
    }


def write_rows(ledger: Ledger, rows: int, concurrency: int) -> float:
    """Rows per second for ``rows`` records from ``concurrency`` writer threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: ledger.record(ledger_row(i)), range(rows)))
    return rows / (time.perf_counter() - start)


def start_cluster() -> tuple[str, str]:
    done = subprocess.run(
        ["sh", str(REPO_ROOT / "scripts" / "postgres.sh"), "start", "--durable"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"scripts/postgres.sh failed: {done.stderr}")
    folder, url = done.stdout.split()[-2:]
    return folder, url


def ledger_section(args: argparse.Namespace) -> dict[str, Any]:
    folder = None
    url = args.database
    if url is None:
        folder, url = start_cluster()
    try:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            engines = {"sqlite": Ledger(Path(tmp) / "ledger.db"), "postgres": Ledger(url)}
            samples: dict[str, dict[int, list[float]]] = {
                name: {c: [] for c in args.concurrency} for name in engines
            }
            for ledger in engines.values():  # warm up: connections, caches
                write_rows(ledger, 20, max(args.concurrency))
            for r in range(args.rounds):
                for c in args.concurrency:
                    for name, ledger in engines.items():
                        rate = write_rows(ledger, args.rows, c)
                        samples[name][c].append(rate)
                        console.log(f"ledger round {r + 1}/{args.rounds} {name} x{c}: {rate:.0f}")
            for ledger in engines.values():
                ledger.close()
    finally:
        if folder is not None:
            subprocess.run(
                ["sh", str(REPO_ROOT / "scripts" / "postgres.sh"), "stop", folder], check=False
            )
    results: dict[str, Any] = {"rows_per_round": args.rows, "rounds": args.rounds, "by": []}
    table = Table(title="ledger write path: rows/s (median of rounds), durable commits")
    for column in ("writers", "SQLite", "PostgreSQL", "PostgreSQL / SQLite"):
        table.add_column(column, justify="right")
    for c in args.concurrency:
        lite, pg = median(samples["sqlite"][c]), median(samples["postgres"][c])
        results["by"].append(
            {
                "concurrency": c,
                "sqlite_rows_per_s": round(lite, 1),
                "postgres_rows_per_s": round(pg, 1),
                "ratio": round(pg / lite, 3),
                "sqlite_rounds": [round(x, 1) for x in samples["sqlite"][c]],
                "postgres_rounds": [round(x, 1) for x in samples["postgres"][c]],
            }
        )
        table.add_row(str(c), f"{lite:.0f}", f"{pg:.0f}", f"{pg / lite:.2f}")
    console.print(table)
    return results


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "ledger": ledger_section,
    **_scale_ray.SECTIONS,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument(
        "--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS), help="run these"
    )
    parser.add_argument("--rows", type=int, default=400, help="ledger rows per round and engine")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is reported)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16], help="ledger writer threads"
    )
    parser.add_argument(
        "--database", help="PostgreSQL URL to use (default: a durable throwaway cluster)"
    )
    _scale_ray.add_arguments(parser)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": "2 cores shared with other engineers' work (loaded)"}
    for name in args.sections:
        console.rule(name)
        results[name] = SECTIONS[name](args)
        write_json(args.json, results)
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
