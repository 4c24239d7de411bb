"""Training one specialist, and the rule for swapping it in.

Examples are split by a hash of their response id: a fixed share is *held out* and never
trained on, by this specialist or any later one, so a new specialist and the one serving can
be compared on the same unseen examples. A new specialist replaces the old one only if it is
at least as accurate there (against the big tier's answer, or the user's correction); once
users' labels decide (below), it must match them at least as often as the serving one.

Every label's own name (``card_arrival`` read as "card arrival") is one more training example
of it, never held out: a prior that needs no traffic, and the only sign of a label the big
tier never answers.

Two sources of labels compete: the big tier's answers plus users' corrections (*teacher*),
and users' corrections alone (*feedback*), both with the label names. Users' labels are the
only clean signal, so once there are ``MIN_GOLD`` of them (and ``MIN_ROUTE`` on turns the
route's models answered), each candidate is scored on them cross-fitted (a head never scores
a row it trained on) and the better one serves: a big tier that is often wrong on a task (77
intents named only in a grammar, say) then stops being copied. Its temperature is fitted on those
cross-fitted scores, so its confidence reads as the chance of matching the user.

Thresholds. By *agreement*: the lowest held-out confidence above which answers agree with
the labels ``target_agreement`` of the time (over at least ``MIN_ANSWERED`` examples, never
below the floor), the rule while users have said little. By *users*: the lowest cross-fitted
confidence above which answers match users' labels at least ``target`` times as often as the
route's own answers did (small or big tier; the rate smoothed by Laplace's rule): a
specialist as good as the cascade it replaces may answer even where it agrees with the big
tier less. The lower of
the two serves; without either the specialist does not answer yet. Without users' labels,
the teacher is fitted on three quarters of its training share and its temperature on the
last quarter (by hash), then refitted on the whole share with that temperature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from strata.features.distill.head import (
    LinearHead,
    fit_head,
    fit_temperature,
    softmax,
    temperature_for,
)

MIN_ANSWERED = 5
MIN_GOLD = 8  # users' labels before they, not agreement with the big tier, decide
MIN_ROUTE = 3  # of them on turns the route's models answered (their own rate)
FOLDS = 4
NEVER = 1.01  # a threshold no probability reaches
Matrix = npt.NDArray[np.float32]


def bucket(response_id: str) -> float:
    """A stable number in [0, 1) for an example (which split it falls in)."""
    digest = hashlib.blake2b(response_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


@dataclass
class Split:
    train: npt.NDArray[np.bool_]
    calibrate: npt.NDArray[np.bool_]  # a subset of train
    holdout: npt.NDArray[np.bool_]


def split(ids: list[str], holdout_share: float) -> Split:
    b = np.array([bucket(i) for i in ids])
    holdout = b < holdout_share
    rest = ~holdout
    # The next quarter of the unit interval past the holdout calibrates.
    calibrate = rest & (b < holdout_share + (1 - holdout_share) / 4)
    return Split(rest, calibrate, holdout)


def choose_threshold(
    confidence: npt.NDArray[np.float64],
    correct: npt.NDArray[np.bool_],
    target: float,
    floor: float,
) -> float:
    """The lowest confidence whose answers at or above it are right ``target`` of the time."""
    order = np.argsort(-confidence)
    hits = np.cumsum(correct[order])
    counts = np.arange(1, len(order) + 1)
    best = NEVER
    for k in range(len(order)):
        # Only cut between distinct confidences, over enough answers to mean something.
        if k + 1 < len(order) and confidence[order[k + 1]] == confidence[order[k]]:
            continue
        if counts[k] >= MIN_ANSWERED and hits[k] / counts[k] >= target:
            best = float(confidence[order[k]])
    return max(best, floor) if best < NEVER else NEVER


def accuracy(head: LinearHead, x: Matrix, y: list[str]) -> float:
    if not y:
        return 0.0
    predicted, _ = head.predict(x)
    return float(np.mean([p == t for p, t in zip(predicted, y, strict=True)]))


@dataclass
class Labelled:
    """What a specialist learns from. ``gold`` marks users' labels; ``route_right`` says,
    for a user's label on a turn the route's models answered, whether they were right (else
    None); ``names``/``name_labels`` are the label names embedded, one row per label."""

    ids: list[str]
    x: Matrix
    y: list[str]
    gold: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    route_right: list[bool | None] = field(default_factory=list)
    names: Matrix | None = None
    name_labels: list[str] = field(default_factory=list)
    created: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if len(self.gold) != len(self.ids):
            self.gold = np.zeros(len(self.ids), bool)
        if len(self.route_right) != len(self.ids):
            self.route_right = [None] * len(self.ids)
        if len(self.created) != len(self.ids):
            self.created = np.zeros(len(self.ids))


class _Fitter:
    """Fits heads on chosen rows plus the label names, over one fixed list of labels."""

    def __init__(self, data: Labelled, l2: float) -> None:
        self.data, self.l2 = data, l2
        self.labels = sorted(set(data.y) | set(data.name_labels))
        self.y = np.array(data.y, dtype=object)

    def fit(self, rows: npt.NDArray[np.bool_]) -> LinearHead:
        x, y = self.data.x[rows], list(self.y[rows])
        if self.data.names is not None and self.data.name_labels:
            x = np.concatenate([x, self.data.names]).astype(np.float32)
            y += self.data.name_labels
        return fit_head(x, y, l2=self.l2, labels=self.labels)

    def cross_fit(
        self, rows: npt.NDArray[np.bool_], scored: npt.NDArray[np.bool_], held: LinearHead
    ) -> npt.NDArray[np.float64]:
        """Logits for the ``scored`` rows from heads that did not train on them: ``held``
        (fitted on ``rows``) for those outside ``rows``, fold heads for those inside."""
        out = np.zeros((len(self.data.ids), len(self.labels)))
        outside = scored & ~rows
        if outside.any():
            out[outside] = held.logits(self.data.x[outside])
        inside = np.flatnonzero(scored & rows)
        for k in range(min(FOLDS, len(inside))):
            fold = np.zeros(len(self.data.ids), bool)
            fold[inside[k::FOLDS]] = True
            out[fold] = self.fit(rows & ~fold).logits(self.data.x[fold])
        return out[scored]


def train(
    data: Labelled,
    *,
    holdout_share: float,
    target: float,
    floor: float,
    l2: float,
    current: LinearHead | None,
    current_trained_at: float | None = None,
    versus_route: float = 0.95,
) -> tuple[LinearHead, dict[str, Any]]:
    """A new head and the report that decides whether it replaces ``current``. BLAS runs
    on one thread: these matrices are small, and on a loaded CPU (the models' own threads)
    more threads mostly wait on each other (a 77-label fit took 6x longer)."""
    with threadpool_limits(1):
        return _train(
            data, holdout_share, target, floor, l2, current, current_trained_at, versus_route
        )


def _train(
    data: Labelled,
    holdout_share: float,
    target: float,
    floor: float,
    l2: float,
    current: LinearHead | None,
    current_trained_at: float | None,
    versus_route: float,
) -> tuple[LinearHead, dict[str, Any]]:
    parts = split(data.ids, holdout_share)
    fitter = _Fitter(data, l2)
    y = fitter.y
    judged = [r for r in data.route_right if r is not None]
    report: dict[str, Any] = {
        "examples": len(data.ids),
        "trained": int(parts.train.sum()),
        "holdout": int(parts.holdout.sum()),
        "gold": int(data.gold.sum()),
        "source": "teacher",
    }
    users: tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]] | None = None
    if data.gold.sum() >= MIN_GOLD and len(judged) >= MIN_ROUTE:
        head, users = _by_users(data, parts, fitter, report)
    else:
        head = _by_agreement(data, parts, fitter)
    report["temperature"] = round(head.temperature, 4)
    held_x, held_y = data.x[parts.holdout], list(y[parts.holdout])
    report["accuracy"] = accuracy(head, held_x, held_y)
    report["previous_accuracy"] = None if current is None else accuracy(current, held_x, held_y)
    threshold = NEVER
    if held_y:
        predicted, confidence = head.predict(held_x)
        correct = np.array([p == t for p, t in zip(predicted, held_y, strict=True)])
        threshold = choose_threshold(confidence, correct, target, floor)
    if users is not None:
        route = (sum(judged) + 1) / (len(judged) + 2)
        report["route_accuracy"] = round(route, 4)
        by_users = choose_threshold(users[0], users[1], versus_route * route, 0.0)
        threshold = min(threshold, by_users)
    report["threshold"] = threshold
    # The swap. Chosen by users' labels, judged by them: the new head's cross-fitted score
    # against the serving head's on the users' labels it never trained on (held out, or
    # newer than it). Else on all held-out labels.
    if users is not None:
        report["swap_judged_on"] = "users"
        report["score"] = float(users[1].mean())
        unseen = data.gold & (parts.holdout | (data.created > (current_trained_at or 0.0)))
        report["previous_score"] = (
            None
            if current is None or not unseen.any()
            else accuracy(current, data.x[unseen], list(y[unseen]))
        )
    else:
        report["swap_judged_on"] = "held-out"
        report["score"] = report["accuracy"]
        report["previous_score"] = report["previous_accuracy"]
    previous = report["previous_score"]
    report["replaced"] = bool(held_y) and (previous is None or report["score"] >= previous)
    return head, report


def _by_agreement(data: Labelled, parts: Split, fitter: _Fitter) -> LinearHead:
    fit_rows = parts.train & ~parts.calibrate
    if len(set(fitter.y[fit_rows])) < 2 or not parts.calibrate.any():
        fit_rows = parts.train  # too few to set aside: calibrate on what it trained on
    first = fitter.fit(fit_rows)
    calib = parts.calibrate if parts.calibrate.any() else parts.train
    temperature = fit_temperature(first, data.x[calib], list(fitter.y[calib]))
    head = fitter.fit(parts.train)
    head.temperature = temperature
    return head


def _by_users(
    data: Labelled, parts: Split, fitter: _Fitter, report: dict[str, Any]
) -> tuple[LinearHead, tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]]:
    """The candidate that matches users' labels best (cross-fitted), its temperature fitted
    on them; and its cross-fitted confidence and correctness there."""
    gold_y = list(fitter.y[data.gold])
    best: tuple[float, str, LinearHead, npt.NDArray[np.float64]] | None = None
    for name, rows in (("teacher", parts.train), ("feedback", parts.train & data.gold)):
        head = fitter.fit(rows)
        logits = fitter.cross_fit(rows, data.gold, head)
        chosen = [fitter.labels[i] for i in logits.argmax(1)]
        hits = float(np.mean([p == t for p, t in zip(chosen, gold_y, strict=True)]))
        report[f"{name}_users_accuracy"] = round(hits, 4)
        if best is None or hits > best[0]:
            best = (hits, name, head, logits)
    assert best is not None
    _, report["source"], head, logits = best
    head.temperature = temperature_for(logits, fitter.labels, gold_y)
    p = softmax(logits / head.temperature)
    chosen = p.argmax(1)
    correct = np.array([fitter.labels[i] == t for i, t in zip(chosen, gold_y, strict=True)])
    return head, (p[np.arange(len(chosen)), chosen], correct)
