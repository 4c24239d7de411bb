"""Distillation as a strata feature: the ``[distill]`` settings, the specialists (provided as
``strata.core.protocols.Specialist``, which the router asks before a route's first tier),
their training from ``TurnCompleted`` and ``FeedbackGiven``, the exemplars of open-ended
traffic (provided as ``strata.core.protocols.Exemplars``), ``GET /v1/specialists``,
``POST /v1/specialists/distill`` and ``strata specialists`` / ``strata distill``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.core.protocols import Exemplars, Specialist
from strata.features.distill.settings import DistillSettings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel
    from strata.features.distill.runtime import Distill


def build_distill(kernel: Kernel) -> Distill:
    from strata.features.distill.runtime import Distill

    settings = kernel.settings.section("distill", DistillSettings)
    distill = Distill(kernel.settings.store("distill"), settings, kernel.settings.cpu_hour_usd)
    kernel.provide(Specialist, distill)  # type: ignore[type-abstract]
    kernel.events.subscribe(distill.on_turn)
    kernel.events.on_feedback(distill.on_feedback)
    kernel.provide(Exemplars, distill.exemplars)  # type: ignore[type-abstract]
    kernel.events.subscribe(distill.exemplars.on_turn)
    kernel.events.on_feedback(distill.exemplars.on_feedback)
    return distill


class DistillFeature(Feature):
    name = "distill"

    def build(self, kernel: Kernel) -> Distill:
        return build_distill(kernel)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        return {"distill": (DistillSettings, Field(default_factory=DistillSettings))}

    def router(self) -> APIRouter:
        from strata.features.distill.api import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.distill.cli import commands

        return commands()


feature = DistillFeature()
