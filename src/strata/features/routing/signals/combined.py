"""Several signals combined into one calibrated probability that the answer is right.

Each part's score becomes a feature (its logit, so probabilities near 0 and 1 spread out)
and a logistic regression fitted on labelled outcomes weighs them (``strata calibrate``
stores the fit in ``signal_options.model``). Unfitted, the combination is the mean of the
parts. It needs whatever its parts need.
"""

from __future__ import annotations

import math
from typing import Any

from strata.core.errors import ConfigError
from strata.features.routing.logistic import Logistic
from strata.features.routing.signals import create_signal, register_signal
from strata.features.routing.signals.base import Attempt, ConfidenceSignal, Need, Probe


def logit(p: float) -> float:
    p = min(1 - 1e-4, max(1e-4, p))
    return math.log(p / (1 - p))


@register_signal
class Combined(ConfidenceSignal):
    name = "combined"
    description = "logistic combination of other signals (option parts)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        parts = options.get("parts") or ["answer_prob", "verify"]
        part_options: dict[str, dict[str, Any]] = options.get("part_options") or {}
        if "combined" in parts:
            raise ConfigError("a combined signal cannot contain itself")
        self.parts = [create_signal(p, **part_options.get(p, {})) for p in parts]
        model = options.get("model")
        self.model = Logistic.from_json(model) if isinstance(model, dict) else None
        self.needs = frozenset().union(*(p.needs for p in self.parts)) - {Need.PROMPT_ONLY}

    def combine(self, scores: list[float]) -> float:
        if self.model is None:
            return sum(scores) / len(scores)
        return self.model.predict([logit(s) for s in scores])

    async def part_scores(self, attempt: Attempt, probe: Probe) -> list[float]:
        return [await p.score(attempt, probe) for p in self.parts]

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return self.combine(await self.part_scores(attempt, probe))
