"""The chat service: layers run around generation, dispatchers answer for their names."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import httpx

from strata.core.engine import Engine
from strata.core.models.base import Chunk
from strata.core.service import ChatService
from strata.core.turn import Turn, TurnResult
from tests.conftest import LiveServer, fake


class Shout:
    """A layer that adds a system message, reports itself and upper-cases the answer."""

    name = "shout"
    order = 50

    def __init__(self, buffer: bool) -> None:
        self.buffer = buffer
        self.seen: list[str] = []

    async def before(self, turn: Turn, result: TurnResult) -> None:
        turn.gen.messages = [{"role": "system", "content": "be loud"}, *turn.gen.messages]
        result.report["shout"] = turn.options.get("top_k")
        turn.buffer_output = self.buffer

    async def after(self, turn: Turn, result: TurnResult) -> None:
        self.seen.extend(result.texts)
        for choice in result.choices:
            choice.text = choice.text.upper()


class Echo:
    """A dispatcher for the name ``echo`` that answers through the model ``fake``."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def handles(self, model: str) -> bool:
        return model == "echo"

    def names(self) -> list[str]:
        return ["echo"]

    async def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        result.answered_by = "fake"
        result.report["route"] = ["fake"]
        stream = self.service.engine.generate("fake", turn.gen, timings=result.timings)
        async for chunk in stream:
            yield chunk


def _client(live: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=30)


def test_layer_wraps_generation(live: LiveServer, engine: Engine) -> None:
    kernel = live.server.config.app.state.kernel  # type: ignore[attr-defined]
    layer = Shout(buffer=False)
    kernel.service.add_layer(layer)
    fake(engine).enqueue("hello")
    body = {
        "model": "fake",
        "messages": [{"role": "user", "content": "hi"}],
        "strata": {"top_k": 7},
    }
    with _client(live) as http:
        data = http.post("/chat/completions", json=body).json()
    assert data["choices"][0]["message"]["content"] == "HELLO"
    assert data["strata"]["shout"] == 7
    assert fake(engine).calls[0].messages[0] == {"role": "system", "content": "be loud"}
    assert layer.seen == ["hello"]


def test_buffered_stream_replays_rewritten_text(live: LiveServer, engine: Engine) -> None:
    kernel = live.server.config.app.state.kernel  # type: ignore[attr-defined]
    kernel.service.add_layer(Shout(buffer=True))
    fake(engine).enqueue("quiet words")
    body = {
        "model": "fake",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with _client(live) as http:
        lines = http.post("/chat/completions", json=body).text.split("\n\n")
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "QUIET WORDS"
    assert events[-1]["usage"]["completion_tokens"] > 0
    assert events[-1]["strata"]["shout"] is None


def test_dispatcher_answers_for_its_name(live: LiveServer, engine: Engine) -> None:
    kernel = live.server.config.app.state.kernel  # type: ignore[attr-defined]
    kernel.service.add_dispatcher(Echo(kernel.service))
    fake(engine).enqueue("routed")
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    with _client(live) as http:
        data = http.post("/chat/completions", json=body).json()
    assert data["model"] == "fake"
    assert data["strata"]["route"] == ["fake"]
    assert data["choices"][0]["message"]["content"] == "routed"
    with _client(live) as http:
        listed = http.get("/models").json()["data"]
        one = http.get("/models/echo").json()
    assert {"id": "echo", "object": "model", "owned_by": "strata"}.items() <= listed[-1].items()
    assert one["id"] == "echo"


def test_unknown_strata_option_is_a_400(live: LiveServer) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "strata": {"x": 1}}
    with _client(live) as http:
        response = http.post("/chat/completions", json=body)
    assert response.status_code == 400
    assert "strata" in response.json()["error"]["param"]
