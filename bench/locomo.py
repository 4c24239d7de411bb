"""LoCoMo: long conversations remembered, strata's session memory vs a sliding window vs the
whole conversation in the prompt, on the same 0.5B model, in one run.

Each LoCoMo conversation (two people, dozens of dated sessions) is imported into a strata
session, each turn with its own time (the session's date, a minute a turn) and its speaker's
name; a shared photo is kept as its caption. The rolling summary and the turns' embeddings are
written as in service, then the conversation's category 1-4 questions (multi-hop, temporal,
open-domain, single-hop; 5, adversarial, has no gold answer) are asked three ways:

    memory:  a question in the session: strata's prompt (summary with facts, turns recalled
             by words and meaning, recent turns), within ``memory_tokens`` (default 2,048)
    window:  the latest turns that fit the median prompt tokens memory used, same format
    full:    every turn in the prompt (a window wide enough; llama.cpp reuses the identical
             prefix, so only the question is new after the first), on its own instance of
             the same weights, run beside the memory questions

Each question is asked alone: memory's session drops the question and its answer afterwards.
Answers are greedy, 32 tokens at most, scored against the gold answer by token F1 and token
recall (SQuAD normalisation: lower case, no punctuation or articles). Model calls are cached
per request under ``bench/caches/locomo/`` (``_model_cache``), so a rerun replays them.

    python bench/locomo.py --data ../shared/data/memory/locomo.dev.json --json OUT
                           [--limit-questions 60] [--conversations conv-26 ...] [--seed 0]
                           [--no-summary]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import string
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import REPO_ROOT, median, write_json
from _model_cache import ModelCallCache
from strata.core import catalog
from strata.core.kernel import Kernel
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.settings import DialogueSettings, ModelSpec, Settings, default_home
from strata.core.tenancy import DEFAULT_TENANT
from strata.core.turn import Turn as ChatTurn
from strata.features.dialogue.feature import Dialogue
from strata.features.dialogue.memory import SessionMemory
from strata.features.dialogue.render import render_turn
from strata.features.dialogue.store import NewTurn, Turn

console = Console(stderr=True)
MODES = ("memory", "window", "full")
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
MODEL = "qwen2.5-coder-0.5b-instruct"
SYSTEM = (
    "You answer questions about a long conversation between {a} and {b}, using what they "
    "said. Answer with a few words only: a name, a date, a place or a short phrase, as said "
    "in the conversation. Write dates like 7 May 2023."
)
LINES = "The conversation, with when each message was said:\n"


# ---- data ----


def when(text: str) -> float:
    """LoCoMo's session time, ``1:56 pm on 8 May, 2023``, as Unix seconds (UTC)."""
    said = datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    return said.replace(tzinfo=UTC).timestamp()


def turns_of(conversation: dict[str, Any]) -> list[NewTurn]:
    out: list[NewTurn] = []
    number = 1
    while f"session_{number}" in conversation:
        start = when(conversation[f"session_{number}_date_time"])
        for i, turn in enumerate(conversation[f"session_{number}"]):
            text = turn["text"]
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            out.append(NewTurn("user", text, turn["speaker"], start + 60 * i))
        number += 1
    return out


def questions(
    sample: dict[str, Any], limit: int | None, rng: random.Random
) -> list[dict[str, Any]]:
    asked = [q for q in sample["qa"] if q.get("category") in CATEGORIES and "answer" in q]
    rng.shuffle(asked)
    return asked[:limit] if limit else asked


# ---- scoring ----


def _tokens(text: str) -> list[str]:
    text = str(text).lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return text.split()


def f1_recall(answer: str, gold: str) -> tuple[float, float]:
    said, truth = _tokens(answer), _tokens(gold)
    common = sum((Counter(said) & Counter(truth)).values())
    if not said or not truth or common == 0:
        return 0.0, 0.0
    precision, recall = common / len(said), common / len(truth)
    return 2 * precision * recall / (precision + recall), recall


# ---- the three modes ----


def request(messages: list[dict[str, Any]], max_tokens: int) -> GenerationRequest:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    return GenerationRequest(kind="chat", messages=messages, params=params)


def rendered(turns: list[NewTurn]) -> list[str]:
    return [
        render_turn(Turn(i, t.role, t.content, t.name, t.created or 0.0))
        for i, t in enumerate(turns, start=1)
    ]


