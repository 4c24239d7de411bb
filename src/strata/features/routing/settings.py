"""Route settings: the one ``routes`` field of ``strata.core.settings.Settings``.

In TOML::

    [routes.fast]
    tiers = [{model = "small", threshold = 0.5}, {model = "big"}]
    signal = "answer_prob"

A route is an ordered list of tiers from the smallest model to the biggest. The router sends
a request to the first tier, scores the answer with the route's confidence signal, and moves
up while the score is under the tier's threshold. Thresholds written here are the defaults;
``strata calibrate`` fits them on labelled data and saves them under ``settings.home``
(``routing/routes.json``), which then take precedence.

Kept free of strata imports other than pydantic, so ``strata.core.settings`` can import it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TierSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Name of a served model")
    threshold: float = Field(
        0.5, ge=0, le=1, description="Escalate past this tier when confidence is below this"
    )


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[TierSpec] = Field(..., min_length=1, description="Models from small to big")
    signal: str = Field("answer_prob", description="Confidence signal (see `strata routes`)")
    signal_options: dict[str, Any] = Field(default_factory=dict)
    prefilter: str | None = Field(
        None, description="Prompt-only signal (e.g. learned) that may skip the first tier"
    )
    prefilter_below: float = Field(
        0.1, ge=0, le=1, description="Skip the first tier when the prefilter's score is below"
    )
    stream: Literal["buffer", "direct"] = Field(
        "buffer",
        description="buffer: hold the first tier's answer until scored; direct: stream the "
        "last tier at once (no cascade when streaming)",
    )
    description: str = ""

    @model_validator(mode="after")
    def _distinct(self) -> RouteSpec:
        names = [t.model for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("a route lists each model once")
        return self


def default_routes() -> dict[str, RouteSpec]:
    """The bundled small→big routes; ``auto-cheap`` escalates less, ``auto-best`` more."""

    def route(threshold: float, description: str) -> RouteSpec:
        tiers = [TierSpec(model="small", threshold=threshold), TierSpec(model="big", threshold=0)]
        return RouteSpec(tiers=tiers, description=description)

    return {
        "auto": route(0.6, "small, escalating to big when unsure"),
        "auto-cheap": route(0.35, "small unless it is clearly lost"),
        "auto-best": route(0.85, "big unless small is very sure"),
    }


def all_routes(configured: dict[str, RouteSpec], models: set[str]) -> dict[str, RouteSpec]:
    """The served routes: the bundled ones whose models exist, overlaid by the configured."""
    bundled = {n: r for n, r in default_routes().items() if {t.model for t in r.tiers} <= models}
    return {**bundled, **configured}
