"""Settings: defaults < TOML file < environment < explicit overrides, and every way a
configuration can be wrong surfaces as one ``ConfigError`` with a message naming the spot."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.core.engine import Engine
from strata.core.errors import ConfigError
from strata.core.models.fake import FakeBackend
from strata.core.models.remote import OpenAIBackend
from strata.core.settings import ModelSpec, Settings, default_home, default_models, load_settings

REMOTE = """
[models.gpt]
backend = "openai"
url = "http://127.0.0.1:9/v1"
remote_name = "gpt-4o-mini"
api_key_env = "MY_KEY"
timeout_s = 5
"""


def write(tmp_path: Path, text: str, name: str = "strata.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_serve_small_big_base(tmp_path: Path) -> None:
    s = load_settings()
    assert list(s.all_models()) == ["small", "big", "base", "minilm"]
    assert s.models == {}
    assert (s.host, s.port, s.max_queue, s.api_keys) == ("127.0.0.1", 8000, 16, [])
    assert s.default_model == "small"
    assert s.home == tmp_path / "xdg" / "strata" == default_home()
    models = s.all_models()
    assert models["small"].bundled == "qwen2.5-coder-0.5b-instruct"
    assert models["big"].bundled == "qwen2.5-coder-1.5b-instruct"
    assert models["base"].bundled == "gemma-3-270m"
    assert models["base"].capabilities is not None
    assert "chat" not in models["base"].capabilities
    assert all(m.backend == "llama" for n, m in models.items() if n != "minilm")
    assert models["minilm"].backend == "sentence_transformers"


def test_default_home_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_home() == tmp_path / ".local" / "share" / "strata"


def test_file_adds_a_remote_model_and_keeps_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "port = 8123\n" + REMOTE))
    assert s.port == 8123
    models = s.all_models()
    assert list(models) == ["small", "big", "base", "minilm", "gpt"]
    gpt = models["gpt"]
    assert (gpt.backend, gpt.url, gpt.remote_name, gpt.timeout_s) == (
        "openai",
        "http://127.0.0.1:9/v1",
        "gpt-4o-mini",
        5.0,
    )


def test_file_can_replace_a_default(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[models.small]\nbackend = "fake"\n'))
    assert s.all_models()["small"].backend == "fake"
    assert list(s.all_models()) == ["small", "big", "base", "minilm"]


def test_knowledge_settings_nest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(write(tmp_path, '[knowledge]\nembedder = "hash"\ntop_k = 6\n'))
    assert (s.knowledge.embedder, s.knowledge.top_k) == ("hash", 6)
    monkeypatch.setenv("STRATA_KNOWLEDGE__MIN_EVIDENCE", "0.5")
    assert load_settings().knowledge.min_evidence == 0.5
    with pytest.raises(ConfigError, match=r"knowledge\.fusion"):
        load_settings(write(tmp_path, '[knowledge]\nfusion = "max"\n'))


def test_bundled_models_false(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "bundled_models = false\n" + REMOTE))
    assert list(s.all_models()) == ["gpt"]


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_CONFIG", str(write(tmp_path, "port = 8124\n")))
    assert load_settings().port == 8124


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "port = 8123\nmax_queue = 3\n")
    monkeypatch.setenv("STRATA_PORT", "9001")
    s = load_settings(path)
    assert s.port == 9001
    assert s.max_queue == 3  # untouched by the environment


def test_explicit_overrides_beat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "port = 8123\n")
    monkeypatch.setenv("STRATA_PORT", "9001")
    assert load_settings(path, port=9002).port == 9002
    # None means "not given" (a CLI flag left out) and does not override.
    assert load_settings(path, port=None).port == 9001


def test_env_lists_and_nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_API_KEYS", '["a", "b"]')
    monkeypatch.setenv("STRATA_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("STRATA_MODELS__extra__backend", "fake")
    s = load_settings()
    assert s.api_keys == ["a", "b"]
    assert s.home == tmp_path / "h"
    assert s.models["extra"].backend == "fake"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = [", "is not valid TOML"),
        ("port = 1\nport = 2\n", "is not valid TOML"),
        ("bogus = 1\n", "invalid setting bogus: Extra inputs are not permitted"),
        ('port = "abc"\n', "invalid setting port:"),
        ("port = 70000\n", "invalid setting port: Input should be less than or equal to 65535"),
        ("max_queue = -1\n", "invalid setting max_queue:"),
        ('api_keys = "k"\n', "invalid setting api_keys:"),
        ('[models.x]\nbackend = "fake"\nwhat = 1\n', "invalid setting models.x.what"),
        ('[models.x]\nbackend = "fake"\nn_ctx = 8\n', "invalid setting models.x.n_ctx"),
        ('[models.x]\nbackend = "fake"\nload = "eager"\n', "invalid setting models.x.load"),
        (
            '[models.x]\npath = "/a.gguf"\nbundled = "b"\n',
            "invalid setting models.x: a llama model needs exactly one of bundled, path or hf_repo",
        ),
        ('[models.x]\nbackend = "openai"\n', "invalid setting models.x: an openai model needs url"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert expected in info.value.message
    assert "Value error," not in info.value.message
    assert info.value.code == "config_error"


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00port")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path)  # a directory is not a file


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("STRATA_PORT", "eighty", "invalid setting port"),
        ("STRATA_MAX_QUEUE", "-5", "invalid setting max_queue"),
        ("STRATA_API_KEYS", "not-json", "api_keys"),
        ("STRATA_BUNDLED_MODELS", "perhaps", "invalid setting bundled_models"),
    ],
)
def test_bad_env(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in info.value.message


def test_bad_override() -> None:
    with pytest.raises(ConfigError, match="invalid setting port"):
        load_settings(port=-1)


def test_model_spec_sources() -> None:
    assert ModelSpec(bundled="x").backend == "llama"
    assert ModelSpec(path=Path("/m.gguf")).path == Path("/m.gguf")
    assert ModelSpec(hf_repo="org/repo").hf_file == "*q4_k_m.gguf"
    assert ModelSpec(backend="openai", url="http://h/v1").url == "http://h/v1"
    assert ModelSpec(backend="fake").bundled is None  # other backends need no source
    for bad in (
        {},
        {"bundled": "x", "path": "/m.gguf"},
        {"bundled": "x", "hf_repo": "o/r"},
        {"path": "/m.gguf", "hf_repo": "o/r"},
    ):
        with pytest.raises(ValueError, match="exactly one of bundled, path or hf_repo"):
            ModelSpec.model_validate(bad)
    with pytest.raises(ValueError, match="needs url"):
        ModelSpec(backend="openai")
    with pytest.raises(ValueError, match="Extra inputs"):
        ModelSpec.model_validate({"backend": "fake", "colour": "red"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_ctx", 63),
        ("context_window", 0),
        ("timeout_s", 0),
        ("connect_retries", -1),
        ("max_concurrency", 0),
        ("max_queue", -1),
        ("price_input_per_mtok", -1),
        ("idle_unload_s", 0),
        ("load", "sometimes"),
    ],
)
def test_model_spec_ranges(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ModelSpec.model_validate({"backend": "fake", field: value})


def test_default_models_are_valid_specs() -> None:
    for spec in default_models().values():
        assert ModelSpec.model_validate(spec.model_dump()) == spec


def test_engine_builds_backends_from_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "bundled_models = false\nmax_queue = 5\n" + REMOTE)
    text = path.read_text() + '[models.f]\nbackend = "fake"\nmax_queue = 1\nmax_concurrency = 3\n'
    s = load_settings(write(tmp_path, text, "two.toml"))
    engine = Engine(s)
    assert isinstance(engine.get("gpt").backend, OpenAIBackend)
    assert isinstance(engine.get("f").backend, FakeBackend)
    assert engine.get("gpt").scheduler.max_queue == 5  # the global default
    assert engine.get("gpt").scheduler.concurrency == 64  # remote default
    assert engine.get("f").scheduler.max_queue == 1
    assert engine.get("f").scheduler.concurrency == 3
    assert engine.get("f").backend.home == s.home


def test_unknown_backend_kind() -> None:
    s = Settings(bundled_models=False, models={"x": ModelSpec(backend="nope")})
    with pytest.raises(ConfigError, match=r"unknown backend 'nope' \(known: .*fake.*openai"):
        Engine(s)


def test_unknown_capability() -> None:
    s = Settings(bundled_models=False, models={"x": ModelSpec(backend="fake", capabilities=["x"])})
    with pytest.raises(ConfigError, match="model 'x'"):
        Engine(s)


def test_capabilities_narrow_the_backend() -> None:
    spec = ModelSpec(backend="fake", capabilities=["completion", "streaming"])
    engine = Engine(Settings(bundled_models=False, models={"b": spec}))
    assert {c.value for c in engine.get("b").backend.capabilities} == {"completion", "streaming"}