def window_messages(
    count: Any, system: str, lines: list[str], question: str, budget: int
) -> list[dict[str, Any]]:
    """The newest lines that fit ``budget`` prompt tokens (binary search on the exact count)."""

    def build(n: int) -> list[dict[str, Any]]:
        kept = "\n".join(lines[len(lines) - n :]) if n else ""
        return [
            {"role": "system", "content": f"{system}\n\n{LINES}{kept}"},
            {"role": "user", "content": question},
        ]

    low, high = 0, len(lines)
    while low < high:
        mid = (low + high + 1) // 2
        if count(build(mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    return build(low)


async def ask(stack: Kernel, model: str, gen: GenerationRequest, **options: Any) -> Any:
    return await stack.service.run(ChatTurn(model, gen, options=options))


async def conversation(
    stack: Kernel,
    dialogue: Dialogue,
    sample: dict[str, Any],
    asked: list[dict[str, Any]],
    args: Any,
) -> list[dict[str, Any]]:
    conv = sample["conversation"]
    system = SYSTEM.format(a=conv["speaker_a"], b=conv["speaker_b"])
    history = turns_of(conv)
    name = sample["sample_id"]
    session = dialogue.sessions.create(DEFAULT_TENANT, name, system=system)
    dialogue.sessions.append(session, history)
    started = time.perf_counter()
    dialogue.stored(session.sid, "small")
    await dialogue.index.settle()
    indexed = time.perf_counter() - started
    await dialogue.summariser.settle()
    summarised = time.perf_counter() - started
    console.print(
        f"{name}: {len(history)} turns imported; embedded in {indexed:.0f}s, summary by "
        f"{summarised:.0f}s; {len(asked)} questions"
    )
    lines = rendered(history)
    # The full conversation runs on its own model instance beside the memory questions.
    full_task = None
    if "full" in args.modes:
        full_task = asyncio.create_task(full_answers(stack, name, system, lines, asked, args))
    memory = next(layer for layer in stack.service.layers if isinstance(layer, SessionMemory))
    last = max(t.created or 0.0 for t in history)
    memory.clock = lambda: last + 86_400.0  # asked the day after (and cacheable)
    rows: list[dict[str, Any]] = []
    for i, q in enumerate(asked, 1):
        t0 = time.perf_counter()
        result = await ask(
            stack,
            "small",
            request([{"role": "user", "content": q["question"]}], args.max_tokens),
            session=name,
        )
        info = result.report["session"]
        await dialogue.index.settle()
        await dialogue.summariser.settle()
        dialogue.sessions.truncate(DEFAULT_TENANT, name, info["turn"])
        rows.append(
            {
                "sample": name,
                "category": q["category"],
                "question": q["question"],
                "gold": str(q["answer"]),
                "memory": result.texts[0].strip(),
                "memory_tokens": result.usage.prompt_tokens,
                "memory_s": time.perf_counter() - t0,
                "retrieved": info.get("retrieved_turns", []),
            }
        )
        console.print(
            f"[dim]{name} memory {i}/{len(asked)}[/dim] {q['question'][:60]!r} -> "
            f"{rows[-1]['memory'][:50]!r} (gold {rows[-1]['gold'][:30]!r})"
        )
    partial(args, rows)
    budget = int(median([r["memory_tokens"] for r in rows]))
    small = stack.engine.get("small").backend
    for i, row in enumerate(rows, 1):
        t0 = time.perf_counter()
        messages = window_messages(small.count_messages, system, lines, row["question"], budget)
        result = await ask(stack, "small", request(messages, args.max_tokens))
        row.update(
            window=result.texts[0].strip(),
            window_tokens=result.usage.prompt_tokens,
            window_s=time.perf_counter() - t0,
        )
        console.print(f"[dim]{name} window {i}/{len(rows)}[/dim] -> {row['window'][:50]!r}")
    partial(args, rows)
    if full_task is not None:
        for row, full in zip(rows, await full_task, strict=True):
            row.update(full)
    for row in rows:
        for mode in args.modes:
            row[f"{mode}_f1"], row[f"{mode}_recall"] = f1_recall(row[mode], row["gold"])
    return rows


async def full_answers(
    stack: Kernel,
    name: str,
    system: str,
    lines: list[str],
    asked: list[dict[str, Any]],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Every question with the whole conversation in the prompt, one after another, so the
    identical prefix stays in llama.cpp's cache and only the question is new each time."""
    whole = f"{system}\n\n{LINES}" + "\n".join(lines)
    out: list[dict[str, Any]] = []
    for i, q in enumerate(asked, 1):
        t0 = time.perf_counter()
        messages = [
            {"role": "system", "content": whole},
            {"role": "user", "content": q["question"]},
        ]
        result = await ask(stack, "full", request(messages, args.max_tokens))
        out.append(
            {
                "full": result.texts[0].strip(),
                "full_tokens": result.usage.prompt_tokens,
                "full_s": time.perf_counter() - t0,
            }
        )
        console.print(
            f"[dim]{name} full {i}/{len(asked)}[/dim] -> {out[-1]['full'][:50]!r}"
            f" ({out[-1]['full_s']:.0f}s)"
        )
    return out


def partial(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The answers so far, beside ``--json`` (a long run under load can be read early)."""
    if args.json:
        write_json(args.json.with_suffix(".partial.json"), {"answers": rows})


def figures(rows: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    out: dict[str, Any] = {}
    for mode in modes:
        per = {
            CATEGORIES[c]: {
                "f1": mean([r[f"{mode}_f1"] for r in rows if r["category"] == c]),
                "recall": mean([r[f"{mode}_recall"] for r in rows if r["category"] == c]),
                "questions": sum(r["category"] == c for r in rows),
            }
            for c in CATEGORIES
        }
        out[mode] = {
            "f1": mean([r[f"{mode}_f1"] for r in rows]),
            "recall": mean([r[f"{mode}_recall"] for r in rows]),
            "prompt_tokens_median": median([r[f"{mode}_tokens"] for r in rows]),
            "seconds_median": round(median([r[f"{mode}_s"] for r in rows]), 2),
            "per_category": per,
        }
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(Path(args.data).read_text())
    chosen = [s for s in data if not args.conversations or s["sample_id"] in args.conversations]
    if not chosen:
        sys.exit(f"no conversation named {args.conversations} in {args.data}")
    model = catalog.lookup(MODEL)
    home = Path(args.home) if args.home else default_home()
    if not catalog.is_ready(model, home):
        sys.exit(f"the small model is not assembled in {home}: run `make models-test`")
    path = catalog.models_dir(home) / model.filename
    rng = random.Random(args.seed)
    per = -(-args.limit_questions // len(chosen)) if args.limit_questions else None
    plan = [(s, questions(s, per, rng)) for s in chosen]
    if args.limit_questions:  # exactly N in all
        extra = sum(len(q) for _, q in plan) - args.limit_questions
        if extra > 0:
            plan[-1] = (plan[-1][0], plan[-1][1][: len(plan[-1][1]) - extra])
    settings = Settings(
        home=Path(tempfile.mkdtemp(prefix="strata-locomo-")),
        bundled_models=False,
        default_model="small",
        models={
            "small": ModelSpec(path=path, n_ctx=args.n_ctx, n_threads=args.threads),
            "full": ModelSpec(path=path, n_ctx=args.full_ctx, n_threads=args.threads),
        },
        # Defaults, but for the summary's step size: here nobody waits behind it, so each
        # step folds in more turns (fewer model calls to write the same summary).
        dialogue=DialogueSettings(
            summary=args.summary, summary_model="small", summary_step_tokens=args.summary_step
        ),
    )
    stack = Kernel(settings)
    cache = ModelCallCache(Path(args.cache))
    cache.install(stack.engine, {"small": model.sha256, "full": model.sha256})
    dialogue = stack.feature("dialogue", Dialogue)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for sample, asked in plan:
        rows += await conversation(stack, dialogue, sample, asked, args)
    seconds = time.perf_counter() - started
    await stack.shutdown()
    result = figures(rows, args.modes)
    result["setup"] = {
        "model": f"{MODEL} Q4_K_M",
        "conversations": [s["sample_id"] for s, _ in plan],
        "questions": len(rows),
        "seed": args.seed,
        "n_ctx": args.n_ctx,
        "full_ctx": args.full_ctx,
        "memory_tokens": settings.dialogue.memory_tokens,
        "summary": args.summary,
        "summary_step_tokens": args.summary_step,
        "max_tokens": args.max_tokens,
        "modes": args.modes,
        "model_calls_cached": cache.hits,
        "model_calls_run": cache.misses,
        "seconds": round(seconds, 1),
    }
    result["answers"] = rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="LoCoMo JSON (a list of samples)")
    parser.add_argument("--json", type=Path, help="Write the results here")
    parser.add_argument("--limit-questions", type=int, default=60, help="In all (0: every one)")
    parser.add_argument("--conversations", nargs="*", default=["conv-26"], help="sample_ids")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-ctx", type=int, default=4096, help="Window for memory and window")
    parser.add_argument("--full-ctx", type=int, default=24576, help="Window for the full mode")
    parser.add_argument("--summary-step", type=int, default=2048, help="Summary step tokens")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["memory", "window", "full"],
        default=["memory", "window", "full"],
        help="memory and window always run (window takes memory's median prompt tokens)",
    )
    parser.add_argument(
        "--summary",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Roll the session summary before the questions (--no-summary: recall and recent"
        " turns only; the 0.5B's summary of a long import costs a model call per step)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", help="Where the bundled models are (default: data dir)")
    parser.add_argument("--cache", default=str(REPO_ROOT / "bench" / "caches" / "locomo"))
    args = parser.parse_args()
    args.modes = sorted(set(args.modes) | {"memory", "window"}, key=MODES.index)
    result = asyncio.run(run(args))
    table = Table(
        "mode",
        "F1",
        "recall",
        *(f"F1 {n}" for n in CATEGORIES.values()),
        "prompt tokens (median)",
        "s / question",
    )
    for mode in args.modes:
        f = result[mode]
        table.add_row(
            mode,
            f"{f['f1']:.3f}",
            f"{f['recall']:.3f}",
            *(f"{f['per_category'][n]['f1']:.3f}" for n in CATEGORIES.values()),
            f"{f['prompt_tokens_median']:.0f}",
            f"{f['seconds_median']:.1f}",
        )
    Console().print(table)
    gain = result["memory"]["f1"] - result["window"]["f1"]
    setup = result["setup"]
    versus_full = ""
    if "full" in result:
        versus_full = (
            f"; memory - full {result['memory']['f1'] - result['full']['f1']:+.3f} (target >= 0)"
        )
    Console().print(
        f"{setup['questions']} questions from {', '.join(setup['conversations'])};"
        f" memory - window F1 {gain:+.3f} (target >= +0.05){versus_full}"
    )
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
