"""The CLI for sessions, templates, voices and feedback, in-process on fake models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.core.engine import Engine
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer
from tests.unit.test_cli import assert_one_line_error, invoke

CONFIG = """
bundled_models = false
default_model = "f"

[models.f]
backend = "fake"
n_ctx = 2048
options = { default_output = "forty two" }

[dialogue]
summary = false
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "strata.toml"
    path.write_text(CONFIG)
    return str(path)


def test_chat_session_resumes(config: str) -> None:
    first = invoke("chat", "--config", config, "--session", "notes", input="my code is 81\n")
    assert first.exit_code == 0, first.output
    assert "0 earlier turns" in first.output and "forty two" in first.output
    again = invoke("chat", "--config", config, "--session", "notes", input="and again\n/exit\n")
    assert "2 earlier turns" in again.output
    listed = json.loads(invoke("sessions", "list", "--json", "--config", config).stdout)
    assert [(s["id"], s["turn_count"]) for s in listed["data"]] == [("notes", 4)]
    shown = invoke("sessions", "show", "notes", "--config", config)
    assert "my code is 81" in shown.stdout and "user" in shown.stdout
    assert invoke("sessions", "delete", "notes", "--config", config).exit_code == 0
    assert_one_line_error(invoke("sessions", "show", "notes", "--config", config), "notes")


def test_template_commands(config: str) -> None:
    listed = invoke("template", "list", "--config", config)
    assert "product-description" in listed.stdout and "rewrite-tone" in listed.stdout
    shown = invoke("template", "show", "rewrite-tone", "--config", config)
    assert "--tone" in shown.stdout and "one of formal" in shown.stdout
    run = invoke(
        "template",
        "run",
        "rewrite-tone",
        "--text",
        "pay now",
        "--tone=formal",
        "--json",
        "--config",
        config,
    )
    assert run.exit_code == 0, run.output
    result = json.loads(run.stdout)
    assert result["output"] == "forty two" and result["template"] == "rewrite-tone"
    bad = invoke("template", "run", "rewrite-tone", "--text", "x", "--config", config)
    assert_one_line_error(bad, "input 'tone' is required")
    wrong = invoke(
        "template", "run", "rewrite-tone", "--tone", "angry", "--text", "x", "--config", config
    )
    assert_one_line_error(wrong, "must be one of")
    # feedback by the response id, and the next run has the edit as an example
    edit = invoke("feedback", result["id"], "--edit", "Kindly pay.", "--config", config)
    assert "accepted" in edit.stdout
    again = invoke(
        "template",
        "run",
        "rewrite-tone",
        "--text",
        "pay now",
        "--tone",
        "formal",
        "--json",
        "--config",
        config,
    )
    assert json.loads(again.stdout)["strata"]["feedback_examples"] == 1


def test_voice_learn_and_show(config: str, tmp_path: Path) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_text("We make tea. It is good. You will like it.")
    learned = invoke("voice", "learn", str(sample), "--id", "tea", "--yes", "--config", config)
    assert learned.exit_code == 0, learned.output
    shown = json.loads(invoke("voice", "show", "tea", "--config", config).stdout)
    assert shown["reading_level"].startswith("grade ")
    assert shown["examples"] == ["We make tea. It is good. You will like it."]
    assert "tea" in invoke("voice", "list", "--config", config).stdout
    assert invoke("voice", "delete", "tea", "--config", config).exit_code == 0


def test_cli_against_a_server_with_keys(tmp_path: Path) -> None:
    models = {"f": ModelSpec(backend="fake")}
    settings = Settings(
        home=tmp_path / "srv",
        bundled_models=False,
        models=models,
        default_model="f",
        api_keys=["k1", "k2"],
    )
    with LiveServer(create_app(settings, Engine(settings))) as server:
        first = invoke("chat", "--url", server.url, "--key", "k1", "--session", "s", input="hi\n")
        assert first.exit_code == 0, first.output
        mine = invoke("sessions", "list", "--json", "--url", server.url, "--key", "k1")
        assert [s["id"] for s in json.loads(mine.stdout)["data"]] == ["s"]
        theirs = invoke("sessions", "list", "--json", "--url", server.url, "--key", "k2")
        assert json.loads(theirs.stdout)["data"] == []
        denied = invoke("sessions", "show", "s", "--url", server.url, "--key", "k2")
        assert_one_line_error(denied, "No session 's'")
