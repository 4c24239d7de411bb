"""The specialist tier in front of a route's cascade.

A ``strata.core.protocols.Specialist`` (provided by another feature, e.g. distill, and looked
up per request so one trained later serves at once) is asked first. Its answer is kept when
its calibrated confidence reaches its own threshold; otherwise the cascade runs as before,
the specialist's attempt still shown in the route report (and its compute still billed).

The answer is priced as the specialist's compute; the baseline (what the route's last tier
alone would have cost) is that tier's price for the prompt and an answer of this length,
counted with its own tokenizer (or the backend's estimate when it is not loaded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strata.core.engine import Engine
from strata.core.errors import StrataError
from strata.core.models.base import Chunk, Usage
from strata.core.pricing import CostMeter
from strata.core.protocols import Specialist, SpecialistAnswer
from strata.core.turn import Generation, RouteOutcome, Turn, TurnResult

SpecialistLookup = Callable[[], Specialist | None]


@dataclass
class FirstTier:
    """What the specialist did for one turn: its trail entry, and its answer when kept."""

    entry: dict[str, Any]
    answer: SpecialistAnswer
    usage: Usage
    baseline_cost: float

    @property
    def kept(self) -> bool:
        return self.answer.confidence >= self.answer.threshold

    @property
    def model(self) -> str:
        return str(self.entry["model"])

    def answer_turn(
        self,
        info: dict[str, Any],
        result: TurnResult,
        started: float,
        outcome: Callable[[dict[str, Any]], RouteOutcome],
    ) -> list[Chunk]:
        """The specialist answers: the route report says so, and its answer's chunks."""
        answer = self.answer
        info.update(
            answered_by=self.model,
            confidence=round(answer.confidence, 4),
            reason=f"specialist confidence {answer.confidence:.3f} >= {answer.threshold:.3f}",
            cost=round(answer.cost, 12),
            baseline_cost=round(self.baseline_cost, 10),
        )
        result.answered_by = self.model
        result.route = outcome(info)
        result.timings.ttft_s = result.timings.total_s = time.perf_counter() - started
        return [Chunk(text=answer.text), Chunk(finish_reason="stop", usage=self.usage)]


async def ask_specialist(
    lookup: SpecialistLookup | None,
    engine: Engine,
    costs: CostMeter,
    route: str,
    last_tier: str,
    turn: Turn,
    result: TurnResult,
) -> FirstTier | None:
    """Ask the tenant's specialist for this route, bill what it spent; None if it had none."""
    specialist = lookup() if lookup is not None else None
    if specialist is None:
        return None
    answer = await specialist.answer(route, turn)
    if answer is None:
        return None
    model = f"specialist:{answer.name}"
    backend = engine.get(last_tier).backend
    try:
        usage = Usage(
            backend.count_messages(list(turn.gen.messages or [])),
            backend.count_tokens(answer.text),
        )
        baseline = costs.price(last_tier).cost(usage)
    except StrataError:  # a tier that cannot be priced: no baseline rather than no answer
        usage, baseline = Usage(0, 0), 0.0
    result.generations.append(Generation(model, Usage(0, 0), answer.cost))
    entry = {
        "model": model,
        "threshold": round(answer.threshold, 4),
        "ran": True,
        "confidence": round(answer.confidence, 4),
        "cost": round(answer.cost, 12),
        "ms": round(answer.seconds * 1000, 2),
    }
    return FirstTier(entry, answer, usage, baseline)
