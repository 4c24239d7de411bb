"""In-memory BM25 per collection, scored like FTS5's ``bm25()``, over the query's postings.

Why: FTS5's ``bm25()`` runs once per row matching ANY word of the OR query (153 ms at 100k
chunks); here each term has a numpy posting list (chunk slot, title count, body count), so a
query is a few array operations over its own terms' postings: milliseconds at 100k chunks.

Tokens are FTS5's own: every whitespace-separated word is tokenised ONCE by a private
in-memory FTS5 table with the same ``porter unicode61`` tokenizer (read back through
``fts5vocab``) and cached as a tuple of term ids, so the terms, stems and counts are exactly
those of ``chunks_fts`` (FTS5 never joins tokens across whitespace).

The score is FTS5's formula (k1 = 1.2, b = 0.75, idf floored at 1e-6, a row's length = all
its tokens including the ``coll`` token, title counts weighted by ``title_weight``), except
that N, document frequencies and the average length are the collection's own, so tenants
never shift each other's scores (with a single collection the scores equal FTS5's).

Like the vector matrix, this is a cache of the database, built from the stored chunks and
changed only by the knowledge base's single writer with the commit: additions go to small
per-term delta lists, deletions clear an alive bit; both are folded into fresh packed arrays
once they grow past a fraction of the index (amortised O(a write's tokens)). Copy-on-write:
the writer changes a ``clone()`` (own copies of the per-slot arrays, the slot map and the
delta map; packed postings and delta entries are replaced, never written in place) and
publishes it with one assignment, so searches and commits never wait for each other.
"""

from __future__ import annotations

import copy
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

K1, B = 1.2, 0.75  # FTS5's


class Tokens:
    """FTS5 ``porter unicode61`` tokens of whitespace-separated words, as global term ids."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute("CREATE VIRTUAL TABLE w USING fts5(x, tokenize = 'porter unicode61')")
        self._conn.execute("CREATE VIRTUAL TABLE wv USING fts5vocab(w, instance)")
        self._words: dict[str, tuple[int, ...]] = {}
        self.term_ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def learn(self, words: Iterable[str]) -> None:
        """Tokenise the words not seen before (in batches, through FTS5 itself)."""
        missing = list({w for w in words if w not in self._words})
        if not missing:
            return
        with self._lock:
            missing = [w for w in missing if w not in self._words]
            for start in range(0, len(missing), 20_000):
                part = missing[start : start + 20_000]
                self._conn.executemany(
                    "INSERT INTO w (rowid, x) VALUES (?, ?)", list(enumerate(part))
                )
                rows = self._conn.execute("SELECT doc, offset, term FROM wv").fetchall()
                self._conn.execute("DELETE FROM w")
                found: dict[int, list[tuple[int, str]]] = {}
                for doc, offset, term in rows:
                    found.setdefault(int(doc), []).append((int(offset), str(term)))
                for i, word in enumerate(part):
                    terms = [t for _, t in sorted(found.get(i, []))]
                    self._words[word] = tuple(
                        self.term_ids.setdefault(t, len(self.term_ids)) for t in terms
                    )

    def ids(self, text: str) -> list[int]:
        """The term ids of ``text``'s tokens, in order (repeats kept)."""
        words = text.split()
        try:
            return list(chain.from_iterable(map(self._words.__getitem__, words)))
        except KeyError:
            self.learn(words)
            return list(chain.from_iterable(map(self._words.__getitem__, words)))

    def term(self, word: str) -> tuple[int, ...]:
        self.learn([word])
        return self._words[word]


TOKENS = Tokens()


