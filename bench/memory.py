"""Dialogue memory: recall of facts planted early in a long conversation, strata's session
memory vs a plain sliding window, on the same model with the same context budget, same run.

The conversation has 10 facts planted in turns 3-21 (each on its own day, so two "when did I
tell you…" questions have an answer), ~200 turns of unrelated chat, then 22 probe questions
interleaved with more chat: each fact asked plainly and once paraphrased so that the probe
shares no content word with the fact (only meaning connects them), and the two dates. The
history is imported without generating (what ``POST /v1/sessions/{id}/messages`` does), then
embedded and summarised as in service (the summary by the same weights with a wider window,
``--summary-ctx``, so each call folds in more turns) before the first probe. Only the probes
are generated, greedy, 32 tokens at most; each is asked alone (its question and answer are
then dropped, so one probe cannot give another away).

    memory:  strata's prompt (summary with facts + turns recalled by words and meaning +
             recent turns), exact fit
    window:  the most recent turns that fit the same budget (counted with the same tokenizer)

A probe counts as recalled when the answer contains the planted value. Reports recall (all,
plain, paraphrased) and prompt tokens per probe (median) for both.

First, the time to the first answer right after a 300-turn import: the history is imported
into a fresh session on a kernel whose rolling summary runs on the chat model itself (the
default: one model, one slot) and whose turns are embedded on the same CPU; the background
work starts, and ``--head-start`` seconds later the first probe is asked; beside it, the same
probe in a session with the same history, already embedded, and no background work.

    python bench/memory.py --json OUT [--n-ctx 768] [--filler 200] [--no-summary]
                           [--import-turns 300] [--only-first-answer]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import median, write_json
from strata.core import catalog
from strata.core.kernel import Kernel
from strata.core.models.base import GenerationRequest, SamplingParams, Usage
from strata.core.settings import DialogueSettings, ModelSpec, Settings, default_home
from strata.core.tenancy import DEFAULT_TENANT
from strata.core.turn import Turn as ChatTurn
from strata.features.dialogue.feature import Dialogue
from strata.features.dialogue.memory import STOPWORDS
from strata.features.dialogue.store import NewTurn

console = Console(stderr=True)
SYSTEM = "You are a helpful assistant. Answer in one short sentence."
DAY = 86_400.0
START = 1788253200.0  # Tue 2026-09-01 09:00 UTC

# (fact said by the user, probe question, accepted answers, paraphrased probe: no content
# word in common with the fact, checked by ``shares_no_word``)
FACTS = [
    (
        "My sister's name is Priya.",
        "What is my sister's name?",
        ["priya"],
        "How is my female sibling called?",
    ),
    (
        "The wifi password at the cabin is bluefern42.",
        "What is the wifi password at the cabin?",
        ["bluefern42"],
        "Which secret phrase gets me online at the cottage?",
    ),
    (
        "My flight to Lisbon leaves on March 14.",
        "When does my flight to Lisbon leave?",
        ["march 14", "14 march", "mar 14", "march 14th"],
        "On what day do I travel by plane to Portugal's capital?",
    ),
    (
        "I parked the car on level 6, spot C17.",
        "Where did I park the car?",
        ["c17"],
        "Where is my vehicle waiting in the garage?",
    ),
    (
        "My favourite tea is genmaicha.",
        "What is my favourite tea?",
        ["genmaicha"],
        "Which hot infusion do I like best?",
    ),
    (
        "The project codename is Nightjar.",
        "What is the project codename?",
        ["nightjar"],
        "What secret label did we give our initiative?",
    ),
    (
        "My dentist appointment is at 3:40 pm.",
        "What time is my dentist appointment?",
        ["3:40", "15:40"],
        "At what hour am I seeing the tooth doctor?",
    ),
    (
        "Our team's budget for Q3 is 48,000 euros.",
        "What is our team's budget for Q3?",
        ["48,000", "48000", "48 000", "48k"],
        "How much money can our group spend in the third quarter?",
    ),
    (
        "My cat is called Biscuit.",
        "What is my cat called?",
        ["biscuit"],
        "What name does my pet kitty have?",
    ),
    (
        "The locker combination at the gym is 7-19-23.",
        "What is the locker combination at the gym?",
        ["7-19-23", "7 19 23", "7, 19, 23"],
        "Which numbers open my storage box at the fitness centre?",
    ),
]


def content_words(text: str) -> set[str]:
    words = {w.lower().removesuffix("'s") for w in re.findall(r"[\w'-]+", text)}
    return {w for w in words if w not in STOPWORDS and len(w) > 1}


def shares_no_word(fact: str, probe: str) -> bool:
    """No content word (nor a 4-letter prefix of one) in common: keywords cannot connect
    them, only meaning can."""
    ours, theirs = content_words(fact), content_words(probe)
    return not ({w[:4] for w in ours} & {w[:4] for w in theirs})


def _day_answers(day: int) -> list[str]:
    return [
        f"2026-09-{day:02d}",
        f"september {day}",
        f"sep {day}",
        f"{day} september",
        f"09/{day:02d}",
        f"{day:02d}/09",
    ]


# Fact i is told on September (i + 1): the cat (8) on the 9th, the codename (5) on the 6th.
WHEN = [
    ("On what date did I tell you what my cat is called?", _day_answers(9)),
    ("On what date did I tell you the project codename?", _day_answers(6)),
]

TOPICS = [
    "volcanoes",
    "jazz",
    "origami",
    "tides",
    "bridges",
    "chess",
    "comets",
    "bread",
    "glaciers",
    "trains",
    "bees",
    "lighthouses",
    "kites",
    "coral reefs",
    "typography",
    "sailing",
    "mushrooms",
    "opera",
    "deserts",
    "clocks",
]
USER_LINES = [
    "I read an article about {t} this morning, it was {a}.",
    "Do you know much about {t}? A friend keeps talking about it.",
    "I watched a documentary on {t} last night and found it {a}.",
    "Someone at work said {t} are overrated, I think they are {a}.",
    "What is one surprising thing about {t}?",
    "I might take a weekend course about {t}, sounds {a}.",
]
ASSISTANT_LINES = [
    "That sounds {a}! {T} have a long history with plenty of surprises.",
    "Interesting choice. Many people find {t} {a} once they look closer.",
    "Happy to talk about {t}. What part interests you most?",
    "Good question. {T} are more varied than most people expect.",
]
ADJECTIVES = ["fascinating", "calming", "odd", "inspiring", "dull", "surprising", "lovely"]


def filler(rng: random.Random, count: int, start: float) -> list[NewTurn]:
    turns = []
    for i in range(count):
        topic, adj = rng.choice(TOPICS), rng.choice(ADJECTIVES)
        lines = USER_LINES if i % 2 == 0 else ASSISTANT_LINES
        text = rng.choice(lines).format(t=topic, T=topic.capitalize(), a=adj)
        turns.append(NewTurn("user" if i % 2 == 0 else "assistant", text, None, start + i * 600))
    return turns


def script(
    n_filler: int, seed: int = 7
) -> tuple[list[NewTurn], list[tuple[list[NewTurn], str, list[str]]]]:
    """The history before the first probe, then (turns imported before it, probe, answers)."""
    rng = random.Random(seed)
    history = [
        NewTurn(
            "user",
            "Hi! I'll tell you a few things to remember over the next weeks.",
            None,
            START - 3600,
        ),
        NewTurn("assistant", "Sure, I'm listening.", None, START - 3590),
    ]
    for i, (fact, _, _, _) in enumerate(FACTS):
        when = START + i * DAY
        history.append(NewTurn("user", fact, None, when))
        history.append(NewTurn("assistant", "Noted, I'll remember that.", None, when + 5))
    history += filler(rng, n_filler, START + 11 * DAY)
    probes = [(q, a) for _, q, a, _ in FACTS] + WHEN + [(p, a) for _, _, a, p in FACTS]
    rng.shuffle(probes)
    later = START + 14 * DAY
    plan = []
    for i, (question, answers) in enumerate(probes):
        between = filler(rng, 4, later + i * DAY) if i else []
        plan.append((between, question, answers))
    return history, plan


def share(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else 0.0


def recalled(answer: str, accepted: list[str]) -> bool:
    text = re.sub(r"\s+", " ", answer.lower())
    return any(a in text for a in accepted)


async def generate(stack: Kernel, turn: ChatTurn) -> tuple[str, Usage]:
    result = await stack.service.run(turn)
    return result.texts[0], result.usage


def request(messages: list[dict[str, Any]], max_tokens: int) -> GenerationRequest:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    return GenerationRequest(kind="chat", messages=messages, params=params)


def window_messages(
    stack: Kernel, history: list[NewTurn], question: str, budget: int
) -> list[dict[str, Any]]:
    """The plain baseline: the system prompt, the newest turns that fit, the question."""
    backend = stack.engine.get("small").backend
    tail: list[dict[str, Any]] = [{"role": "user", "content": question}]
    head = [{"role": "system", "content": SYSTEM}]
    kept: list[dict[str, Any]] = []
    for turn in reversed(history):
        trial = [{"role": turn.role, "content": turn.content}, *kept]
        if backend.count_messages(head + trial + tail) > budget:
            break
        kept = trial
    return head + kept + tail


async def run(args: argparse.Namespace) -> dict[str, Any]:
    model = catalog.lookup("qwen2.5-coder-0.5b-instruct")
    models_home = Path(args.home) if args.home else default_home()
    if not catalog.is_ready(model, models_home):
        sys.exit(f"the small model is not assembled in {models_home}: run `make models-test`")
    path = catalog.models_dir(models_home) / model.filename
    state = Path(tempfile.mkdtemp(prefix="strata-memory-"))
    settings = Settings(
        home=state,
        bundled_models=False,
        default_model="small",
        models={
            "small": ModelSpec(path=path, n_ctx=args.n_ctx, n_threads=args.threads),
            # The same weights with a wider window, so each summary call folds in more turns.
            "summarizer": ModelSpec(path=path, n_ctx=args.summary_ctx, n_threads=args.threads),
        },
        dialogue=DialogueSettings(
            summary=args.summary,
            summary_model="summarizer",
            summary_max_tokens=100,
            summary_batch=24,
        ),
    )
    stack = Kernel(settings)
    dialogue = stack.feature("dialogue", Dialogue)
    history, plan = script(args.filler)
    session = dialogue.sessions.create(DEFAULT_TENANT, "bench", system=SYSTEM)
    dialogue.sessions.append(session, history)
    started = time.perf_counter()
    dialogue.stored(session.sid, "small")  # embeds the turns and rolls the summary
    await dialogue.index.settle()
    index_s = time.perf_counter() - started
    await dialogue.summariser.settle()
    summary_s = time.perf_counter() - started
    console.print(
        f"{len(history)} imported turns: embedded in {index_s:.0f}s, summarised by {summary_s:.0f}s"
    )
    paraphrased = {p for _, _, _, p in FACTS}

    budget = args.n_ctx - args.max_tokens
    window_history = list(history)
    results: dict[str, dict[str, list[Any]]] = {
        mode: {"hits": [], "prompt_tokens": [], "seconds": [], "paraphrased": []}
        for mode in ("memory", "window")
    }
    for between, question, answers in plan:
        if between:
            dialogue.sessions.append(session, between)
            window_history += between
            dialogue.stored(session.sid, "small")
            await dialogue.index.settle()
            await dialogue.summariser.settle()
        t0 = time.perf_counter()
        turn = ChatTurn(
            "small",
            request([{"role": "user", "content": question}], args.max_tokens),
            options={"session": "bench"},
        )
        asked = await stack.service.run(turn)
        memory_answer, memory_usage = asked.texts[0], asked.usage
        t1 = time.perf_counter()
        # Each probe alone: its question and answer are dropped, so one probe's answer cannot
        # give another away (a paraphrase and its plain question ask the same fact).
        await dialogue.index.settle()
        await dialogue.summariser.settle()
        dialogue.sessions.truncate(DEFAULT_TENANT, "bench", asked.report["session"]["turn"])
        messages = window_messages(stack, window_history, question, budget)
        window_answer, window_usage = await generate(
            stack, ChatTurn("small", request(messages, args.max_tokens))
        )
        t2 = time.perf_counter()
        for mode, answer, usage, secs in (
            ("memory", memory_answer, memory_usage, t1 - t0),
            ("window", window_answer, window_usage, t2 - t1),
        ):
            results[mode]["hits"].append(recalled(answer, answers))
            results[mode]["prompt_tokens"].append(usage.prompt_tokens)
            results[mode]["seconds"].append(secs)
            results[mode]["paraphrased"].append(question in paraphrased)
        console.print(
            f"[dim]{question}[/dim]\n  memory {'✓' if results['memory']['hits'][-1] else '✗'}"
            f" {memory_answer.strip()[:90]!r}\n  window"
            f" {'✓' if results['window']['hits'][-1] else '✗'} {window_answer.strip()[:90]!r}"
        )
    total_turns = dialogue.sessions.get(DEFAULT_TENANT, "bench").turns
    await stack.shutdown()

    def figures(mode: str) -> dict[str, Any]:
        r = results[mode]
        pairs = list(zip(r["hits"], r["paraphrased"], strict=True))
        return {
            "recall": sum(r["hits"]) / len(r["hits"]),
            "recalled": sum(r["hits"]),
            "probes": len(r["hits"]),
            "paraphrased_recall": share([h for h, p in pairs if p]),
            "direct_recall": share([h for h, p in pairs if not p]),
            "prompt_tokens_per_turn": median(r["prompt_tokens"]),
            "prompt_tokens_mean": sum(r["prompt_tokens"]) / len(r["prompt_tokens"]),
            "seconds_per_turn": median(r["seconds"]),
        }

    return {
        "memory": figures("memory"),
        "window": figures("window"),
        "setup": {
            "model": "qwen2.5-coder-0.5b-instruct Q4_K_M",
            "n_ctx": args.n_ctx,
            "max_tokens": args.max_tokens,
            "conversation_turns": total_turns,
            "planted_facts": len(FACTS),
            "fact_turns": [3 + 2 * i for i in range(len(FACTS))],
            "probes": len(plan),
            "paraphrased_probes": len(paraphrased),
            "index_seconds": round(index_s, 1),
            "summary": args.summary,
            "summary_ctx": args.summary_ctx,
            "summary_seconds": round(summary_s, 1),
        },
    }


async def first_answer(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds to the first answer after an import, with the import's background work running
    (its summary on the same model, its turns' embeddings on the same CPU) vs with nothing
    else running (same history, same probe, same kernel, the embedder loaded in both)."""
    model = catalog.lookup("qwen2.5-coder-0.5b-instruct")
    models_home = Path(args.home) if args.home else default_home()
    path = catalog.models_dir(models_home) / model.filename
    state = Path(tempfile.mkdtemp(prefix="strata-first-"))
    settings = Settings(
        home=state,
        bundled_models=False,
        default_model="small",
        models={"small": ModelSpec(path=path, n_ctx=args.first_ctx, n_threads=args.threads)},
        dialogue=DialogueSettings(summary=True, summary_max_tokens=100, summary_batch=24),
    )
    stack = Kernel(settings)
    dialogue = stack.feature("dialogue", Dialogue)
    history, plan = script(args.import_turns - 2 - 2 * len(FACTS))
    question = plan[0][1]
    await generate(stack, ChatTurn("small", request([{"role": "user", "content": "hi"}], 4)))

    async def ask(name: str, background: bool) -> float:
        session = dialogue.sessions.create(DEFAULT_TENANT, name, system=SYSTEM)
        dialogue.sessions.append(session, history)
        if background:
            dialogue.stored(session.sid, "small")  # summary and embeddings, as an import does
            await asyncio.sleep(args.head_start)
        else:  # indexed before the question, with nothing running when it comes
            dialogue.index.schedule(session.sid)
            await dialogue.index.settle()
        gen = request([{"role": "user", "content": question}], args.max_tokens)
        t0 = time.perf_counter()
        await generate(stack, ChatTurn("small", gen, options={"session": name}))
        seconds = time.perf_counter() - t0
        # Busy: the import's summary had not finished when the answer came (it yielded).
        # Quiet: the answer's own turn scheduled a summary; neither is measured further.
        summarised = dialogue.sessions.get(DEFAULT_TENANT, name).summary_upto
        embedder = dialogue.index.embedder
        left = dialogue.sessions.unembedded(session.sid, embedder.name, 10**6) if embedder else []
        await dialogue.summariser.close()
        await dialogue.index.close()
        console.print(
            f"first answer, {'background work running' if background else 'quiet'}:"
            f" {seconds:.1f}s (turns summarised when it came: {summarised} of {len(history)};"
            f" not yet embedded: {len(left)})"
        )
        return seconds

    quiet = await ask("quiet", False)
    busy = await ask("busy", True)
    await stack.shutdown()
    return {
        "quiet_s": round(quiet, 2),
        "with_summary_s": round(busy, 2),
        "ratio": round(busy / quiet, 2),
        "imported_turns": len(history),
        "head_start_s": args.head_start,
        "n_ctx": args.first_ctx,
        "question": question,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="Write the results here")
    parser.add_argument("--n-ctx", type=int, default=768, help="Context window (both modes)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--filler", type=int, default=200, help="Chat turns after the facts")
    parser.add_argument(
        "--threads", type=int, default=1, help="1 is fastest on a shared, busy machine"
    )
    parser.add_argument("--home", help="Where the bundled models are (default: data dir)")
    parser.add_argument(
        "--summary-ctx", type=int, default=2048, help="Window of the summary model (same weights)"
    )
    parser.add_argument(
        "--summary",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Write the rolling summary (--no-summary: retrieval and recent turns only)",
    )
    parser.add_argument(
        "--first-ctx", type=int, default=2048, help="Window of the model in the first-answer run"
    )
    parser.add_argument(
        "--head-start", type=float, default=3.0, help="Seconds the summary runs before the probe"
    )
    parser.add_argument(
        "--import-turns", type=int, default=300, help="Turns imported in the first-answer run"
    )
    parser.add_argument("--only-first-answer", action="store_true", help="Skip the recall run")
    args = parser.parse_args()
    first = asyncio.run(first_answer(args))
    Console().print(
        f"first answer after a {first['imported_turns']}-turn import: "
        f"{first['with_summary_s']:.1f}s with its summary and embeddings running vs "
        f"{first['quiet_s']:.1f}s "
        f"with no background work ({first['ratio']:.2f}x; target <= 2x)"
    )
    if args.only_first_answer:
        if args.json:
            write_json(args.json, {"first_answer": first})
        return
    result = asyncio.run(run(args))
    result["first_answer"] = first
    table = Table("mode", "recall", "prompt tokens / turn (median)", "s / turn")
    for mode in ("memory", "window"):
        f = result[mode]
        table.add_row(
            mode,
            f"{f['recall']:.0%} ({f['recalled']}/{f['probes']})",
            f"{f['prompt_tokens_per_turn']:.0f}",
            f"{f['seconds_per_turn']:.1f}",
        )
    Console().print(table)
    setup = result["setup"]
    Console().print(
        f"{setup['conversation_turns']} turns, facts in turns {setup['fact_turns'][0]}-"
        f"{setup['fact_turns'][-1]}, window {setup['n_ctx']} tokens, same model and run"
    )
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
