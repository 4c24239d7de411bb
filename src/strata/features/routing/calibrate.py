"""Fit a route on labelled outcomes, and measure routers the way RouteLLM does.

An *outcome* is one labelled request: each signal's score for the small tier's answer, the
prompt's features, whether the small and the big tier were right, and what each call cost.
From outcomes this module

- fits the learned router (prompt features → P(small right)) and the combined signal
  (a logistic regression on the parts' logits; the learned score enters as a cross-fitted
  feature so the combiner never sees in-sample predictions);
- traces a router's operating curve (escalate when score < threshold, for every threshold)
  and picks the threshold for a target: the cheapest point keeping ``quality`` × the big
  tier's accuracy, or the most accurate point within a budget per 1k requests;
- computes PGR, APGR and CPT(x) (RouteLLM): PGR = (acc − small) / (big − small) at a given
  share of requests sent to the big tier; APGR is its mean over shares 0..100 %; CPT(x) is
  the smallest share reaching PGR ≥ x.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from strata.features.routing.logistic import Logistic, fit_logistic
from strata.features.routing.signals.combined import logit
from strata.features.routing.tuning import CurvePoint, RouteTuning

# Extra calls a signal makes, by the cost key it is charged under.
EXTRA_COST = {"verify": "judge", "consistency": "samples"}
DEFAULT_PARTS = ["answer_prob", "sequence_prob", "min_token_prob", "verify", "learned"]


@dataclass
class Outcome:
    id: str
    scores: dict[str, float]
    prompt: list[float]
    small_ok: bool
    big_ok: bool
    small_cost: float
    big_cost: float
    extra_cost: dict[str, float] = field(default_factory=dict)


def signal_cost(o: Outcome, parts: Sequence[str]) -> float:
    """The small tier's cost for one request when the router reads ``parts``."""
    keys = {EXTRA_COST[p] for p in parts if p in EXTRA_COST}
    return sum(o.extra_cost.get(k, 0.0) for k in keys)


def request_cost(o: Outcome, parts: Sequence[str], escalate: bool, skip: bool = False) -> float:
    """Prompt-only routers skip the small tier for escalated requests (``["learned"]``), and
    so does a prefilter for the requests it sends straight up (``skip``)."""
    prompt_only = list(parts) == ["learned"]
    skipped = skip or (prompt_only and escalate)
    small = 0.0 if skipped else o.small_cost + signal_cost(o, parts)
    return small + (o.big_cost if escalate else 0.0)


def accuracy(outcomes: Sequence[Outcome], escalate: Sequence[bool]) -> float:
    right = [o.big_ok if e else o.small_ok for o, e in zip(outcomes, escalate, strict=True)]
    return sum(right) / len(right) if right else 0.0


def operating_curve(
    scores: Sequence[float],
    outcomes: Sequence[Outcome],
    parts: Sequence[str],
    big_acc: float,
    skip: Sequence[bool] | None = None,
) -> list[CurvePoint]:
    """One point per distinct threshold; ``quality`` is accuracy / the big tier's. Requests a
    prefilter sends straight up (``skip``) are escalated at every threshold."""
    skips = list(skip) if skip is not None else [False] * len(outcomes)
    cuts = [*sorted(set(scores)), math.inf]
    points = []
    for t in cuts:
        escalate = [s < t or k for s, k in zip(scores, skips, strict=True)]
        acc = accuracy(outcomes, escalate)
        cost = sum(
            request_cost(o, parts, e, k) for o, e, k in zip(outcomes, escalate, skips, strict=True)
        )
        points.append(
            CurvePoint(
                threshold=min(t, 1.0) if t != math.inf else 1.0 + 1e-9,
                quality=acc / big_acc if big_acc > 0 else 1.0,
                big_share=sum(escalate) / len(escalate),
                cost_per_request=cost / len(outcomes),
            )
        )
    return points


