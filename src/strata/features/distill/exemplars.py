"""Exemplars for open-ended traffic (``strata.core.protocols.Exemplars``): big-tier answers
that were kept become worked examples, and the small tier gets the most similar ones in its
prompt.

An open-ended turn is a routed chat turn with no closed label set (``labels.label_set``) and
no tools. Its answer is *kept* when the big tier gave it with a confidence (the probability
of its answer tokens, which the router reports for such turns) of at least
``exemplars_keep_confidence``, or when a user gave it a thumbs-up or a correction (then
whichever tier answered: the user vouched for it). A thumbs-down drops it.

For a new open-ended request the prompt (the last user message) is embedded once with the
distill embedder (MiniLM by default) and compared, by cosine, with the tenant's exemplars'
prompts; the ``exemplars_k`` most similar at or above ``exemplars_min_similarity`` are
offered, and the router fits them into ``exemplars_tokens`` and the tier's window. That
embedding is kept for the turn: if its answer is kept, it is the exemplar's vector. Other
vectors are computed by a background job, never on the answer path.

Tenants never share exemplars: each tenant's are an in-memory matrix loaded from the store
on first use and reloaded after a change (on other replicas too, by the store's notice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from strata.core.embeddings import Embedder
from strata.core.events import FeedbackGiven
from strata.core.protocols import Exemplar, ExemplarPick
from strata.core.storage import Repository
from strata.core.turn import Turn, TurnCompleted
from strata.features.distill.exemplar_store import CHANGED, ExemplarStore
from strata.features.distill.labels import label_set, request_text
from strata.features.distill.settings import DistillSettings

log = logging.getLogger("strata.features.distill.exemplars")
MAX_PENDING = 1000  # prompt embeddings waiting for their turn to complete


def open_ended(turn: Turn) -> bool:
    """A chat turn whose answer is free text: no label set and no tools."""
    return (
        turn.gen.kind == "chat"
        and label_set(turn) is None
        and not turn.gen.passthrough.get("tools")
        and bool(request_text(turn))
    )


def most_similar(
    query: npt.NDArray[np.float32], matrix: npt.NDArray[np.float32], k: int, floor: float
) -> list[tuple[int, float]]:
    """Rows of ``matrix`` (unit vectors) by cosine to ``query``: the ``k`` best at or above
    ``floor``, best first (ties by row, the older first)."""
    if len(matrix) == 0:
        return []
    sims = matrix @ np.asarray(query, np.float32)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(i), float(sims[i])) for i in order if sims[i] >= floor]


@dataclass
class Index:
    """One tenant's exemplars with a vector, as a matrix for one product per request."""

    ids: list[str]
    prompts: list[str]
    answers: list[str]
    matrix: npt.NDArray[np.float32]


