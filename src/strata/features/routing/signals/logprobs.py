"""Signals read from the answer's own token log-probabilities (free: no extra model call).

- ``answer_prob``: the probability of the tokens that carry the answer. For a JSON answer
  (``{"label": "Sports"}``, what a ``response_format`` schema asks for) that is the last
  value's tokens, not the braces and key the schema dictates; for a short answer (a choice
  letter, a label, a number) its first real token; for a worked answer that ends
  ``Answer: 42`` the tokens after the last ``Answer:``; otherwise the sequence's mean.
- ``sequence_prob``: the length-normalised sequence probability, exp(mean logprob).
- ``answer_margin``: at the answer's first token, the probability of the chosen token minus
  that of the best alternative (needs top logprobs): a split between two choices is doubt
  even when the chosen one is fairly likely.
- ``min_token_prob``: exp(mean of the ``lowest`` smallest token logprobs): one confidently
  wrong step in a long answer shows here and is averaged away in the mean.
"""

from __future__ import annotations

import math
import re

from strata.core.models.base import TokenLogprob
from strata.features.routing.signals import register_signal
from strata.features.routing.signals.base import Attempt, ConfidenceSignal, Need, Probe

SHORT_TOKENS = 8
# The last value of a JSON object: a string's contents, or a bare number/literal.
_JSON_VALUE = re.compile(r':\s*(?:"((?:[^"\\]|\\.)*)"|([-\w.+]+))\s*\}\s*$')


def _mean_prob(tokens: list[TokenLogprob]) -> float:
    if not tokens:
        return 0.0
    return math.exp(sum(t.logprob for t in tokens) / len(tokens))


def answer_span(logprobs: list[TokenLogprob]) -> list[TokenLogprob]:
    """The tokens that state the answer (see the module docstring)."""
    content = [t for t in logprobs if t.token.strip()]
    if not content:
        return []
    text, starts = "", []
    for t in logprobs:
        starts.append(len(text))
        text += t.token
    value = _JSON_VALUE.search(text) if text.lstrip().startswith("{") else None
    if value is not None:
        begin, end = value.span(1) if value.group(1) is not None else value.span(2)
        span = [
            t
            for t, s in zip(logprobs, starts, strict=True)
            if s < end and s + len(t.token) > begin and any(c.isalnum() for c in t.token)
        ]
        if span:
            return span[:6]
    if len(content) <= SHORT_TOKENS:
        return content[:1]
    at = text.lower().rfind("answer:")
    if at >= 0:
        after = at + len("answer:")
        span = [
            t
            for t, s in zip(logprobs, starts, strict=True)
            if s + len(t.token) > after and t.token.strip() and any(c.isalnum() for c in t.token)
        ]
        if span:
            return span[:6]
    return content


@register_signal
class AnswerProb(ConfidenceSignal):
    name = "answer_prob"
    needs = frozenset({Need.LOGPROBS})
    description = "probability of the answer's tokens (choice letter, label, final number)"

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return _mean_prob(answer_span(attempt.logprobs))


@register_signal
class SequenceProb(ConfidenceSignal):
    name = "sequence_prob"
    needs = frozenset({Need.LOGPROBS})
    description = "length-normalised sequence probability, exp(mean logprob)"

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return _mean_prob(attempt.logprobs)


@register_signal
class MinTokenProb(ConfidenceSignal):
    name = "min_token_prob"
    needs = frozenset({Need.LOGPROBS})
    description = "probability of the least likely tokens (option lowest, default 3)"

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        lowest = int(self.options.get("lowest", 3))
        worst = sorted(attempt.logprobs, key=lambda t: t.logprob)[: max(1, lowest)]
        return _mean_prob(worst)


@register_signal
class AnswerMargin(ConfidenceSignal):
    name = "answer_margin"
    needs = frozenset({Need.LOGPROBS})
    description = "answer token's probability minus the best alternative's"

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        span = answer_span(attempt.logprobs)
        if not span:
            return 0.0
        first = span[0]
        chosen = math.exp(first.logprob)
        others = [math.exp(t.logprob) for t in first.top if t.token != first.token]
        return max(0.0, chosen - max(others, default=0.0))