def choose(
    curve: Sequence[CurvePoint],
    target_quality: float | None = None,
    max_cost_per_1k: float | None = None,
) -> CurvePoint:
    if max_cost_per_1k is not None:
        within = [p for p in curve if p.cost_per_request * 1000 <= max_cost_per_1k]
        if not within:
            return min(curve, key=lambda p: p.cost_per_request)
        return max(within, key=lambda p: (p.quality, -p.cost_per_request))
    quality = 0.95 if target_quality is None else target_quality
    meeting = [p for p in curve if p.quality >= quality - 1e-12]
    if not meeting:
        return max(curve, key=lambda p: (p.quality, -p.cost_per_request))
    return min(meeting, key=lambda p: (p.cost_per_request, p.big_share))


def pgr_at_shares(
    scores: Sequence[float],
    outcomes: Sequence[Outcome],
    gap: tuple[float, float] | None = None,
) -> list[tuple[float, float]]:
    """(share, PGR) when the k least confident requests go to the big tier, k = 0..n.
    ``gap``: the (small, big) accuracies PGR is measured between, when the cheap answer in
    ``outcomes.small_ok`` is not the small model's alone (a specialist answered some)."""
    n = len(outcomes)
    small, big = gap or (accuracy(outcomes, [False] * n), accuracy(outcomes, [True] * n))
    order = sorted(range(n), key=lambda i: scores[i])  # least confident first
    right = sum(o.small_ok for o in outcomes)
    start = right / n if n else 0.0
    points = [(0.0, (start - small) / (big - small) if big != small else 1.0)]
    for k, i in enumerate(order, start=1):
        right += int(outcomes[i].big_ok) - int(outcomes[i].small_ok)
        acc = right / n
        points.append((k / n, (acc - small) / (big - small) if big != small else 1.0))
    return points


def apgr(points: Sequence[tuple[float, float]]) -> float:
    """Area under PGR over the share of big calls (trapezoids between the points)."""
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(points))


def cpt(points: Sequence[tuple[float, float]], x: float) -> float:
    """Smallest share of big calls with PGR ≥ x."""
    for share, pgr in points:
        if pgr >= x - 1e-12:
            return share
    return 1.0


def fit_prefilter(
    scores: Sequence[float], outcomes: Sequence[Outcome], max_small_acc: float = 0.1
) -> float:
    """The highest learned-router score below which the small tier was almost never right
    (at most ``max_small_acc`` of those requests, and at least 5 % of all): requests under it
    skip the small tier. 0 when no such cut exists."""
    n = len(outcomes)
    order = sorted(range(n), key=lambda i: scores[i])
    best, right = 0.0, 0
    for k, i in enumerate(order[:-1], start=1):
        right += int(outcomes[i].small_ok)
        if k >= max(3, 0.05 * n) and right / k <= max_small_acc:
            best = (scores[i] + scores[order[k]]) / 2
    return best


def fit_learned(outcomes: Sequence[Outcome], l2: float = 10.0) -> Logistic:
    return fit_logistic([o.prompt for o in outcomes], [int(o.small_ok) for o in outcomes], l2)


def cross_fit_learned(outcomes: Sequence[Outcome], folds: int = 5) -> list[float]:
    """Out-of-fold learned-router scores, so a combiner trained on them is not fooled."""
    n = len(outcomes)
    scores = [0.5] * n
    for f in range(folds):
        train = [o for i, o in enumerate(outcomes) if i % folds != f]
        if len({o.small_ok for o in train}) < 2:
            continue
        model = fit_learned(train)
        for i in range(f, n, folds):
            scores[i] = model.predict(outcomes[i].prompt)
    return scores


def fit_combined(
    outcomes: Sequence[Outcome], parts: Sequence[str], learned: Sequence[float] | None = None
) -> Logistic:
    rows = [_row(o, parts, learned[i] if learned else None) for i, o in enumerate(outcomes)]
    return fit_logistic(rows, [int(o.small_ok) for o in outcomes], l2=1.0)


def _row(o: Outcome, parts: Sequence[str], learned: float | None) -> list[float]:
    return [
        logit(learned if p == "learned" and learned is not None else o.scores[p]) for p in parts
    ]


