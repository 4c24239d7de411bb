"""Templates: file validation with clear errors, input validation (422 naming the field),
all built-ins load and render, runs through the pipeline (REST, SDK, custom templates)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.errors import ConfigError, InvalidInput
from strata.core.settings import DialogueSettings, ModelSpec, Settings
from strata.edges.http.app import create_app
from strata.features.apps.layers import format_bullets
from strata.features.apps.templates import builtin_templates, folder_templates, validate_inputs
from tests.conftest import LiveServer, fake
from tests.unit.conftest import assert_error_body, http_client, sdk

REQUIRED_BUILTINS = {
    "product-description",
    "marketplace-bullets",
    "social-ad",
    "search-ad-headlines",
    "blog-outline",
    "blog-intro",
    "cold-email",
    "email-subject-lines",
    "aida",
    "pas",
    "before-after-bridge",
    "support-reply",
    "meeting-summary",
    "rewrite-tone",
}


def example_inputs(template: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in template.inputs.items():
        if spec.examples:
            values[name] = spec.examples[0]
        elif spec.enum:
            values[name] = spec.enum[0]
        elif spec.type == "list":
            values[name] = ["one", "two"]
        elif spec.type in {"integer", "number"}:
            values[name] = 3
        elif spec.required:
            values[name] = f"some {name}"
    return values


def test_all_builtins_load_and_render() -> None:
    templates = builtin_templates()
    assert set(templates) >= REQUIRED_BUILTINS
    for template in templates.values():
        values = validate_inputs(template, example_inputs(template))
        text = template.render(values)
        assert "{" not in text.replace("{{", ""), (template.name, text)
        for name, value in values.items():
            if isinstance(value, str) and value and f"{{{name}}}" in template.prompt:
                assert value in text, (template.name, name)


def test_optional_line_dropped_when_empty() -> None:
    template = builtin_templates()["product-description"]
    text = template.render(validate_inputs(template, {"product": "Mug", "features": "big; red"}))
    assert "Audience" not in text
    assert "Key features: big; red" in text
    assert "about 80 words" in text  # the declared default


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('title = "x"\nprompt = "hi {who}"\n', "prompt uses {who}"),
        ('title = "x"\nprompt = "hi"\ncolour = "red"\n', "colour"),
        ('prompt = "hi"\n', "title"),
        ('title = "x"\nprompt = "hi"\noutput = "json"\n', "output_schema"),
        ('title = "x"\nprompt = "hi {n}"\n[inputs.n]\ntype = "date"\n', "inputs.n.type"),
        ('title = "x"\nprompt = "hi"\noutput = "xml"\n', "output"),
        ("title = \n", "not valid TOML"),
    ],
)
def test_bad_template_files_name_file_and_field(tmp_path: Path, body: str, fragment: str) -> None:
    (tmp_path / "broken.toml").write_text(body)
    with pytest.raises(ConfigError) as info:
        folder_templates(tmp_path)
    assert "broken.toml" in info.value.message
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("inputs", "param", "fragment"),
    [
        ({}, "inputs.text", "required"),
        ({"text": "hi", "tone": "angry"}, "inputs.tone", "must be one of"),
        ({"text": "x" * 5001, "tone": "formal"}, "inputs.text", "the most is 5000"),
        ({"text": 5, "tone": "formal"}, "inputs.text", "must be a string"),
        ({"text": "hi", "tone": "formal", "mood": "x"}, "inputs.mood", "no input 'mood'"),
    ],
)
def test_bad_inputs(inputs: dict[str, Any], param: str, fragment: str) -> None:
    template = builtin_templates()["rewrite-tone"]
    with pytest.raises(InvalidInput) as info:
        validate_inputs(template, inputs)
    assert info.value.param == param
    assert fragment in info.value.message
    assert info.value.status_code == 422


def test_typed_inputs_parse_strings() -> None:
    template = builtin_templates()["search-ad-headlines"]
    values = validate_inputs(template, {"product": "p", "keyword": "k", "count": "4"})
    assert values["count"] == 4
    with pytest.raises(InvalidInput, match="must be an integer"):
        validate_inputs(template, {"product": "p", "keyword": "k", "count": "four"})


def test_bullets_are_normalised() -> None:
    assert format_bullets("1. One\n* Two\n\n• Three") == "- One\n- Two\n- Three"


# ---- through the server ----


def app_settings(tmp_path: Path, **extra: Any) -> Settings:
    models = {"chat": ModelSpec(backend="fake", n_ctx=4096)}
    return Settings(
        home=tmp_path / "home",
        bundled_models=False,
        models=models,
        default_model="chat",
        dialogue=DialogueSettings(summary=False, embedder="hash"),
        **extra,
    )


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Engine]]:
    settings = app_settings(tmp_path, api_keys=["key-a", "key-b"])
    engine = Engine(settings)
    with LiveServer(create_app(settings, engine)) as server:
        yield server, engine


def client(server: LiveServer, key: str) -> httpx.Client:
    c = http_client(server.root)
    c.headers["Authorization"] = f"Bearer {key}"
    return c


def test_run_template_rest(app_server: tuple[LiveServer, Engine]) -> None:
    server, engine = app_server
    fake(engine, "chat").enqueue("1. Fast\n2. Light")
    with client(server, "key-a") as a:
        listed = {t["name"] for t in a.get("/v1/templates").json()["data"]}
        assert listed >= REQUIRED_BUILTINS
        full = a.get("/v1/templates/marketplace-bullets").json()
        assert full["inputs"]["product"]["max_length"] == 200
        run = a.post(
            "/v1/templates/marketplace-bullets/run",
            json={"inputs": {"product": "Shoe", "features": ["light", "fast"]}},
        )
        assert run.status_code == 200, run.text
        assert run.json()["output"] == "- Fast\n- Light"
        assert run.json()["model"] == "chat"
        prompt = fake(engine, "chat").calls[-1].messages or []
        assert prompt[0]["role"] == "system" and "'- '" in prompt[0]["content"]
        assert prompt[1]["content"].startswith("Write 5 feature bullets")  # few-shot example
        assert "Product: Shoe" in prompt[-1]["content"]

        bad = a.post("/v1/templates/rewrite-tone/run", json={"inputs": {"text": "hi"}})
        assert bad.status_code == 422
        error = assert_error_body(bad.json())
        assert error["param"] == "inputs.tone" and "required" in error["message"]
        missing = a.post("/v1/templates/nope/run", json={"inputs": {}})
        assert missing.status_code == 404
        assert_error_body(missing.json())


def test_json_template_and_sdk(app_server: tuple[LiveServer, Engine]) -> None:
    server, engine = app_server
    summary = {"summary": "s", "decisions": ["ship"], "action_items": []}
    fake(engine, "chat").enqueue(json.dumps(summary))
    with client(server, "key-a") as a:
        run = a.post("/v1/templates/meeting-summary/run", json={"inputs": {"notes": "we ship"}})
        assert run.json()["data"] == summary
    assert fake(engine, "chat").calls[-1].params.response_format.type == "json_schema"
    # the same template through the openai SDK (strata options in extra_body)
    fake(engine, "chat").enqueue("Dear customer, kindly pay.")
    with sdk(server.url, "key-a") as oai:
        reply = oai.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "keep it short"}],
            extra_body={
                "strata": {"template": "rewrite-tone", "inputs": {"text": "pay!", "tone": "formal"}}
            },
        )
    assert reply.choices[0].message.content == "Dear customer, kindly pay."
    asked = (fake(engine, "chat").calls[-1].messages or [])[-1]["content"]
    assert "formal tone" in asked and "Additional instructions: keep it short" in asked


def test_custom_templates_are_owned(app_server: tuple[LiveServer, Engine]) -> None:
    server, _ = app_server
    template = {
        "name": "tagline",
        "title": "Tagline",
        "prompt": "A tagline for {brand}",
        "inputs": {"brand": {"max_length": 30}},
    }
    with client(server, "key-a") as a, client(server, "key-b") as b:
        assert a.post("/v1/templates", json=template).status_code == 200
        assert a.post("/v1/templates/tagline/run", json={"inputs": {"brand": "Acme"}}).is_success
        assert b.get("/v1/templates/tagline").status_code == 404
        assert (
            b.post("/v1/templates/tagline/run", json={"inputs": {"brand": "x"}}).status_code == 404
        )
        assert "tagline" not in {t["name"] for t in b.get("/v1/templates").json()["data"]}
        assert b.delete("/v1/templates/tagline").status_code == 404
        broken = a.post("/v1/templates", json={**template, "prompt": "{nope}"})
        assert broken.status_code == 422
        assert "nope" in assert_error_body(broken.json())["message"]
        assert a.delete("/v1/templates/tagline").status_code == 200


def test_user_template_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "haiku.toml").write_text(
        'title = "Haiku"\nprompt = "A haiku about {topic}"\n[inputs.topic]\nmax_length = 40\n'
    )
    settings = app_settings(tmp_path)
    settings.dialogue.templates_dir = folder
    engine = Engine(settings)
    with LiveServer(create_app(settings, engine)) as server, http_client(server.root) as h:
        run = h.post("/v1/templates/haiku/run", json={"inputs": {"topic": "rain"}})
        assert run.status_code == 200, run.text
    assert (fake(engine, "chat").calls[-1].messages or [])[-1]["content"] == "A haiku about rain"
