"""Does a few-shot prompt of kept big-tier answers lift the small tier on GSM8K?

The file is split, seeded, into a pool half and an eval half (``--pool`` / ``--eval`` items
are taken from each). The big tier answers the pool items as the product's last tier would
(greedy, with logprobs) and each answer is kept or not by the product's own rule: a finished
answer whose confidence (``answer_prob``: the probability of its answer tokens) reaches
``exemplars_keep_confidence``. Gold labels never decide what is kept; they only say how many
of the kept answers were right. Then the small tier answers every eval item twice, greedy,
with the same prompt, once bare and once with the exemplars the product would put there: the
``exemplars_k`` most similar kept pool prompts (MiniLM cosine, at least
``exemplars_min_similarity``) fitted into ``exemplars_tokens`` and the window by the router's
own functions. Reported: accuracy both ways, the lift with a paired-bootstrap 95% interval
and McNemar's exact p, and the prompt tokens the exemplars added.

    python bench/exemplars.py --data ../shared/data/routing/gsm8k.dev.jsonl \
        --pool 40 --eval 60 --json out.json

Every model call is cached under ``bench/caches/exemplars/`` keyed by the model's sha256 and
the whole request, so a rerun replays it and a bigger run pays only for what it adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import write_json
from bench._model_cache import ModelCallCache
from bench.flywheel import bundled_here, model_id

from strata.core.embeddings import create_embedder
from strata.core.engine import Engine, Timings
from strata.core.models.base import GenerationRequest, SamplingParams, TokenLogprob
from strata.core.protocols import Exemplar
from strata.core.settings import Settings
from strata.features.distill.exemplars import most_similar
from strata.features.distill.settings import DistillSettings
from strata.features.routing.answers import final_number
from strata.features.routing.few_shot import (
    answer_confidence,
    fit,
    pair_tokens,
    room_for,
    with_exemplars,
)
from strata.features.routing.outcomes import COT_INSTRUCTION

CACHE = Path(__file__).resolve().parent / "caches" / "exemplars"
CRITERION = "on by default only if it lifts the small tier (95% interval of the lift above 0)"


def load(path: Path, pool: int, evaluate: int, seed: int) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    half = len(rows) // 2
    return rows[:half][:pool], rows[half:][:evaluate]


def prompt(row: dict[str, Any]) -> str:
    """The user's message, as the routing benchmark asks a worked problem."""
    return f"{str(row['question']).strip()}\n\n{COT_INSTRUCTION}"


def gold(row: dict[str, Any]) -> str:
    return str(row["answer"]).replace(",", "")


async def generate(
    engine: Engine, model: str, messages: list[dict[str, Any]], max_tokens: int, logprobs: bool
) -> tuple[str, list[TokenLogprob], str | None, int]:
    params = SamplingParams(
        temperature=0.0, max_tokens=max_tokens, logprobs=logprobs, top_logprobs=0
    )
    gen = GenerationRequest(kind="chat", messages=messages, params=params)
    text, lps, finish, prompt_tokens = [], [], None, 0
    async for chunk in engine.generate(model, gen, timings=Timings()):
        text.append(chunk.text)
        lps.extend(chunk.logprobs or [])
        finish = chunk.finish_reason or finish
        if chunk.usage is not None:
            prompt_tokens = chunk.usage.prompt_tokens
    return "".join(text), lps, finish, prompt_tokens


