"""Function calling on the real bundled 0.5B model through the clients people use: the
``openai`` SDK (stream and not), LangChain's ``bind_tools`` and the OpenAI Agents SDK's
chat-completions model. Short answers (max_tokens) keep them quick on two cores."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer
from tests.e2e.weather_agent import run_weather_agent

pytestmark = pytest.mark.real_model

WEATHER: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def sdk(real_server: LiveServer) -> openai.OpenAI:
    """A patient client: a constrained call is sent whole, once generated, and the shared
    two-core machine can take minutes for it under load."""
    return openai.OpenAI(base_url=real_server.url, api_key="x", max_retries=0, timeout=600)


def test_sdk_named_tool_non_stream(sdk: openai.OpenAI) -> None:
    r = sdk.chat.completions.create(
        model="small",
        messages=ASK,
        tools=WEATHER,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=48,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    arguments = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    assert set(arguments) == {"city"} and "paris" in arguments["city"].lower()
    assert r.usage is not None and r.usage.completion_tokens > 5


def test_sdk_required_stream(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="small",
        messages=ASK,
        tools=WEATHER,
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=48,
        stream=True,
        stream_options={"include_usage": True},
    )
    arguments, names, finish, usage = "", "", None, None
    for event in stream:
        usage = event.usage or usage
        for choice in event.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                names += delta.function.name or ""  # type: ignore[union-attr]
                arguments += delta.function.arguments or ""  # type: ignore[union-attr]
    assert finish == "tool_calls"
    assert names == "get_weather"
    assert "city" in json.loads(arguments)
    assert usage is not None and usage.completion_tokens > 5


def test_langchain_bind_tools(real_server: LiveServer) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    llm = langchain_openai.ChatOpenAI(
        model="small",
        base_url=real_server.url,
        api_key="x",
        temperature=0,
        max_tokens=48,
        timeout=600,
        max_retries=0,
    )
    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What is the weather in Paris?"
    )
    assert message.tool_calls, message
    assert message.tool_calls[0]["name"] == "get_weather"
    assert "city" in message.tool_calls[0]["args"]


def test_agents_sdk_chat_completions_model(real_server: LiveServer) -> None:
    run_weather_agent(
        real_server.url,
        lambda agents, client: agents.OpenAIChatCompletionsModel(
            model="small", openai_client=client
        ),
    )
