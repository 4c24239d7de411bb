"""One typed settings object: defaults < TOML file < environment (``STRATA_*``) < CLI flags.

The CLI derives its flags from the fields here (``strata.edges.cli.main``), so a setting is defined
once. ``models`` in the file are *added* to the bundled offline defaults (``small``, ``big``,
``base``); set ``bundled_models = false`` to serve only the models the file names.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from strata.core.deployment import RaySettings
from strata.core.errors import ConfigError
from strata.core.tracing import TraceSettings

S = TypeVar("S")
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("strata_config_file", default=None)


def default_home() -> Path:
    """``$XDG_DATA_HOME/strata``, falling back to ``~/.local/share/strata``."""
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "strata"


class ModelSpec(BaseModel):
    """How to reach one model. Exactly one source: ``bundled``, ``path``, ``hf_repo`` or ``url``."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("llama", description="Backend kind: llama, openai, fake, or a plugin's")
    bundled: str | None = Field(None, description="Name of a bundled offline model (catalog)")
    path: Path | None = Field(None, description="Path to a local GGUF file")
    hf_repo: str | None = Field(None, description="Hugging Face repo id holding GGUF files")
    hf_file: str = Field("*q4_k_m.gguf", description="Glob of the GGUF file inside hf_repo")
    url: str | None = Field(None, description="Base URL of an OpenAI-compatible server (…/v1)")
    remote_name: str | None = Field(None, description="Model name the remote server expects")
    api_key_env: str | None = Field(None, description="Env var holding the remote's API key")
    description: str = ""
    n_ctx: int = Field(4096, ge=64, description="Context window in tokens (local models)")
    context_window: int | None = Field(None, ge=1, description="Known window of a remote model")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for a local model")
    timeout_s: float = Field(120.0, gt=0, description="Remote read timeout in seconds")
    connect_retries: int = Field(2, ge=0, description="Retries on connection errors (remote)")
    max_concurrency: int | None = Field(
        None,
        ge=1,
        description="Generations at once; default batch_slots for llama, 1 for other local "
        "backends, 64 for remote",
    )
    max_queue: int | None = Field(None, ge=0, description="Waiting requests before 429")
    prompt_cache_mb: float = Field(
        256.0, ge=0, description="Memory for KV states of recent prompts, reused by prefix (0: off)"
    )
    draft: str | None = Field(
        None,
        description="Bundled model name or GGUF path drafting tokens for greedy requests "
        "(speculative decoding; same tokenizer)",
    )
    draft_tokens: int = Field(4, ge=1, le=16, description="Tokens the draft proposes a step")
    batch_slots: int = Field(
        4,
        ge=1,
        le=64,
        description="Requests decoded together in one llama.cpp batch, on a second context of "
        "batch_slots x n_ctx tokens (1: one at a time, no second context)",
    )
    price_input_per_mtok: float | None = Field(None, ge=0, description="USD per 1M input tokens")
    price_output_per_mtok: float | None = Field(None, ge=0, description="USD per 1M output tokens")
    load: Literal["lazy", "startup"] = "lazy"
    idle_unload_s: float | None = Field(
        None, gt=0, description="Release a local model's memory after this long unused"
    )
    capabilities: list[str] | None = Field(
        None, description="Narrow what the model is offered for (e.g. a base model: completion)"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Backend-specific extras")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if self.backend == "llama":
            sources = [s for s in (self.bundled, self.path, self.hf_repo) if s]
            if len(sources) != 1:
                raise ValueError("a llama model needs exactly one of bundled, path or hf_repo")
        if self.backend == "openai" and not self.url:
            raise ValueError("an openai model needs url")
        return self


BUNDLED_IDLE_UNLOAD_S = 900.0
MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"


def default_models() -> dict[str, ModelSpec]:
    """The offline defaults; each releases its memory after 15 idle minutes."""
    return {
        "small": ModelSpec(
            bundled="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (edge tier)",
            idle_unload_s=BUNDLED_IDLE_UNLOAD_S,
        ),
        "big": ModelSpec(
            bundled="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (big tier)",
            idle_unload_s=BUNDLED_IDLE_UNLOAD_S,
        ),
        "base": ModelSpec(
            bundled="gemma-3-270m",
            description="Gemma 3 270M base Q4_K_M (completions)",
            n_ctx=2048,
            idle_unload_s=BUNDLED_IDLE_UNLOAD_S,
            capabilities=["completion", "logprobs", "streaming", "json_schema"],
        ),
        "minilm": ModelSpec(
            backend="sentence_transformers",
            hf_repo=MINILM_REPO,
            description="all-MiniLM-L6-v2 sentence embeddings (384 dims, CPU)",
            idle_unload_s=BUNDLED_IDLE_UNLOAD_S,
        ),
    }


class DialogueSettings(BaseModel):
    """Sessions that remember, templates, brand voices and feedback (``strata.features.dialogue``,
    ``strata.features.apps``)."""

    model_config = ConfigDict(extra="forbid")

    recent_turns: int = Field(12, ge=1, description="Most recent turns kept verbatim in a prompt")
    retrieved_turns: int = Field(10, ge=0, description="Earlier turns retrieved per message")
    recall_cut: float = Field(
        0.5,
        ge=0,
        le=1,
        description="An earlier turn is recalled only if its relevance is at least this share of"
        " the best match's (0: fill up to retrieved_turns); stray matches are noise to a small"
        " model",
    )
    retrieval_share: float = Field(
        0.5, gt=0, le=1, description="Most of the memory budget retrieved turns may take"
    )
    memory_tokens: int = Field(
        2048,
        ge=64,
        description="Token budget of a session's memory in a prompt (summary, retrieved and"
        " recent turns), on top of the system prompt and the new message; never more than the"
        " window leaves",
    )
    embedder: str = Field(
        "minilm",
        description="Embedder that indexes turns by meaning: minilm (the knowledge base's),"
        " hash (tests), or none (keyword recall only)",
    )
    embedding_model: str = Field(
        MINILM_REPO, description="Model for the minilm embedder: a path or a Hugging Face repo id"
    )
    vector_weight: float = Field(
        0.5, ge=0, le=1, description="Share of meaning (vectors) in turn recall; keywords: the rest"
    )
    summary_facts_tokens: int = Field(
        256,
        ge=0,
        description="Room in the summary for facts kept verbatim (sentences with names, numbers"
        " and dates, newest kept)",
    )
    answer_tokens: int = Field(
        512, ge=1, description="Room kept for the answer when a request sets no max_tokens"
    )
    default_window: int = Field(
        4096, ge=256, description="Context window assumed for a model that declares none"
    )
    summary: bool = Field(True, description="Keep a rolling summary of turns out of the window")
    summary_model: str | None = Field(
        None, description="Model that writes summaries (default: default_model, if served)"
    )
    summary_batch: int = Field(
        16, ge=1, description="Summarise once this many turns have left the recent window"
    )
    summary_max_tokens: int = Field(200, ge=16, description="Longest summary, in tokens")
    summary_step_tokens: int = Field(
        512,
        ge=64,
        description="Most prompt tokens one summary step reads (summary, new turns and the "
        "summary it writes): bounds how long a user's request waits behind it",
    )
    templates_dir: Path | None = Field(
        None, description="Folder of user templates (*.toml); default: <home>/templates"
    )
    voice_retries: int = Field(
        1, ge=0, description="Regenerations when an output breaks a voice's hard rules"
    )
    feedback_examples: int = Field(
        3, ge=0, description="Accepted edits reused as few-shot examples per template and voice"
    )


class CoreSettings(BaseSettings):
    """What every strata process needs; each feature adds its own section (``Settings``)."""

    model_config = SettingsConfigDict(
        env_prefix="STRATA_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(default_factory=default_home, description="Data directory (models, state)")
    database: str | None = Field(
        None,
        description="PostgreSQL URL (postgresql://…) holding every store, shared by replicas"
        " (also STRATA_DATABASE_URL); default: SQLite files in home",
    )
    host: str = Field("127.0.0.1", description="Address to serve on")
    port: int = Field(8000, ge=0, le=65535, description="Port to serve on")
    api_keys: list[str] = Field(
        default_factory=list, description="Accepted API keys; empty means no auth"
    )
    admin_keys: list[str] = Field(
        default_factory=list,
        description="API keys that may also create, list and revoke issued keys (/v1/keys);"
        " like api_keys, any one turns auth on",
    )
    default_model: str = Field("small", description="Model used when a client names none (CLI)")
    bundled_models: bool = Field(True, description="Serve the bundled small/big/base models")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="Extra models")
    max_queue: int = Field(16, ge=0, description="Default waiting requests per model before 429")
    cpu_hour_usd: float = Field(0.05, ge=0, description="Price of a CPU-hour for local models")
    log_level: str = Field("info", description="Log level of the server")
    dialogue: DialogueSettings = Field(
        default_factory=DialogueSettings,
        description="Sessions, templates, brand voices and feedback",
    )
    traces: TraceSettings = Field(
        default_factory=TraceSettings, description="OpenTelemetry traces (off by default)"
    )
    ray: RaySettings = Field(
        default_factory=RaySettings, description="Replicas on Ray Serve (strata serve --ray)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _DatabaseUrl(settings_cls),
        ]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def section(self, name: str, kind: type[S]) -> S:
        """A feature's settings section, typed (``settings.section("knowledge", ...)``)."""
        value = getattr(self, name)
        if not isinstance(value, kind):
            raise ConfigError(f"settings section {name!r} is not a {kind.__name__}")
        return value

    @field_validator("database")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database is a PostgreSQL URL: postgresql://…")
        return value

    def store(self, component: str) -> Path | str:
        """Where ``component``'s repository lives (``open_repository``): the PostgreSQL
        database when one is set, else its own SQLite file in ``home``."""
        return self.database or self.home / f"{component}.db"

    def all_models(self) -> dict[str, ModelSpec]:
        """The served models: bundled defaults (if on) overlaid by the configured ones."""
        base = default_models() if self.bundled_models else {}
        return {**base, **self.models}


class _DatabaseUrl(PydanticBaseSettingsSource):
    """``STRATA_DATABASE_URL``, the name PostgreSQL tools lead people to expect, for the
    ``database`` setting (``STRATA_DATABASE`` works too, and wins)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        url = os.environ.get("STRATA_DATABASE_URL")
        return {"database": url} if url else {}


def settings_class() -> type[CoreSettings]:
    """``CoreSettings`` plus one field per section the installed features declare, built once
    (the features are discovered through the ``strata.features`` entry points)."""
    global _SETTINGS  # noqa: PLW0603 - built once, on first use, from the installed features
    if _SETTINGS is None:
        from strata.core.feature import installed_features

        fields: dict[str, Any] = {}
        for feature in installed_features():
            for name, (kind, field) in feature.settings_sections().items():
                fields[name] = (kind, field)
        _SETTINGS = create_model("Settings", __base__=CoreSettings, __module__=__name__, **fields)
    return _SETTINGS


_SETTINGS: type[CoreSettings] | None = None


def forget_settings_class() -> None:
    """Assemble ``Settings`` anew on next use (a feature was registered by hand)."""
    global _SETTINGS  # noqa: PLW0603
    _SETTINGS = None


if TYPE_CHECKING:
    Settings = CoreSettings
else:

    def __getattr__(name: str) -> Any:
        if name == "Settings":
            return settings_class()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> CoreSettings:
    """Build settings, translating file and validation problems into ``ConfigError``."""
    path = Path(config_file) if config_file else None
    if path is None and os.environ.get("STRATA_CONFIG"):
        path = Path(os.environ["STRATA_CONFIG"])
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    token = _CONFIG_FILE.set(path)
    try:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return settings_class()(**clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {where}: {msg}") from exc
    except SettingsError as exc:  # e.g. STRATA_API_KEYS that is not a JSON list
        raise ConfigError(f"invalid settings: {exc}") from exc
    finally:
        _CONFIG_FILE.reset(token)
