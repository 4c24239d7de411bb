"""What features need from each other, as protocols: a feature provides one on the kernel
(``kernel.provide(KnowledgeSearch, impl)``) and another looks it up
(``kernel.lookup(KnowledgeSearch)``), so neither imports the other.

- ``ModelPool``: the models, their admission and their generations (the ``Engine`` today;
  Ray Serve replicas later).
- ``Embeddings``: text → unit vectors (``strata.core.embeddings``).
- ``KnowledgeSearch``: a tenant's knowledge base, searched (the knowledge feature).
- ``ModelTiers``: what a model's tokens cost (``strata.core.pricing.CostMeter``).
- ``PositionLogits``: every position's log-probabilities of a text under a local model, which
  detectors need and the engine's usual last-position path does not give.
- ``Specialist``: a first tier in front of a route's cascade (the distill feature's models
  trained on the big tier's answers): asked before any model, it answers a turn it knows
  with a calibrated confidence and its own threshold; the router keeps the answer when the
  confidence reaches the threshold and runs the cascade as before otherwise.
- ``Exemplars``: worked examples for a route's lower tiers (the distill feature's kept
  big-tier answers): asked before a lower tier runs, it returns the caller's most similar
  ones, which the router fits into that tier's prompt as few-shot pairs; it also says which
  turns' last-tier answers it would keep, so the router scores those.
- ``TurnEvents``: ``strata.core.events`` (subscribe to ``TurnCompleted``, ``FeedbackGiven``).
- ``KeyRegistry``: API keys issued at run time (the keys feature), which the HTTP edge
  consults beside the configured ``api_keys`` and ``admin_keys`` to authenticate a request.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from strata.core.events import TurnEvents
from strata.core.models.base import Chunk, GenerationRequest, Price, Usage
from strata.core.tenancy import Caller
from strata.core.turn import Turn

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from strata.core.engine import ModelHandle, Timings

__all__ = [
    "Embeddings",
    "Exemplar",
    "ExemplarPick",
    "Exemplars",
    "KeyRegistry",
    "KnowledgeSearch",
    "ModelPool",
    "ModelTiers",
    "Passage",
    "PositionLogits",
    "Specialist",
    "SpecialistAnswer",
    "TurnEvents",
]


class ModelPool(Protocol):
    models: dict[str, ModelHandle]

    def get(self, name: str) -> ModelHandle: ...

    def generate(
        self,
        name: str,
        request: GenerationRequest,
        *,
        key: str = "",
        timings: Timings,
        record: Callable[[str, Usage], None] | None = None,
    ) -> AsyncGenerator[Chunk, None]: ...


class Embeddings(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


@dataclass
class Passage:
    document_id: str
    chunk: int
    text: str
    score: float
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class KnowledgeSearch(Protocol):
    def search(self, tenant: str, collection: str, query: str, top_k: int) -> list[Passage]: ...


class ModelTiers(Protocol):
    def price(self, name: str) -> Price: ...

    def cost(self, name: str, usage: Usage | None) -> float: ...


class PositionLogits(Protocol):
    def position_logprobs(
        self, model: str, texts: Sequence[str], *, window: int
    ) -> list[npt.NDArray[np.float32]]:
        """Per text, a (tokens - 1, vocabulary) array of log-probabilities for each next token
        given the tokens before it, computed in windows of ``window`` tokens."""
        ...


class KeyRegistry(Protocol):
    """API keys issued at run time. The edge asks it on every request, so both calls answer
    from memory (a key's record by its sha256), and go to the store only for a token they do
    not know, at most every so often."""

    def active(self) -> bool:
        """Whether any key was ever issued (revoked ones count): then, as with configured
        keys, a request without a valid key is refused."""
        ...

    async def identify(self, token: str) -> Caller | None:
        """The caller an issued, unrevoked key stands for; ``None`` for any other token.
        Raises ``AuthenticationFailed`` for a revoked key, so the 401 can say so."""
        ...


@dataclass(frozen=True)
class SpecialistAnswer:
    """A specialist's answer to a turn. ``name`` is shown as the tier (``specialist:NAME``);
    ``confidence`` is a calibrated probability that the big tier would have answered the
    same; ``threshold`` the specialist's own operating point (checked on held-out answers);
    ``cost`` its compute in USD."""

    name: str
    text: str
    confidence: float
    threshold: float
    cost: float
    seconds: float


class Specialist(Protocol):
    async def answer(self, route: str, turn: Turn) -> SpecialistAnswer | None:
        """An answer for ``turn`` sent to ``route``, or ``None`` when no specialist of the
        caller's tenant knows this kind of request (the cascade then runs as before)."""
        ...


@dataclass(frozen=True)
class Exemplar:
    """A worked example: a request (``prompt``, the user's message) and the answer kept for
    it; ``id`` is the response id of the turn it came from; ``similarity`` its cosine to the
    request at hand."""

    id: str
    prompt: str
    answer: str
    similarity: float


@dataclass(frozen=True)
class ExemplarPick:
    """The exemplars offered for one request, most similar first, and the most prompt tokens
    they may add (the router also keeps them within the tier's context window)."""

    exemplars: tuple[Exemplar, ...]
    budget_tokens: int


class Exemplars(Protocol):
    def wants_confidence(self, turn: Turn) -> bool:
        """Whether the last tier's answer to ``turn`` could become an exemplar: the router
        then asks that tier for logprobs and reports its confidence in the route report."""
        ...

    async def pick(self, turn: Turn) -> ExemplarPick | None:
        """The caller's tenant's exemplars most like ``turn``, or ``None`` when there are
        none above the similarity floor (or exemplars are off)."""
        ...
