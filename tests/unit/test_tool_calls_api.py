"""OpenAI function calling through the HTTP API, on the scripted fake model: the fake parses
its scripted answer with the same code a local model's output goes through, so these tests
pin the wire shapes (message, stream deltas, finish_reason, usage) and the 400s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from strata.core.engine import Engine
from strata.core.models.base import Chunk
from strata.core.models.llama_tools import HeldContent
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from strata.features.routing.settings import RouteSpec, TierSpec
from tests.conftest import LiveServer, fake, fake_settings
from tests.unit.conftest import assert_error_body, sdk

USER: Any = [{"role": "user", "content": "weather in Paris and Rome?"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TWO_CALLS = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = fake_settings(tmp_path_factory.mktemp("tools"))
    big = base.models["fake"].model_copy(update={"n_ctx": 512})
    tiers = [TierSpec(model="fake", threshold=0.0), TierSpec(model="big", threshold=0)]
    routes = {"tooled": RouteSpec(tiers=tiers)}
    return Settings(
        home=base.home,
        bundled_models=False,
        models={**base.models, "fake": big, "big": big},
        routes=routes,
    )


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Engine:
    return Engine(settings)


@pytest.fixture(scope="module")
def client(engine: Engine, settings: Settings) -> Iterator[openai.OpenAI]:
    with LiveServer(create_app(settings, engine)) as server, sdk(server.url) as c:
        yield c


def test_calls_come_back_as_openai_tool_calls(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue(TWO_CALLS)
    r = client.chat.completions.create(model="fake", messages=USER, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]  # type: ignore[union-attr]
    assert [json.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert all(c.id.startswith("call_") and c.type == "function" for c in calls)
    assert r.usage is not None and r.usage.completion_tokens > 0
    sent = fake(engine).calls[-1].passthrough
    assert sent["tools"] == TOOLS


def test_stream_sends_tool_call_deltas(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("Checking. " + TWO_CALLS)
    stream = client.chat.completions.create(
        model="fake",
        messages=USER,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    content, calls, finish, usage = "", {}, None, None
    for event in stream:
        usage = event.usage or usage
        for choice in event.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                entry["name"] += delta.function.name or ""  # type: ignore[union-attr]
                entry["arguments"] += delta.function.arguments or ""  # type: ignore[union-attr]
    assert content.strip() == "Checking."
    assert finish == "tool_calls"
    assert [json.loads(c["arguments"])["city"] for c in calls.values()] == ["Paris", "Rome"]
    assert usage is not None and usage.completion_tokens > 0


def test_parallel_false_keeps_one_call(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue(TWO_CALLS)
    r = client.chat.completions.create(
        model="fake", messages=USER, tools=TOOLS, parallel_tool_calls=False
    )
    assert len(r.choices[0].message.tool_calls or []) == 1
    assert fake(engine).calls[-1].passthrough["parallel_tool_calls"] is False


def test_fenced_json_is_a_call_and_other_json_is_content(
    client: openai.OpenAI, engine: Engine
) -> None:
    fenced = '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```'
    fake(engine).enqueue(fenced, '```json\n{"name": "nope", "arguments": {}}\n```')
    r = client.chat.completions.create(model="fake", messages=USER, tools=TOOLS)
    calls = r.choices[0].message.tool_calls or []
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    r = client.chat.completions.create(model="fake", messages=USER, tools=TOOLS)
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    assert "nope" in (r.choices[0].message.content or "")


def test_tool_choice_none_makes_no_call(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue(TWO_CALLS)
    r = client.chat.completions.create(model="fake", messages=USER, tools=TOOLS, tool_choice="none")
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"


def test_history_with_calls_and_results_is_accepted(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("It is sunny in Paris.")
    history: Any = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
    ]
    r = client.chat.completions.create(model="fake", messages=history, tools=TOOLS)
    assert r.choices[0].message.content == "It is sunny in Paris."
    seen = fake(engine).calls[-1].messages or []
    assert [m["role"] for m in seen] == ["user", "assistant", "tool"]
    assert seen[1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_route_answers_with_the_tiers_tool_call(client: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue(TWO_CALLS)
    r = client.chat.completions.create(model="tooled", messages=USER, tools=TOOLS)
    assert r.model == "fake"
    assert r.choices[0].finish_reason == "tool_calls"
    assert len(r.choices[0].message.tool_calls or []) == 2
    route = (r.model_extra or {})["strata"]["route"]
    assert route["answered_by"] == "fake"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}, "(f)"),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "g",
                            "parameters": {"properties": {"x": {"type": "banana"}}},
                        },
                    }
                ]
            },
            "(g)",
        ),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}}, "x"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "sometimes"),
    ],
)
def test_bad_tools_are_a_400_naming_them(
    client: openai.OpenAI, kwargs: dict[str, Any], needle: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="fake", messages=USER, **kwargs)
    error = assert_error_body(info.value.response.json())
    assert error["param"] in {"tools", "tool_choice"}
    assert needle in error["message"]


def test_untyped_and_gorilla_parameters_compile(client: openai.OpenAI, engine: Engine) -> None:
    loose: Any = [
        {
            "type": "function",
            "function": {
                "name": "loose",
                "parameters": {
                    "type": "dict",
                    "properties": {
                        "anything": {"description": "no type at all"},
                        "pair": {"type": "tuple", "items": [{"type": "float"}, {"type": "any"}]},
                    },
                },
            },
        }
    ]
    fake(engine).enqueue(
        '<tool_call>\n{"name": "loose", "arguments": {"anything": 1}}\n</tool_call>'
    )
    r = client.chat.completions.create(model="fake", messages=USER, tools=loose)
    assert r.choices[0].finish_reason == "tool_calls"


def test_held_content_streams_prose_and_holds_a_fence() -> None:
    """The llama backend's ``auto`` sink: prose streams at once; a fence is held to the end."""
    out: list[Chunk] = []
    held = HeldContent(out.append)
    for piece in [
        "Sure",
        ", here",
        ":\n`",
        "``json\n",
        '{"name": "get_weather", ',
        '"arguments": {}}\n```',
    ]:
        held(piece, None)
    assert "".join(c.text for c in out) == "Sure, here:\n"
    spec_tools = [type("T", (), {"name": "get_weather"})()]
    assert held.finish("", spec_tools, True, ())  # type: ignore[arg-type]
    assert out[-1].extra is not None
    assert out[-1].extra["tool_calls"][0]["function"]["name"] == "get_weather"
