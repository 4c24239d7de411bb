"""Document frequencies of words per collection, in memory, to prune keyword queries.

Why: FTS5 scores every row that matches any term of an OR query with ``bm25()``, and a
question's common words ("patients", "increased", "cells") match a large share of the
collection, so at 100k chunks almost all the time goes to scoring rows that cannot reach the
top. Those words carry little BM25 weight (low idf) anyway. Dropping query words that occur
in more than ``max_df`` of the chunks (always keeping the ``keep`` rarest) turns a scan of
most of the collection into a scan of a few short posting lists.

The counts are kept exactly: built from the stored chunks when a collection is first used,
and updated under the same writer lock as the commit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w.strip("_")}


class TermStats:
    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0

    def add(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.df.update(words(text))
            self.n += 1

    def remove(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.df.subtract(words(text))
            self.n -= 1

    def prune(self, terms: list[str], max_df: float, keep: int = 3) -> list[str]:
        """``terms`` without the ones in more than ``max_df`` of the chunks, keeping at least
        the ``keep`` rarest (a query of only common words still matches something)."""
        if max_df >= 1.0 or self.n == 0 or len(terms) <= keep:
            return terms
        limit = max_df * self.n
        kept = [t for t in terms if self.df.get(t, 0) <= limit]
        if len(kept) >= keep:
            return kept
        rarest = sorted(terms, key=lambda t: self.df.get(t, 0))[:keep]
        return [t for t in terms if t in rarest]
