"""Synthetic-text detection benchmark: AUROC and TPR at 1 % FPR of every method, in one run.

    python bench/detection.py [--data FILE] [--limit N] [--seed S] --json OUT
                              [--write-calibration PATH --default-method NAME]

Takes a seeded sample of ``--limit`` pairs (all pairs without it) from a JSONL file of
``{id, source, generator, human, machine}`` (default
``../shared/data/detection/human_vs_machine.dev.jsonl``) and scores every text (none dropped
for length), once per model with logits at every position: the bundled
Qwen2.5-Coder 0.5B and 1.5B, which share a tokenizer. Every method and every observer /
performer assignment is computed from those same passes, so one run compares them all. The
per-token statistics are cached (model sha256 + text), so a rerun only re-scores.

Reported per method configuration: AUROC and TPR at 1 % FPR over all texts (the ROC
read-out papers use), and the deployed view: threshold and logistic fitted on one half of
the pairs (even positions), FPR, TPR and calibration error measured on the other half;
AUROC by generator, and AUROC when only the first k tokens are scored (what a short text
would get; in this data the machine text continues the human text's first ~30 tokens, so
short prefixes understate the detectors; the last k tokens, still read in the context of
the text before them, give the other bound). Each text is judged on its first ``--max-tokens``
tokens (128 by default, as the shipped detector does; 0 for all): that keeps 300 pairs
within half an hour on two cores. texts/s per method is estimated from the timed
forward passes of the models that method needs (the run computes them all at once).

``default`` names the method strata ships (``strata.features.detection``'s calibration
file), not the winner on the file at hand. ``--write-calibration`` refits the shipped file
on all texts scored, for the shipped configuration of each method.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO_ROOT, write_json

from strata.core import catalog
from strata.core.settings import default_home
from strata.features.detection import (
    Calibration,
    LlamaScorer,
    Method,
    TokenStats,
    auroc,
    bundled_paths,
    fit,
    shipped_calibrations,
    tpr_at_fpr,
)
from strata.features.detection.calibration import expected_calibration_error

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "detection" / "human_vs_machine.dev.jsonl"
SMALL = "qwen2.5-coder-0.5b-instruct"
BIG = "qwen2.5-coder-1.5b-instruct"
SHORT = {SMALL: "0.5B", BIG: "1.5B"}
FPR = 0.01
PREFIXES = (16, 32, 64, 128)


def configurations(small: str, big: str) -> list[Method]:
    """Every method with every role assignment the two models allow."""
    out = [Method("log-perplexity", m, m) for m in (small, big)]
    out += [Method("binoculars", o, p) for o, p in ((small, big), (big, small))]
    out += [Method("fast-detectgpt", o, p) for o in (small, big) for p in (small, big)]
    return out


def short_label(method: Method) -> str:
    o, p = (
        SHORT.get(method.observer, method.observer),
        SHORT.get(method.performer, method.performer),
    )
    return f"{method.name} [{p}]" if o == p else f"{method.name} [{o}→{p}]"


def load_pairs(path: Path, limit: int | None, seed: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if limit is not None and limit < len(rows):
        # in sampled order: the sample for a smaller limit is a prefix of this one, so a run
        # cut short has scored (and cached) a complete smaller sample
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        rows = [rows[i] for i in order[:limit]]
    return rows


class StatsCache:
    """Per-text :class:`TokenStats` on disk, keyed by models, scoring settings and text."""

    def __init__(self, root: Path, models: Sequence[str], *settings: object) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        shas = [catalog.lookup(m).sha256 for m in models]
        self.salt = "|".join([*shas, *map(str, settings)])

    def path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{self.salt}\n{text}".encode()).hexdigest()[:32]
        return self.root / f"{digest}.npz"

    def get(self, text: str) -> TokenStats | None:
        path = self.path(text)
        if not path.is_file():
            return None
        with np.load(path) as data:
            return TokenStats.from_arrays({k: data[k] for k in data.files})

    def put(self, text: str, stats: TokenStats) -> None:
        tmp = self.path(text).with_suffix(".tmp.npz")
        arrays: dict[str, Any] = dict(stats.to_arrays())
        np.savez(tmp, **arrays)
        tmp.replace(self.path(text))


def score_all(
    texts: list[str],
    scorer: LlamaScorer,
    pairs: list[tuple[str, str]],
    cache: StatsCache,
    max_tokens: int | None,
) -> tuple[list[TokenStats], int]:
    """Stats for every text (cached or computed); returns them and how many were computed."""
    out: list[TokenStats] = []
    computed = 0
    began = time.monotonic()
    for i, text in enumerate(texts):
        stats = cache.get(text)
        if stats is None:
            stats = scorer.score(text, pairs, max_tokens).stats
            cache.put(text, stats)
            computed += 1
        out.append(stats)
        if (i + 1) % 25 == 0 or i + 1 == len(texts):
            rate = computed / max(time.monotonic() - began, 1e-9)
            print(f"  scored {i + 1}/{len(texts)} ({rate:.2f} texts/s new)", file=sys.stderr)
    return out, computed


def evaluate(
    method: Method,
    stats: list[TokenStats],
    labels: list[int],
    halves: list[int],
    groups: list[str],
) -> dict[str, Any]:
    raw = [method.score(s) for s in stats]
    oriented = [method.machine_likeness(x) for x in raw]
    human = [x for x, y in zip(oriented, labels, strict=True) if y == 0]
    machine = [x for x, y in zip(oriented, labels, strict=True) if y == 1]

    def side(half: int, label: int) -> list[float]:
        return [r for r, y, h in zip(raw, labels, halves, strict=True) if y == label and h == half]

    cal = fit(method, side(0, 0), side(0, 1), fpr=FPR, min_tokens=0, fitted_on="calibration half")
    eval_raw = [r for r, h in zip(raw, halves, strict=True) if h == 1]
    eval_y = [y for y, h in zip(labels, halves, strict=True) if h == 1]
    flagged = [cal.is_machine(r) for r in eval_raw]
    probs = [cal.probability(r) for r in eval_raw]
    by_group = {}
    for group in sorted(set(groups)):
        gh = [x for x, y, g in zip(oriented, labels, groups, strict=True) if g == group and y == 0]
        gm = [x for x, y, g in zip(oriented, labels, groups, strict=True) if g == group and y == 1]
        by_group[group] = round(auroc(gh, gm), 4)
    by_generator = {}  # pooled over sources: the target is per generator
    for generator in sorted({g.split("/")[-1] for g in groups}):
        mine = [g.split("/")[-1] == generator for g in groups]
        gh = [x for x, y, m in zip(oriented, labels, mine, strict=True) if m and y == 0]
        gm = [x for x, y, m in zip(oriented, labels, mine, strict=True) if m and y == 1]
        by_generator[generator] = round(auroc(gh, gm), 4)
    prefixes = {str(k): _auroc_on(method, stats, labels, slice(0, k)) for k in PREFIXES}
    suffixes = {str(k): _auroc_on(method, stats, labels, slice(-k, None)) for k in PREFIXES}
    return {
        "config": {"name": method.name, "observer": method.observer, "performer": method.performer},
        "auroc": round(auroc(human, machine), 4),
        "tpr_at_1fpr": round(tpr_at_fpr(human, machine, FPR), 4),
        "heldout": {
            "threshold": cal.threshold,
            "fpr": round(
                sum(f for f, y in zip(flagged, eval_y, strict=True) if y == 0)
                / max(1, eval_y.count(0)),
                4,
            ),
            "tpr": round(
                sum(f for f, y in zip(flagged, eval_y, strict=True) if y == 1)
                / max(1, eval_y.count(1)),
                4,
            ),
            "ece": round(expected_calibration_error(probs, eval_y), 4),
            "brier": round(float(np.mean((np.asarray(probs) - np.asarray(eval_y)) ** 2)), 4),
        },
        "auroc_by_group": by_group,
        "auroc_by_generator": by_generator,
        "auroc_first_k_tokens": prefixes,
        "auroc_last_k_tokens": suffixes,
        "_raw": raw,
    }


def _auroc_on(method: Method, stats: list[TokenStats], labels: list[int], part: slice) -> float:
    """AUROC when only ``part`` of each text's scored tokens enters the score."""
    oriented = [method.machine_likeness(method.score(s.select(part))) for s in stats]
    human = [x for x, y in zip(oriented, labels, strict=True) if y == 0]
    machine = [x for x, y in zip(oriented, labels, strict=True) if y == 1]
    return round(auroc(human, machine), 4)


