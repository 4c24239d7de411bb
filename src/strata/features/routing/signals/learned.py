"""The learned router: predicts from the prompt alone whether the small model will be right.

A logistic regression on ``strata.features.routing.features`` trained from labelled outcomes (the
benchmark's, or ``strata calibrate``'s). Being prompt-only, the router can run it *before*
the small model: when it is confident the small model will fail, the request goes straight
to the big one and the small model's cost is saved too. Its weights are stored with the
route's calibration (``signal_options.model``).
"""

from __future__ import annotations

from typing import Any

from strata.core.errors import ConfigError
from strata.features.routing.features import prompt_features
from strata.features.routing.logistic import Logistic
from strata.features.routing.signals import register_signal
from strata.features.routing.signals.base import Attempt, ConfidenceSignal, Need, Probe


@register_signal
class LearnedRouter(ConfidenceSignal):
    name = "learned"
    needs = frozenset({Need.PROMPT_ONLY})
    description = "logistic regression on prompt features, trained by `strata calibrate`"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        model = options.get("model")
        if not isinstance(model, dict):
            raise ConfigError("the learned signal is not trained yet: run `strata calibrate`")
        self.model = Logistic.from_json(model)

    def predict(self, messages: list[dict[str, Any]]) -> float:
        return self.model.predict(prompt_features(messages))

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return self.predict(attempt.messages)
