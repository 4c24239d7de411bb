"""The specialist's head: multinomial logistic regression on sentence embeddings, in numpy,
with a temperature fitted on examples it did not train on, so its top probability reads as
the chance that the label is right (what the router compares with a threshold).

numpy rather than scikit-learn: a few hundred full-batch gradient steps on at most a few
thousand 384-wide rows take well under a second, and one dependency fewer ships with strata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return out


@dataclass
class LinearHead:
    """``labels[argmax(x @ weights + bias)]``; probabilities are softmax(logits / temperature)."""

    labels: list[str]
    weights: npt.NDArray[np.float64]  # (dim, classes)
    bias: npt.NDArray[np.float64]  # (classes,)
    temperature: float = 1.0

    def logits(self, x: Matrix) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = x.astype(np.float64) @ self.weights + self.bias
        return out

    def proba(self, x: Matrix) -> npt.NDArray[np.float64]:
        return softmax(self.logits(x) / self.temperature)

    def predict(self, x: Matrix) -> tuple[list[str], npt.NDArray[np.float64]]:
        """Each row's label and its calibrated probability."""
        p = self.proba(x)
        best = p.argmax(axis=1)
        return [self.labels[i] for i in best], p[np.arange(len(best)), best]


def fit_head(
    x: Matrix,
    y: list[str],
    *,
    l2: float = 1e-3,
    steps: int = 300,
    rate: float = 0.5,
    labels: list[str] | None = None,
) -> LinearHead:
    """Softmax regression by full-batch gradient descent with Adam (deterministic: zero
    start). Embeddings are unit vectors, so one learning rate fits every task. ``labels``
    fixes the columns (heads fitted on parts of the data then score alike)."""
    labels = sorted(set(y)) if labels is None else labels
    index = {label: i for i, label in enumerate(labels)}
    target = np.zeros((len(y), len(labels)))
    target[np.arange(len(y)), [index[label] for label in y]] = 1.0
    data = x.astype(np.float64)
    weights = np.zeros((data.shape[1], len(labels)))
    bias = np.zeros(len(labels))
    m = [np.zeros_like(weights), np.zeros_like(bias)]
    v = [np.zeros_like(weights), np.zeros_like(bias)]
    for step in range(1, steps + 1):
        p = softmax(data @ weights + bias)
        error = (p - target) / len(y)
        grads = [data.T @ error + l2 * weights, error.sum(axis=0)]
        params = (weights, bias)
        for i, grad in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * grad
            v[i] = 0.999 * v[i] + 0.001 * grad * grad
            m_hat, v_hat = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
            params[i][...] -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)  # in place
    return LinearHead(labels, weights, bias)


def fit_temperature(head: LinearHead, x: Matrix, y: list[str]) -> float:
    """The temperature that minimises the negative log-likelihood of ``y`` (labels the head
    never saw count as probability ~0: a reason to be less sure), by a grid then a refine."""
    return temperature_for(head.logits(x), head.labels, y)


def temperature_for(logits: npt.NDArray[np.float64], labels: list[str], y: list[str]) -> float:
    """``fit_temperature`` on logits already computed (say, by heads that did not train on
    the rows they score)."""
    index = {label: i for i, label in enumerate(labels)}
    known = np.array([label in index for label in y])
    cols = np.array([index.get(label, 0) for label in y])

    def nll(t: float) -> float:
        p = softmax(logits / t)
        chosen = np.where(known, p[np.arange(len(y)), cols], 1e-6)
        return float(-np.log(np.clip(chosen, 1e-6, 1.0)).mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 41))
    best = float(min(grid, key=nll))
    fine = np.exp(np.linspace(np.log(best / 1.2), np.log(best * 1.2), 21))
    return float(min(fine, key=nll))
