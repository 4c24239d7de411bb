"""Labelled outcomes for calibration and the routing benchmark: items, prompts, model runs.

Data is any folder laid out like ``shared/data/routing``: one ``TASK.SPLIT.jsonl`` per task
with ``{id, question, choices?, answer}``. An item becomes a plain chat request (choices
listed with letters, or a worked problem asking for ``Answer: <number>``); its task and answer
are kept apart for grading and never reach a router.

Every model call (the first tier's answer, its extra samples and its self-check, the last
tier's answer) runs once through strata's own engine and is cached on disk keyed by the model
file's sha256 and the exact request, so re-scoring, re-calibrating or trying a new signal is
instant, and a larger sample only runs the items it adds. ``strata calibrate`` and
``bench/routing.py`` share this cache (``settings.home/cache/bench-routing``).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.core.engine import Engine, Timings
from strata.core.models.base import (
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from strata.features.routing.judge import judge_messages

LETTERS = "ABCDEFGHIJ"
MC_INSTRUCTION = "Answer with the letter of the correct choice only."
COT_INSTRUCTION = (
    "Solve this briefly, step by step, in plain text (no LaTeX). "
    'End with the line "Answer: <number>".'
)
COT_MAX_TOKENS = 320
COT_SAMPLES = 2  # extra samples beyond the greedy answer (worked problems only)


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    messages: list[dict[str, Any]]
    answer: str
    kind: str  # "choice" or "number": how to grade, never shown to a router

    @property
    def letters(self) -> str:
        content = str(self.messages[-1]["content"])
        return "".join(c for c in LETTERS if f"\n{c}. " in content)


def to_item(row: dict[str, Any], task: str) -> Item:
    question = str(row["question"]).strip()
    choices = row.get("choices")
    if choices:
        listed = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
        content = f"{question}\n\n{listed}\n\n{MC_INSTRUCTION}"
        return Item(
            str(row["id"]),
            task,
            [{"role": "user", "content": content}],
            str(row["answer"]),
            "choice",
        )
    content = f"{question}\n\n{COT_INSTRUCTION}"
    return Item(
        str(row["id"]),
        task,
        [{"role": "user", "content": content}],
        str(row["answer"]).replace(",", ""),
        "number",
    )


def load_items(
    data: Path,
    limit: int,
    seed: int,
    task_limits: dict[str, int] | None = None,
    after: dict[str, int] | None = None,
) -> list[Item]:
    """A fixed seeded sample of ``limit`` items spread evenly over the task files present.

    Each task's items are a slice of one seeded permutation, so a smaller sample is a subset
    of a larger one (and reuses its cache); ``after`` starts a task's slice past the items a
    sample from the same files already took (an evaluation set held apart from the
    calibration set). Items are interleaved task by task.
    """
    files = sorted(data.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no *.jsonl task files in {data}")
    per_task = max(1, limit // len(files))
    by_task: list[list[Item]] = []
    for path in files:
        task = path.name.split(".")[0]
        rows = [json.loads(line) for line in path.read_text().split("\n") if line.strip()]
        random.Random(f"{seed}:{task}").shuffle(rows)
        start = (after or {}).get(task, 0)
        n = min(per_task, (task_limits or {}).get(task, per_task), len(rows) - start)
        by_task.append([to_item(r, task) for r in rows[start : start + max(0, n)]])
    out: list[Item] = []
    for i in range(max((len(t) for t in by_task), default=0)):
        out.extend(t[i] for t in by_task if i < len(t))
    return out


@dataclass
class Output:
    """One cached model call."""

    text: str
    logprobs: list[TokenLogprob]
    usage: Usage
    cpu_s: float
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        lp = [
            [t.token, round(t.logprob, 5), [[x.token, round(x.logprob, 5)] for x in t.top]]
            for t in self.logprobs
        ]
        return {
            "text": self.text,
            "lp": lp,
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens],
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Output:
        lp = [
            TokenLogprob(tok, lp, top=tuple(TopLogprob(t, v) for t, v in top))
            for tok, lp, top in d["lp"]
        ]
        return cls(d["text"], lp, Usage(*d["usage"]), d["cpu_s"], d["wall_s"])


@dataclass
class Record:
    """Everything the benchmark ran for one item."""

    small: Output
    big: Output
    samples: list[Output] = field(default_factory=list)
    judge: Output | None = None


def model_sha256(engine: Engine, name: str) -> str:
    """The identity of a model's weights, for cache keys (the catalog's hash when bundled)."""
    from strata.core import catalog

    spec = engine.get(name).backend.spec
    if spec.bundled:
        return catalog.lookup(spec.bundled).sha256
    if spec.path:
        return catalog.sha256_file(spec.path)
    return hashlib.sha256(
        json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def cache_dir(home: Path) -> Path:
    return home / "cache" / "bench-routing"


class Cache:
    """Append-only JSONL per model file; a call is keyed by its full request."""

    def __init__(self, folder: Path, engine: Engine) -> None:
        self.folder = folder
        self.engine = engine
        self.folder.mkdir(parents=True, exist_ok=True)
        self._memory: dict[str, dict[str, Output]] = {}
        self._sha: dict[str, str] = {}
        self.ran = 0

    def _table(self, model: str) -> tuple[Path, dict[str, Output]]:
        sha = self._sha.setdefault(model, model_sha256(self.engine, model))
        path = self.folder / f"{sha[:16]}.jsonl"
        if sha not in self._memory:
            table: dict[str, Output] = {}
            if path.exists():
                for line in path.read_text().split("\n"):
                    if line.strip():
                        row = json.loads(line)
                        table[row["key"]] = Output.from_json(row["out"])
            self._memory[sha] = table
        return path, self._memory[sha]

    async def call(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_logprobs: int = 0,
        seed: int | None = None,
        cached_only: bool = False,
    ) -> Output | None:
        request = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_logprobs": top_logprobs,
            "seed": seed,
        }
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        path, table = self._table(model)
        if key in table:
            return table[key]
        if cached_only:
            return None
        params = SamplingParams(
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            logprobs=True,
            top_logprobs=top_logprobs,
        )
        gen = GenerationRequest(kind="chat", messages=messages, params=params)
        parts: list[str] = []
        logprobs: list[TokenLogprob] = []
        usage = Usage(0, 0)
        cpu, wall = time.process_time(), time.perf_counter()
        async for chunk in self.engine.generate(model, gen, timings=Timings()):
            parts.append(chunk.text)
            logprobs.extend(chunk.logprobs or [])
            usage = chunk.usage or usage
        out = Output(
            "".join(parts),
            logprobs,
            usage,
            round(time.process_time() - cpu, 4),
            round(time.perf_counter() - wall, 4),
        )
        table[key] = out
        with path.open("a") as f:
            f.write(json.dumps({"key": key, "out": out.to_json()}) + "\n")
        self.ran += 1
        return out


async def run_item(
    cache: Cache, item: Item, small: str, big: str, cached_only: bool = False
) -> Record | None:
    """The small model's answer, samples and self-check, and the big model's answer."""
    choice = item.kind == "choice"
    budget = 1 if choice else COT_MAX_TOKENS
    top = 20 if choice else 1
    kw: dict[str, Any] = {"max_tokens": budget, "top_logprobs": top, "cached_only": cached_only}
    s = await cache.call(small, item.messages, **kw)
    if s is None:
        return None
    judge = await cache.call(
        small,
        judge_messages(item.messages, s.text),
        max_tokens=1,
        top_logprobs=20,
        cached_only=cached_only,
    )
    samples: list[Output] = []
    # A one-token choice answer's samples follow from its token distribution (the benchmark
    # draws them from the cached logprobs); only free-text answers need real extra samples.
    for i in range(0 if choice else COT_SAMPLES):
        out = await cache.call(
            small,
            item.messages,
            max_tokens=budget,
            temperature=0.7,
            seed=i + 1,
            top_logprobs=top,
            cached_only=cached_only,
        )
        if out is None:
            return None
        samples.append(out)
    b = await cache.call(big, item.messages, **kw)
    if b is None or judge is None:
        return None
    return Record(s, b, samples, judge)


async def run_all(
    cache: Cache,
    items: Sequence[Item],
    small: str,
    big: str,
    cached_only: bool = False,
    progress: Any = None,
) -> dict[str, Record]:
    records: dict[str, Record] = {}
    for item in items:
        record = await run_item(cache, item, small, big, cached_only)
        if record is not None:
            records[item.id] = record
        if progress is not None:
            progress(item)
    return records