def cv_apgr(outcomes: Sequence[Outcome], parts: Sequence[str], folds: int = 5) -> float:
    """APGR of the combination of ``parts`` with every score predicted out of fold."""
    n = len(outcomes)
    scores = [0.5] * n
    for f in range(folds):
        train = [o for i, o in enumerate(outcomes) if i % folds != f]
        if len({o.small_ok for o in train}) < 2:
            continue
        learned = fit_learned(train) if "learned" in parts else None
        rows = [_row(o, parts, learned.predict(o.prompt) if learned else None) for o in train]
        combiner = fit_logistic(rows, [int(o.small_ok) for o in train], l2=1.0)
        for i in range(f, n, folds):
            o = outcomes[i]
            scores[i] = combiner.predict(
                _row(o, parts, learned.predict(o.prompt) if learned else None)
            )
    return apgr(pgr_at_shares(scores, outcomes))


def select_parts(
    outcomes: Sequence[Outcome], candidates: Sequence[str], min_gain: float = 0.01
) -> list[str]:
    """Forward selection by cross-validated APGR: start from the best single signal and add
    the part that helps most while it helps by at least ``min_gain``. On a few hundred
    labelled requests, every extra weight is a chance to overfit; this keeps only parts
    that earn their place on data the fit did not see."""
    remaining = list(candidates)
    chosen: list[str] = []
    best = -math.inf
    while remaining:
        trials = [(cv_apgr(outcomes, [*chosen, c]), c) for c in remaining]
        score, pick = max(trials)
        if chosen and score < best + min_gain:
            break
        chosen.append(pick)
        remaining.remove(pick)
        best = score
    return chosen


def calibrate(
    outcomes: Sequence[Outcome],
    parts: Sequence[str] = DEFAULT_PARTS,
    target_quality: float | None = None,
    max_cost_per_1k: float | None = None,
    part_options: dict[str, dict[str, object]] | None = None,
    select: bool = True,
) -> tuple[RouteTuning, list[float]]:
    """Fit the combined signal (on the ``parts`` forward selection keeps, unless ``select``
    is off) and the threshold; returns the tuning and in-sample scores."""
    if len({o.small_ok for o in outcomes}) < 2:
        raise ValueError("calibration needs items the small tier gets right and wrong")
    parts = select_parts(outcomes, parts) if select else list(parts)
    options: dict[str, dict[str, object]] = {k: dict(v) for k, v in (part_options or {}).items()}
    learned_scores = None
    if "learned" in parts:
        options["learned"] = {"model": fit_learned(outcomes).to_json()}
        learned_scores = cross_fit_learned(outcomes)
    combiner = fit_combined(outcomes, parts, learned_scores)
    scores = [
        combiner.predict(_row(o, parts, learned_scores[i] if learned_scores else None))
        for i, o in enumerate(outcomes)
    ]
    below = fit_prefilter(learned_scores, outcomes) if learned_scores else 0.0
    skip = [s < below for s in learned_scores] if learned_scores else [False] * len(outcomes)
    big_acc = accuracy(outcomes, [True] * len(outcomes))
    curve = operating_curve(scores, outcomes, parts, big_acc, skip)
    point = choose(curve, target_quality, max_cost_per_1k)
    target = (
        {"max_cost_per_1k": max_cost_per_1k}
        if max_cost_per_1k is not None
        else {"quality": 0.95 if target_quality is None else target_quality}
    )
    tuning = RouteTuning(
        thresholds=[point.threshold],
        signal="combined",
        signal_options={"parts": parts, "part_options": options, "model": combiner.to_json()},
        prefilter="learned" if below > 0 else None,
        prefilter_options=options["learned"] if below > 0 else {},
        prefilter_below=below,
        curve=_thin(curve, point),
        target={**target, "expected_quality": point.quality, "expected_big_share": point.big_share},
        items=len(outcomes),
        fitted_at=time.time(),
    )
    return tuning, scores


def _thin(curve: Sequence[CurvePoint], chosen: CurvePoint, keep: int = 60) -> list[CurvePoint]:
    """At most ``keep`` points (evenly by index, plus the chosen one) so routes.json stays
    readable."""
    if len(curve) <= keep:
        return list(curve)
    step = (len(curve) - 1) / (keep - 1)
    points = {round(i * step) for i in range(keep)} | {list(curve).index(chosen)}
    return [curve[i] for i in sorted(points)]
