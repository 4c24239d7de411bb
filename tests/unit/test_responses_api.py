"""``POST /v1/responses`` through the ``openai`` SDK on the scripted fake model: text in and
out, function tools returned as ``function_call`` items and continued with
``previous_response_id`` (per tenant), strata's tools run on the server, the stream's typed
events, and errors in OpenAI's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from strata.core.engine import Engine
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake, fake_settings
from tests.unit.agent_helpers import call
from tests.unit.conftest import assert_error_body, http_client, sdk

WEATHER: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    }
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = fake_settings(tmp_path_factory.mktemp("responses"))
    roomy = base.models["fake"].model_copy(update={"n_ctx": 2048})
    return base.model_copy(
        update={"models": {**base.models, "fake": roomy}, "api_keys": ["a", "b"]}
    )


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Engine:
    return Engine(settings)


@pytest.fixture(scope="module")
def live(engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, engine)) as server:
        yield server


@pytest.fixture(scope="module")
def client(live: LiveServer) -> Iterator[openai.OpenAI]:
    with sdk(live.url, api_key="a") as found:
        yield found


@pytest.fixture(autouse=True)
def _fresh(engine: Engine) -> None:
    fake(engine).outputs.clear()
    fake(engine).calls.clear()


def test_text_in_text_out(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("Hello there, friend.")
    r = client.responses.create(
        model="fake", input="Say hello", instructions="Be warm.", temperature=0.2
    )
    assert r.object == "response" and r.id.startswith("resp")
    assert r.status == "completed"
    assert r.output_text == "Hello there, friend."
    assert r.output[0].type == "message"
    assert r.usage is not None and r.usage.output_tokens == 3 and r.usage.input_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    sent = fake(engine).calls[0]
    assert sent.messages == [
        {"role": "system", "content": "Be warm."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent.params.temperature == 0.2


def test_function_call_then_its_output(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue(call("get_weather", city="Paris"), "It is sunny in Paris.")
    first = client.responses.create(
        model="fake",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}],
        tools=WEATHER,
        tool_choice="required",
    )
    (item,) = [o for o in first.output if o.type == "function_call"]
    assert item.name == "get_weather" and json.loads(item.arguments) == {"city": "Paris"}
    assert fake(engine).calls[0].passthrough["tool_choice"] == "required"
    assert fake(engine).calls[0].passthrough["tools"][0]["function"]["name"] == "get_weather"
    second = client.responses.create(
        model="fake",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "sunny"}],
        tools=WEATHER,
    )
    assert second.output_text == "It is sunny in Paris."
    messages = fake(engine).calls[1].messages or []
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == item.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": item.call_id, "content": "sunny"}
    assert client.responses.retrieve(second.id).output_text == "It is sunny in Paris."


def test_items_without_previous_id(client: openai.OpenAI, engine: Engine) -> None:
    """The Agents SDK's way: it resends the whole history as items each turn."""
    fake(engine).enqueue("Done.")
    items: Any = [
        {"role": "user", "content": "Weather in Rome?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "rain"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Rain.", "annotations": []}],
        },
        {"role": "user", "content": "Thanks"},
    ]
    client.responses.create(model="fake", input=items, store=False)
    messages = fake(engine).calls[0].messages or []
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[3]["content"] == "Rain."


def test_previous_response_is_per_tenant(
    client: openai.OpenAI, engine: Engine, live: LiveServer
) -> None:
    fake(engine).enqueue("mine")
    first = client.responses.create(model="fake", input="secret")
    with sdk(live.url, api_key="b") as other, pytest.raises(openai.NotFoundError):
        other.responses.create(model="fake", input="more", previous_response_id=first.id)


def test_builtin_tool_runs_on_the_server(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", expression="6*7"), "42.")
    r = client.responses.create(
        model="fake",
        input="6 times 7?",
        tools=[{"type": "calculator"}],  # type: ignore[list-item]
    )
    assert r.output_text == "42."
    report: Any = r.model_extra and r.model_extra["strata"]
    assert report["agent"]["steps"][0]["calls"][0]["result"] == 42


def test_stream_events(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("One two three.")
    kinds, text, done = [], "", None
    with client.responses.stream(model="fake", input="Count") as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        done = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.content_part.done" in kinds
    assert text == "One two three." and done.output_text == text
    assert done.usage is not None and done.usage.output_tokens == 3


def test_stream_function_call(live: LiveServer, engine: Engine) -> None:
    fake(engine).enqueue(call("get_weather", city="Oslo"))
    body = {"model": "fake", "input": "Weather?", "tools": WEATHER, "stream": True}
    events: list[dict[str, Any]] = []
    with http_client(live.root) as http:
        headers = {"Authorization": "Bearer a"}
        with http.stream("POST", "/v1/responses", json=body, headers=headers) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert "response.function_call_arguments.delta" in kinds
    arguments = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    assert json.loads(arguments) == {"city": "Oslo"}
    final = events[-1]["response"]
    assert final["output"][-1]["type"] == "function_call"
    assert final["output"][-1]["arguments"] == arguments


def test_max_output_tokens_is_incomplete(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("one two three four five")
    r = client.responses.create(model="fake", input="go", max_output_tokens=2)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "tools": [{"type": "web_search_preview"}]}, "tools"),
        ({"input": [{"type": "image_generation_call"}]}, "input"),
        ({"input": "x", "previous_response_id": "resp_nope"}, "previous_response_id"),
        ({"input": "x", "tools": WEATHER, "tool_choice": {"type": "mcp"}}, "tool_choice"),
    ],
)
def test_errors_in_openai_shape(live: LiveServer, body: dict[str, Any], param: str) -> None:
    with http_client(live.root) as http:
        headers = {"Authorization": "Bearer a"}
        r = http.post("/v1/responses", json={"model": "fake", **body}, headers=headers)
    assert 400 <= r.status_code < 500
    assert assert_error_body(r.json())["param"] == param


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")


def test_validation_error_is_a_400(live: LiveServer) -> None:
    with http_client(live.root) as http:
        r = http.post(
            "/v1/responses",
            json={"model": "fake", "input": "x", "max_output_tokens": 0},
            headers={"Authorization": "Bearer a"},
        )
    assert r.status_code == 400
    assert_error_body(r.json())


def test_without_auth_is_a_401(live: LiveServer) -> None:
    r = httpx.post(live.url + "/responses", json={"model": "fake", "input": "x"})
    assert r.status_code == 401
