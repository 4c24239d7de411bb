"""The model backend contract: one required method, ``generate``.

A backend turns a ``GenerationRequest`` (a chat or a plain completion plus sampling
parameters) into an async stream of ``Chunk``s. The last chunk carries ``finish_reason``
and ``usage``. A backend that cannot stream simply yields one chunk. Backends declare what
they can do in ``capabilities`` so the server can refuse, with a 400, what a model cannot do
instead of failing inside it.

Resource rules: ``generate`` must stop promptly (within a token or two) when the consumer
stops iterating (the async generator is closed or cancelled), and must release whatever it
holds. Admission (one generation at a time on a local model) is the caller's job, not the
backend's; ``strata.core.engine`` does it.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from strata.core.errors import ConfigError, InvalidRequest
from strata.core.settings import ModelSpec, default_home


class Capability(enum.StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"
    LOGPROBS = "logprobs"
    EMBEDDINGS = "embeddings"
    TOOLS = "tools"
    JSON_SCHEMA = "json_schema"
    STREAMING = "streaming"


@dataclass(frozen=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    response_format: ResponseFormat = field(default_factory=ResponseFormat)


@dataclass
class GenerationRequest:
    """One generation. ``messages`` for chat, ``prompt`` for a completion; never both."""

    kind: Literal["chat", "completion"]
    params: SamplingParams
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    stream: bool = False
    # Fields the server understood but strata does not act on itself (tools, user, …);
    # a remote backend forwards them, a local one refuses those it cannot honour.
    passthrough: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: list[int] | None = None


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int] | None = None
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Chunk:
    text: str = ""
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    # Raw OpenAI-shaped extras a remote returned (tool_calls, refusal, …).
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class Price:
    """USD per one million tokens; local models derive it from compute time × $/CPU-hour."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.prompt_tokens * self.input_per_mtok
            + usage.completion_tokens * self.output_per_mtok
        ) / 1e6


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content)
    return str(content or "")


class Backend(ABC):
    """A model strata can serve. Subclasses set ``capabilities`` and implement ``generate``."""

    kind: ClassVar[str]
    capabilities: frozenset[Capability] = frozenset()
    default_concurrency: ClassVar[int] = 1
    local: ClassVar[bool] = False

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        self.name = name
        self.spec = spec
        # The data directory (bundled models, caches); defaults to the settings' default.
        self.home = home if home is not None else default_home()
        offered = type(self).capabilities
        if spec.capabilities is not None:
            try:
                offered = offered & {Capability(c) for c in spec.capabilities}
            except ValueError as exc:
                raise ConfigError(f"model '{name}': {exc}") from exc
        # Per instance: configuration (or the loaded weights) may narrow the class's set.
        self.capabilities = offered

    @property
    def concurrency(self) -> int:
        """Generations admitted at once when the model's spec does not say: the class's
        default, or what a backend configured to batch requests can run together."""
        return self.default_concurrency

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Stream the answer to ``request`` (see the module docstring for the rules)."""

    @property
    def context_window(self) -> int | None:
        """Tokens the model can attend to, when known; used to reject oversize requests."""
        return self.spec.context_window

    @property
    def price(self) -> Price:
        return Price(self.spec.price_input_per_mtok or 0.0, self.spec.price_output_per_mtok or 0.0)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes for this model. Backends that hold their tokenizer (llama,
        fake) count exactly; this fallback, for models whose tokenizer strata cannot see (a
        remote server), is an estimate that leans high: one token per 3 UTF-8 bytes, while
        BPE tokenizers average about 4 on English, so a prompt fitted with it still fits."""
        return -(-len(text.encode()) // 3)

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of a chat request with these ``messages``, chat template included.
        The fallback adds 4 tokens per message and 3 for the reply's header (OpenAI's
        documented overhead for its chat format) to ``count_tokens`` of each content."""
        return 3 + sum(4 + self.count_tokens(_content_text(m)) for m in messages)

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embedding vectors and the tokens consumed; only for ``Capability.EMBEDDINGS``."""
        raise InvalidRequest(f"model '{self.name}' does not support embeddings", param="model")

    async def load(self) -> None:
        """Acquire weights or connections ahead of the first request (optional)."""

    async def unload(self) -> None:
        """Release memory or connections; the next request loads again."""

    @property
    def loaded(self) -> bool:
        return True

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities
