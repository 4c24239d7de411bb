"""A real cascade through the ``openai`` SDK: the 0.5B model's real logprobs are scored and
the request escalates to a second tier. CI assembles only the 0.5B model, so the second tier
is the same weights loaded again (the 1.5B ``big`` when it is assembled here)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from strata.core import catalog
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from strata.features.routing.settings import RouteSpec, TierSpec
from tests.conftest import LiveServer
from tests.e2e.conftest import MODELS_HOME, bundled_path

pytestmark = pytest.mark.real_model


def second_tier() -> ModelSpec:
    big = catalog.lookup("qwen2.5-coder-1.5b-instruct")
    if catalog.is_ready(big, MODELS_HOME):
        return ModelSpec(path=catalog.models_dir(MODELS_HOME) / big.filename, n_ctx=1024)
    return ModelSpec(path=bundled_path("qwen2.5-coder-0.5b-instruct"), n_ctx=1024)


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    small = ModelSpec(path=bundled_path("qwen2.5-coder-0.5b-instruct"), n_ctx=1024)
    routes = {
        "never-sure": RouteSpec(
            tiers=[TierSpec(model="tiny", threshold=1.0), TierSpec(model="second", threshold=0)]
        ),
        "easy": RouteSpec(
            tiers=[TierSpec(model="tiny", threshold=0.0), TierSpec(model="second", threshold=0)]
        ),
    }
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        bundled_models=False,
        models={"tiny": small, "second": second_tier()},
        routes=routes,
    )
    with LiveServer(create_app(settings)) as server:
        yield server


QUESTION = [{"role": "user", "content": "What is the capital of France? One word."}]


def test_cascade_on_real_logprobs(routed: LiveServer) -> None:
    client = openai.OpenAI(base_url=routed.url, api_key="t", max_retries=0, timeout=120)
    kept = client.chat.completions.create(
        model="easy", messages=QUESTION, max_tokens=4, temperature=0
    )
    assert kept.model == "tiny"
    assert "paris" in (kept.choices[0].message.content or "").lower()
    route = kept.model_extra["strata"]["route"]  # type: ignore[index]
    assert 0.0 < route["tiers"][0]["confidence"] <= 1.0
    assert route["cost"] > 0  # local compute, priced per token

    stream = client.chat.completions.create(
        model="never-sure",
        messages=QUESTION,
        max_tokens=4,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {c.model for c in chunks} == {"second"}
    tail = chunks[-1].model_extra["strata"]  # type: ignore[index]
    assert [t["ran"] for t in tail["route"]["tiers"]] == [True, True]
    assert tail["route"]["baseline_cost"] > 0
    usage = httpx.get(
        routed.url + "/usage", params={"route": "never-sure"}, headers={"Authorization": "Bearer t"}
    ).json()
    assert usage["requests"] == 1 and usage["cost_usd"] > usage["baseline_usd"] > 0
