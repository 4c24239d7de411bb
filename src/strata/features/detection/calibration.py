"""Turning a raw detector score into a decision and a probability-like value.

A raw score means nothing on its own: its scale depends on the method, the models and the
kind of text. So a :class:`Calibration` is fitted on labelled texts and stored as JSON:

- the **threshold** is set on *human* texts only, at the score that flags a stated share of
  them (the false-positive rate, 1 % by default). Flagging a person's own writing is the
  costly mistake, so that is the error rate we fix; the true-positive rate is whatever the
  method then achieves.
- the **probability** is a logistic (Platt) fit of the label on the oriented score. It reads
  as P(machine | score) at the class balance of the fitting data (half and half for the dev
  set), not at the balance of real traffic; it is a ranking aid, not a verdict.
- the **token window**: a calibration is fitted on texts scored over at most ``max_tokens``
  tokens, and the detector judges every text on the same window, so scores that grow with
  length (Fast-DetectGPT's sum) stay on the fitted scale and a long input costs bounded time.

The metrics the benchmark reports (AUROC, TPR at a fixed FPR) live here too, so the
benchmark and the shipped calibration compute them the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from strata.features.detection.methods import Method

DEFAULT_FPR = 0.01


def auroc(human: Sequence[float], machine: Sequence[float]) -> float:
    """Area under the ROC curve for oriented scores (higher: machine), ties counting half:
    the probability that a random machine text outscores a random human one."""
    h = np.asarray(human, dtype=np.float64)
    m = np.asarray(machine, dtype=np.float64)
    if len(h) == 0 or len(m) == 0:
        raise ValueError("AUROC needs both human and machine scores")
    greater = (m[:, None] > h[None, :]).sum()
    ties = (m[:, None] == h[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(h) * len(m)))


def threshold_at_fpr(human: Sequence[float], fpr: float = DEFAULT_FPR) -> float:
    """The smallest oriented threshold that flags at most ``fpr`` of ``human`` (texts at or
    above the threshold are flagged). With few human texts this is coarse: 1 % of 200 texts
    is the two highest scores."""
    if not 0.0 <= fpr < 1.0:
        raise ValueError("fpr must be in [0, 1)")
    ordered = np.sort(np.asarray(human, dtype=np.float64))[::-1]
    if len(ordered) == 0:
        raise ValueError("no human scores")
    allowed = math.floor(fpr * len(ordered))  # human texts that may sit at or above it
    if allowed >= len(ordered):
        return float(ordered[-1])
    # just above the first human score that must not be flagged
    return float(np.nextafter(ordered[allowed], math.inf))


def rate_at(scores: Sequence[float], threshold: float) -> float:
    """Share of oriented ``scores`` at or above ``threshold``."""
    values = np.asarray(scores, dtype=np.float64)
    return float((values >= threshold).mean()) if len(values) else 0.0


def tpr_at_fpr(human: Sequence[float], machine: Sequence[float], fpr: float = DEFAULT_FPR) -> float:
    """True-positive rate at the threshold that keeps the false-positive rate ≤ ``fpr`` on
    these same texts (the ROC read-out papers report; optimistic for a deployed threshold)."""
    return rate_at(machine, threshold_at_fpr(human, fpr))


def fit_logistic(x: Sequence[float], y: Sequence[int], l2: float = 1e-3) -> tuple[float, float]:
    """``(slope, intercept)`` of ``P(y=1 | x) = σ(slope·x + intercept)`` by Newton's method.

    ``x`` is standardised for the fit so one small L2 penalty suits any score scale; the
    penalty keeps the fit finite when the classes separate perfectly.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("logistic fit needs at least two labelled scores")
    mu, sd = float(xs.mean()), float(xs.std()) or 1.0
    z = (xs - mu) / sd
    design = np.stack([z, np.ones_like(z)], axis=1)
    w = np.zeros(2)
    penalty = np.diag([l2 * len(xs), 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (p - ys) + penalty @ w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    slope = float(w[0] / sd)
    return slope, float(w[1] - slope * mu)


@dataclass(frozen=True)
class Calibration:
    """A fitted threshold and probability map for one :class:`Method`; JSON-persistable.

    ``threshold`` is in the method's own score units; ``Method.machine_high`` says whether
    texts at or above it (Fast-DetectGPT) or at or below it are flagged.
    """

    method: Method
    threshold: float
    fpr: float
    slope: float
    intercept: float
    min_tokens: int
    max_tokens: int | None = None  # texts are judged on their first max_tokens tokens
    fitted_on: str = ""
    n_human: int = 0
    n_machine: int = 0

    def is_machine(self, score: float) -> bool:
        oriented = self.method.machine_likeness(score)
        return oriented >= self.method.machine_likeness(self.threshold)

    def probability(self, score: float) -> float:
        """Calibrated P(machine | score) at the fitting data's class balance."""
        z = self.slope * self.method.machine_likeness(score) + self.intercept
        z = max(-50.0, min(50.0, z))
        return 1.0 / (1.0 + math.exp(-z))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["method"] = asdict(self.method)
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Calibration:
        fields = dict(data)
        fields["method"] = Method(**fields["method"])
        return Calibration(**fields)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @staticmethod
    def load(path: Path) -> Calibration:
        return Calibration.from_json(json.loads(path.read_text()))


def fit(
    method: Method,
    human_scores: Sequence[float],
    machine_scores: Sequence[float],
    *,
    fpr: float = DEFAULT_FPR,
    min_tokens: int,
    max_tokens: int | None = None,
    fitted_on: str = "",
) -> Calibration:
    """Fit a :class:`Calibration` from raw scores of labelled human and machine texts."""
    human = [method.machine_likeness(s) for s in human_scores]
    machine = [method.machine_likeness(s) for s in machine_scores]
    oriented = threshold_at_fpr(human, fpr)
    slope, intercept = fit_logistic(human + machine, [0] * len(human) + [1] * len(machine))
    return Calibration(
        method=method,
        threshold=method.machine_likeness(oriented),  # back to the method's own units
        fpr=fpr,
        slope=slope,
        intercept=intercept,
        min_tokens=min_tokens,
        max_tokens=max_tokens,
        fitted_on=fitted_on,
        n_human=len(human),
        n_machine=len(machine),
    )


def expected_calibration_error(
    probabilities: Sequence[float], labels: Sequence[int], bins: int = 10
) -> float:
    """Mean |predicted − observed| over equal-width probability bins, weighted by count."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += float(mask.sum()) * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total / max(len(p), 1)
