"""The path of one chat request through strata's layers, the same for HTTP and the CLI.

    API → layers' ``before`` (template / voice / session / knowledge) → dispatch (a route's
    cascade, or one model) → layers' ``after`` (store the turn, check the voice) → response

A *layer* is optional and independent: it may rewrite the messages before generation, add to
the ``strata`` response field (``turn.info``), and see the final texts in ``after``. A layer
that must be able to change them (a brand voice's repair) sets ``turn.buffer_output`` in
``before``: streams are then generated whole and replayed, since sent text cannot be unsent.
A *dispatcher* answers for model names that are not plain models, such as the router's
``auto``. Both register on the ``Pipeline`` that ``strata.stack`` builds, the same way for
every feature.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from strata.engine import Engine, Timings
from strata.models.base import Chunk, GenerationRequest


@dataclass
class ChatTurn:
    """One chat request as the layers see it. ``options`` is the request's ``strata`` object."""

    model: str
    gen: GenerationRequest
    key: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    response_id: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    answered_by: str | None = None
    buffer_output: bool = False
    state: dict[str, Any] = field(default_factory=dict)  # layers' hand-offs to each other


class ChatLayer(Protocol):
    """One optional layer; ``after`` returns the texts (changed only under ``buffer_output``)."""

    name: str

    async def before(self, turn: ChatTurn) -> None: ...

    async def after(self, turn: ChatTurn, texts: list[str]) -> list[str]: ...


class Dispatcher(Protocol):
    """Answers for the model names it ``handles`` (e.g. routes), instead of a single model;
    ``names`` are listed beside the models in ``/v1/models``."""

    def handles(self, model: str) -> bool: ...

    def names(self) -> list[str]: ...

    def generate(self, turn: ChatTurn, timings: Timings) -> AsyncGenerator[Chunk, None]: ...


class Pipeline:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.layers: list[ChatLayer] = []
        self.dispatchers: list[Dispatcher] = []

    def add_layer(self, layer: ChatLayer) -> None:
        self.layers.append(layer)

    def add_dispatcher(self, dispatcher: Dispatcher) -> None:
        self.dispatchers.append(dispatcher)

    def handles(self, model: str) -> bool:
        """Whether ``model`` names something servable (a model or a dispatcher's name)."""
        return model in self.engine.models or any(d.handles(model) for d in self.dispatchers)

    def dispatched_names(self) -> list[str]:
        return [name for d in self.dispatchers for name in d.names()]

    async def before(self, turn: ChatTurn) -> None:
        for layer in self.layers:
            await layer.before(turn)

    def generate(self, turn: ChatTurn, timings: Timings) -> AsyncGenerator[Chunk, None]:
        """One choice's stream; sets ``turn.answered_by`` unless a dispatcher already did."""
        for dispatcher in self.dispatchers:
            if dispatcher.handles(turn.model):
                return dispatcher.generate(turn, timings)
        turn.answered_by = turn.model
        return self.engine.generate(turn.model, turn.gen, key=turn.key, timings=timings)

    async def after(self, turn: ChatTurn, texts: list[str]) -> list[str]:
        for layer in reversed(self.layers):
            texts = await layer.after(turn, texts)
        return texts

    async def complete(self, turn: ChatTurn, timings: Timings | None = None) -> str:
        """Generate one answer to ``turn.gen`` as it stands, without running the layers
        (what a layer calls to regenerate or summarise)."""
        parts: list[str] = []
        async for chunk in self.generate(turn, timings or Timings()):
            parts.append(chunk.text)
        return "".join(parts)
