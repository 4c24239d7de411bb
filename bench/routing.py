"""Routing benchmark: how much of the big model's quality a cascade keeps, and at what cost.

    python bench/routing.py [--data DIR] [--limit N] [--seed S] --json OUT

Runs the small and the big model (default: the bundled 0.5B and 1.5B) on a fixed seeded
sample of ``--limit`` items spread evenly over the task files in DIR (default
``../shared/data/routing``), caching every call (model file sha256 + request), so a rerun
only re-scores. Items are split in two, alternately within each task: the calibration half
fits thresholds, the learned router and the signal combiner; every figure is measured on the
evaluation half. Routers see only the request, never an item's task or answer.

For small alone, big alone, random routing at the same big-call share (its expectation,
small + share × (big − small)), each confidence signal, the learned router and the
combined router it reports accuracy, share of requests reaching the big model, cost per
1k requests (measured CPU seconds × cpu_hour_usd), PGR at the calibrated threshold, APGR
and CPT(50/80/95 %), and plots the cost–quality curves to a PNG next to the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO_ROOT, write_json

from strata.core.engine import Engine
from strata.core.settings import load_settings
from strata.features.routing import calibrate as cal
from strata.features.routing.grading import SIGNALS, outcomes
from strata.features.routing.outcomes import Cache, Item, cache_dir, load_items, run_all

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "routing"
COMBINED_PARTS = [*SIGNALS, "learned"]
CHEAP_PARTS = [p for p in COMBINED_PARTS if p != "consistency"]  # no extra samples
TARGET = 0.95


def split(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """Alternate items within each task: even positions calibrate, odd ones evaluate."""
    seen: dict[str, int] = defaultdict(int)
    calib, evaluation = [], []
    for item in items:
        (calib if seen[item.task] % 2 == 0 else evaluation).append(item)
        seen[item.task] += 1
    return calib, evaluation


def evaluate(
    name: str,
    calib_scores: list[float],
    eval_scores: list[float],
    calib: list[cal.Outcome],
    evaluation: list[cal.Outcome],
    parts: list[str],
    skips: tuple[list[bool], list[bool]] | None = None,
) -> dict[str, Any]:
    """Pick the threshold on the calibration half for TARGET, apply it to the other half.
    ``skips``: requests a prefilter sends straight to the big model (calibration, evaluation)."""
    calib_skip, eval_skip = skips or ([False] * len(calib), [False] * len(evaluation))
    big_calib = cal.accuracy(calib, [True] * len(calib))
    curve = cal.operating_curve(calib_scores, calib, parts, big_calib, calib_skip)
    point = cal.choose(curve, TARGET)
    escalate = [s < point.threshold or k for s, k in zip(eval_scores, eval_skip, strict=True)]
    n = len(evaluation)
    small = cal.accuracy(evaluation, [False] * n)
    big = cal.accuracy(evaluation, [True] * n)
    acc = cal.accuracy(evaluation, escalate)
    cost = sum(
        cal.request_cost(o, parts, e, k)
        for o, e, k in zip(evaluation, escalate, eval_skip, strict=True)
    )
    # ranking metrics: prefiltered requests rank first (they always go to the big model)
    ranked = [-1.0 if k else s for s, k in zip(eval_scores, eval_skip, strict=True)]
    pgrs = cal.pgr_at_shares(ranked, evaluation)
    eval_curve = cal.operating_curve(eval_scores, evaluation, parts, big or 1.0, eval_skip)
    return {
        "name": name,
        "threshold": round(point.threshold, 4),
        "acc": acc,
        "big_share": sum(escalate) / n,
        "cost": cost / n * 1000,
        "pgr": (acc - small) / (big - small) if big != small else 1.0,
        "apgr": cal.apgr(pgrs),
        "cpt": {str(int(x * 100)): cal.cpt(pgrs, x) for x in (0.5, 0.8, 0.95)},
        "prefiltered": sum(eval_skip) / n,
        "curve": [(p.cost_per_request * 1000, p.quality * big, p.big_share) for p in eval_curve],
    }


def run_routers(calib: list[cal.Outcome], evaluation: list[cal.Outcome]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for signal in SIGNALS:
        results[signal] = evaluate(
            signal,
            [o.scores[signal] for o in calib],
            [o.scores[signal] for o in evaluation],
            calib,
            evaluation,
            [signal],
        )
    learned = cal.fit_learned(calib)
    results["learned"] = evaluate(
        "learned",
        cal.cross_fit_learned(calib),
        [learned.predict(o.prompt) for o in evaluation],
        calib,
        evaluation,
        ["learned"],
    )
    for name, parts in (("combined", COMBINED_PARTS), ("combined-no-sc", CHEAP_PARTS)):
        results[name] = evaluate_combined(name, parts, calib, evaluation, learned)
    return results


def evaluate_combined(
    name: str,
    parts: list[str],
    calib: list[cal.Outcome],
    evaluation: list[cal.Outcome],
    learned: cal.Logistic,
) -> dict[str, Any]:
    """Fit the combiner (and the prefilter) on the calibration half, as `strata calibrate`
    does, and evaluate it on the other half."""
    tuning, calib_scores = cal.calibrate(calib, parts, TARGET)
    combiner = cal.Logistic.from_json(tuning.signal_options["model"])
    parts = tuning.signal_options["parts"]  # those forward selection kept
    eval_scores = [
        combiner.predict(
            [cal.logit(learned.predict(o.prompt) if p == "learned" else o.scores[p]) for p in parts]
        )
        for o in evaluation
    ]
    below = tuning.prefilter_below
    skips = (
        [x < below for x in cal.cross_fit_learned(calib)],
        [learned.predict(o.prompt) < below for o in evaluation],
    )
    result = evaluate(name, calib_scores, eval_scores, calib, evaluation, parts, skips)
    result["parts"] = parts
    return result


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
        points = sorted((c[0], c[1]) for c in r["curve"])
        by_cost.plot([p[0] for p in points], [p[1] for p in points], label=name, lw=width)
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


def table(summary: dict[str, Any], results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    small, big = summary["small"]["acc"], summary["big"]["acc"]
    t = Table(title=f"routing on {summary['items']['evaluation']} held-out items")
    for col in ("router", "acc", "big", "$/1k", "rand", "PGR", "APGR", "CPT50", "CPT80", "CPT95"):
        t.add_column(col, justify="left" if col == "router" else "right")
    for key in ("small", "big", "oracle"):
        r = summary[key]
        t.add_row(key, f"{r['acc']:.3f}", f"{r['big_share']:.2f}", f"{r['cost']:.3f}")
    for name, r in results.items():
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
    print(
        "acc: accuracy; big: share of requests reaching the big model; $/1k: cost per 1k "
        "requests; rand: random routing at the same share; threshold fitted on the "
        f"calibration half for {TARGET:.0%} of the big model's accuracy. APGR of random = 0.5.",
        file=sys.stderr,
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(args.config)
    engine = Engine(settings)
    task_limits = dict((k, int(v)) for k, v in (s.split("=") for s in args.task_limit))
    items = load_items(args.data, args.limit, args.seed, task_limits)
    cache = Cache(cache_dir(settings.home), engine)
    done = 0

    def progress(item: Item) -> None:
        nonlocal done
        done += 1
        if done % 10 == 0 or done == len(items):
            print(f"  {done}/{len(items)} items ({cache.ran} model calls run)", file=sys.stderr)

    try:
        records = await run_all(cache, items, args.small, args.big, args.cached_only, progress)
    finally:
        await engine.shutdown()
    calib_items, eval_items = split([i for i in items if i.id in records])
    calib = await outcomes(calib_items, records, settings.cpu_hour_usd, args.seed)
    evaluation = await outcomes(eval_items, records, settings.cpu_hour_usd, args.seed)
    n = len(evaluation)
    summary: dict[str, Any] = {"items": {"calibration": len(calib), "evaluation": n}}
    for key, escalate in (("small", [False] * n), ("big", [True] * n)):
        cost = sum(cal.request_cost(o, [], e) for o, e in zip(evaluation, escalate, strict=True))
        summary[key] = {
            "acc": cal.accuracy(evaluation, escalate),
            "big_share": float(escalate[0]),
            "cost": cost / n * 1000,
        }
    oracle = [not o.small_ok and o.big_ok for o in evaluation]
    summary["oracle"] = {
        "acc": cal.accuracy(evaluation, oracle),
        "big_share": sum(oracle) / n,
        "cost": sum(cal.request_cost(o, [], e) for o, e in zip(evaluation, oracle, strict=True))
        / n
        * 1000,
    }
    per_task: dict[str, dict[str, float]] = {}
    by_id = {o.id: o for o in evaluation}
    for task in sorted({i.task for i in eval_items}):
        mine = [by_id[i.id] for i in eval_items if i.task == task]
        per_task[task] = {
            "items": len(mine),
            "small_acc": cal.accuracy(mine, [False] * len(mine)),
            "big_acc": cal.accuracy(mine, [True] * len(mine)),
        }
    results = run_routers(calib, evaluation)
    router = results["combined"]
    small_acc, big_acc = summary["small"]["acc"], summary["big"]["acc"]
    report = {
        "small_acc": small_acc,
        "big_acc": big_acc,
        "router": {k: router[k] for k in ("acc", "big_share", "cost", "pgr", "threshold")},
        "random_at_same_share_acc": small_acc + router["big_share"] * (big_acc - small_acc),
        "apgr": router["apgr"],
        "apgr_random": 0.5,
        "cpt": router["cpt"],
        "target_quality": TARGET,
        "summary": summary,
        "per_task": per_task,
        "signals": {k: {x: v for x, v in r.items() if x != "curve"} for k, r in results.items()},
        "settings": {
            "limit": args.limit,
            "seed": args.seed,
            "data": str(args.data),
            "task_limit": task_limits,
            "small": args.small,
            "big": args.big,
            "cpu_hour_usd": settings.cpu_hour_usd,
        },
    }
    table(summary, results)
    if args.json:
        png = args.json.with_suffix(".png")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        plot(png, results, summary)
        report["plot"] = str(png)
        write_json(args.json, report)
        print(f"wrote {args.json} and {png}", file=sys.stderr)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=80, help="items, spread evenly over tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write results here (and the plot as .png)")
    parser.add_argument(
        "--task-limit",
        action="append",
        default=[],
        metavar="TASK=N",
        help="cap one task's items (e.g. gsm8k=20: worked problems cost most)",
    )
    parser.add_argument("--small", default="small")
    parser.add_argument("--big", default="big")
    parser.add_argument("--config", type=Path, help="strata settings file")
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="score only items whose model calls are all cached",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