def texts_per_second(method: Method, seconds: dict[str, float], computed: int) -> float | None:
    """Estimated from the timed passes of the models this method needs (None if cached)."""
    if computed == 0:
        return None
    spent = sum(seconds.get(m, 0.0) for m in method.models) + seconds.get("stats", 0.0) / 4
    return computed / spent if spent else None


def table(results: dict[str, dict[str, Any]], default: str, pairs: int, wall: float) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"detection on {pairs} pairs ({2 * pairs} texts), {wall / 60:.1f} min")
    for col in (
        "method",
        "AUROC",
        "TPR@1%FPR",
        "held-out FPR",
        "held-out TPR",
        "ECE",
        "first 64",
        "last 64",
        "texts/s",
    ):
        t.add_column(col, justify="left" if col == "method" else "right")
    generators = sorted({g for r in results.values() for g in r["auroc_by_generator"]})
    for generator in generators:
        t.add_column(f"AUROC {generator}", justify="right")
    for label, r in results.items():
        tps = r.get("texts_per_s")
        t.add_row(
            label + (" (default)" if r.get("shipped_as") == default else ""),
            f"{r['auroc']:.3f}",
            f"{r['tpr_at_1fpr']:.3f}",
            f"{r['heldout']['fpr']:.3f}",
            f"{r['heldout']['tpr']:.3f}",
            f"{r['heldout']['ece']:.3f}",
            f"{r['auroc_first_k_tokens']['64']:.3f}",
            f"{r['auroc_last_k_tokens']['64']:.3f}",
            "cached" if tps is None else f"{tps:.2f}",
            *(f"{r['auroc_by_generator'].get(g, float('nan')):.3f}" for g in generators),
        )
    Console(width=170).print(t)
    print(
        "TPR@1%FPR: ROC read-out over all texts; held-out: threshold (1% FPR on human text) and "
        "logistic fitted on the even pairs, measured on the odd ones; ECE of the calibrated "
        "probability there; first/last 64: AUROC on the first/last 64 scored tokens only; "
        "AUROC <generator>: that generator's pairs only, pooled over sources. "
        "texts/s: estimated from the timed passes of the method's own models.",
        file=sys.stderr,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, help="seeded sample of N pairs (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--home", type=Path, help="strata home holding the models (default: $STRATA_HOME)"
    )
    ap.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / ".cache" / "detection")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=128,
        help="judge each text on its first N tokens, as the shipped detector does (0: all)",
    )
    ap.add_argument("--write-calibration", type=Path, help="refit the shipped calibration file")
    ap.add_argument("--default-method", default=None, help="with --write-calibration")
    ap.add_argument("--min-tokens", type=int, default=32, help="with --write-calibration")
    args = ap.parse_args()

    began = time.monotonic()
    home = args.home or Path(os.environ.get("STRATA_HOME") or default_home())
    rows = load_pairs(args.data, args.limit, args.seed)
    texts = [text for r in rows for text in (r["human"], r["machine"])]
    labels = [0, 1] * len(rows)
    halves = [i % 2 for i in range(len(rows)) for _ in (0, 1)]  # a pair stays in one half
    groups = [f"{r['source']}/{r['generator']}" for r in rows for _ in (0, 1)]

    models = [SMALL, BIG]
    scorer = LlamaScorer(
        bundled_paths(home, models),
        window=args.window,
        context=args.context,
        n_threads=args.threads,
    )
    pairs = [(q, s) for q in models for s in models]
    max_tokens = args.max_tokens or None
    cache = StatsCache(args.cache, models, args.window, args.context, max_tokens)
    print(f"scoring {len(texts)} texts ({len(rows)} pairs) with {models}", file=sys.stderr)
    stats, computed = score_all(texts, scorer, pairs, cache, max_tokens)
    scorer.close()

    try:
        shipped_default, shipped = shipped_calibrations()
    except (FileNotFoundError, KeyError):
        shipped_default, shipped = "", {}
    results: dict[str, dict[str, Any]] = {}
    for method in configurations(SMALL, BIG):
        r = evaluate(method, stats, labels, halves, groups)
        r["texts_per_s"] = texts_per_second(method, scorer.seconds, computed)
        for name, cal in shipped.items():
            if cal.method == method:
                r["shipped_as"] = name
        results[short_label(method)] = r

    if args.write_calibration:
        write_calibration(args, results, labels, len(texts))
        shipped_default, shipped = _read(args.write_calibration)
        for r in results.values():
            r.pop("shipped_as", None)
            for name, cal in shipped.items():
                if cal.method == Method(**r["config"]):
                    r["shipped_as"] = name

    wall = time.monotonic() - began
    raw_scores = {label: r.pop("_raw") for label, r in results.items()}
    table(results, shipped_default, len(rows), wall)
    report: dict[str, Any] = {}
    for r in results.values():  # the shipped configuration of each method, under its name
        if "shipped_as" in r:
            report[r["shipped_as"]] = r
    report["default"] = shipped_default
    report["configurations"] = results
    token_counts = [len(s) for s in stats]
    report["run"] = {
        "data": str(args.data),
        "pairs": len(rows),
        "texts": len(texts),
        "texts_scored": len(stats),
        "texts_computed": computed,
        "seed": args.seed,
        "limit": args.limit,
        "tokens": {
            "mean": float(np.mean(token_counts)),
            "min": min(token_counts),
            "max": max(token_counts),
        },
        "max_tokens": max_tokens,
        "truncated_texts": sum(1 for n in token_counts if max_tokens and n >= max_tokens),
        "window": args.window,
        "context": args.context,
        "model_seconds": {k: round(v, 1) for k, v in scorer.seconds.items()},
        "texts_per_s_all_methods": (computed / sum(scorer.seconds.values()) if computed else None),
        "wall_s": round(wall, 1),
        "fpr_target": FPR,
    }
    if args.json:
        write_json(args.json, report)
        scores_path = args.json.with_suffix(".scores.json")
        scores_path.write_text(json.dumps({"labels": labels, "scores": raw_scores}))
        print(f"wrote {args.json}", file=sys.stderr)


