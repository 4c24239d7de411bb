"""The agent loop (``strata.agent`` on chat completions) on the scripted fake model: calls
executed and fed back, errors as results, the step limit, the client's own tools, every
step billed in the ledger, ``knowledge_search`` scoped to the caller's tenant, and
``GET /v1/tools``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from strata.features.tools.agent import ANSWER_NOW
from tests.conftest import LiveServer, fake, fake_settings
from tests.unit.agent_helpers import call
from tests.unit.conftest import assert_error_body, http_client
from tests.unit.knowledge_helpers import hash_settings

KEYS = ["key-a", "key-b"]
ASK = [{"role": "user", "content": "What is 17 times 23?"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = fake_settings(tmp_path_factory.mktemp("agent"), knowledge=hash_settings())
    roomy = base.models["fake"].model_copy(update={"n_ctx": 2048})
    return base.model_copy(update={"models": {**base.models, "fake": roomy}, "api_keys": KEYS})


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Engine:
    return Engine(settings)


@pytest.fixture(scope="module")
def live(engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, engine)) as server:
        yield server


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with http_client(live.root) as client:
        client.headers["Authorization"] = "Bearer key-a"
        yield client


@pytest.fixture(autouse=True)
def _fresh(engine: Engine) -> None:
    fake(engine).outputs.clear()
    fake(engine).calls.clear()


def agent(http: httpx.Client, names: list[Any], max_steps: int | None = None, **body: Any) -> Any:
    spec: dict[str, Any] = {"tools": names}
    if max_steps is not None:
        spec["max_steps"] = max_steps
    payload = {"model": "fake", "messages": ASK, "strata": {"agent": spec}, **body}
    return http.post("/v1/chat/completions", json=payload)


def test_calculator_call_is_run_and_fed_back(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", expression="17*23"), "It is 391.")
    r = agent(http, ["calculator"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "It is 391."
    assert body["choices"][0]["finish_reason"] == "stop"
    steps = body["strata"]["agent"]["steps"]
    assert body["strata"]["agent"]["stopped"] == "answer"
    assert [s["step"] for s in steps] == [1, 2]
    (done,) = steps[0]["calls"]
    assert done["name"] == "calculator" and done["result"] == 391
    assert done["seconds"] >= 0 and steps[0]["usage"]["prompt_tokens"] > 0
    assert all("cost_usd" in s and s["seconds"] >= 0 for s in steps)
    second = fake(engine).calls[1]
    tool_msgs = [m for m in second.messages or [] if m["role"] == "tool"]
    assert json.loads(tool_msgs[0]["content"]) == 391
    assert tool_msgs[0]["tool_call_id"] == done["id"]
    assistant = [m for m in second.messages or [] if m.get("tool_calls")]
    assert assistant[0]["tool_calls"][0]["function"]["name"] == "calculator"
    step_tokens = sum(s["usage"]["completion_tokens"] for s in steps)
    assert body["usage"]["completion_tokens"] == step_tokens


def test_tool_error_goes_back_to_the_model(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(
        call("calculator", expression="1/0"),
        call("calculator", expression="import os"),
        "Cannot divide by zero.",
    )
    r = agent(http, ["calculator"])
    assert r.status_code == 200, r.text
    steps = r.json()["strata"]["agent"]["steps"]
    assert steps[0]["calls"][0]["error"] == "division by zero"
    assert "error" in steps[1]["calls"][0]
    third = fake(engine).calls[2].messages or []
    errors = [json.loads(m["content"])["error"] for m in third if m["role"] == "tool"]
    assert errors[0] == "division by zero" and len(errors) == 2


def test_bad_arguments_are_a_tool_error(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", formula="2+2"), "done")
    r = agent(http, ["calculator"])
    assert r.status_code == 200
    assert "expression" in r.json()["strata"]["agent"]["steps"][0]["calls"][0]["error"]


def test_last_step_must_answer(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", expression="1+1"), "Two.")
    r = agent(http, ["calculator"], max_steps=2)
    assert r.status_code == 200
    assert fake(engine).calls[0].passthrough.get("tool_choice") is None
    final = fake(engine).calls[1]
    assert "tools" not in final.passthrough  # answer from the results
    assert final.messages is not None and final.messages[-1]["content"] == ANSWER_NOW
    assert r.json()["choices"][0]["message"]["content"] == "Two."


def test_a_repeated_call_is_answered_not_rerun(http: httpx.Client, engine: Engine) -> None:
    again = call("calculator", expression="2+2")
    fake(engine).enqueue(again, again, "Four.")
    r = agent(http, ["calculator"], max_steps=5)
    steps = r.json()["strata"]["agent"]["steps"]
    assert [len(s.get("calls", [])) for s in steps] == [1, 1, 0]
    assert steps[1]["calls"][0]["status"] == "skipped: a repeat of an earlier call"
    assert "tools" not in fake(engine).calls[2].passthrough
    assert r.json()["choices"][0]["message"]["content"] == "Four."


def test_first_step_keeps_the_clients_tool_choice(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", expression="5-1"), "Four.")
    agent(http, ["calculator"], tool_choice="required")
    assert fake(engine).calls[0].passthrough["tool_choice"] == "required"
    assert fake(engine).calls[1].passthrough["tool_choice"] == "auto"


def test_one_step_limit_reports_the_unrun_call(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", expression="1+1"))
    r = agent(http, ["calculator"], max_steps=1)
    assert r.status_code == 200
    report = r.json()["strata"]["agent"]
    assert report["stopped"] == "max_steps"
    assert report["steps"][0]["calls"][0]["status"].startswith("skipped")
    assert len(fake(engine).calls) == 1


def test_client_tool_call_is_returned(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("get_weather", city="Paris"))
    r = agent(http, ["calculator"], tools=[WEATHER])
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert r.json()["strata"]["agent"]["stopped"] == "client_tools"
    offered = {t["function"]["name"] for t in fake(engine).calls[0].passthrough["tools"]}
    assert offered == {"calculator", "get_weather"}


def test_stream_carries_the_final_answer_and_steps(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue(call("calculator", expression="2**10"), "It is 1024.")
    payload = {
        "model": "fake",
        "messages": ASK,
        "stream": True,
        "stream_options": {"include_usage": True},
        "strata": {"agent": {"tools": [{"type": "calculator"}]}},
    }
    text, tail = "", None
    with http.stream("POST", "/v1/chat/completions", json=payload) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            for choice in event["choices"]:
                text += choice["delta"].get("content") or ""
            if event.get("usage"):
                tail = event
    assert text == "It is 1024."
    assert tail is not None
    assert tail["strata"]["agent"]["steps"][0]["calls"][0]["result"] == 1024


def test_unknown_tool_is_a_400(http: httpx.Client) -> None:
    r = agent(http, ["no_such_tool"])
    assert r.status_code == 400
    error = assert_error_body(r.json())
    assert "no_such_tool" in error["message"] and "calculator" in error["message"]


def test_every_step_is_billed_in_the_ledger(http: httpx.Client, engine: Engine) -> None:
    before = http.get("/v1/usage").json()
    fake(engine).enqueue(call("calculator", expression="3*3"), call("calculator", expression="9+1"))
    fake(engine).enqueue("Ten.")
    r = agent(http, ["calculator"])
    steps = r.json()["strata"]["agent"]["steps"]
    assert len(steps) == 3
    after = http.get("/v1/usage").json()
    prompt = sum(s["usage"]["prompt_tokens"] for s in steps)
    completion = sum(s["usage"]["completion_tokens"] for s in steps)
    assert after["requests"] == before["requests"] + 1
    assert after["prompt_tokens"] - before["prompt_tokens"] == prompt
    assert after["completion_tokens"] - before["completion_tokens"] == completion
    latest = http.get("/v1/usage/requests").json()["data"][0]
    assert latest["prompt_tokens"] == prompt and latest["completion_tokens"] == completion


def test_knowledge_search_sees_only_the_callers_tenant(
    http: httpx.Client, engine: Engine, live: LiveServer
) -> None:
    docs = {"documents": [{"id": "a1", "text": "The launch code is ZEBRA-42."}]}
    assert http.post("/v1/collections", json={"name": "vault"}).status_code == 200
    assert http.post("/v1/collections/vault/documents", json=docs).status_code == 200
    ask = call("knowledge_search", collection="vault", query="launch code")
    fake(engine).enqueue(ask, "ZEBRA-42")
    mine = agent(http, ["knowledge_search"]).json()["strata"]["agent"]["steps"][0]["calls"][0]
    assert "ZEBRA-42" in json.dumps(mine["result"])
    with http_client(live.root) as other:
        other.headers["Authorization"] = "Bearer key-b"
        fake(engine).enqueue(ask, "I do not know.")
        theirs = agent(other, ["knowledge_search"]).json()["strata"]["agent"]["steps"][0]
    assert "ZEBRA" not in json.dumps(theirs)
    assert "no collection" in theirs["calls"][0]["error"]


def test_tools_listing(http: httpx.Client) -> None:
    r = http.get("/v1/tools")
    assert r.status_code == 200
    listed = {t["name"]: t for t in r.json()["data"]}
    assert listed["calculator"]["source"] == "builtin"
    assert listed["knowledge_search"]["parameters"]["required"] == ["collection", "query"]
    assert "python" not in listed  # the sandbox is off unless settings enable it


def test_python_tool_only_with_the_sandbox(tmp_path: Path) -> None:
    from strata.core.kernel import Kernel
    from strata.features.tools.feature import Tools

    kernel = Kernel(fake_settings(tmp_path, tools={"sandbox": True}))
    listing = [t["name"] for t in kernel.feature("tools", Tools)._registry.listing()]
    assert "python" in listing
