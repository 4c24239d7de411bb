"""The agent loop and ``/v1/responses`` on the real bundled 0.5B model, through the clients
people use: the ``openai`` SDK's ``responses.create`` (stream and not), the OpenAI Agents
SDK's default Responses model, and ``strata.agent`` with the built-in calculator. Short
answers (max tokens) keep them quick on two cores."""

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


@pytest.fixture
def sdk(real_server: LiveServer) -> openai.OpenAI:
    """A patient client: the shared two-core machine can take minutes under load."""
    return openai.OpenAI(base_url=real_server.url, api_key="x", max_retries=0, timeout=600)


def test_sdk_responses_function_call(sdk: openai.OpenAI) -> None:
    r = sdk.responses.create(
        model="small",
        input="What is the weather in Paris?",
        tools=WEATHER,
        tool_choice="required",
        temperature=0,
        max_output_tokens=48,
    )
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) >= 1 and calls[0].name == "get_weather"
    assert "paris" in json.loads(calls[0].arguments)["city"].lower()
    assert r.usage is not None and r.usage.output_tokens > 5


def test_sdk_responses_stream_function_call(sdk: openai.OpenAI) -> None:
    arguments, kinds = "", []
    with sdk.responses.stream(
        model="small",
        input="What is the weather in Paris?",
        tools=WEATHER,
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
        max_output_tokens=48,
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                arguments += event.delta
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "city" in json.loads(arguments)
    assert final.output[-1].type == "function_call"


def test_agents_sdk_default_responses_model(real_server: LiveServer) -> None:
    def responses_model(agents: Any, client: openai.AsyncOpenAI) -> str:
        agents.set_default_openai_client(client, use_for_tracing=False)
        agents.set_default_openai_api("responses")
        return "small"

    run_weather_agent(real_server.url, responses_model)


@pytest.mark.timeout(900)  # two model calls; minutes each when the two cores are shared
def test_agent_loop_answers_with_the_calculator(sdk: openai.OpenAI) -> None:
    r = sdk.chat.completions.create(
        model="small",
        messages=[
            {"role": "system", "content": "Use the calculator tool for arithmetic."},
            {"role": "user", "content": "What is 1234 * 5678?"},
        ],
        temperature=0,
        max_tokens=32,
        extra_body={"strata": {"agent": {"tools": ["calculator"], "max_steps": 2}}},
    )
    report: Any = (r.model_extra or {})["strata"]["agent"]
    first = report["steps"][0]["calls"][0]
    assert first["name"] == "calculator" and first["result"] == 7006652
    answer = (r.choices[0].message.content or "").replace(",", "")
    assert "7006652" in answer
    assert len(report["steps"]) == 2 and report["stopped"] == "answer"
