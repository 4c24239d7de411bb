"""The learned-router benchmark's routers: cross-fitted scores rank the requests the small
model gets right above those it gets wrong when the prompt tells them apart."""

from __future__ import annotations

import numpy as np
import pytest
from bench.learned_router import combined, cross_fit


@pytest.mark.parametrize("name", ["linear", "mlp", "knn"])
def test_prompt_routers_learn_which_prompts_the_small_model_gets_right(name: str) -> None:
    rng = np.random.default_rng(0)
    n = 200
    centers = rng.normal(size=(2, 16))
    kind = np.arange(n) % 2  # two kinds of prompt; the small model gets only kind 0 right
    emb = centers[kind] + 0.3 * rng.normal(size=(n, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    y = (kind == 0).astype(float)
    scores = cross_fit(name, emb, emb, y, np.arange(n), 5)
    assert scores[y == 1].mean() > scores[y == 0].mean() + 0.3


def test_the_combined_cascade_uses_both_signals() -> None:
    rng = np.random.default_rng(1)
    n = 200
    kind = np.arange(n) % 2
    emb = np.eye(2)[kind] + 0.05 * rng.normal(size=(n, 2))
    y = ((kind == 0) & (rng.random(n) < 0.9)).astype(float)
    answer_prob = np.full(n, 0.5)  # an uninformative confidence: the prompt must carry it
    scores = combined("knn", emb, emb, y, answer_prob, 4)
    assert scores[kind == 0].mean() > scores[kind == 1].mean() + 0.3
