"""Self-consistency: ask the same model ``k`` more times and count how many agree.

Spends more small-model compute to avoid a big-model call ("use small models to do more").
Answers are compared by what they say (``strata.features.routing.answers.canonical``: the choice
letter, the final number, or the normalised text), not by their wording.
"""

from __future__ import annotations

from strata.features.routing.answers import canonical
from strata.features.routing.signals import register_signal
from strata.features.routing.signals.base import Attempt, ConfidenceSignal, Need, Probe


def agreement(answer: str, samples: list[str]) -> float:
    """Share of ``samples`` that say the same as ``answer``."""
    if not samples:
        return 0.0
    mine = canonical(answer)
    return sum(canonical(s) == mine for s in samples) / len(samples)


@register_signal
class SelfConsistency(ConfidenceSignal):
    name = "consistency"
    needs = frozenset({Need.SAMPLES})
    description = "agreement of k extra samples with the answer (option k, default 4)"

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        k = int(self.options.get("k", 4))
        return agreement(attempt.text, await probe.samples(k))