class ExemplarBank:
    def __init__(
        self, db: Repository, settings: DistillSettings, embedder: Callable[[], Embedder]
    ) -> None:
        self.settings = settings
        self.store = ExemplarStore(db)
        self._embedder = embedder
        self._indexes: dict[str, Index] = {}
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}  # response id → its prompt's
        self._background: set[asyncio.Task[Any]] = set()
        db.listen(CHANGED, self._changed)

    def _changed(self, tenant: str | None) -> None:
        if tenant is None:
            self._indexes.clear()
        else:
            self._indexes.pop(tenant, None)

    @property
    def on(self) -> bool:
        return self.settings.enabled and self.settings.exemplars

    # ---- the router's side ----

    def wants_confidence(self, turn: Turn) -> bool:
        return self.on and open_ended(turn)

    async def pick(self, turn: Turn) -> ExemplarPick | None:
        if not self.on or not open_ended(turn):
            return None
        index = await self._index(turn.caller.tenant)
        if not index.ids:
            return None
        embedder = self._embedder()
        vector = (await asyncio.to_thread(embedder.embed, [request_text(turn)]))[0]
        if len(self._vectors) > MAX_PENDING:  # turns that failed never collect theirs
            self._vectors.clear()
        self._vectors[turn.response_id] = vector
        found = most_similar(
            vector,
            index.matrix,
            self.settings.exemplars_k,
            self.settings.exemplars_min_similarity,
        )
        if not found:
            return None
        exemplars = tuple(
            Exemplar(index.ids[i], index.prompts[i], index.answers[i], round(sim, 4))
            for i, sim in found
        )
        return ExemplarPick(exemplars, self.settings.exemplars_tokens)

    async def _index(self, tenant: str) -> Index:
        index = self._indexes.get(tenant)
        if index is None:
            rows = await self.store.db.run(self.store.kept, tenant)
            rows = [r for r in rows if r.vector is not None]
            dim = len(rows[0].vector) if rows and rows[0].vector is not None else 0
            matrix = (
                np.stack([r.vector for r in rows if r.vector is not None]).astype(np.float32)
                if rows
                else np.zeros((0, dim), np.float32)
            )
            index = Index(
                [r.response_id for r in rows],
                [r.prompt for r in rows],
                [r.answer for r in rows],
                matrix,
            )
            self._indexes[tenant] = index
        return index

    # ---- learning from turns and feedback ----

    async def on_turn(self, event: TurnCompleted) -> None:
        turn, result = event.turn, event.result
        vector = self._vectors.pop(turn.response_id, None)
        route = result.report.get("route")
        if not self.on or route is None or not result.choices or not open_ended(turn):
            return
        choice = result.choices[0]
        if not choice.text.strip() or choice.finish_reason not in (None, "stop"):
            return  # a cut-off answer is no worked example
        last = route["tiers"][-1]
        tier = "big" if result.served_by == last["model"] else "small"
        confidence = last.get("confidence") if tier == "big" else None
        kept = confidence is not None and confidence >= self.settings.exemplars_keep_confidence
        tenant = turn.caller.tenant
        await self.store.db.run(
            lambda: self.store.record(
                tenant,
                turn.response_id,
                request_text(turn),
                choice.text,
                tier,
                confidence,
                kept,
                vector,
                self.settings.exemplars_max,
            )
        )
        if kept:
            self._changed(tenant)
            if vector is None:
                self._embed_later(tenant, turn.response_id)

    async def on_feedback(self, event: FeedbackGiven) -> None:
        """A thumbs-up or a correction keeps the turn's answer (the corrected one); a
        thumbs-down drops it."""
        if not self.on:
            return
        if event.edited_text is not None and event.edited_text.strip():
            kept, answer = True, event.edited_text
        elif event.rating != 0:
            kept, answer = event.rating > 0, None
        else:
            return
        tenant = event.caller.tenant
        judged = await self.store.db.run(
            self.store.judge, tenant, event.response_id, kept, answer, self.settings.exemplars_max
        )
        if not judged:
            return
        self._changed(tenant)
        if kept:
            row = await self.store.db.run(self.store.row, tenant, event.response_id)
            if row is not None and row.vector is None:
                self._embed_later(tenant, event.response_id)

    def _embed_later(self, tenant: str, response_id: str) -> None:
        """Embed a kept exemplar's prompt in the background; it can be picked once done."""

        async def run() -> None:
            try:
                row = await self.store.db.run(self.store.row, tenant, response_id)
                if row is None:
                    return
                embedder = self._embedder()
                vector = (await asyncio.to_thread(embedder.embed, [row.prompt]))[0]
                await self.store.db.run(self.store.save_vector, response_id, vector)
                self._changed(tenant)
            except Exception:  # the exemplar waits for the next chance; the answer is sent
                log.exception("embedding exemplar %s failed", response_id)

        job = asyncio.ensure_future(run())
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def listing(self, tenant: str) -> dict[str, Any]:
        """How many exemplars the tenant has, and the settings that use them."""
        return {
            "enabled": self.on,
            **self.store.counts(tenant),
            "k": self.settings.exemplars_k,
            "min_similarity": self.settings.exemplars_min_similarity,
            "tokens": self.settings.exemplars_tokens,
        }

    async def drain(self) -> None:
        """Wait for background embeddings (tests; shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
