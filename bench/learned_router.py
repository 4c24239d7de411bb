"""Learned routers compared on labelled outcomes of both tiers (issue 11, part 3).

    python bench/learned_router.py [--data DIR] [--limit N] [--task-limit gsm8k=K] --json OUT

The outcomes come from the routing benchmark's model calls: ``bench/routing.py`` runs the
small and the big model over a seeded sample spread over the routing tasks and caches every
call keyed by the model file's sha256 and the request (``$STRATA_HOME/cache/bench-routing``).
This script scores only the items whose calls are all cached, and writes the compact outcome
table (``--table``: item id, task, whether each model was right, the small model's signal
confidences, the calls' compute cost), which is committed: ``--from-table`` scores the
routers from it alone (the prompts are read again from ``--data`` by item id), so a fresh
checkout does not spend hours re-running the models.

Every router predicts P(the small model is right) and sends the least likely to the big
model; all are cross-fitted (each item is scored by a model that never saw it; seeded random
folds):

- ``answer_prob``: the cascade as it is, the small answer's own probability (nothing fitted);
- ``linear``: logistic regression on MiniLM prompt embeddings plus the cheap prompt signals;
- ``mlp``: one hidden layer on the same features (numpy, Adam, L2);
- ``knn``: RouteLLM's similarity-weighted ranking idea: the small model's record on the most
  similar prompts seen, weighted by exp(cosine / temperature);
- ``cascade+ROUTER``: a logistic combiner of the answer probability and a prompt router's
  score (nested cross-fit: the combiner learns from scores the router made out of fold);

beside ``random`` (APGR 0.5 by construction) and ``oracle`` (only the items the small model
gets wrong go up). Reported: APGR, CPT(50/80/95%) and APGR per task.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file, too

from bench import _outcome_table as outcome_table
from bench._common import REPO_ROOT, write_json

from strata.core.embeddings import MiniLMEmbedder
from strata.core.engine import Engine
from strata.core.settings import MINILM_REPO, load_settings
from strata.features.routing import calibrate as cal
from strata.features.routing.grading import outcomes as grade
from strata.features.routing.outcomes import (
    Cache,
    Item,
    cache_dir,
    load_items,
    model_sha256,
    run_all,
)

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "routing"
Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Rows = npt.NDArray[np.intp]


# ---- the outcome table ----


async def collect(args: argparse.Namespace, items: list[Item]) -> list[dict[str, Any]]:
    settings = load_settings(args.config)
    engine = Engine(settings)
    try:
        models = {t: model_sha256(engine, t)[:16] for t in ("small", "big")}
        records = await run_all(
            Cache(cache_dir(settings.home), engine), items, "small", "big", cached_only=True
        )
    finally:
        await engine.shutdown()
    kept = [i for i in items if i.id in records]
    graded = await grade(kept, records, settings.cpu_hour_usd, args.seed)
    return [
        outcome_table.row(item, o, records[item.id], models)
        for item, o in zip(kept, graded, strict=True)
    ]


# ---- routers (numpy) ----


def _adam_fit(
    x: Array, y: Array, hidden: int, l2: float, steps: int, seed: int
) -> tuple[list[Array], int]:
    rng = np.random.default_rng(seed)
    dim = x.shape[1]
    if hidden:
        params = [
            rng.normal(0, 1 / math.sqrt(dim), (dim, hidden)),
            np.zeros(hidden),
            rng.normal(0, 1 / math.sqrt(hidden), hidden),
            np.zeros(1),
        ]
    else:
        params = [np.zeros(dim), np.zeros(1)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        if hidden:
            h = np.tanh(x @ params[0] + params[1])
            p = _sigmoid(h @ params[2] + params[3])
            err = (p - y) / len(y)
            dh = np.outer(err, params[2]) * (1 - h * h)
            grads = [
                x.T @ dh + l2 * params[0],
                dh.sum(0),
                h.T @ err + l2 * params[2],
                err.sum(keepdims=True),
            ]
        else:
            p = _sigmoid(x @ params[0] + params[1])
            err = (p - y) / len(y)
            grads = [x.T @ err + l2 * params[0], err.sum(keepdims=True)]
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] -= (
                0.01 * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
            )
    return params, hidden


def _predict(model: tuple[list[Array], int], x: Array) -> Array:
    params, hidden = model
    if hidden:
        return _sigmoid(np.tanh(x @ params[0] + params[1]) @ params[2] + params[3])
    return _sigmoid(x @ params[0] + params[1])


def _sigmoid(z: Array) -> Array:
    out: Array = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
    return out


def fit_score(name: str, x: Array, emb: Array, y: Array, train: Mask, test: Mask) -> Array:
    """Scores for the ``test`` rows from a router fitted on the ``train`` rows."""
    if name == "knn":
        sims = emb[test] @ emb[train].T
        k = min(25, int(train.sum()))
        top = np.argsort(-sims, axis=1)[:, :k]
        w = np.exp(np.take_along_axis(sims, top, axis=1) / 0.05)
        prior = float(y[train].mean())
        voted: Array = (w * y[train][top]).sum(1) / w.sum(1)
        return voted * 0.9 + 0.1 * prior  # a little of the base rate breaks ties
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mean) / std
    hidden, l2 = (16, 1e-2) if name == "mlp" else (0, 1e-2)
    model = _adam_fit(z[train], y[train], hidden, l2, 300, seed=0)
    return _predict(model, z[test])


def folds_of(count: int, folds: int) -> npt.NDArray[np.intp]:
    """A seeded random fold per row (not by position: the items interleave the tasks, and
    a fold count that divides that period would put one task in a fold)."""
    out: npt.NDArray[np.intp] = np.random.default_rng(0).permutation(count) % folds
    return out


def cross_fit(name: str, x: Array, emb: Array, y: Array, rows: Rows, folds: int) -> Array:
    """Out-of-fold scores for ``rows`` (indices)."""
    out = np.zeros(len(rows))
    fold = folds_of(len(rows), folds)
    for f in range(folds):
        test = np.zeros(len(y), bool)
        test[rows[fold == f]] = True
        train = np.zeros(len(y), bool)
        train[rows[fold != f]] = True
        out[fold == f] = fit_score(name, x, emb, y, train, test)
    return out


def combined(router: str, x: Array, emb: Array, y: Array, answer_prob: Array, folds: int) -> Array:
    """The cascade's answer probability and a prompt router's score, combined by logistic
    regression; nested cross-fit (the combiner sees only out-of-fold router scores)."""
    n = len(y)
    out = np.zeros(n)
    everything = np.arange(n)
    fold = folds_of(n, folds)
    for f in range(folds):
        test_rows, train_rows = everything[fold == f], everything[fold != f]
        inner = cross_fit(router, x, emb, y, train_rows, folds - 1)
        feats = np.column_stack([_logit(answer_prob[train_rows]), _logit(inner)])
        model = _adam_fit(feats, y[train_rows], 0, 1e-3, 500, seed=0)
        train = np.isin(everything, train_rows)
        test = np.isin(everything, test_rows)
        score = fit_score(router, x, emb, y, train, test)
        out[test_rows] = _predict(
            model, np.column_stack([_logit(answer_prob[test_rows]), _logit(score)])
        )
    return out


def _logit(p: Array) -> Array:
    q = np.clip(p, 1e-4, 1 - 1e-4)
    out: Array = np.log(q / (1 - q))
    return out


# ---- scoring ----


def metrics(scores: Array, outcomes: list[cal.Outcome], tasks: list[str]) -> dict[str, Any]:
    points = cal.pgr_at_shares(list(scores), outcomes)
    by_task = {}
    for task in sorted(set(tasks)):
        idx = [i for i, t in enumerate(tasks) if t == task]
        part = [outcomes[i] for i in idx]
        if len({o.small_ok for o in part} | {o.big_ok for o in part}) > 1:
            by_task[task] = round(cal.apgr(cal.pgr_at_shares([scores[i] for i in idx], part)), 4)
    return {
        "apgr": round(cal.apgr(points), 4),
        "cpt": {str(int(x * 100)): round(cal.cpt(points, x), 4) for x in (0.5, 0.8, 0.95)},
        "apgr_by_task": by_task,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    limits = dict((k, int(v)) for k, v in (s.split("=") for s in args.task_limit))
    items = load_items(args.data, args.limit, args.seed, limits)
    if args.from_table:
        rows = list(outcome_table.read(args.table).values())
    else:
        rows = asyncio.run(collect(args, items))
        outcome_table.write(args.table, rows)
        print(f"wrote {len(rows)} outcomes to {args.table}", file=sys.stderr)
    by_id = {i.id: i for i in items}
    rows = [r for r in rows if r["id"] in by_id]
    if len(rows) < 4 * args.folds:
        raise SystemExit(f"only {len(rows)} items have every model call cached")
    outcomes = [outcome_table.to_outcome(r, by_id[r["id"]]) for r in rows]
    tasks = [r["task"] for r in rows]
    texts = [str(by_id[r["id"]].messages[-1]["content"]) for r in rows]
    emb = MiniLMEmbedder(MINILM_REPO, 64, 128).embed(texts).astype(np.float64)
    x = np.column_stack([emb, np.array([o.prompt for o in outcomes])])
    y = np.array([float(o.small_ok) for o in outcomes])
    answer_prob = np.array([o.scores["answer_prob"] for o in outcomes])
    everything = np.arange(len(y))
    scores: dict[str, Array] = {"answer_prob": answer_prob}
    for name in ("linear", "mlp", "knn"):
        scores[name] = cross_fit(name, x, emb, y, everything, args.folds)
    for name in ("linear", "knn"):
        scores[f"cascade+{name}"] = combined(name, x, emb, y, answer_prob, args.folds)
    oracle = np.array([1.0 if o.small_ok or not o.big_ok else 0.0 for o in outcomes])
    results = {name: metrics(s, outcomes, tasks) for name, s in scores.items()}
    results["oracle"] = metrics(oracle, outcomes, tasks)
    results["random"] = {"apgr": 0.5}
    n = len(outcomes)
    counts = {t: tasks.count(t) for t in sorted(set(tasks))}
    return {
        "items": n,
        "items_by_task": counts,
        "small_acc": cal.accuracy(outcomes, [False] * n),
        "big_acc": cal.accuracy(outcomes, [True] * n),
        "folds": args.folds,
        "routers": results,
        "best": max(
            (k for k in results if k not in ("oracle", "random")),
            key=lambda k: results[k]["apgr"],
        ),
    }


def table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("router", "APGR", "CPT(50%)", "CPT(80%)", "CPT(95%)", "APGR by task")
    for name, r in result["routers"].items():
        cpt = r.get("cpt", {})
        t.add_row(
            name,
            f"{r['apgr']:.3f}",
            *(f"{cpt[k]:.0%}" if k in cpt else "" for k in ("50", "80", "95")),
            " ".join(f"{k}={v:.2f}" for k, v in r.get("apgr_by_task", {}).items()),
        )
    Console(width=140).print(t)
    print(
        f"{result['items']} items {result['items_by_task']}; small {result['small_acc']:.3f},"
        f" big {result['big_acc']:.3f}; {result['folds']}-fold cross-fitted;"
        f" best: {result['best']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--task-limit", action="append", default=[], metavar="TASK=N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--config", type=Path, help="strata settings file")
    parser.add_argument("--table", type=Path, default=outcome_table.TABLE)
    parser.add_argument(
        "--from-table", action="store_true", help="score the committed table, run nothing"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args)
    table(result)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
