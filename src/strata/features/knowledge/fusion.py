"""Combining the keyword and the vector ranking into one.

Two methods, chosen by the retrieval benchmark (``bench/retrieval.py``) on labelled queries:

- weighted reciprocal rank fusion: ``Σ w_i / (k + rank_i)``; needs no score calibration,
  robust when one ranking is poor;
- convex combination of min–max normalised scores: ``(1 − α)·bm25' + α·cos'``; uses how
  much better the first hit is than the tenth, which ranks alone throw away.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Ranking = Sequence[tuple[int, float]]
"""(id, score) pairs, best first; higher score is better."""


def rrf(rankings: Sequence[Ranking], weights: Sequence[float], k: float = 60.0) -> Ranking:
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def _normalised(ranking: Ranking) -> dict[int, float]:
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    low, high = min(scores), max(scores)
    span = high - low
    return {item: (s - low) / span if span > 0 else 1.0 for item, s in ranking}


def convex(rankings: Sequence[Ranking], weights: Sequence[float]) -> Ranking:
    """An id missing from a ranking scores 0 there (below that ranking's last hit)."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for item, score in _normalised(ranking).items():
            fused[item] = fused.get(item, 0.0) + weight * score
    return sorted(fused.items(), key=lambda kv: -kv[1])


def fuse(
    method: str, keyword: Ranking, vector: Ranking, vector_weight: float, rrf_k: float = 60.0
) -> Ranking:
    weights = (1.0 - vector_weight, vector_weight)
    if method == "convex":
        return convex((keyword, vector), weights)
    return rrf((keyword, vector), weights, rrf_k)


# Words too common to select anything: dropping them keeps FTS5's OR query from walking
# posting lists that cover most of the collection (the latency at 100k chunks) while BM25's
# idf gives them almost no weight anyway.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)

_TERM = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, prune: Callable[[list[str]], list[str]] | None = None) -> list[str]:
    """The distinct non-stopword words of ``text`` (all its words if every one is a stopword),
    lower-cased, in order; ``prune`` may drop more, e.g. words too common to matter."""
    terms = [t for t in _TERM.findall(text.lower()) if t.strip("_")]
    kept = [t for t in terms if t not in STOPWORDS] or terms
    unique = list(dict.fromkeys(kept))
    return prune(unique) if prune is not None and unique else unique


def match_query(text: str, prune: Callable[[list[str]], list[str]] | None = None) -> str | None:
    """An FTS5 query: the OR of the quoted :func:`query_terms` of ``text``."""
    unique = query_terms(text, prune)
    if not unique:
        return None
    return " OR ".join(f'"{t}"' for t in unique)
