"""``Detector`` over a scripted scorer: limits, too-short texts, decisions, sentences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from strata.core.errors import ConfigError, InvalidRequest
from strata.features.detection import Calibration, Detector, Method, ScoredText, fit
from strata.features.detection.detector import sentence_spans
from strata.features.detection.stats import Pair, TokenStats, token_stats

VOCAB = 32


class WordScorer:
    """One token per whitespace-separated word. Words in capitals are "predictable": both
    models put nearly all their mass on them; other words get a flat distribution."""

    models = ("o", "p")

    def __init__(self) -> None:
        self.scored: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def score(self, text: str, pairs: Sequence[Pair], max_tokens: int | None = None) -> ScoredText:
        self.scored.append(text)
        every_word = text.split()
        words = every_word[:max_tokens] if max_tokens is not None else every_word
        targets = np.arange(len(words)) % VOCAB
        logits = np.zeros((len(words), VOCAB), dtype=np.float32)
        for i, word in enumerate(words):
            if word.isupper():
                logits[i, targets[i]] = 12.0
        starts, position = [], 0
        for word in words:
            position = text.index(word, position)
            starts.append(position)
            position += len(word)
        return ScoredText(
            token_ids=targets.astype(np.int64),
            char_starts=np.asarray(starts, dtype=np.int64),
            stats=token_stats({"o": logits, "p": logits + 0.1}, targets, pairs),
            truncated=len(words) < len(every_word),
        )


def calibration(min_tokens: int = 5) -> Calibration:
    method = Method("binoculars", "o", "p")
    # human-like: flat distributions (ratio ≈ 1); machine-like: predicted tokens (ratio ≪ 1)
    return fit(method, [0.98, 1.0, 1.02], [0.1, 0.2, 0.3], fpr=0.01, min_tokens=min_tokens)


def test_predictable_text_is_flagged_and_the_rest_is_not() -> None:
    detector = Detector(WordScorer(), calibration())
    machine = detector.detect("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG")
    human = detector.detect("the quick brown fox jumps over the lazy dog")
    assert machine.decision == "machine"
    assert human.decision == "human"
    assert machine.probability is not None and human.probability is not None
    assert machine.probability > 0.5 > human.probability
    assert machine.tokens == 9
    assert machine.machine_if == "below"
    assert machine.method == "binoculars"
    assert machine.to_json()["threshold"] == calibration().threshold


def test_short_text_gets_a_clear_answer_not_a_guess() -> None:
    scorer = WordScorer()
    detector = Detector(scorer, calibration(min_tokens=5))
    result = detector.detect("ONLY FOUR WORDS HERE")
    assert result.decision == "too_short"
    assert result.score is None and result.probability is None
    assert result.tokens == 4 and result.min_tokens == 5
    assert detector.detect("   ").tokens == 0
    assert scorer.scored == []  # no model ran


def test_oversized_input_is_refused_before_scoring_naming_the_limit() -> None:
    scorer = WordScorer()
    detector = Detector(scorer, calibration(), max_chars=20, max_inputs=2)
    with pytest.raises(InvalidRequest, match="limit is 20 characters") as caught:
        detector.detect("x" * 21)
    assert caught.value.param == "input"
    assert caught.value.status_code == 400
    with pytest.raises(InvalidRequest, match=r"input\[1\]"):
        detector.detect_many(["short text", "y" * 21])
    with pytest.raises(InvalidRequest, match="limit is 2"):
        detector.detect_many(["a", "b", "c"])
    assert scorer.scored == []


def test_sentence_scores_point_at_the_predictable_sentence() -> None:
    detector = Detector(WordScorer(), calibration(min_tokens=3))
    text = "we wrote this part by hand. THIS PART CAME FROM A MODEL!\nok"
    result = detector.detect(text, sentences=True)
    assert result.sentences is not None
    first, second, third = result.sentences
    assert text[first.start : first.end] == "we wrote this part by hand."
    assert text[second.start : second.end] == "THIS PART CAME FROM A MODEL!"
    assert first.score is not None and second.score is not None
    assert second.score < first.score  # Binoculars: lower is more machine-like
    assert third.tokens == 1 and third.score is None
    assert "sentences" in result.to_json()
    assert "sentences" not in detector.detect(text).to_json()


def test_detect_many_scores_each_text() -> None:
    detector = Detector(WordScorer(), calibration(min_tokens=1))
    results = detector.detect_many(["A B C", "a b c"])
    assert [r.decision for r in results] == ["machine", "human"]


def test_a_method_needing_a_model_the_scorer_lacks_is_a_config_error() -> None:
    cal = calibration()
    other = Calibration(**{**cal.__dict__, "method": Method("binoculars", "o", "big")})
    with pytest.raises(ConfigError, match="big"):
        Detector(WordScorer(), other)


def test_sentence_spans() -> None:
    assert sentence_spans("One. Two?  Three\n\nFour") == [(0, 4), (5, 9), (11, 16), (18, 22)]
    assert sentence_spans("") == []
    assert TokenStats().select(slice(0, 1)).nll == {}
