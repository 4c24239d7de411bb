"""Turn cached model runs into labelled outcomes: grade each answer, score it with every
signal exactly as the router would (the probe is backed by the cached calls), and price the
calls from their measured CPU seconds × ``cpu_hour_usd``.

One-token choice answers: the extra samples self-consistency needs are drawn from the answer
token's own distribution (its top logprobs at temperature 1), which is what sampling that
token again would give; they are charged as one decoded token each at the small model's
measured per-token rate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from strata.core.models.base import TokenLogprob
from strata.features.routing.answers import choice_letter, final_number
from strata.features.routing.calibrate import Outcome
from strata.features.routing.features import prompt_features
from strata.features.routing.outcomes import Item, Output, Record
from strata.features.routing.signals import Attempt, create_signal

SIGNALS = [
    "answer_prob",
    "answer_margin",
    "sequence_prob",
    "min_token_prob",
    "verify",
    "consistency",
]
CHOICE_SAMPLES = 5


def predicted(item: Item, out: Output) -> str | None:
    """The answer an output gives: a letter (falling back to the likeliest letter among the
    first token's alternatives when the text starts otherwise) or the final number."""
    if item.kind == "number":
        return final_number(out.text)
    letter = choice_letter(out.text, item.letters)
    if letter is not None or not out.logprobs:
        return letter
    first = out.logprobs[0]
    options = [(first.token, first.logprob), *((t.token, t.logprob) for t in first.top)]
    letters = [
        (lp, tok.strip().upper()) for tok, lp in options if tok.strip().upper() in item.letters
    ]
    return max(letters)[1] if letters else None


def correct(item: Item, out: Output) -> bool:
    return predicted(item, out) == item.answer


class CachedProbe:
    def __init__(self, item: Item, record: Record, rng: random.Random) -> None:
        self.item, self.record, self.rng = item, record, rng

    async def samples(self, k: int) -> list[str]:
        if self.item.kind == "number":
            return [s.text for s in self.record.samples[:k]]
        return draw(self.record.small.logprobs, k, self.rng)

    async def judge(self) -> list[TokenLogprob]:
        return self.record.judge.logprobs if self.record.judge else []


def draw(logprobs: list[TokenLogprob], k: int, rng: random.Random) -> list[str]:
    if not logprobs:
        return []
    first = logprobs[0]
    options = {first.token: first.logprob, **{t.token: t.logprob for t in first.top}}
    tokens = list(options)
    weights = [math.exp(options[t]) for t in tokens]
    return rng.choices(tokens, weights=weights, k=k)


def cpu_cost(out: Output | None, cpu_hour_usd: float) -> float:
    return 0.0 if out is None else out.cpu_s * cpu_hour_usd / 3600


async def outcome(item: Item, record: Record, cpu_hour_usd: float, seed: int = 0) -> Outcome:
    rng = random.Random(f"{seed}:{item.id}")
    probe = CachedProbe(item, record, rng)
    attempt = Attempt(item.messages, record.small.text, record.small.logprobs)
    scores = {}
    for name in SIGNALS:
        options = {"k": CHOICE_SAMPLES if item.kind == "choice" else len(record.samples)}
        signal = create_signal(name, **(options if name == "consistency" else {}))
        scores[name] = await signal.score(attempt, probe)
    small = record.small
    if item.kind == "choice":
        per_token = cpu_cost(small, cpu_hour_usd) / max(1, small.usage.prompt_tokens)
        samples_cost = CHOICE_SAMPLES * per_token
    else:
        samples_cost = sum(cpu_cost(s, cpu_hour_usd) for s in record.samples)
    return Outcome(
        id=item.id,
        scores=scores,
        prompt=prompt_features(item.messages),
        small_ok=correct(item, small),
        big_ok=correct(item, record.big),
        small_cost=cpu_cost(small, cpu_hour_usd),
        big_cost=cpu_cost(record.big, cpu_hour_usd),
        extra_cost={"judge": cpu_cost(record.judge, cpu_hour_usd), "samples": samples_cost},
    )


async def outcomes(
    items: Sequence[Item], records: dict[str, Record], cpu_hour_usd: float, seed: int = 0
) -> list[Outcome]:
    return [
        await outcome(item, records[item.id], cpu_hour_usd, seed)
        for item in items
        if item.id in records
    ]
