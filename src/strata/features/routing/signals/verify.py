"""Self-verification (AutoMix-style): the model that answered is asked whether its answer is
correct, and its probability of "Yes" (against "No", from the first token's top logprobs) is
the confidence. The question follows the answer in the same conversation, so a local model
reuses the cached prompt and the check costs a few tokens (``strata.features.routing.judge``)."""

from __future__ import annotations

import math

from strata.core.models.base import TokenLogprob
from strata.features.routing.signals import register_signal
from strata.features.routing.signals.base import Attempt, ConfidenceSignal, Need, Probe


def p_yes(logprobs: list[TokenLogprob]) -> float:
    """P(yes) / (P(yes) + P(no)) over the first token's alternatives; 0.5 when neither shows."""
    if not logprobs:
        return 0.5
    first = logprobs[0]
    options = [(first.token, first.logprob), *((t.token, t.logprob) for t in first.top)]
    yes = no = 0.0
    seen: set[str] = set()
    for token, logprob in options:
        if token in seen:
            continue
        seen.add(token)
        word = token.strip().lower()
        if word in {"yes", "y", "correct", "true"}:
            yes += math.exp(logprob)
        elif word in {"no", "n", "incorrect", "false", "wrong"}:
            no += math.exp(logprob)
    return 0.5 if yes + no == 0 else yes / (yes + no)


@register_signal
class SelfVerification(ConfidenceSignal):
    name = "verify"
    needs = frozenset({Need.JUDGE})
    description = "the model's own P(yes) that its answer is correct"

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return p_yes(await probe.judge())
