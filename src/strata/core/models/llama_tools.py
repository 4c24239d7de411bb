"""OpenAI function calling on a llama.cpp model: the plan of ``strata.core.tools.grammar``
carried out over the backend's sampler.

Per ``tool_choice``:

- ``required`` or a named function: the tools' grammar constrains decoding from the first
  token, so the answer is only ``<tool_call>`` blocks whose arguments match the schemas.
- ``auto``: free text stays free (and streams) until the model writes ``<tool_call>`` (one
  token in Qwen2.5's vocabulary); generation stops there and continues from the same prompt
  plus that text under the grammar for the rest of the call(s). The prompt is still in
  llama.cpp's cache, so the switch costs no prompt evaluation. Coder models sometimes answer
  with a fenced JSON block instead of the tags: free text from a ```` ``` ```` fence (or
  JSON as the very first character) is held back and parsed at the end, so it becomes a
  call rather than streamed as content.
- ``none``: free text; a ``<tool_call>`` ends it, so no call starts.

Calls leave as ``Chunk.extra["tool_calls"]`` deltas in OpenAI's chunk shape (``index``,
``id``, ``type``, ``function``), and the last chunk's ``finish_reason`` is ``tool_calls``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strata.core.errors import InvalidRequest
from strata.core.models.base import Chunk, GenerationRequest, SamplingParams, TokenLogprob, Usage
from strata.core.tools.grammar import ToolDecoding, ToolSpec, plan_tool_decoding, tool_specs
from strata.core.tools.parsing import call_deltas, parse_tool_calls

TextSink = Callable[[str, list[TokenLogprob] | None], None]
Emit = Callable[[Chunk | BaseException | None], None]


@dataclass
class Sampled:
    """One run of the sampler: the token ids it generated (a stop's own token included),
    the text up to any stop, why it ended, and which stop sequence ended it."""

    tokens: list[int]
    text: str
    finish: str
    stopped_on: str | None = None


Sample = Callable[
    [list[int], SamplingParams, Any, tuple[str, ...], int, threading.Event, TextSink], Sampled
]


def request_tools(request: GenerationRequest) -> list[ToolSpec]:
    """The request's tools, validated (a 400 naming the tool when a schema is not one)."""
    tools = request.passthrough.get("tools")
    if not tools:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list of function tools", param="tools")
    return tool_specs(tools)


def tool_plan(request: GenerationRequest) -> ToolDecoding | None:
    """How to decode ``request``; None when it has no tools (plain generation)."""
    specs = request_tools(request)
    if not specs:
        return None
    parallel = request.passthrough.get("parallel_tool_calls")
    return plan_tool_decoding(
        specs, request.passthrough.get("tool_choice"), parallel is None or bool(parallel)
    )


@functools.lru_cache(maxsize=64)
def _compiled(grammar: str) -> Any:
    """llama-cpp-python keeps only the grammar's text and builds a sampler per generation,
    so one compiled object serves every request with the same tools."""
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(grammar, verbose=False)


class _Collected:
    """A sink that keeps the text and logprobs (what a grammar-constrained call writes is
    parsed whole, never streamed as content)."""

    def __init__(self) -> None:
        self.logprobs: list[TokenLogprob] = []

    def __call__(self, text: str, logprobs: list[TokenLogprob] | None) -> None:
        self.logprobs.extend(logprobs or [])


class HeldContent:
    """Free text of an ``auto`` answer: streamed as content, except from where an untagged
    call may start (a ```` ``` ```` fence, or ``{``/``[`` before any other text), which is
    held and parsed once the answer is complete."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.text = ""
        self.sent = 0
        self.held_from: int | None = None
        self.logprobs: list[TokenLogprob] = []

    def _call_start(self) -> int | None:
        fence = self.text.find("```")
        if fence >= 0:
            return fence
        stripped = self.text.lstrip()
        if stripped[:1] in ("{", "["):
            return len(self.text) - len(stripped)
        return None

    def __call__(self, text: str, logprobs: list[TokenLogprob] | None) -> None:
        self.text += text
        self.logprobs.extend(logprobs or [])
        if self.held_from is None:
            self.held_from = self._call_start()
        if self.held_from is not None:
            limit = self.held_from
        elif not self.text.strip():
            limit = self.sent  # only whitespace so far: JSON may still follow
        else:
            limit = len(self.text) - (len(self.text) - len(self.text.rstrip("`")))
        if limit > self.sent:
            self.emit(Chunk(text=self.text[self.sent : limit], logprobs=self._take()))
            self.sent = limit

    def _take(self) -> list[TokenLogprob] | None:
        taken, self.logprobs = self.logprobs, []
        return taken or None

    def finish(
        self, calls_text: str, tools: Sequence[ToolSpec], parallel: bool, more: Sequence[Any]
    ) -> bool:
        """Emit what was held (as calls when it parses as calls, else as content) and the
        calls after a ``<tool_call>``; True when the answer made calls."""
        held = self.text[self.sent :] + calls_text
        logprobs = [*self.logprobs, *more] or None
        parsed = parse_tool_calls(held, [t.name for t in tools])
        if not parsed.tool_calls:
            if held or logprobs:
                self.emit(Chunk(text=held, logprobs=logprobs))
            return False
        calls = parsed.tool_calls if parallel else parsed.tool_calls[:1]
        if parsed.content:
            self.emit(Chunk(text=parsed.content))
        self.emit(Chunk(logprobs=logprobs, extra={"tool_calls": call_deltas(calls)}))
        return True


class ToolDecoder:
    """Decodes one request with tools (see the module docstring) through ``sample``, the
    backend's sampling loop, on the backend's worker thread."""

    def __init__(
        self, sample: Sample, llm: Any, plan: ToolDecoding, template_stops: tuple[str, ...]
    ) -> None:
        self.sample = sample
        self.llm = llm
        self.plan = plan
        self.template_stops = template_stops

    def run(
        self,
        tokens: list[int],
        params: SamplingParams,
        budget: int,
        cancel: threading.Event,
        emit: Emit,
    ) -> None:
        plan, stops = self.plan, tuple(params.stop) + self.template_stops
        parallel = plan.parallel
        if plan.mode == "none":
            sampled = self.sample(
                tokens,
                params,
                None,
                stops + plan.stop,
                budget,
                cancel,
                lambda text, lps: emit(Chunk(text=text, logprobs=lps)),
            )
            used, finish = len(sampled.tokens), sampled.finish
        elif plan.mode == "required":
            assert plan.grammar is not None
            held = HeldContent(emit)
            held.held_from = 0  # nothing but calls: parse it all at the end
            sampled = self.sample(
                tokens, params, _compiled(plan.grammar), self.template_stops, budget, cancel, held
            )
            used, finish = len(sampled.tokens), sampled.finish
            if finish != "cancelled" and held.finish("", plan.tools, parallel, ()):
                finish = "tool_calls"
        else:
            used, finish = self._auto(tokens, params, stops, budget, cancel, emit, parallel)
        emit(Chunk(finish_reason=finish, usage=Usage(len(tokens), used)))

    def _auto(
        self,
        tokens: list[int],
        params: SamplingParams,
        stops: tuple[str, ...],
        budget: int,
        cancel: threading.Event,
        emit: Emit,
        parallel: bool,
    ) -> tuple[int, str]:
        plan = self.plan
        assert plan.trigger is not None and plan.continuation is not None
        held = HeldContent(emit)
        free = self.sample(tokens, params, None, (*stops, plan.trigger), budget, cancel, held)
        used, finish, calls_text = len(free.tokens), free.finish, ""
        rest = _Collected()
        if free.stopped_on == plan.trigger and finish != "cancelled":
            finish, calls_text = "length", plan.trigger
            if budget > used:
                # The trigger's own token was sampled (it is in free.tokens) but not yet
                # evaluated: the continuation starts right after it.
                call = self.sample(
                    tokens + free.tokens,
                    params,
                    _compiled(plan.continuation),
                    self.template_stops,
                    budget - used,
                    cancel,
                    rest,
                )
                used, finish = used + len(call.tokens), call.finish
                calls_text += call.text
        if finish != "cancelled" and held.finish(calls_text, plan.tools, parallel, rest.logprobs):
            finish = "tool_calls"
        return used, finish