class KeywordIndex:
    def __init__(self, tokens: Tokens = TOKENS) -> None:
        import numpy as np

        self.tokens = tokens
        self._slot: dict[int, int] = {}  # chunk id → slot (slots are not reused until repacked)
        self._ids = np.zeros(0, dtype=np.int64)
        self._len = np.zeros(0, dtype=np.float64)
        self._alive = np.zeros(0, dtype=bool)
        self._terms_of: list[npt.NDArray[np.int64]] = []  # slot → its distinct term ids
        self._used = 0  # slots handed out
        self._df = np.zeros(0, dtype=np.int64)
        self.total = 0.0  # tokens in the live rows
        # packed postings: term t's entries are [_ptr[t], _ptr[t + 1])
        self._ptr = np.zeros(1, dtype=np.int64)
        self._p_slot = np.zeros(0, dtype=np.int64)
        self._p_title = np.zeros(0, dtype=np.float64)
        self._p_body = np.zeros(0, dtype=np.float64)
        self._delta: dict[int, tuple[list[int], list[int], list[int]]] = {}  # never mutated
        self._delta_n = 0
        self._blocks: list[tuple[Any, Any, Any, Any]] = []  # bulk adds, until repacked

    def __len__(self) -> int:
        return len(self._slot)

    def clone(self) -> KeywordIndex:
        """A copy the writer may change while searches read this one (see the module doc)."""
        twin = copy.copy(self)
        twin._slot = dict(self._slot)
        twin._ids, twin._len = self._ids.copy(), self._len.copy()
        twin._alive, twin._df = self._alive.copy(), self._df.copy()
        twin._terms_of = list(self._terms_of)
        twin._delta, twin._blocks = dict(self._delta), list(self._blocks)
        return twin

    def df(self, term: int) -> int:
        return int(self._df[term]) if term < len(self._df) else 0

    def word_df(self, word: str) -> int:
        """Chunks holding ``word`` (its rarest token, for a word FTS5 splits)."""
        return min((self.df(t) for t in self.tokens.term(word)), default=0)

    def prune(self, words: list[str], max_df: float, keep: int = 3) -> list[str]:
        """``words`` without those in over ``max_df`` of the chunks, keeping the ``keep``
        rarest. Why: common words have little idf but the longest posting lists."""
        if max_df >= 1.0 or not self._slot or len(words) <= keep:
            return words
        limit = max_df * len(self._slot)
        kept = [w for w in words if self.word_df(w) <= limit]
        if len(kept) >= keep:
            return kept
        rarest = sorted(words, key=self.word_df)[:keep]
        return [w for w in words if w in rarest]

    # writes ------------------------------------------------------------------------------

    def _grow(self, slots: int, terms: int) -> None:
        import numpy as np

        if slots > len(self._ids):
            cap = max(slots, 2 * len(self._ids), 1024)
            self._ids = np.resize(self._ids, cap)
            self._len = np.resize(self._len, cap)
            alive = np.zeros(cap, dtype=bool)
            alive[: self._used] = self._alive[: self._used]
            self._alive = alive
        if terms > len(self._df):
            df = np.zeros(max(terms, 2 * len(self._df), 1024), dtype=np.int64)
            df[: len(self._df)] = self._df
            self._df = df

    def add(self, ids: Sequence[int], titles: Sequence[str], bodies: Sequence[str]) -> None:
        """Index chunks (an id already present is replaced)."""
        import numpy as np

        self.remove([i for i in ids if i in self._slot])
        if len(ids) >= max(512, len(self._slot) // 8):
            self._bulk(ids, titles, bodies)
            return
        self._grow(self._used + len(ids), len(self.tokens.term_ids))
        fresh: dict[int, tuple[list[int], list[int], list[int]]] = {}
        for chunk_id, title, body in zip(ids, titles, bodies, strict=True):
            in_title = Counter(self.tokens.ids(title))
            in_body = Counter(self.tokens.ids(body))
            self._grow(0, len(self.tokens.term_ids))
            terms = list(in_title.keys() | in_body.keys())
            slot = self._used
            self._used += 1
            self._slot[chunk_id] = slot
            self._ids[slot] = chunk_id
            length = in_title.total() + in_body.total() + 1  # + the coll token
            self._len[slot] = length
            self._alive[slot] = True
            self.total += length
            term_array = np.asarray(terms, dtype=np.int64)
            self._terms_of.append(term_array)
            self._df[term_array] += 1
            for term in terms:
                entry = fresh.get(term)
                if entry is None:
                    entry = fresh[term] = ([], [], [])
                entry[0].append(slot)
                entry[1].append(in_title.get(term, 0))
                entry[2].append(in_body.get(term, 0))
            self._delta_n += len(terms)
        for term, (slots, title_tf, body_tf) in fresh.items():
            # A new tuple per term (once per call): a clone shares the old one.
            old = self._delta.get(term)
            self._delta[term] = (
                (old[0] + slots, old[1] + title_tf, old[2] + body_tf)
                if old
                else (slots, title_tf, body_tf)
            )
        if self._delta_n > max(50_000, len(self._p_slot) // 2):
            self._repack()

    def _bulk(self, ids: Sequence[int], titles: Sequence[str], bodies: Sequence[str]) -> None:
        """Many chunks at once (opening a collection, a large batch): counted with numpy
        rather than per chunk in Python, then packed."""
        import numpy as np

        start, n_new = self._used, len(ids)
        end = start + n_new
        flat_title: list[int] = []
        flat_body: list[int] = []
        n_title, n_body = [], []
        for title_text, body_text in zip(titles, bodies, strict=True):
            in_title, in_body = self.tokens.ids(title_text), self.tokens.ids(body_text)
            flat_title.extend(in_title)
            flat_body.extend(in_body)
            n_title.append(len(in_title))
            n_body.append(len(in_body))
        self._grow(end, len(self.tokens.term_ids))
        new_slots = np.arange(start, end, dtype=np.int64)
        key_title, tf_title = _counts(
            np.asarray(flat_title, dtype=np.int64) * end + np.repeat(new_slots, n_title)
        )
        key_body, tf_body = _counts(
            np.asarray(flat_body, dtype=np.int64) * end + np.repeat(new_slots, n_body)
        )
        keys = _counts(np.concatenate([key_title, key_body]))[0]
        title = np.zeros(len(keys), dtype=np.float64)
        body = np.zeros(len(keys), dtype=np.float64)
        title[np.searchsorted(keys, key_title)] = tf_title
        body[np.searchsorted(keys, key_body)] = tf_body
        terms, slots = keys // end, keys % end
        lengths = np.asarray(n_title, dtype=np.float64) + np.asarray(n_body) + 1.0
        self._ids[start:end] = np.asarray(ids, dtype=np.int64)
        self._len[start:end] = lengths
        self._alive[start:end] = True
        self.total += float(lengths.sum())
        self._slot.update((int(c), start + i) for i, c in enumerate(ids))
        self._df[: len(self.tokens.term_ids)] += np.bincount(
            terms, minlength=len(self.tokens.term_ids)
        )
        by_slot = np.argsort(slots, kind="stable")
        per_slot = np.bincount(slots - start, minlength=n_new)
        self._terms_of.extend(np.split(terms[by_slot], np.cumsum(per_slot)[:-1]))
        self._used = end
        self._blocks.append((terms, slots, title, body))
        self._repack()

    def remove(self, ids: Iterable[int]) -> None:
        for chunk_id in ids:
            slot = self._slot.pop(chunk_id, None)
            if slot is None:
                continue
            self._alive[slot] = False
            self.total -= float(self._len[slot])
            self._df[self._terms_of[slot]] -= 1
        dead = self._used - len(self._slot)
        if dead > max(1024, len(self._slot)):
            self._repack()

    def _repack(self) -> None:
        """Fold the delta lists into the packed arrays and drop dead slots (renumbering)."""
        import numpy as np

        n_terms = len(self._ptr) - 1
        base_terms = np.repeat(np.arange(n_terms, dtype=np.int64), np.diff(self._ptr))
        parts_t: list[Any] = [base_terms]
        parts_s: list[Any] = [self._p_slot]
        parts_a: list[Any] = [self._p_title]
        parts_b: list[Any] = [self._p_body]
        for block in self._blocks:
            parts_t.append(block[0])
            parts_s.append(block[1])
            parts_a.append(block[2])
            parts_b.append(block[3])
        for term, (d_slots, d_title, d_body) in self._delta.items():
            parts_t.append(np.full(len(d_slots), term, dtype=np.int64))
            parts_s.append(np.asarray(d_slots, dtype=np.int64))
            parts_a.append(np.asarray(d_title, dtype=np.float64))
            parts_b.append(np.asarray(d_body, dtype=np.float64))
        terms, slots = np.concatenate(parts_t), np.concatenate(parts_s)
        title_tf, body_tf = np.concatenate(parts_a), np.concatenate(parts_b)
        alive = self._alive[: self._used]
        keep = alive[slots]
        renumber = np.cumsum(alive) - 1
        terms, slots = terms[keep], renumber[slots[keep]]
        order = np.argsort(terms, kind="stable")
        n_all = len(self.tokens.term_ids)
        self._ptr = np.zeros(n_all + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=n_all), out=self._ptr[1:])
        self._p_slot = slots[order]
        self._p_title = title_tf[keep][order]
        self._p_body = body_tf[keep][order]
        live = np.flatnonzero(alive)
        n = len(live)
        self._ids = np.resize(self._ids[live], max(n, 1024))
        self._len = np.resize(self._len[live], max(n, 1024))
        self._alive = np.zeros(max(n, 1024), dtype=bool)
        self._alive[:n] = True
        self._terms_of = [self._terms_of[s] for s in live]
        self._slot = {int(c): s for s, c in enumerate(self._ids[:n])}
        self._used = n
        self._delta, self._delta_n, self._blocks = {}, 0, []

    # search ------------------------------------------------------------------------------

    def _postings(
        self, term: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        import numpy as np

        slots: list[Any] = []
        title: list[Any] = []
        body: list[Any] = []
        if term < len(self._ptr) - 1:
            lo, hi = int(self._ptr[term]), int(self._ptr[term + 1])
            slots, title, body = (
                [self._p_slot[lo:hi]],
                [self._p_title[lo:hi]],
                [self._p_body[lo:hi]],
            )
        extra = self._delta.get(term)
        if extra is not None:
            slots.append(np.asarray(extra[0], dtype=np.int64))
            title.append(np.asarray(extra[1], dtype=np.float64))
            body.append(np.asarray(extra[2], dtype=np.float64))
        if not slots:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty, empty
        if len(slots) == 1:
            return slots[0], title[0], body[0]
        return np.concatenate(slots), np.concatenate(title), np.concatenate(body)

    def search(
        self,
        terms: Sequence[int],
        k: int,
        title_weight: float,
        allowed: Iterable[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, BM25) for the OR of ``terms`` (a term given twice counts twice,
        as two FTS5 phrases would), best first; only ``allowed`` chunk ids when given."""
        import numpy as np

        n_live = len(self._slot)
        if n_live == 0 or k <= 0 or not terms:
            return []
        n = self._used
        avgdl = self.total / n_live
        scores = np.zeros(n, dtype=np.float64)
        matched = np.zeros(n, dtype=bool)
        norm = K1 * (1.0 - B + B * self._len[:n] / avgdl)
        for term, times in Counter(terms).items():
            df = self.df(term)
            if df == 0:
                continue
            idf = inverse_df(n_live, df)
            slots, title, body = self._postings(term)
            freq = title_weight * title + body
            scores[slots] += times * idf * (freq * (K1 + 1.0)) / (freq + norm[slots])
            matched[slots] = True
        matched &= self._alive[:n]
        if allowed is not None:
            mask = np.zeros(n, dtype=bool)
            wanted = [s for s in (self._slot.get(i) for i in allowed) if s is not None]
            mask[np.asarray(wanted, dtype=np.int64)] = True
            matched &= mask
        candidates = np.flatnonzero(matched)
        if len(candidates) == 0:
            return []
        k = min(k, len(candidates))
        cand_scores = scores[candidates]
        top = candidates[np.argpartition(-cand_scores, k - 1)[:k]]
        ids = self._ids[top]
        top = top[np.lexsort((ids, -scores[top]))]
        return [(int(self._ids[s]), float(scores[s])) for s in top]


def inverse_df(n_live: int, df: int) -> float:
    """FTS5's idf, floored at 1e-6."""
    idf = math.log((n_live - df + 0.5) / (df + 0.5))
    return idf if idf > 0.0 else 1e-6


def _counts(values: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sorted distinct values and how often each occurs (``np.unique`` with counts, by one
    in-place sort: numpy's hash-based unique is several times slower on ~10M keys)."""
    import numpy as np

    values.sort()
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    return values[starts], np.diff(np.append(starts, len(values)))
