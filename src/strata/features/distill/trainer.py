"""Training one specialist, and the rule for swapping it in.

Examples are split by a hash of their response id: a fixed share is *held out* and never
trained on, by this specialist or any later one, so a new specialist and the one serving can
be compared on the same unseen examples. A new specialist replaces the old one only if it is
at least as accurate there (accuracy = agreement with the training label: the big tier's
answer, or the user's correction).

Inside the training share, a quarter (again by hash) calibrates: the head is fitted on the
rest, its temperature on that quarter, then the head is refitted on the whole training share
with that temperature. The threshold is the lowest held-out confidence above which the
specialist's answers agree with the labels at least ``target_agreement`` of the time (over at
least ``MIN_ANSWERED`` examples); without such a point the specialist does not answer yet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from strata.features.distill.head import LinearHead, fit_head, fit_temperature

MIN_ANSWERED = 5
NEVER = 1.01  # a threshold no probability reaches


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


def accuracy(head: LinearHead, x: npt.NDArray[np.float32], y: list[str]) -> float:
    if not y:
        return 0.0
    predicted, _ = head.predict(x)
    return float(np.mean([p == t for p, t in zip(predicted, y, strict=True)]))


def train(
    ids: list[str],
    vectors: npt.NDArray[np.float32],
    labels: list[str],
    *,
    holdout_share: float,
    target: float,
    floor: float,
    l2: float,
    current: LinearHead | None,
) -> tuple[LinearHead, dict[str, Any]]:
    """A new head and the report that decides whether it replaces ``current``."""
    parts = split(ids, holdout_share)
    y = np.array(labels, dtype=object)
    fit_rows = parts.train & ~parts.calibrate
    if len(set(y[fit_rows])) < 2 or not parts.calibrate.any():
        fit_rows = parts.train  # too few to set aside: calibrate on what it trained on
    first = fit_head(vectors[fit_rows], list(y[fit_rows]), l2=l2)
    calib = parts.calibrate if parts.calibrate.any() else parts.train
    temperature = fit_temperature(first, vectors[calib], list(y[calib]))
    head = fit_head(vectors[parts.train], list(y[parts.train]), l2=l2)
    head.temperature = temperature
    held_x, held_y = vectors[parts.holdout], list(y[parts.holdout])
    report: dict[str, Any] = {
        "examples": len(ids),
        "trained": int(parts.train.sum()),
        "holdout": int(parts.holdout.sum()),
        "accuracy": accuracy(head, held_x, held_y),
        "previous_accuracy": None if current is None else accuracy(current, held_x, held_y),
        "temperature": round(temperature, 4),
    }
    if held_y:
        predicted, confidence = head.predict(held_x)
        correct = np.array([p == t for p, t in zip(predicted, held_y, strict=True)])
        report["threshold"] = choose_threshold(confidence, correct, target, floor)
    else:
        report["threshold"] = NEVER
    previous = report["previous_accuracy"]
    report["replaced"] = bool(held_y) and (previous is None or report["accuracy"] >= previous)
    return head, report
