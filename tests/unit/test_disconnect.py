"""A client that goes away mid-stream must stop its generation at once and free the model."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from strata.core.engine import Engine
from tests.conftest import fake
from tests.unit.conftest import wait_until

LONG = " ".join(["w"] * 100)  # 100 tokens at 0.05 s each: 5 s if nobody stops it


def read_events_then_close(http: httpx.Client, path: str, body: dict[str, Any], n: int) -> int:
    """Open a stream, read ``n`` data events, then drop the connection."""
    seen = 0
    with http.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen += 1
            if seen >= n:
                break
    return seen


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"model": "slow", "messages": [{"role": "user", "content": "go"}], "stream": True},
        ),
        (
            "/v1/chat/completions",
            {
                "model": "slow",
                "messages": [{"role": "user", "content": "go"}],
                "stream": True,
                "n": 2,
                "stream_options": {"include_usage": True},
            },
        ),
        ("/v1/completions", {"model": "slow", "prompt": "go", "stream": True, "max_tokens": 200}),
    ],
    ids=["chat", "chat-n2", "completion"],
)
def test_disconnect_stops_generation(
    http: httpx.Client, oai: openai.OpenAI, engine: Engine, path: str, body: dict[str, Any]
) -> None:
    slow = fake(engine, "slow")
    scheduler = engine.get("slow").scheduler
    slow.enqueue(LONG, LONG)
    assert read_events_then_close(http, path, body, n=3) == 3

    wait_until(lambda: slow.cancelled == 1, timeout=1.0, what="the backend to be cancelled")
    wait_until(lambda: scheduler.active == 0, timeout=1.0, what="the slot to be released")
    assert scheduler.depth == 0
    stopped_at = slow.tokens_emitted
    assert stopped_at < 20, stopped_at
    assert len(slow.calls) == 1  # the second choice of n=2 never started

    # The model serves the next request straight away, and the old one stays stopped.
    slow.outputs.clear()
    r = oai.chat.completions.create(model="slow", messages=[{"role": "user", "content": "again"}])
    assert r.choices[0].message.content == "ok"
    assert slow.tokens_emitted == stopped_at + 1
    assert slow.cancelled == 1


def test_disconnect_metrics_count_the_error(http: httpx.Client, engine: Engine) -> None:
    """The abandoned generation is still accounted (once) when it is torn down."""
    fake(engine, "slow").enqueue(LONG)
    body = {"model": "slow", "messages": [{"role": "user", "content": "go"}], "stream": True}
    read_events_then_close(http, "/v1/chat/completions", body, n=2)
    wait_until(lambda: engine.get("slow").scheduler.active == 0, timeout=1.0)
    metrics = http.get("/metrics").text
    assert 'strata_generations_total{model="slow"} 1' in metrics
    assert 'strata_active_generations{model="slow"} 0' in metrics


def test_non_stream_client_that_hangs_up_frees_the_model(live: Any, engine: Engine) -> None:
    """Without a stream there is no write to fail, so strata watches for the hang-up."""
    slow = fake(engine, "slow")
    scheduler = engine.get("slow").scheduler
    slow.enqueue(LONG)
    body = {"model": "slow", "messages": [{"role": "user", "content": "go"}]}
    with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=live.root) as client:
        client.post("/v1/chat/completions", json=body, timeout=0.3)
    wait_until(lambda: slow.cancelled == 1, timeout=1.0, what="the backend to be cancelled")
    wait_until(lambda: scheduler.active == 0, timeout=1.0, what="the slot to be released")
    assert slow.tokens_emitted < 20
