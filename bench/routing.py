"""Routing benchmark: how much of the big model's quality the product route keeps, and at what cost.

    python bench/routing.py [--calib DIR] [--calib-limit N] [--data DIR] [--limit N]
                            [--seed S] --json OUT

Runs the small and the big model (default: the bundled 0.5B and 1.5B) on a fixed seeded
sample of ``--calib-limit`` items spread evenly over the task files in ``--calib`` (default
``../shared/data/routing``) and of ``--limit`` items from ``--data`` (default the same
folder), caching every call (model file sha256 + request), so a rerun only re-scores. The
calibration items fit everything the route learns: each signal's threshold, the learned
router, the signal combiner and its prefilter, and the specialists (trained on the big
tier's answers only); every figure is measured on the ``--data`` items. When both folders
are the same, the evaluated items are drawn from past the calibration items in each task's
seeded order, so none is ever learned from. Routers see only the request, never an item's
task or answer.

The product route: a specialist answers first where its label set recurs (bench/_routing_
product.py), the calibrated combined cascade decides small or big for the rest; exemplars
are off, the product's default (they did not lift the 0.5B on GSM8K: bench/exemplars.py).
Beside it, in the same run, ``baselines``: the answer-probability cascade (the small answer's
own probability, threshold fitted on the calibration items), random routing and the oracle;
and each confidence signal, the learned router and the combined cascade alone. For each:
accuracy, share of requests reaching the big model, cost per 1k requests (measured CPU
seconds × cpu_hour_usd), PGR at the calibrated threshold, APGR and CPT(50/80/95 %); a
per-task table; the routing decision's own time against the small tier's; and the
cost–quality curves as a PNG next to the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _outcome_table as outcome_table
from bench import _routing_product as product
from bench._common import REPO_ROOT, write_json
from bench._routing_report import TARGET, plot, table

from strata.core.engine import Engine
from strata.core.settings import load_settings
from strata.features.distill.settings import DistillSettings
from strata.features.routing import calibrate as cal
from strata.features.routing.features import prompt_features
from strata.features.routing.grading import SIGNALS, outcomes
from strata.features.routing.logistic import Logistic
from strata.features.routing.outcomes import (
    Cache,
    Item,
    cache_dir,
    load_items,
    model_sha256,
    run_all,
)
from strata.features.routing.signals.combined import logit

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "routing"
COMBINED_PARTS = [*SIGNALS, "learned"]
CHEAP_PARTS = [p for p in COMBINED_PARTS if p != "consistency"]  # no extra samples


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


@dataclass
class Cascade:
    """The calibrated combined cascade as the product runs it, for the product route."""

    learned: Logistic
    combiner: Logistic
    parts: list[str]
    below: float  # the prefilter: a learned score under it goes straight to the big model

    def score(self, o: cal.Outcome) -> float:
        return float(self.combiner.predict([logit(self.feature(o, p)) for p in self.parts]))

    def feature(self, o: cal.Outcome, part: str) -> float:
        return self.learned.predict(o.prompt) if part == "learned" else o.scores[part]

    def skip(self, o: cal.Outcome) -> bool:
        return bool(self.learned.predict(o.prompt) < self.below)


def run_routers(
    calib: list[cal.Outcome], evaluation: list[cal.Outcome]
) -> tuple[dict[str, Any], Cascade]:
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
        results[name], _ = evaluate_combined(name, parts, calib, evaluation, learned)
    # what `strata calibrate` fits by default: the cascade inside the product route
    results["cascade"], cascade = evaluate_combined(
        "cascade", cal.DEFAULT_PARTS, calib, evaluation, learned
    )
    return results, cascade


def evaluate_combined(
    name: str,
    parts: list[str],
    calib: list[cal.Outcome],
    evaluation: list[cal.Outcome],
    learned: Logistic,
) -> tuple[dict[str, Any], Cascade]:
    """Fit the combiner (and the prefilter) on the calibration items, as `strata calibrate`
    does, and evaluate it on the evaluated ones."""
    tuning, calib_scores = cal.calibrate(calib, parts, TARGET)
    cascade = Cascade(
        learned,
        Logistic.from_json(tuning.signal_options["model"]),
        tuning.signal_options["parts"],  # those forward selection kept
        tuning.prefilter_below,
    )
    skips = (
        [x < cascade.below for x in cal.cross_fit_learned(calib)],
        [cascade.skip(o) for o in evaluation],
    )
    eval_scores = [cascade.score(o) for o in evaluation]
    result = evaluate(name, calib_scores, eval_scores, calib, evaluation, cascade.parts, skips)
    result["parts"] = cascade.parts
    return result, cascade


def held_apart(calib: Path, data: Path, calib_items: list[Item]) -> dict[str, int] | None:
    """Where the evaluated items start in each task's seeded order: past the calibration
    items when both come from the same folder."""
    if calib.resolve() != data.resolve():
        return None
    counts: dict[str, int] = {}
    for item in calib_items:
        counts[item.task] = counts.get(item.task, 0) + 1
    return counts


def baselines(results: dict[str, Any], evaluation: list[cal.Outcome]) -> dict[str, dict[str, Any]]:
    oracle = [0.0 if not o.small_ok and o.big_ok else 1.0 for o in evaluation]
    pgrs = cal.pgr_at_shares(oracle, evaluation)
    shares = (0.5, 0.8, 0.95)
    return {
        "answer_prob_cascade": {
            k: results["answer_prob"][k] for k in ("apgr", "cpt", "acc", "big_share", "cost")
        },
        "random": {"apgr": 0.5, "cpt": {str(int(x * 100)): x for x in shares}},
        "oracle": {
            "apgr": cal.apgr(pgrs),
            "cpt": {str(int(x * 100)): cal.cpt(pgrs, x) for x in shares},
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(args.config)
    engine = Engine(settings)
    task_limits = dict((k, int(v)) for k, v in (s.split("=") for s in args.task_limit))
    calib_items = load_items(args.calib, args.calib_limit, args.seed, task_limits)
    after = held_apart(args.calib, args.data, calib_items)
    eval_items = load_items(args.data, args.limit, args.seed, task_limits, after)
    cache = Cache(cache_dir(settings.home), engine)
    models = {t: model_sha256(engine, t)[:16] for t in (args.small, args.big)}
    tabled = outcome_table.read(args.table, models) if args.table else {}
    # calibration items the committed table already holds need no model call
    items = [*eval_items, *(i for i in calib_items if i.id not in tabled)]
    done = 0

    def progress(item: Item) -> None:
        nonlocal done
        done += 1
        if done % 10 == 0 or done == len(items):
            print(f"  {done}/{len(items)} items ({cache.ran} model calls run)", file=sys.stderr)

    try:
        # evaluated items first: a stopped run still evaluates on all of them
        records = await run_all(cache, items, args.small, args.big, args.cached_only, progress)
    finally:
        await engine.shutdown()
    eval_items = [i for i in eval_items if i.id in records]
    ran = [i for i in calib_items if i.id in records]
    fresh = await outcomes(ran, records, settings.cpu_hour_usd, args.seed)
    rows = {
        **tabled,
        **{
            i.id: outcome_table.row(i, o, records[i.id], models)
            for i, o in zip(ran, fresh, strict=True)
        },
    }
    calib_items = [i for i in calib_items if i.id in rows]
    calib = [outcome_table.to_outcome(rows[i.id], i) for i in calib_items]
    if args.table and fresh:
        everything = outcome_table.read(args.table)
        everything.update((i.id, rows[i.id]) for i in ran)
        outcome_table.write(args.table, list(everything.values()))
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
    results, cascade = run_routers(calib, evaluation)
    distill = settings.section("distill", DistillSettings)
    print(f"  training specialists on {len(calib_items)} calibration items", file=sys.stderr)
    big_answers = {i.id: rows[i.id]["big_answer"] for i in calib_items}
    specialists, embedder = product.train_specialists(calib_items, big_answers, distill)
    answers = [product.ask(specialists, embedder, item) for item in eval_items]
    scores = [cascade.score(o) for o in evaluation]
    skips = [cascade.skip(o) for o in evaluation]
    threshold = results["cascade"]["threshold"]
    route = product.product_route(
        evaluation, answers, scores, skips, threshold, cascade.parts, settings.cpu_hour_usd
    )
    by_id = {o.id: o for o in evaluation}

    def decide(item: Item) -> bool:
        """Escalate? (The small answer's signals come with its tokens; the prompt's are
        computed here, as the server does.)"""
        o = by_id[item.id]
        o.prompt = prompt_features(item.messages)
        return cascade.skip(o) or cascade.score(o) < threshold

    latency = product.decision_latency(eval_items, answers, decide, records)
    per_task: dict[str, dict[str, Any]] = {}
    for task in sorted({i.task for i in eval_items}):
        picked = [k for k, i in enumerate(eval_items) if i.task == task]
        mine = [evaluation[k] for k in picked]
        per_task[task] = {
            "items": len(mine),
            "small_acc": cal.accuracy(mine, [False] * len(mine)),
            "big_acc": cal.accuracy(mine, [True] * len(mine)),
            "route": product.product_route(
                mine,
                [answers[k] for k in picked],
                [scores[k] for k in picked],
                [skips[k] for k in picked],
                threshold,
                cascade.parts,
                settings.cpu_hour_usd,
            ),
        }
    small_acc, big_acc = summary["small"]["acc"], summary["big"]["acc"]
    report = {
        "small_acc": small_acc,
        "big_acc": big_acc,
        "router": route,
        "random_at_same_share_acc": small_acc + route["big_share"] * (big_acc - small_acc),
        "apgr": route["apgr"],
        "apgr_random": 0.5,
        "cpt": route["cpt"],
        "baselines": baselines(results, evaluation),
        "target_quality": TARGET,
        "decision_latency": latency,
        "specialists": [
            {
                "labels": list(sp.labels),
                "examples": sp.report["examples"],
                "holdout": sp.report["holdout"],
                "threshold": round(sp.threshold, 4),
                "score": sp.report.get("score"),
            }
            for sp in specialists.values()
        ],
        "exemplars": "off (the product default: no lift on GSM8K, bench/exemplars.py)",
        "summary": summary,
        "per_task": per_task,
        "signals": {k: {x: v for x, v in r.items() if x != "curve"} for k, r in results.items()},
        "settings": {
            "calib": str(args.calib),
            "calib_limit": args.calib_limit,
            "data": str(args.data),
            "limit": args.limit,
            "seed": args.seed,
            "task_limit": task_limits,
            "small": args.small,
            "big": args.big,
            "cpu_hour_usd": settings.cpu_hour_usd,
        },
    }
    table(summary, results, report)
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
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="what is evaluated")
    parser.add_argument("--limit", type=int, default=200, help="evaluated items, spread evenly")
    parser.add_argument(
        "--calib", type=Path, default=DEFAULT_DATA, help="what the route learns from"
    )
    parser.add_argument("--calib-limit", type=int, default=2800, help="calibration items")
    parser.add_argument(
        "--table",
        type=Path,
        default=outcome_table.TABLE,
        help="the committed outcome table: calibration items in it need no model call, and"
        " those run are added to it",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write results here (and the plot as .png)")
    parser.add_argument(
        "--task-limit",
        action="append",
        default=[],
        metavar="TASK=N",
        help="cap one task's items in both samples (e.g. gsm8k=4: worked problems cost most)",
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
