"""The ``strata`` command line, in-process (click's CliRunner) on fake models from a TOML
config, and against a live server with ``--url``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from strata import __version__
from strata.edges.cli.main import main
from tests.conftest import LiveServer

CONFIG = """
bundled_models = false
default_model = "f"

[models.f]
backend = "fake"
description = "a scripted model"
options = { default_output = "forty two" }

[models.base]
backend = "fake"
capabilities = ["completion", "streaming"]
options = { default_output = " and so on" }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "strata.toml"
    path.write_text(CONFIG)
    return path


def invoke(*args: str, input: str | None = None, **env: str) -> Result:
    runner = CliRunner()
    return runner.invoke(main, list(args), input=input, env=env or None, catch_exceptions=False)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def commands() -> list[list[str]]:
    found: list[list[str]] = [[]]

    def walk(group: click.Group, prefix: list[str]) -> None:
        for name, cmd in group.commands.items():
            found.append([*prefix, name])
            if isinstance(cmd, click.Group):
                walk(cmd, [*prefix, name])

    walk(main, [])
    return found


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "strata")
def test_help(path: list[str]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    assert "Traceback" not in result.output


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in commands()}
    assert {"serve", "ask", "complete", "chat", "models", "models assemble"} <= names


def test_settings_flags_come_from_settings() -> None:
    text = invoke("serve", "--help").stdout
    for flag in ("--config", "--api-key", "--host", "--port", "--home", "--max-queue"):
        assert flag in text
    assert "Port to serve on" in text  # the help is the field's description


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_ask(config: Path) -> None:
    result = invoke("ask", "what is six times seven?", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == "forty two\n"


def test_ask_with_model_and_system(config: Path) -> None:
    result = invoke("ask", "hi", "-m", "f", "--system", "be brief", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == "forty two\n"


def test_ask_json(config: Path) -> None:
    result = invoke("ask", "hi there", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "f"
    assert data["content"] == "forty two"
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 2}
    assert set(data["timings"]) >= {"queued_s", "time_to_first_token_s", "total_s"}


def test_ask_config_from_env(config: Path) -> None:
    result = invoke("ask", "hi", STRATA_CONFIG=str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == "forty two\n"


def test_complete(config: Path) -> None:
    result = invoke("complete", "Once upon a time", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == " and so on\n"
    data = json.loads(invoke("complete", "x", "--json", "--config", str(config)).stdout)
    assert (data["model"], data["content"]) == ("base", " and so on")


def test_max_tokens_flag(config: Path) -> None:
    result = invoke("complete", "x", "--max-tokens", "2", "--json", "--config", str(config))
    assert json.loads(result.stdout)["content"] == " and so"


def test_unknown_model_is_one_line(config: Path) -> None:
    result = invoke("ask", "hi", "-m", "nope", "--config", str(config))
    assert_one_line_error(result, "'nope'", "does not exist")
    assert result.stdout == ""


def test_chat_only_command_on_base_model(config: Path) -> None:
    result = invoke("ask", "hi", "-m", "base", "--config", str(config))
    assert_one_line_error(result, "does not support /v1/chat/completions")


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(
        invoke("ask", "hi", "--config", str(tmp_path / "missing.toml")), "config file not found"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [")
    assert_one_line_error(invoke("models", "--config", str(bad)), "not valid TOML")
    bad.write_text("colour = 'red'")
    assert_one_line_error(invoke("ask", "hi", "--config", str(bad)), "invalid setting colour")


def test_bad_flag_value_is_a_usage_error() -> None:
    result = invoke("serve", "--port", "eighty")
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.stderr


def test_models_lists_models(config: Path) -> None:
    result = invoke("models", "--config", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("model", "backend", "f", "base", "fake", "a scripted model"):
        assert text in out


def test_models_lists_bundled_defaults(tmp_path: Path) -> None:
    result = invoke("models", "--home", str(tmp_path / "home"))
    assert result.exit_code == 0, result.output
    for name in ("small", "big", "base", "llama"):
        assert name in result.stdout
    assert "no" in result.stdout  # nothing assembled in an empty home


def test_models_assemble_unknown(config: Path) -> None:
    result = invoke("models", "--config", str(config), "assemble", "nope")
    assert_one_line_error(result, "no bundled model 'nope'")


def test_models_assemble_nothing_configured(config: Path) -> None:
    result = invoke("models", "--config", str(config), "assemble")
    assert result.exit_code == 0, result.output


def test_models_assemble(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from strata.core import catalog
    from tests.unit.test_catalog import WHOLE, make_model

    model = make_model(tmp_path, monkeypatch)
    monkeypatch.setitem(catalog.CATALOG, model.name, model)
    home = tmp_path / "home"
    result = invoke("models", "--home", str(home), "assemble", "tiny")
    assert result.exit_code == 0, result.output
    target = home / "models" / "tiny.gguf"
    assert "tiny: " in result.stdout
    assert target.read_bytes() == WHOLE
    again = invoke("models", "--home", str(home), "assemble", "tiny")
    assert "tiny: ready" in again.stdout


def test_chat_session(config: Path) -> None:
    result = invoke(
        "chat", "--config", str(config), input="hello\n\n/reset\nagain\n/exit\nignored\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("forty two") == 2
    assert "strata chat with f" in result.stdout


def test_chat_error_keeps_going(config: Path) -> None:
    result = invoke("chat", "-m", "nope", "--config", str(config), input="hi\n")
    assert result.exit_code == 0  # a failed turn does not end the session (EOF does)
    assert "error: " in result.stderr


def test_serve_builds_the_app(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        seen["app"], seen["kwargs"] = app, kwargs

    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = invoke(
        "serve", "--config", str(config), "--port", "8765", "--load", "startup", "--api-key", "k"
    )
    assert result.exit_code == 0, result.output
    assert seen["kwargs"] == {"host": "127.0.0.1", "port": 8765, "log_level": "info"}
    settings = seen["app"].state.settings
    assert settings.api_keys == ["k"]
    assert all(s.load == "startup" for s in settings.all_models().values())
    assert "serving f, base on http://127.0.0.1:8765/v1" in result.stderr


# ---- against a running server (--url) ----


def test_ask_url(live: LiveServer) -> None:
    args = ("ask", "hi", "--url", live.url, "-m", "fake", "--max-tokens", "10")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok\n"
    data = json.loads(invoke(*args, "--json").stdout)
    assert data["content"] == "ok"
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 1}


def test_complete_url(live: LiveServer) -> None:
    result = invoke("complete", "x", "--url", live.url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok\n"


def test_url_errors_are_one_line(live: LiveServer) -> None:
    assert_one_line_error(invoke("ask", "hi", "--url", live.url, "-m", "nope"), "404", "nope")
    assert_one_line_error(invoke("ask", "hi", "--url", "http://127.0.0.1:9/v1"), "cannot reach")


def test_models_url(live: LiveServer) -> None:
    result = invoke("models", "--url", live.url)
    assert result.exit_code == 0, result.output
    for name in ("fake", "slow", "base"):
        assert name in result.stdout
