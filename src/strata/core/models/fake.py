"""A scripted backend for tests: enqueue outputs, then inspect the calls it received.

It behaves like a real local model where it matters to the server: it streams token by
token, honours ``max_tokens`` and ``stop``, reports usage, checks the context window, and
stops when the consumer stops. ``delay_s`` per token makes queueing and cancellation
observable.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from strata.core.errors import ContextWindowExceeded
from strata.core.models.base import (
    Backend,
    Capability,
    Chunk,
    GenerationRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from strata.core.settings import ModelSpec
from strata.core.tools.grammar import plan_tool_decoding, tool_specs
from strata.core.tools.parsing import call_deltas, parse_tool_calls


def fake_tokens(text: str) -> list[str]:
    """Split into whitespace-led pieces: a stand-in tokenizer that round-trips exactly."""
    pieces: list[str] = []
    for i, word in enumerate(text.split(" ")):
        pieces.append(word if i == 0 else " " + word)
    return [p for p in pieces if p]


class FakeBackend(Backend):
    kind = "fake"
    capabilities: frozenset[Capability] = frozenset(Capability)
    local = True

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        super().__init__(name, spec, home)
        self.outputs: deque[str | BaseException] = deque()
        self.calls: list[GenerationRequest] = []
        self.delay_s: float = float(spec.options.get("delay_s", 0.0))
        self.default_output: str = str(spec.options.get("default_output", "ok"))
        self.tokens_emitted = 0
        self.cancelled = 0
        self._loaded = False

    def enqueue(self, *outputs: str | BaseException) -> None:
        """Script the next answers; an exception is raised instead of answering."""
        self.outputs.extend(outputs)

    @property
    def context_window(self) -> int | None:
        return self.spec.context_window or self.spec.n_ctx

    @property
    def loaded(self) -> bool:
        return self._loaded

    async def load(self) -> None:
        self._loaded = True

    async def unload(self) -> None:
        self._loaded = False

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors = []
        for text in texts:
            raw = [float((hash((text, i)) % 1000) - 500) for i in range(8)]
            norm = math.sqrt(sum(v * v for v in raw)) or 1.0
            vectors.append([v / norm for v in raw])
        return vectors, sum(len(fake_tokens(t)) for t in texts)

    def count_tokens(self, text: str) -> int:
        return len(fake_tokens(text))

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        return len(fake_tokens(" ".join(str(m.get("content") or "") for m in messages))) + 1

    def _prompt_tokens(self, request: GenerationRequest) -> int:
        if request.kind == "chat":
            return self.count_messages(request.messages or [])
        return len(fake_tokens(request.prompt or "")) + 1

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self._loaded = True
        self.calls.append(request)
        prompt_tokens = self._prompt_tokens(request)
        window = self.context_window
        wanted = request.params.max_tokens or 0
        if window is not None and prompt_tokens + wanted > window:
            raise ContextWindowExceeded(
                f"This model's maximum context length is {window} tokens; the request has "
                f"{prompt_tokens} prompt tokens and asks for {wanted} completion tokens.",
                param="max_tokens",
            )
        output = self.outputs.popleft() if self.outputs else self.default_output
        if isinstance(output, BaseException):
            raise output
        if request.params.response_format.type != "text" and not _is_json(output):
            output = json.dumps({"text": output})
        calls: list[dict[str, Any]] = []
        if request.passthrough.get("tools"):
            # The same validation and parsing as a local model's: a scripted answer in
            # Qwen's <tool_call> tags (or fenced JSON) becomes OpenAI tool calls.
            plan = plan_tool_decoding(
                tool_specs(request.passthrough["tools"]),
                request.passthrough.get("tool_choice"),
                request.passthrough.get("parallel_tool_calls") is not False,
            )
            if plan.mode != "none":
                parsed = parse_tool_calls(output, [t.name for t in plan.tools])
                calls = parsed.tool_calls if plan.parallel else parsed.tool_calls[:1]
                if calls:
                    output = parsed.content or ""
        tokens = fake_tokens(output)
        limit = request.params.max_tokens
        finish = "stop"
        emitted: list[str] = []
        try:
            for token in tokens:
                if limit is not None and len(emitted) >= limit:
                    finish = "length"
                    break
                so_far = "".join(emitted) + token
                hit = next((s for s in request.params.stop if s in so_far), None)
                if hit is not None:
                    cut = so_far.index(hit) - len("".join(emitted))
                    if cut > 0:
                        yield Chunk(text=token[:cut])
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                emitted.append(token)
                self.tokens_emitted += 1
                yield Chunk(text=token, logprobs=_logprobs(token, request) or None)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise
        if calls:
            yield Chunk(extra={"tool_calls": call_deltas(calls)})
            finish = "tool_calls"
            emitted += [t for call in calls for t in fake_tokens(call["function"]["arguments"])]
        yield Chunk(finish_reason=finish, usage=Usage(prompt_tokens, len(emitted)))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _logprobs(token: str, request: GenerationRequest) -> list[TokenLogprob]:
    if not request.params.logprobs:
        return []
    top = tuple(
        TopLogprob(token=token if i == 0 else f"alt{i}", logprob=-0.1 * (i + 1) * 2)
        for i in range(request.params.top_logprobs)
    )
    return [TokenLogprob(token=token, logprob=-0.2, bytes=list(token.encode()), top=top)]


def scripted(backend: Backend) -> FakeBackend:
    """Narrow a backend to the fake one (tests); raises if it is something else."""
    if not isinstance(backend, FakeBackend):
        raise TypeError(f"{backend.name} is a {type(backend).__name__}, not a FakeBackend")
    return backend


__all__ = ["FakeBackend", "fake_tokens", "scripted"]
