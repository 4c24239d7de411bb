"""The tool contract's other doors: a user's Python callables through the ``strata.tools``
entry-point group, and an MCP server over stdio (a tiny fixture server, ``mcp_fixture.py``)
whose tools are listed at ``GET /v1/tools`` and called by the agent loop."""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from strata.features.tools.builtin_tools import CalculatorTool
from strata.features.tools.registry import (
    ENTRY_POINT_GROUP,
    FunctionTool,
    ToolContext,
    ToolError,
    ToolRegistry,
)
from tests.conftest import LiveServer, fake, fake_settings
from tests.unit.agent_helpers import call, shout, word_count
from tests.unit.conftest import http_client

FIXTURE = Path(__file__).with_name("mcp_fixture.py")


def entry(name: str, target: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=target, group=ENTRY_POINT_GROUP)


def test_function_tool_schema_and_call() -> None:
    tool = FunctionTool(word_count)
    assert tool.name == "word_count"
    assert tool.description.startswith("Count the words")
    assert tool.parameters["required"] == ["text"]
    assert tool.parameters["properties"]["unique"] == {"default": False, "type": "boolean"}
    context = ToolContext()
    assert asyncio.run(tool.call({"text": "a b a"}, context)) == 3
    assert asyncio.run(tool.call({"text": "a b a", "unique": True}, context)) == 2
    with pytest.raises(ToolError, match="text"):
        asyncio.run(tool.call({"unique": True}, context))
    assert asyncio.run(FunctionTool(shout).call({"text": "hi"}, context)) == "HI"


def test_entry_points_register_and_a_broken_one_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ToolRegistry()
    registry.add(CalculatorTool(), "builtin")
    registry.load_entry_points(
        [
            entry("word_count", "tests.unit.agent_helpers:word_count"),
            entry("broken", "tests.unit.no_such_module:thing"),
            entry("calculator", "tests.unit.agent_helpers:shout"),  # cannot shadow a built-in
        ]
    )
    listed = {t["name"]: t["source"] for t in registry.listing()}
    assert listed == {"calculator": "builtin", "word_count": "entry-point"}
    assert "broken" in caplog.text


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    server = {"command": sys.executable, "args": [str(FIXTURE)]}
    base = fake_settings(tmp_path_factory.mktemp("mcp"), tools={"mcp": {"fx": server}})
    roomy = base.models["fake"].model_copy(update={"n_ctx": 2048})
    return base.model_copy(update={"models": {**base.models, "fake": roomy}})


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Engine:
    return Engine(settings)


@pytest.fixture(scope="module")
def http(engine: Engine, settings: Settings) -> Iterator[httpx.Client]:
    pytest.importorskip("mcp")
    with LiveServer(create_app(settings, engine)) as live, http_client(live.root) as client:
        client.timeout = httpx.Timeout(60)
        yield client


def test_mcp_tools_are_listed_and_called(http: httpx.Client, engine: Engine) -> None:
    listed = {t["name"]: t for t in http.get("/v1/tools").json()["data"]}
    assert listed["add"]["source"] == "mcp:fx"
    assert listed["add"]["parameters"]["required"] == ["a", "b"]
    assert listed["fail"]["description"].startswith("Always fails")
    fake(engine).enqueue(call("add", a=2, b=40), call("fail", reason="on purpose"), "42")
    body = {
        "model": "fake",
        "messages": [{"role": "user", "content": "2 + 40?"}],
        "strata": {"agent": {"tools": ["add", "fail"]}},
    }
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    steps = r.json()["strata"]["agent"]["steps"]
    assert steps[0]["calls"][0]["result"] == {"result": 42}
    assert "on purpose" in steps[1]["calls"][0]["error"]
    assert r.json()["choices"][0]["message"]["content"] == "42"


def test_cli_lists_the_tools(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from strata.edges.cli.main import main

    config = tmp_path / "strata.toml"
    config.write_text(
        f'home = "{tmp_path / "home"}"\nbundled_models = false\n'
        '[models.fake]\nbackend = "fake"\n[tools]\nsandbox = true\n'
    )
    result = CliRunner().invoke(main, ["tools", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert rows == {"calculator": "builtin", "knowledge_search": "builtin", "python": "builtin"}
