"""Session turns indexed by meaning: each turn embedded (the knowledge base's MiniLM by
default), in the background after it is stored, and searched by cosine beside FTS5.

Embedding never delays an answer: the turn is stored (durable, searchable by keywords) first,
then ``schedule`` embeds what is missing in a worker thread, one task per session, a small
batch at a time while no user's request is being served or queued; a query is embedded only
once the background task has loaded the embedder. A turn not embedded yet is still found by
its words; a turn embedded is found by a paraphrase that shares none. The embedder is whatever
another feature provides as ``Embeddings`` on the kernel, else the one the ``[dialogue]``
settings name; the same weights load once per process, so sessions and the knowledge base
share them. An embedder that cannot load (no sentence-transformers) leaves recall to keywords
and says so once in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from strata.core.errors import StrataError
from strata.core.protocols import Embeddings
from strata.features.dialogue.render import speaker
from strata.features.dialogue.store import SessionStore, Turn
from strata.features.dialogue.tasks import SessionTasks

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger("strata.features.dialogue")

BATCH = 16  # ~0.3 s of MiniLM on two busy cores: how long a new question may wait behind it


def indexed_text(turn: Turn) -> str:
    """What is embedded: who said it and what, so "what did Caroline research" meets
    Caroline's own turns."""
    return f"{speaker(turn)}: {turn.content}" if turn.name else turn.content


class TurnIndex:
    def __init__(
        self,
        store: SessionStore,
        embeddings: Callable[[], Embeddings | None],
        serving_users: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self._resolve = embeddings
        self.serving_users = serving_users
        self._embedder: Embeddings | None = None
        self._failed = False
        self.tasks = SessionTasks()
        self._again: set[int] = set()  # sessions given turns while their task ran

    @property
    def embedder(self) -> Embeddings | None:
        """Resolved on first use (loading MiniLM takes seconds; a process that never keeps a
        session never pays it)."""
        if self._embedder is None and not self._failed:
            try:
                self._embedder = self._resolve()
            except StrataError as exc:
                log.warning("session turns are recalled by keywords only: %s", exc.message)
            self._failed = self._embedder is None
        return self._embedder

    def schedule(self, sid: int) -> None:
        """Embed ``sid``'s new turns in the background, unless that is already under way."""
        if self._failed:
            return
        if sid in self.tasks:
            self._again.add(sid)  # its batch may have been read before these turns
            return
        self.tasks.start(sid, self._run(sid))

    async def settle(self) -> None:
        """Wait until every scheduled session is indexed (tests, benchmarks, shutdown)."""
        await self.tasks.settle()

    async def close(self) -> None:
        await self.tasks.close()

    async def _run(self, sid: int) -> None:
        try:
            while True:
                # The CPU the embedder needs is the one a user's answer needs: each batch
                # waits until no user request is being served or queued.
                while self.serving_users():
                    await asyncio.sleep(0.05)
                if await asyncio.to_thread(self.step, sid):
                    continue
                if sid not in self._again:
                    break
                self._again.discard(sid)
        except StrataError as exc:
            log.warning("indexing session turns failed (retried at the next turn): %s", exc)

    def step(self, sid: int) -> bool:
        """Embed one batch of ``sid``'s unembedded turns; False once none is left."""
        embedder = self.embedder
        if embedder is None:
            return False
        pending = self.store.unembedded(sid, embedder.name, BATCH)
        if not pending:
            return False
        vectors = embedder.embed([indexed_text(t) for t in pending])
        rows = [(t.seq, v.astype("<f4").tobytes()) for t, v in zip(pending, vectors, strict=True)]
        self.store.set_vectors(sid, embedder.name, rows)
        return len(pending) == BATCH

    def search(self, sid: int, query: str, before: int, limit: int) -> list[tuple[Turn, float]]:
        """The turns before ``before`` closest in meaning to ``query``, with their cosine,
        best first (only turns embedded so far). Never loads the embedder: until the
        background task has, recall is by keywords, and the answer does not wait for it."""
        embedder = self._embedder
        if embedder is None or limit <= 0 or not query.strip():
            return []
        import numpy as np

        stored = self.store.vectors(sid, embedder.name, before)
        if not stored:
            return []
        matrix: npt.NDArray[np.float32] = np.stack(
            [np.frombuffer(blob, dtype="<f4") for _, blob in stored]
        )
        scores = matrix @ embedder.embed([query])[0]
        best = np.argsort(-scores)[:limit]
        return [(stored[i][0], float(scores[i])) for i in best]