def _read(path: Path) -> tuple[str, dict[str, Calibration]]:
    data = json.loads(path.read_text())
    return data["default"], {k: Calibration.from_json(v) for k, v in data["methods"].items()}


def write_calibration(
    args: argparse.Namespace, results: dict[str, dict[str, Any]], labels: list[int], n: int
) -> None:
    """Refit, on every text scored, the best configuration of each method (by AUROC) and
    write the shipped calibration file; ``--default-method`` names the default."""
    if args.default_method is None:
        raise SystemExit("--write-calibration needs --default-method")
    best: dict[str, tuple[float, Method, list[float]]] = {}
    for r in results.values():
        method = Method(**r["config"])
        if method.name not in best or r["auroc"] > best[method.name][0]:
            best[method.name] = (r["auroc"], method, r["_raw"])
    methods = {}
    for name, (_, method, raw) in best.items():
        human = [x for x, y in zip(raw, labels, strict=True) if y == 0]
        machine = [x for x, y in zip(raw, labels, strict=True) if y == 1]
        cal = fit(
            method,
            human,
            machine,
            fpr=FPR,
            min_tokens=args.min_tokens,
            max_tokens=args.max_tokens or None,
            fitted_on=f"{args.data.name}: {n} texts (seed {args.seed}, limit {args.limit})",
        )
        methods[name] = cal.to_json()
    args.write_calibration.write_text(
        json.dumps({"default": args.default_method, "methods": methods}, indent=2) + "\n"
    )
    print(f"wrote {args.write_calibration}", file=sys.stderr)


if __name__ == "__main__":
    main()
