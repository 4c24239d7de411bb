"""Exact vector search over one contiguous float32 matrix per collection, copy-on-write.

Why exact and not an ANN index: at 100k chunks × 384 dims one query is a 150 MB
matrix-vector product, a few milliseconds with BLAS, with perfect recall and no index to
build, tune or keep consistent.

Why copy-on-write: a search must never make a commit wait, nor a commit a search. A search
reads one immutable ``VectorView`` (the matrix, its first ``n`` rows, an alive mask and the
id → row map) that it takes once; a write never changes anything a published view can
see. Rows are appended past every published view's ``n`` (in place while there is
capacity: no published view looks beyond its ``n``), a deletion copies only the alive mask
(one byte a row), and the writer then publishes the new view with one reference
assignment. Dead rows are squeezed out (a fresh matrix, renumbered) once they are a quarter
of the rows, so the cost of the copies stays amortised.

The index is a cache of the database: rebuilt from the stored vectors at start-up, and
mutated only by the knowledge base's single writer, together with the SQLite commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class VectorView:
    """One published state of the index: never mutated after it is published."""

    matrix: npt.NDArray[np.float32]  # rows [0, n) belong to this view
    ids: npt.NDArray[np.int64]
    alive: npt.NDArray[np.bool_]  # length n
    n: int
    dead: int
    slot: dict[int, int]  # chunk id → row; rows >= n are a newer view's, ignored here

    def _row(self, chunk_id: int) -> int | None:
        row = self.slot.get(chunk_id)
        if row is None or row >= self.n or not self.alive[row]:
            return None
        return row

    def __contains__(self, chunk_id: int) -> bool:
        return self._row(chunk_id) is not None

    def vector(self, chunk_id: int) -> npt.NDArray[np.float32] | None:
        row = self._row(chunk_id)
        return None if row is None else self.matrix[row]

    def search(
        self, query: npt.NDArray[np.float32], k: int, allowed: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine), best first; only ``allowed`` ids when given."""
        import numpy as np

        if self.n - self.dead == 0 or k <= 0:
            return []
        if allowed is None:
            scores = self.matrix[: self.n] @ query
            if self.dead:
                scores[~self.alive] = -np.inf
            ids = self.ids[: self.n]
            live = self.n - self.dead
        else:
            rows = np.fromiter(
                (r for r in (self._row(i) for i in allowed) if r is not None), dtype=np.int64
            )
            if len(rows) == 0:
                return []
            scores = self.matrix[rows] @ query
            ids = self.ids[rows]
            live = len(rows)
        k = min(k, live)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in top]


class VectorIndex:
    """The writer's side: ``add`` and ``remove`` build the next view, ``view`` is the latest
    published one (what searches read)."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        import numpy as np

        self.dim = dim
        self.view = VectorView(
            np.zeros((capacity, dim), dtype=np.float32),
            np.zeros(capacity, dtype=np.int64),
            np.zeros(0, dtype=bool),
            0,
            0,
            {},
        )

    def __len__(self) -> int:
        return self.view.n - self.view.dead

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self.view

    @property
    def nbytes(self) -> int:
        return len(self) * self.dim * 4

    def vector(self, chunk_id: int) -> npt.NDArray[np.float32] | None:
        return self.view.vector(chunk_id)

    def search(
        self, query: npt.NDArray[np.float32], k: int, allowed: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        return self.view.search(query, k, allowed)

    def add(self, ids: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        """Append rows (an id already present is replaced: its old row dies)."""
        import numpy as np

        if len(ids) != len(vectors):
            raise ValueError("one vector per id")
        if not len(ids):
            return
        replaced = [i for i in ids if i in self.view]
        self.remove(replaced)
        v = self.view
        # The map is shared with published views (they ignore rows at or past their own n),
        # except when an id moves to a new row: then views before this one get their own.
        matrix, id_array, slot = v.matrix, v.ids, dict(v.slot) if replaced else v.slot
        need = v.n + len(ids)
        if need > len(id_array):  # a bigger matrix; published views keep the old one
            capacity = max(need, 2 * len(id_array))
            matrix = np.zeros((capacity, self.dim), dtype=np.float32)
            id_array = np.zeros(capacity, dtype=np.int64)
            matrix[: v.n] = v.matrix[: v.n]
            id_array[: v.n] = v.ids[: v.n]
        matrix[v.n : need] = vectors
        id_array[v.n : need] = np.asarray(ids, dtype=np.int64)
        slot.update((int(c), v.n + i) for i, c in enumerate(ids))
        alive = np.concatenate([v.alive, np.ones(len(ids), dtype=bool)])
        self.view = VectorView(matrix, id_array, alive, need, v.dead, slot)

    def remove(self, ids: Iterable[int]) -> None:
        import numpy as np

        v = self.view
        rows = [r for r in (v._row(i) for i in ids) if r is not None]
        if not rows:
            return
        alive = v.alive.copy()
        alive[rows] = False
        dead = v.dead + len(rows)
        if dead > max(1024, v.n // 4):
            keep = np.flatnonzero(alive)
            capacity = max(1024, 2 * len(keep))
            matrix = np.zeros((capacity, self.dim), dtype=np.float32)
            id_array = np.zeros(capacity, dtype=np.int64)
            matrix[: len(keep)] = v.matrix[keep]
            id_array[: len(keep)] = v.ids[keep]
            slot = {int(c): r for r, c in enumerate(id_array[: len(keep)])}
            self.view = VectorView(
                matrix, id_array, np.ones(len(keep), dtype=bool), len(keep), 0, slot
            )
            return
        self.view = VectorView(v.matrix, v.ids, alive, v.n, dead, v.slot)
