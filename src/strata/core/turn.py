"""One chat turn, typed: what was asked (``Turn``), what came of it (``TurnResult``), the
event that announces it (``TurnCompleted``), and the shapes a feature plugs in with: a
``Layer``, a ``Dispatcher`` (by model name), a ``TurnDispatcher`` (by the turn's options)
and a ``Gate``.

The order of layers is declared, not implied by registration: each layer has an ``order``
and the ``ChatService`` runs ``before`` in ascending order and ``after`` in descending order.
The built-in orders, lowest first:

    10 template   writes the messages from the template's inputs and examples
    20 voice      adds the brand voice to the system prompt; repairs the answer after
    30 knowledge  puts the retrieved passages into the new message; checks citations after
    90 memory     fits everything the others added, plus the session, into the window

Whatever records a turn (the ledger, the response log, the session's transcript) does not
hook into the layers: it subscribes to ``TurnCompleted``, which the service publishes once
every layer has had its say, with the final texts.

A ``Gate`` (budgets and rate limits: the keys feature) decides whether a request may spend
at all, once the layers have written its prompt and before any model runs, and is told how
it ended however it ended: answered, failed, or abandoned by its client. That is what
``TurnCompleted`` cannot do, since a failed turn publishes nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from strata.core.engine import Timings
from strata.core.models.base import Chunk, GenerationRequest, TokenLogprob, Usage
from strata.core.tenancy import LOCAL, Caller
from strata.core.tools.parsing import merge_call_deltas
from strata.core.tracing import NO_SPAN, Span


@dataclass
class Generation:
    """One model call a turn caused (a route's tiers, its self-check, a voice's retry)."""

    model: str
    usage: Usage
    cost: float = 0.0  # USD, priced when the call ended


@dataclass
class Turn:
    """One chat request as the layers see it; layers may rewrite ``gen`` in ``before``.

    ``options`` is the request's ``strata`` object as the client sent it; ``sent`` the
    messages as the client sent them, before any layer rewrote them (what a transcript or
    a response log keeps)."""

    model: str
    gen: GenerationRequest
    caller: Caller = LOCAL
    options: dict[str, Any] = field(default_factory=dict)
    response_id: str = ""
    buffer_output: bool = False  # a layer may rewrite the text: generate whole, then replay
    sent: list[dict[str, Any]] = field(default_factory=list)
    # Set by the ChatService: generate once more for this turn, without the layers (what a
    # voice calls to regenerate), counted in this turn's bill.
    complete: Callable[[GenerationRequest], Awaitable[str]] | None = None
    # The request's span (``strata.core.tracing``); layers and dispatchers open steps in it.
    trace: Span = NO_SPAN
    # Work nobody is waiting for (a rolling summary): queued behind users' requests and
    # preempted by them (``core.admission``).
    background: bool = False

    def __post_init__(self) -> None:
        if not self.sent:
            self.sent = [dict(m) for m in self.gen.messages or []]


@dataclass
class RouteOutcome:
    """What a route decided, typed for the ledger (the full story is in ``report``)."""

    name: str
    tiers_ran: list[str]
    baseline_cost: float
    confidence: float | None = None
    degraded: bool = False


@dataclass
class Choice:
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None

    def add_tool_calls(self, chunk: Chunk) -> None:
        """Fold a chunk's ``tool_calls`` (streamed deltas, or a whole message's calls) into
        this choice's complete calls, as OpenAI's own clients accumulate them."""
        deltas = chunk.extra.get("tool_calls") if chunk.extra else None
        if deltas:
            self.tool_calls = merge_call_deltas(self.tool_calls or [], deltas)


@dataclass
class TurnResult:
    """What came of a turn. ``report`` is the response's ``strata`` field: each layer writes
    only its own keys there (``route``, ``citations``, ``voice``, ``session``, ...)."""

    model: str
    answered_by: str | None = None
    choices: list[Choice] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    route: RouteOutcome | None = None
    generations: list[Generation] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    started: float = field(default_factory=time.perf_counter)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.choices]

    @property
    def served_by(self) -> str:
        return self.answered_by or self.model

    @property
    def usage(self) -> Usage:
        """The answer's usage; the prompt counts once, as OpenAI counts it when n > 1."""
        usages = [c.usage for c in self.choices if c.usage]
        prompt = max((u.prompt_tokens for u in usages), default=0)
        return Usage(prompt, sum(u.completion_tokens for u in usages))


@dataclass(frozen=True)
class TurnCompleted:
    """Published once per answered turn, after every layer's ``after``."""

    turn: Turn
    result: TurnResult


class Layer(Protocol):
    """One optional layer. ``before`` may rewrite ``turn.gen`` and add to ``result.report``;
    ``after`` may change ``result.choices[i].text`` (seen by the client only when a layer
    set ``turn.buffer_output`` in ``before``)."""

    name: str
    order: int

    async def before(self, turn: Turn, result: TurnResult) -> None: ...

    async def after(self, turn: Turn, result: TurnResult) -> None: ...


class Dispatcher(Protocol):
    """Answers for the model names it ``handles`` (routes such as ``auto``) instead of one
    model; sets ``result.answered_by`` (and ``result.route``) as it decides. ``names`` are
    listed beside the models in ``/v1/models``."""

    def handles(self, model: str) -> bool: ...

    def names(self) -> list[str]: ...

    def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]: ...


class TurnDispatcher(Protocol):
    """Answers a turn for what its options ask (the agent loop for ``strata.agent``),
    whatever model it names, ahead of the ``Dispatcher``s. It runs its model calls through
    ``ChatService.dispatch``, so each is the named model's (or route's) and is billed to the
    turn like any other generation."""

    def takes(self, turn: Turn) -> bool: ...

    def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]: ...


class Pass(Protocol):
    """What a ``Gate`` granted one request; ``settle`` is called exactly once, when the
    request has ended, with every generation it caused (priced; empty if none ran)."""

    async def settle(self, generations: Sequence[Generation]) -> None: ...


class Gate(Protocol):
    """Admits a request before its generations start, or refuses it by raising a
    ``RequestError`` (``RateLimited``, ``QuotaExceeded``). ``gens`` are the generations the
    request asks ``model`` (a model, or a dispatcher's name) for, as the model will get them
    (a chat turn's prompt once per choice); ``None`` means nothing to settle. Called on the
    event loop for every request: keep it in memory and quick."""

    def admit(
        self, caller: Caller, model: str, gens: Sequence[GenerationRequest]
    ) -> Pass | None: ...
