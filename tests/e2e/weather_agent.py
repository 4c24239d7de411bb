"""The OpenAI Agents SDK's weather agent, run against a strata server: one tool it must call
(``tool_choice="required"``), then stop on its result. Shared by the chat-completions and the
Responses-API tests, which differ only in how the agent reaches the model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest


def run_weather_agent(url: str, model: Callable[[Any, openai.AsyncOpenAI], Any]) -> None:
    """``model(agents, client)``: the Agent's model (a name, or a model object on the client)."""
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        asked.append(city)
        return f"It is sunny in {city}."

    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=600)
    agent = agents.Agent(
        name="weather",
        instructions="Answer with the get_weather tool, then in one short sentence.",
        model=model(agents, client),
        model_settings=agents.ModelSettings(temperature=0, max_tokens=48, tool_choice="required"),
        tools=[get_weather],
        tool_use_behavior="stop_on_first_tool",
    )

    async def run() -> Any:
        try:
            return await agents.Runner.run(agent, "What is the weather in Paris?", max_turns=2)
        finally:
            await client.close()  # its connections belong to this loop: close them in it

    result = asyncio.run(run())
    assert asked and "paris" in asked[0].lower()
    assert "sunny" in str(result.final_output).lower()
