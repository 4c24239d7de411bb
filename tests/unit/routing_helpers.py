"""Shared set-up for the routing tests: two priced fake tiers, a scripted confidence signal,
and a helper that sends one chat turn through the kernel's chat service like the server does."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import Any

from strata.core.kernel import Kernel
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.settings import ModelSpec, Settings
from strata.core.tenancy import Caller, tenant_of
from strata.core.turn import Turn
from strata.features.routing.settings import RouteSpec, TierSpec
from strata.features.routing.signals import Attempt, ConfidenceSignal, Need, Probe, register_signal
from tests.unit.turns import Asked, send

SCORES: deque[float] = deque()

# USD per 1M tokens: small 1 in / 2 out, big 10 in / 20 out.
SMALL_PRICE = (1.0, 2.0)
BIG_PRICE = (10.0, 20.0)


@register_signal
class Scripted(ConfidenceSignal):
    """Returns the next value of ``SCORES`` (tests script the small tier's confidence)."""

    name = "scripted"
    needs = frozenset({Need.LOGPROBS})

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return SCORES.popleft()


PROMPT_SCORES: deque[float] = deque()


@register_signal
class PromptScripted(ConfidenceSignal):
    """A prompt-only signal (like the learned router) returning ``PROMPT_SCORES``."""

    name = "prompt_scripted"
    needs = frozenset({Need.PROMPT_ONLY})

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        assert attempt.text == ""  # it runs before any model answered
        return PROMPT_SCORES.popleft()


def routing_settings(tmp_path: Path, **route: Any) -> Settings:
    models = {
        "small": ModelSpec(
            backend="fake",
            n_ctx=512,
            max_queue=0,
            price_input_per_mtok=SMALL_PRICE[0],
            price_output_per_mtok=SMALL_PRICE[1],
        ),
        "big": ModelSpec(
            backend="fake",
            n_ctx=512,
            price_input_per_mtok=BIG_PRICE[0],
            price_output_per_mtok=BIG_PRICE[1],
        ),
    }
    spec = {
        "tiers": [TierSpec(model="small", threshold=0.5), TierSpec(model="big", threshold=0)],
        "signal": "scripted",
        **route,
    }
    return Settings(
        home=tmp_path / "home",
        bundled_models=False,
        models=models,
        routes={"r": RouteSpec(**spec)},
    )


def cost(price: tuple[float, float], prompt: int, completion: int) -> float:
    return (prompt * price[0] + completion * price[1]) / 1e6


def turn_for(
    model: str,
    options: dict[str, Any] | None = None,
    key: str = "key:alice",
    stream: bool = False,
    text: str = "hi there",
) -> Asked:
    gen = GenerationRequest(
        kind="chat",
        messages=[{"role": "user", "content": text}],
        params=SamplingParams(temperature=0.0),
        stream=stream,
    )
    tenant = tenant_of(key)  # as a server that checks keys would name the caller
    return Asked(Turn(model, gen, Caller(tenant, tenant, key), options or {}))


def ask(stack: Kernel, model: str, **kw: Any) -> tuple[Asked, str]:
    asked = turn_for(model, **kw)
    return asked, asyncio.run(send(stack, asked))
