"""Does the collection hold the answer? A calibrated score from both rankings, not one cosine.

Why not the best cosine alone: on SciFact a question whose relevant abstracts were removed
still finds a near miss on the same topic, with a cosine as high as a real answer's
(balanced accuracy 0.60 with the best threshold). What differs is how the two rankings
behave: when the answer is there, the keyword and the vector search tend to agree on the
same document and it stands out from the runner-up in both; a near miss is one of several
similar documents, and the two searches pick different ones. So the evidence is a logistic
model over a few such signals (``SIGNALS``), fitted by ``bench/retrieval.py`` on SciFact
questions with and without their relevant documents; its weights are the settings'
defaults (``evidence_weights``, ``evidence_bias``) and ``min_evidence`` is the cut on the
resulting probability.

Both rankings are per document (a document ranks by its best chunk), best first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Ranking = Sequence[tuple[str, float]]

SIGNALS = (
    "cosine",  # the best cosine
    "cosine_lead",  # best cosine minus the mean of the next nine
    "keyword_coverage",  # best BM25 / the query's BM25 ceiling (every term, saturated)
    "keyword_lead",  # 1 - mean of the next nine BM25 scores / the best
    "agree",  # 1 when both searches put the same document first
)
_PACK = 9  # runners-up the leads are measured against


def _lead(scores: list[float]) -> list[float]:
    rest = scores[1 : 1 + _PACK]
    return rest + [0.0] * (_PACK - len(rest))


def signals(keyword: Ranking, vector: Ranking, keyword_ceiling: float) -> dict[str, float]:
    """The ``SIGNALS`` of one question (0 where a ranking is empty). ``keyword_ceiling``:
    the most BM25 any document could score for the query (``KeywordIndex.ceiling``)."""
    out = dict.fromkeys(SIGNALS, 0.0)
    if vector:
        best = vector[0][1]
        out["cosine"] = best
        out["cosine_lead"] = best - sum(_lead([s for _, s in vector])) / _PACK
    if keyword and keyword[0][1] > 0:
        best = keyword[0][1]
        out["keyword_coverage"] = best / keyword_ceiling if keyword_ceiling > 0 else 0.0
        out["keyword_lead"] = 1.0 - sum(_lead([s for _, s in keyword])) / _PACK / best
    if keyword and vector:
        out["agree"] = float(keyword[0][0] == vector[0][0])
    return out


def support(values: Mapping[str, float], weights: Mapping[str, float], bias: float) -> float:
    """The fitted probability that the answer is in the collection."""
    z = bias + sum(weights.get(name, 0.0) * values.get(name, 0.0) for name in SIGNALS)
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
