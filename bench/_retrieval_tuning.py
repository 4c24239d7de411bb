"""Choosing fusion by cross-validation, and fitting the abstention model (bench/retrieval.py).

Fusion: every configuration of a small grid is scored per query on the tuning queries; a
k-fold cross-validation then measures the whole selection procedure (pick the best on k − 1
folds, score it on the held-out fold), so the reported spread is what a choice made this
way is worth on unseen queries. The simplest rule, plain reciprocal rank fusion (k = 60,
equal weights), wins unless the procedure beats it on held-out folds by more than twice
the standard error of the per-query difference.

Abstention: each tuning question gives one answerable case (the collection as it is) and
one unanswerable case (its relevant documents removed, i.e. dropped from both rankings);
a logistic regression over ``evidence.SIGNALS`` separates them, and its probability cut is
the one with the best balanced accuracy on the tuning questions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from strata.features.knowledge import evidence

Ranking = list[tuple[str, float]]
PLAIN_RRF = {"fusion": "rrf", "rrf_k": 60.0, "vector_weight": 0.5}


def folds_of(ids: Sequence[str], k: int, seed: int) -> list[set[str]]:
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    return [set(order[i::k]) for i in range(k)]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _std(values: Sequence[float]) -> float:
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / max(len(values) - 1, 1))


def cross_validate(
    configs: list[dict[str, Any]],
    per_query: list[dict[str, float]],
    plain: int,
    folds: list[set[str]],
) -> dict[str, Any]:
    """``per_query[i]``: config ``i``'s nDCG@10 per tuning query; ``plain``: the index of
    plain RRF. Returns the chosen config and the cross-validation figures."""
    ids = sorted(per_query[0])
    held: dict[str, float] = {}
    fold_scores, plain_scores, picks = [], [], []
    for fold in folds:
        train = [q for q in ids if q not in fold]
        best = max(range(len(configs)), key=lambda i: _mean([per_query[i][q] for q in train]))
        picks.append(best)
        for q in fold:
            held[q] = per_query[best][q]
        fold_scores.append(_mean([per_query[best][q] for q in fold]))
        plain_scores.append(_mean([per_query[plain][q] for q in fold]))
    diffs = [held[q] - per_query[plain][q] for q in ids]
    gain, se = _mean(diffs), _std(diffs) / math.sqrt(len(diffs))
    best_all = max(range(len(configs)), key=lambda i: _mean(list(per_query[i].values())))
    chosen = best_all if gain > 2 * se else plain
    return {
        "chosen": configs[chosen],
        "best_on_all_tuning": configs[best_all],
        "cv_folds": len(folds),
        "cv_ndcg10_selected": [round(s, 4) for s in fold_scores],
        "cv_ndcg10_plain_rrf": [round(s, 4) for s in plain_scores],
        "cv_mean_selected": round(_mean(fold_scores), 4),
        "cv_std_selected": round(_std(fold_scores), 4),
        "cv_mean_plain_rrf": round(_mean(plain_scores), 4),
        "cv_std_plain_rrf": round(_std(plain_scores), 4),
        "cv_gain_over_plain": round(gain, 4),
        "cv_gain_se": round(se, 4),
        "picked_per_fold": [configs[i] for i in picks],
        "rule": "tuned" if chosen != plain else "plain RRF (gain within 2 standard errors)",
    }


Runs = tuple[dict[str, Ranking], dict[str, Ranking], dict[str, float]]
"""Per query: the keyword ranking, the vector ranking, the BM25 ceiling."""


def _cases(runs: Runs, qrels: dict[str, dict[str, int]]) -> tuple[list[list[float]], list[int]]:
    keyword, dense, ceiling = runs
    rows, labels = [], []
    for q in sorted(dense):
        kept = evidence.signals(keyword.get(q, []), dense[q], ceiling[q])
        rel = qrels.get(q, {})
        kw = [(d, s) for d, s in keyword.get(q, []) if d not in rel]
        dn = [(d, s) for d, s in dense[q] if d not in rel]
        removed = evidence.signals(kw, dn, ceiling[q])
        rows += [[kept[n] for n in evidence.SIGNALS], [removed[n] for n in evidence.SIGNALS]]
        labels += [1, 0]
    return rows, labels


def _fit(rows: list[list[float]], labels: list[int], l2: float = 1e-3) -> tuple[list[float], float]:
    """Logistic regression by Newton's method (a few features: exact and fast)."""
    import numpy as np

    x = np.hstack([np.asarray(rows, dtype=np.float64), np.ones((len(rows), 1))])
    y = np.asarray(labels, dtype=np.float64)
    w = np.zeros(x.shape[1])
    penalty = np.eye(x.shape[1]) * l2 * len(y)
    penalty[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60, 60)))
        grad = x.T @ (p - y) + penalty @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return [float(v) for v in w[:-1]], float(w[-1])


def _rates(scores: list[float], labels: list[int], cut: float) -> tuple[float, float]:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    return sum(s >= cut for s in pos) / len(pos), sum(s < cut for s in neg) / len(neg)


def _best_cut(scores: list[float], labels: list[int]) -> float:
    cuts = sorted(set(round(s, 3) for s in scores))
    return max(cuts, key=lambda c: sum(_rates(scores, labels, c)))


def calibrate_abstention(
    tune: Runs, evaluate: Runs, qrels: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """Fit on the tuning questions' rankings, report on the evaluated ones."""
    rows, labels = _cases(tune, qrels)
    weights, bias = _fit(rows, labels)
    named = dict(zip(evidence.SIGNALS, weights, strict=True))

    def scored(rs: list[list[float]]) -> list[float]:
        return [
            evidence.support(dict(zip(evidence.SIGNALS, r, strict=True)), named, bias) for r in rs
        ]

    cut = _best_cut(scored(rows), labels)
    e_rows, e_labels = _cases(evaluate, qrels)
    kept, abstained = _rates(scored(e_rows), e_labels, cut)
    t_kept, t_abstained = _rates(scored(rows), labels, cut)
    cosine: Callable[[list[list[float]]], list[float]] = lambda rs: [r[0] for r in rs]  # noqa: E731
    c_cut = _best_cut(cosine(rows), labels)
    c_kept, c_abstained = _rates(cosine(e_rows), e_labels, c_cut)
    return {
        "min_evidence": cut,
        "evidence_weights": {k: round(v, 4) for k, v in named.items()},
        "evidence_bias": round(bias, 4),
        "balanced_accuracy_tune": round((t_kept + t_abstained) / 2, 4),
        "balanced_accuracy_eval": round((kept + abstained) / 2, 4),
        "answerable_kept_eval": round(kept, 4),
        "unanswerable_abstained_eval": round(abstained, 4),
        "cosine_only": {
            "min_cosine": c_cut,
            "balanced_accuracy_eval": round((c_kept + c_abstained) / 2, 4),
            "answerable_kept_eval": round(c_kept, 4),
            "unanswerable_abstained_eval": round(c_abstained, 4),
        },
    }
