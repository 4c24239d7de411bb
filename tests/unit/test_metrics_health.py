"""/health, /metrics and /openapi.json."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import openai
import pytest

from strata.core.engine import Engine
from strata.core.models.fake import FakeBackend
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake
from tests.unit.conftest import http_client, wait_until

USER = [{"role": "user", "content": "hi"}]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, by exact labels."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{inner}}}" if labels else name) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no sample {name}{labels} in\n{text}"
    return float(match.group(1))


def test_health_ok(http: httpx.Client, oai: openai.OpenAI) -> None:
    r = http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert set(body["models"]) == {"fake", "slow", "base"}
    assert body["models"]["fake"] == {"loaded": False, "loading": False, "error": None}
    oai.chat.completions.create(model="fake", messages=USER)
    assert http.get("/health").json()["models"]["fake"]["loaded"] is True


class GatedBackend(FakeBackend):
    """A model whose load blocks until the test lets it finish."""

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        super().__init__(name, spec, home)
        self.loading = asyncio.Event()
        self.release = asyncio.Event()

    async def load(self) -> None:
        self.loading.set()
        await self.release.wait()
        await super().load()


def test_health_503_while_a_startup_model_loads(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", bundled_models=False)

    async def go() -> None:
        gated = GatedBackend("gated", ModelSpec(backend="fake", load="startup"))
        lazy = FakeBackend("lazy", ModelSpec(backend="fake"))
        engine = Engine(settings, backends={"gated": gated, "lazy": lazy})
        app = create_app(settings, engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
            startup = asyncio.create_task(engine.startup())
            await asyncio.wait_for(gated.loading.wait(), timeout=2)
            r = await client.get("/health")
            assert r.status_code == 503
            assert r.json() == {
                "status": "loading",
                "models": {
                    "gated": {"loaded": False, "loading": True, "error": None},
                    "lazy": {"loaded": False, "loading": False, "error": None},
                },
            }
            metrics = (await client.get("/metrics")).text
            assert metric(metrics, "strata_model_loaded", model="gated") == 0
            gated.release.set()
            await asyncio.wait_for(startup, timeout=2)  # returns at once: loading goes on
            await asyncio.wait_for(engine.wait_ready(), timeout=2)
            r = await client.get("/health")
            assert r.status_code == 200
            assert r.json()["models"]["gated"] == {"loaded": True, "loading": False, "error": None}
            await engine.shutdown()

    asyncio.run(asyncio.wait_for(go(), timeout=10))


def test_startup_model_is_loaded_when_serving(tmp_path: Path) -> None:
    models = {"eager": ModelSpec(backend="fake", load="startup"), "lazy": ModelSpec(backend="fake")}
    settings = Settings(home=tmp_path / "home", bundled_models=False, models=models)
    with LiveServer(create_app(settings)) as server, http_client(server.root) as http:
        wait_until(lambda: http.get("/health").status_code == 200)
        assert http.get("/health").json()["models"] == {
            "eager": {"loaded": True, "loading": False, "error": None},
            "lazy": {"loaded": False, "loading": False, "error": None},
        }


def test_metrics_after_requests(http: httpx.Client, oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("one two three")
    oai.chat.completions.create(model="fake", messages=USER)
    oai.completions.create(model="base", prompt="a b")
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="fake", messages=USER, max_tokens=500)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=USER)

    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert text.endswith("\n")
    lines = text.splitlines()
    for family in (
        "strata_http_requests_total",
        "strata_generations_total",
        "strata_generation_errors_total",
        "strata_prompt_tokens_total",
        "strata_completion_tokens_total",
        "strata_time_to_first_token_seconds",
        "strata_queue_depth",
        "strata_active_generations",
        "strata_model_loaded",
    ):
        assert any(line.startswith(f"# TYPE {family} ") for line in lines), family
        assert any(line.startswith(f"# HELP {family} ") for line in lines), family

    requests = "strata_http_requests_total"
    assert metric(text, requests, endpoint="chat", model="fake", status="200") == 1
    assert metric(text, requests, endpoint="completions", model="base", status="200") == 1
    assert metric(text, requests, endpoint="chat", model="fake", status="400") == 1
    assert metric(text, requests, endpoint="chat", model="unknown", status="404") == 1
    assert "no-such-model" not in text  # client-chosen names do not become series

    assert metric(text, "strata_generations_total", model="fake") == 2
    assert metric(text, "strata_generation_errors_total", model="fake", kind="client") == 1
    assert metric(text, "strata_prompt_tokens_total", model="fake") == 2
    assert metric(text, "strata_completion_tokens_total", model="fake") == 3
    assert metric(text, "strata_prompt_tokens_total", model="base") == 3
    assert metric(text, "strata_completion_tokens_total", model="base") == 1

    ttft = "strata_time_to_first_token_seconds"
    assert metric(text, f"{ttft}_count", model="fake") == 1
    assert metric(text, f"{ttft}_bucket", model="fake", le="+Inf") == 1
    assert metric(text, f"{ttft}_sum", model="fake") >= 0
    buckets = [
        float(m.group(1))
        for m in re.finditer(rf'^{ttft}_bucket{{model="fake",le="[^"]+"}} (\d+)$', text, re.M)
    ]
    assert buckets == sorted(buckets)  # cumulative

    for model in ("fake", "slow", "base"):
        assert metric(text, "strata_queue_depth", model=model) == 0
        assert metric(text, "strata_active_generations", model=model) == 0
    assert metric(text, "strata_model_loaded", model="fake") == 1
    assert metric(text, "strata_model_loaded", model="slow") == 0


def test_metrics_count_backend_failures(
    http: httpx.Client, oai: openai.OpenAI, engine: Engine
) -> None:
    fake(engine).enqueue(RuntimeError("boom"))
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="fake", messages=USER)
    text = http.get("/metrics").text
    assert metric(text, "strata_generation_errors_total", model="fake", kind="BackendError") == 1
    assert metric(text, "strata_http_requests_total", endpoint="chat", model="fake", status="500")


def test_queue_depth_gauge(http: httpx.Client, engine: Engine) -> None:
    scheduler = engine.get("slow").scheduler
    scheduler._depth = 2  # as if two requests waited
    scheduler.active = 1
    text = http.get("/metrics").text
    assert metric(text, "strata_queue_depth", model="slow") == 2
    assert metric(text, "strata_active_generations", model="slow") == 1
    scheduler._depth = 0
    scheduler.active = 0


def test_openapi(http: httpx.Client) -> None:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    expected = {
        "/v1/chat/completions": ("ChatCompletionRequest", "ChatCompletion"),
        "/v1/completions": ("CompletionRequest", "Completion"),
        "/v1/embeddings": ("EmbeddingRequest", "EmbeddingList"),
    }
    for path, (request_model, response_model) in expected.items():
        post = paths[path]["post"]
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith("/" + request_model)
        ok = post["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith("/" + response_model)
        for status in ("400", "401", "404", "429", "500", "502", "503", "504"):
            error = post["responses"][status]["content"]["application/json"]["schema"]
            assert error["$ref"].endswith("/ErrorResponse")
    assert "get" in paths["/v1/models"]
    assert paths["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"
    ].endswith("/ModelList")
    assert "/v1/models/{model_id}" in paths
    assert "/health" in paths and "/metrics" in paths
    schemas = spec["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    assert set(chat["required"]) == {"model", "messages"}
    for field in ("temperature", "top_p", "n", "stream", "logprobs", "response_format"):
        assert field in chat["properties"]
    assert set(schemas["CompletionRequest"]["required"]) == {"model", "prompt"}
    assert set(schemas["EmbeddingRequest"]["required"]) == {"model", "input"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"message", "type", "param", "code"}
    assert spec["info"]["title"] == "strata"