def paired_bootstrap(a: list[bool], b: list[bool], seed: int, n: int = 10000) -> list[float]:
    """95% interval of mean(b) - mean(a), resampling items (pairs stay together)."""
    rng = random.Random(seed)
    diffs = [int(y) - int(x) for x, y in zip(a, b, strict=True)]
    k = len(diffs)
    means = sorted(sum(diffs[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    return [means[int(0.025 * n)], means[int(0.975 * n) - 1]]


def mcnemar_p(a: list[bool], b: list[bool]) -> float:
    """Exact two-sided McNemar p (a binomial test on the items only one way got right)."""
    gained = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    lost = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


async def run(args: argparse.Namespace, progress: Any) -> dict[str, Any]:
    d = DistillSettings()
    k = args.k or d.exemplars_k
    floor = d.exemplars_min_similarity if args.min_similarity is None else args.min_similarity
    budget = d.exemplars_tokens if args.tokens is None else args.tokens
    keep_at = d.exemplars_keep_confidence if args.keep is None else args.keep
    begun = time.monotonic()
    pool, evaluate = load(args.data, args.pool, args.eval, args.seed)
    home = Path(tempfile.mkdtemp(prefix="strata-exemplars-"))
    models = bundled_here(home, [args.small, args.big])
    engine = Engine(Settings(home=home, bundled_models=False, models=models))
    cache = ModelCallCache(args.cache)
    cache.install(engine, {m: model_id(m) for m in (args.small, args.big)})
    await engine.startup()
    try:
        task = progress.add_task(f"{args.big} answers the pool", total=len(pool))
        kept: list[dict[str, Any]] = []
        pool_rows = []
        for row in pool:
            messages = [{"role": "user", "content": prompt(row)}]
            text, lps, finish, _ = await generate(engine, args.big, messages, args.max_tokens, True)
            confidence = await answer_confidence(messages, text, lps) if lps else 0.0
            keep = finish == "stop" and confidence >= keep_at and bool(text.strip())
            right = final_number(text) == gold(row)
            pool_rows.append(
                {
                    "id": row["id"],
                    "confidence": round(confidence, 4),
                    "kept": keep,
                    "right": right,
                    "finish": finish,
                }
            )
            if keep:
                kept.append(
                    {"id": row["id"], "prompt": prompt(row), "answer": text, "right": right}
                )
            progress.advance(task)
        embedder = create_embedder(d)
        started = time.perf_counter()
        matrix = embedder.embed([e["prompt"] for e in kept]) if kept else None
        queries = embedder.embed([prompt(r) for r in evaluate])
        embed_ms = (time.perf_counter() - started) * 1000 / max(1, len(kept) + len(evaluate))
        backend = engine.get(args.small).backend
        task = progress.add_task(
            f"{args.small} answers, bare and with exemplars", total=len(evaluate)
        )
        rows = []
        for row, query in zip(evaluate, queries, strict=True):
            if args.time_limit and time.monotonic() - begun > args.time_limit:
                break  # report the items done (the output says how many)
            messages = [{"role": "user", "content": prompt(row)}]
            found = [] if matrix is None else most_similar(query, matrix, k, floor)
            offered = [
                Exemplar(kept[i]["id"], kept[i]["prompt"], kept[i]["answer"], sim)
                for i, sim in found
            ]
            params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
            room = room_for(engine, args.small, GenerationRequest("chat", params, messages), budget)
            chosen, added = fit(offered, pair_tokens(backend), room)
            bare, _, _, bare_prompt = await generate(
                engine, args.small, messages, args.max_tokens, False
            )
            shot_text, shot_prompt = bare, bare_prompt
            if chosen:
                shot_text, _, _, shot_prompt = await generate(
                    engine, args.small, with_exemplars(messages, chosen), args.max_tokens, False
                )
            rows.append(
                {
                    "id": row["id"],
                    "bare_right": final_number(bare) == gold(row),
                    "shot_right": final_number(shot_text) == gold(row),
                    "exemplars": [e.id for e in chosen],
                    "similarities": [e.similarity for e in chosen],
                    "best_similarity": round(float(max((s for _, s in found), default=0.0)), 4)
                    if found
                    else None,
                    "added_tokens": added,
                    "measured_added_tokens": shot_prompt - bare_prompt,
                    "exemplars_right": [
                        next(e["right"] for e in kept if e["id"] == c.id) for c in chosen
                    ],
                }
            )
            progress.advance(task)
    finally:
        await engine.shutdown()
    return summary(
        args,
        rows,
        pool_rows,
        kept,
        cache,
        embed_ms,
        {"k": k, "min_similarity": floor, "tokens": budget, "keep_confidence": keep_at},
    )


def summary(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    pool_rows: list[dict[str, Any]],
    kept: list[dict[str, Any]],
    cache: ModelCallCache,
    embed_ms: float,
    setting: dict[str, Any],
) -> dict[str, Any]:
    bare = [r["bare_right"] for r in rows]
    shot = [r["shot_right"] for r in rows]
    n = len(rows)
    helped = [r for r in rows if r["exemplars"]]
    lift = (sum(shot) - sum(bare)) / max(1, n)
    interval = paired_bootstrap(bare, shot, args.seed) if rows else [0.0, 0.0]
    return {
        "criterion": CRITERION,
        "lifts": interval[0] > 0,
        "eval_items": n,
        "eval_items_asked": args.eval,
        "small_acc_bare": sum(bare) / max(1, n),
        "small_acc_with_exemplars": sum(shot) / max(1, n),
        "lift": lift,
        "lift_95ci_paired_bootstrap": interval,
        "mcnemar_p": mcnemar_p(bare, shot),
        "gained": sum(1 for x, y in zip(bare, shot, strict=True) if y and not x),
        "lost": sum(1 for x, y in zip(bare, shot, strict=True) if x and not y),
        "with_exemplars_share": len(helped) / max(1, n),
        "on_items_with_exemplars": {
            "items": len(helped),
            "acc_bare": sum(r["bare_right"] for r in helped) / len(helped) if helped else None,
            "acc_with": sum(r["shot_right"] for r in helped) / len(helped) if helped else None,
        },
        "added_prompt_tokens_mean": sum(r["added_tokens"] for r in rows) / max(1, n),
        "added_prompt_tokens_mean_when_used": (
            sum(r["added_tokens"] for r in helped) / len(helped) if helped else 0
        ),
        "measured_added_prompt_tokens_mean": sum(r["measured_added_tokens"] for r in rows)
        / max(1, n),
        "pool": {
            "items": len(pool_rows),
            "big_acc": sum(r["right"] for r in pool_rows) / max(1, len(pool_rows)),
            "kept": len(kept),
            "kept_right": sum(e["right"] for e in kept),
            "kept_precision": sum(e["right"] for e in kept) / len(kept) if kept else None,
        },
        "embedding_ms_per_text": round(embed_ms, 2),
        "settings": {
            **setting,
            "pool": args.pool,
            "eval": args.eval,
            "seed": args.seed,
            "max_tokens": args.max_tokens,
            "small": args.small,
            "big": args.big,
            "data": str(args.data),
        },
        "cache": {"hits": cache.hits, "misses": cache.misses},
        "items": rows,
        "pool_items": pool_rows,
    }


def table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("small tier on GSM8K eval", "accuracy", "prompt tokens added")
    n = result["eval_items"]
    t.add_row(f"bare ({n} items)", f"{result['small_acc_bare']:.3f}", "0")
    t.add_row(
        "with exemplars",
        f"{result['small_acc_with_exemplars']:.3f}",
        f"{result['added_prompt_tokens_mean']:.0f} mean"
        f" ({result['added_prompt_tokens_mean_when_used']:.0f} when used)",
    )
    lo, hi = result["lift_95ci_paired_bootstrap"]
    t.add_row("lift", f"{result['lift']:+.3f}", f"95% CI [{lo:+.3f}, {hi:+.3f}]", style="bold")
    Console(width=110).print(t)
    pool = result["pool"]
    print(
        f"{args_line(result)}. Pool: big tier right on {pool['big_acc']:.1%} of"
        f" {pool['items']}; kept {pool['kept']} by the confidence rule, {pool['kept_right']}"
        f" of them right; exemplars offered to {result['with_exemplars_share']:.0%} of eval"
        f" items; gained {result['gained']}, lost {result['lost']} (McNemar p ="
        f" {result['mcnemar_p']:.3f}). Criterion: {result['criterion']}:"
        f" {'met' if result['lifts'] else 'NOT met'}."
    )


def args_line(result: dict[str, Any]) -> str:
    s = result["settings"]
    return (
        f"k={s['k']}, min similarity {s['min_similarity']}, {s['tokens']} tokens,"
        f" keep at confidence >= {s['keep_confidence']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pool", type=int, default=40)
    parser.add_argument("--eval", type=int, default=60)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", default="small")
    parser.add_argument("--big", default="big")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--k", type=int, default=None, help="default: the product's setting")
    parser.add_argument("--min-similarity", type=float, default=None)
    parser.add_argument("--tokens", type=int, default=None)
    parser.add_argument("--keep", type=float, default=None, help="keep-confidence threshold")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds: evaluate no new item after this (the pool always completes)",
    )
    args = parser.parse_args()
    from rich.progress import Progress

    with Progress() as progress:
        result = asyncio.run(run(args, progress))
    table(result)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
