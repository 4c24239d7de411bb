"""Worked examples in a lower tier's prompt, and the last tier's confidence they are kept by.

An ``Exemplars`` provider (the distill feature's kept big-tier answers; looked up per request)
offers the caller's most similar exemplars for a request. Before a lower tier runs, the
router fits as many as the provider's token budget and the tier's context window allow (most
similar first, counted with that tier's own tokenizer) and puts them before the conversation,
after any system messages, as user/assistant pairs: the most similar last, nearest the
request. The tier's trail entry names them (``exemplars``: their ids, ``exemplar_tokens``).

Only the lower tiers get them: the last tier is the one whose answers become exemplars, and
its prompt stays exactly what the client sent.

Exemplars are kept only when the last tier was confident, so for turns the provider could
keep, the last tier is asked for its logprobs (stripped from what the client sees unless it
asked for them) and its answer scored with ``answer_prob``, the free signal that reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from strata.core.engine import Engine
from strata.core.errors import StrataError
from strata.core.models.base import Backend, Chunk, GenerationRequest, TokenLogprob
from strata.core.protocols import Exemplar, ExemplarPick, Exemplars
from strata.core.turn import Turn
from strata.features.routing.probe import NoProbe
from strata.features.routing.signals import Attempt, create_signal

ExemplarLookup = Callable[[], Exemplars | None]
REPLY_RESERVE = 256  # tokens kept free for the answer when the request sets no max_tokens


def pair(exemplar: Exemplar) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": exemplar.prompt},
        {"role": "assistant", "content": exemplar.answer},
    ]


def pair_tokens(backend: Backend) -> Callable[[Exemplar], int]:
    """What an exemplar's pair adds to a prompt for ``backend``: its messages counted with
    the chat template after an empty system message, less that message alone (templates read
    ``messages[0]``, so an empty list does not render, and a leading system message keeps a
    template from adding its default one to one count only)."""
    lead = [{"role": "system", "content": ""}]
    fixed = backend.count_messages(lead)
    return lambda exemplar: backend.count_messages([*lead, *pair(exemplar)]) - fixed


def fit(
    exemplars: Sequence[Exemplar], cost: Callable[[Exemplar], int], room: int
) -> tuple[list[Exemplar], int]:
    """The exemplars, most similar first, that fit in ``room`` tokens (one that does not fit
    is passed over for a shorter one after it), and the tokens they take."""
    chosen: list[Exemplar] = []
    used = 0
    for exemplar in exemplars:
        tokens = cost(exemplar)
        if used + tokens <= room:
            chosen.append(exemplar)
            used += tokens
    return chosen, used


def with_exemplars(
    messages: Sequence[dict[str, Any]], chosen: Sequence[Exemplar]
) -> list[dict[str, Any]]:
    """``messages`` with the exemplars' pairs after the leading system messages, the most
    similar (``chosen[0]``) last."""
    lead = 0
    while lead < len(messages) and messages[lead].get("role") in ("system", "developer"):
        lead += 1
    shots = [m for e in reversed(chosen) for m in pair(e)]
    return [*messages[:lead], *shots, *messages[lead:]]


def room_for(engine: Engine, model: str, gen: GenerationRequest, budget: int) -> int:
    """Tokens the exemplars may take in ``model``'s prompt: the budget, less what the
    context window needs for the prompt itself and the answer."""
    backend = engine.get(model).backend
    window = backend.context_window
    if window is None:
        return budget
    prompt = backend.count_messages(list(gen.messages or []))
    reserve = gen.params.max_tokens or REPLY_RESERVE
    return max(0, min(budget, window - prompt - reserve))


class FewShot:
    """The exemplars of one turn: picked once (one prompt embedding), fitted per tier."""

    def __init__(self, lookup: ExemplarLookup | None, turn: Turn) -> None:
        self.provider = lookup() if lookup is not None else None
        self.turn = turn
        self._pick: ExemplarPick | None = None
        self._asked = False

    async def request(
        self, engine: Engine, model: str, gen: GenerationRequest, entry: dict[str, Any]
    ) -> GenerationRequest:
        """``gen`` with the exemplars that fit ``model``; the trail ``entry`` names them."""
        if self.provider is None or gen.kind != "chat":
            return gen
        if not self._asked:
            self._asked = True
            self._pick = await self.provider.pick(self.turn)
        if self._pick is None or not self._pick.exemplars:
            return gen
        backend = engine.get(model).backend
        try:
            room = room_for(engine, model, gen, self._pick.budget_tokens)
            chosen, used = fit(self._pick.exemplars, pair_tokens(backend), room)
        except StrataError:  # a tier that cannot count tokens gets none rather than too many
            return gen
        if not chosen:
            return gen
        entry.update(exemplars=[e.id for e in chosen], exemplar_tokens=used)
        return replace(gen, messages=with_exemplars(list(gen.messages or []), chosen))

    def scored_answer(self) -> ScoredAnswer | None:
        """For a turn whose last-tier answer the provider could keep: that answer, scored."""
        wanted = self.provider is not None and self.provider.wants_confidence(self.turn)
        return ScoredAnswer(self.turn) if wanted and self.turn.gen.kind == "chat" else None


class ScoredAnswer:
    """The last tier's answer, asked with logprobs and read for its confidence as it streams;
    the client sees logprobs only if it asked for them."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.text: list[str] = []
        self.logprobs: list[TokenLogprob] = []

    @property
    def request(self) -> GenerationRequest:
        gen = self.turn.gen
        if gen.params.logprobs:
            return gen
        return replace(gen, params=replace(gen.params, logprobs=True, top_logprobs=0))

    def see(self, chunk: Chunk) -> Chunk:
        self.text.append(chunk.text)
        self.logprobs.extend(chunk.logprobs or [])
        return chunk if self.turn.gen.params.logprobs else replace(chunk, logprobs=None)

    async def report(self, entry: dict[str, Any]) -> None:
        """The answer's confidence, in the tier's trail ``entry``."""
        if self.logprobs:
            messages = list(self.turn.gen.messages or [])
            confidence = await answer_confidence(messages, "".join(self.text), self.logprobs)
            entry["confidence"] = round(confidence, 4)


async def answer_confidence(
    messages: list[dict[str, Any]], text: str, logprobs: list[TokenLogprob]
) -> float:
    """What an exemplar is kept by: the probability of the answer's own tokens."""
    return await create_signal("answer_prob").score(Attempt(messages, text, logprobs), NoProbe())
