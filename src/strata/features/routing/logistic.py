"""A small L2-regularised logistic regression in numpy (Newton's method), for the learned
router and for combining signals. Tens of features and a few hundred labelled outcomes are
what routing has; scikit-learn would add a large dependency for this one fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Logistic:
    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]

    def predict(self, x: Sequence[float]) -> float:
        z = self.bias + sum(
            w * (v - m) / s
            for w, v, m, s in zip(self.weights, x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> dict[str, object]:
        return {"weights": self.weights, "bias": self.bias, "mean": self.mean, "scale": self.scale}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Logistic:
        def floats(key: str) -> list[float]:
            value = d[key]
            assert isinstance(value, list)
            return [float(v) for v in value]

        bias = d["bias"]
        assert isinstance(bias, int | float)
        return cls(floats("weights"), float(bias), floats("mean"), floats("scale"))


def fit_logistic(
    rows: Sequence[Sequence[float]], labels: Sequence[int], l2: float = 1.0, iterations: int = 50
) -> Logistic:
    """Fit P(label = 1 | row); features are standardised first so ``l2`` means the same for
    every feature. The bias is not penalised."""
    import numpy as np

    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError("need a non-empty 2-D feature matrix and one label per row")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return Logistic([float(v) for v in w[1:]], float(w[0]), mean.tolist(), scale.tolist())
