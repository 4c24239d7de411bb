"""Exact vector search over one contiguous float32 matrix per collection.

Why exact and not an ANN index: at 100k chunks × 384 dims one query is a 150 MB
matrix-vector product, a few milliseconds with BLAS, with perfect recall and no index to
build, tune or keep consistent. Rows are kept dense: a deleted row is filled by the last one
(``swap-remove``), so search never scans holes and additions append in amortised O(1).

The index is a cache of the database: it is rebuilt from the stored vectors at start-up,
and the knowledge base mutates it only inside the same lock as the SQLite commit, so a
reader sees either all of a write or none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class VectorIndex:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        import numpy as np

        self.dim = dim
        self._matrix = np.zeros((capacity, dim), dtype=np.float32)
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._slot: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self._slot

    @property
    def nbytes(self) -> int:
        return int(self._matrix[: len(self)].nbytes)

    def _grow(self, need: int) -> None:
        import numpy as np

        capacity = len(self._ids)
        if need <= capacity:
            return
        while capacity < need:
            capacity *= 2
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        ids = np.zeros(capacity, dtype=np.int64)
        n = len(self)
        matrix[:n] = self._matrix[:n]
        ids[:n] = self._ids[:n]
        self._matrix, self._ids = matrix, ids

    def add(self, ids: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) != len(vectors):
            raise ValueError("one vector per id")
        for chunk_id, vector in zip(ids, vectors, strict=True):
            slot = self._slot.get(chunk_id)
            if slot is None:
                slot = len(self)
                self._grow(slot + 1)
                self._slot[chunk_id] = slot
                self._ids[slot] = chunk_id
            self._matrix[slot] = vector

    def remove(self, ids: Iterable[int]) -> None:
        for chunk_id in ids:
            slot = self._slot.pop(chunk_id, None)
            if slot is None:
                continue
            last = len(self._slot)  # the old last slot, now one past the end
            if slot != last:
                moved = int(self._ids[last])
                self._matrix[slot] = self._matrix[last]
                self._ids[slot] = moved
                self._slot[moved] = slot

    def vector(self, chunk_id: int) -> npt.NDArray[np.float32] | None:
        slot = self._slot.get(chunk_id)
        return None if slot is None else self._matrix[slot]

    def search(
        self, query: npt.NDArray[np.float32], k: int, allowed: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine), best first; only ``allowed`` ids when given."""
        import numpy as np

        n = len(self)
        if n == 0 or k <= 0:
            return []
        if allowed is None:
            scores = self._matrix[:n] @ query
            ids = self._ids[:n]
        else:
            slots = np.fromiter(
                (s for s in (self._slot.get(i) for i in allowed) if s is not None), dtype=np.int64
            )
            if len(slots) == 0:
                return []
            scores = self._matrix[slots] @ query
            ids = self._ids[slots]
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in top]
