"""Tables and plots of ``bench/routing.py``: what people would rather see than read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

TARGET = 0.95  # the share of the big model's accuracy the thresholds are fitted for


def plot(path: Path, results: dict[str, Any], summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_share, by_cost) = plt.subplots(1, 2, figsize=(13, 5.5))
    small, big = summary["small"], summary["big"]
    for name, r in results.items():
        width = 2.4 if name == "combined" else 1.2
        points = sorted((c[2], c[0], c[1]) for c in r["curve"])
        by_share.plot([p[0] for p in points], [p[2] for p in points], label=name, lw=width)
        costs = sorted((c[0], c[1]) for c in r["curve"])
        by_cost.plot([p[0] for p in costs], [p[1] for p in costs], label=name, lw=width)
    goal = small["acc"] + TARGET * (big["acc"] - small["acc"])
    by_share.plot([0, 1], [small["acc"], big["acc"]], "k--", label="random")
    by_cost.plot([small["cost"], big["cost"]], [small["acc"], big["acc"]], "k--", label="random")
    for ax in (by_share, by_cost):
        ax.axhline(goal, color="grey", lw=0.6)
        ax.set_ylabel("accuracy (evaluation half)")
    by_cost.scatter([small["cost"], big["cost"]], [small["acc"], big["acc"]], c="k", zorder=5)
    by_share.set_xlabel("share of requests reaching the big model")
    by_cost.set_xlabel("cost per 1k requests (USD, measured CPU time)")
    by_share.set_title(f"quality vs big-model calls (grey: {TARGET:.0%} of the gap)")
    by_cost.set_title("quality vs cost")
    by_share.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(summary: dict[str, Any], results: dict[str, Any], report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    small, big = summary["small"]["acc"], summary["big"]["acc"]
    t = Table(title=f"routing on {summary['items']['evaluation']} held-out items")
    for col in ("router", "acc", "big", "$/1k", "rand", "PGR", "APGR", "CPT50", "CPT80", "CPT95"):
        t.add_column(col, justify="left" if col == "router" else "right")
    for key in ("small", "big", "oracle"):
        r = summary[key]
        t.add_row(key, f"{r['acc']:.3f}", f"{r['big_share']:.2f}", f"{r['cost']:.3f}")
    for name, r in [("product route", report["router"]), *results.items()]:
        t.add_row(
            name,
            f"{r['acc']:.3f}",
            f"{r['big_share']:.2f}",
            f"{r['cost']:.3f}",
            f"{small + r['big_share'] * (big - small):.3f}",
            f"{r['pgr']:.2f}",
            f"{r['apgr']:.3f}",
            *(f"{r['cpt'][k]:.0%}" for k in ("50", "80", "95")),
        )
    Console(width=120).print(t)
    tasks = Table(title="per task (evaluated items)")
    for col in ("task", "items", "small", "big", "route", "big share", "specialist", "APGR"):
        tasks.add_column(col, justify="left" if col == "task" else "right")
    for task, r in report["per_task"].items():
        route = r["route"]
        tasks.add_row(
            task,
            str(r["items"]),
            f"{r['small_acc']:.3f}",
            f"{r['big_acc']:.3f}",
            f"{route['acc']:.3f}",
            f"{route['big_share']:.2f}",
            f"{route['specialist_share']:.2f}",
            f"{route['apgr']:.3f}",
        )
    Console(width=120).print(tasks)
    latency = report["decision_latency"]
    print(
        "acc: accuracy; big: share of requests reaching the big model; $/1k: cost per 1k "
        "requests; rand: random routing at the same share; thresholds fitted on the "
        f"calibration items for {TARGET:.0%} of the big model's accuracy. APGR of random = 0.5. "
        f"Routing decision p50 {latency['p50_ms']:.1f} ms, "
        f"{latency['share_of_small_p50']:.2%} of the small tier's own time"
        + (
            f"; with a specialist's embedding {latency['with_specialist_p50_ms']:.1f} ms, "
            f"{latency['with_specialist_share_of_small_p50']:.2%}."
            if latency["with_specialist_p50_ms"] is not None
            else "."
        ),
        file=sys.stderr,
    )
