"""Shared set-up for the distill tests: the routing test stack (two priced fake tiers, a
scripted confidence) plus the distill feature on the hashing embedder, and closed-set turns
whose labels the big tier answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strata.core.kernel import Kernel
from strata.core.models.base import GenerationRequest, ResponseFormat, SamplingParams
from strata.core.settings import Settings
from strata.core.tenancy import Caller, tenant_of
from strata.core.turn import Turn
from strata.features.distill.runtime import Distill
from strata.features.distill.settings import DistillSettings
from tests.conftest import fake
from tests.unit.routing_helpers import SCORES, routing_settings
from tests.unit.turns import Asked, send

LABELS = ["sports", "weather"]
TEXTS = {
    "sports": "the team won the football match after a late goal in the final game",
    "weather": "heavy rain and storm clouds with strong wind expected over the coast",
}


def schema(labels: list[str] = LABELS) -> ResponseFormat:
    body = {"type": "object", "properties": {"label": {"enum": labels}}, "required": ["label"]}
    return ResponseFormat(type="json_schema", schema=body, name="label")


def distill_settings(tmp_path: Path, **distill: Any) -> Settings:
    values: dict[str, Any] = {
        "embedder": "hash",
        "retrain_every": 10,
        "min_examples": 10,
        "target_agreement": 0.9,
        "holdout_share": 0.4,
        **distill,
    }
    settings = routing_settings(tmp_path)
    return settings.model_copy(update={"distill": DistillSettings(**values)})


def text_for(label: str, i: int) -> str:
    return f"{TEXTS[label]} number {i % 3}"


def closed_turn(text: str, key: str = "key:alice", labels: list[str] = LABELS) -> Asked:
    gen = GenerationRequest(
        kind="chat",
        messages=[{"role": "user", "content": text}],
        params=SamplingParams(temperature=0.0, response_format=schema(labels)),
    )
    tenant = tenant_of(key)
    return Asked(Turn("r", gen, Caller(tenant, tenant, key)))


async def big_answers(stack: Kernel, label: str, text: str, key: str = "key:alice") -> Asked:
    """One closed-set turn the small tier is unsure of, so the big tier answers ``label``.
    (Tests run a whole scenario in one event loop: background trainings live in it.)"""
    fake(stack.engine, "small").enqueue(json.dumps({"label": LABELS[0]}))
    fake(stack.engine, "big").enqueue(json.dumps({"label": label}))
    SCORES.append(0.1)
    asked = closed_turn(text, key)
    await send(stack, asked)
    return asked


async def teach(stack: Kernel, n: int, key: str = "key:alice") -> list[Asked]:
    """``n`` turns answered by the big tier, alternating the labels; then the trainings
    they started are waited for."""
    asked = [
        await big_answers(stack, LABELS[i % 2], text_for(LABELS[i % 2], i), key) for i in range(n)
    ]
    await distill_of(stack).drain()
    return asked


def distill_of(stack: Kernel) -> Distill:
    return stack.feature("distill", Distill)
