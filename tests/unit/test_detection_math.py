"""The detectors' arithmetic on made-up logits: no model, no llama.cpp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strata.features.detection.methods import Method, binoculars, fast_detectgpt
from strata.features.detection.scorer import char_starts, windows
from strata.features.detection.stats import TokenStats, log_softmax, token_stats

VOCAB = 50


def fake_logits(n: int, seed: int, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, size=(n, VOCAB)).astype(np.float32)


def test_log_softmax_matches_the_definition() -> None:
    x = fake_logits(4, 0).astype(np.float64)
    expected = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    assert np.allclose(log_softmax(x), expected, atol=1e-5)
    assert np.allclose(np.exp(log_softmax(x + 1000.0)).sum(axis=1), 1.0, atol=1e-5)


def test_token_stats_match_brute_force() -> None:
    n = 70  # more than one block of rows
    logits = {"a": fake_logits(n, 1), "b": fake_logits(n, 2)}
    targets = np.random.default_rng(3).integers(0, VOCAB, size=n)
    pairs = [("a", "a"), ("a", "b"), ("b", "a")]
    stats = token_stats(logits, targets, pairs)
    assert len(stats) == n
    logp = {k: log_softmax(v).astype(np.float64) for k, v in logits.items()}
    for name in logits:
        assert np.allclose(stats.nll[name], -logp[name][np.arange(n), targets], atol=1e-5)
    for q, s in pairs:
        p = np.exp(logp[q])
        assert np.allclose(stats.cross[(q, s)], -(p * logp[s]).sum(axis=1), atol=1e-4)
        assert np.allclose(stats.cross_sq[(q, s)], (p * logp[s] ** 2).sum(axis=1), rtol=1e-4)
    entropy = -(np.exp(logp["a"]) * logp["a"]).sum(axis=1)
    assert np.allclose(stats.cross[("a", "a")], entropy, atol=1e-4)


def test_token_stats_refuses_mismatched_inputs() -> None:
    targets = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="vocabulary"):
        token_stats({"a": np.zeros((3, 5)), "b": np.zeros((3, 6))}, targets, [])
    with pytest.raises(ValueError, match="rows"):
        token_stats({"a": np.zeros((2, 5))}, targets, [])
    with pytest.raises(ValueError, match="pair"):
        token_stats({"a": np.zeros((3, 5))}, targets, [("a", "b")])


def test_stats_select_concat_and_arrays_round_trip() -> None:
    stats = token_stats({"a": fake_logits(10, 4)}, np.arange(10) % VOCAB, [("a", "a")])
    halves = [stats.select(slice(0, 4)), stats.select(slice(4, 10))]
    joined = TokenStats.concat(halves)
    assert np.array_equal(joined.nll["a"], stats.nll["a"])
    back = TokenStats.from_arrays(stats.to_arrays())
    assert np.array_equal(back.cross_sq[("a", "a")], stats.cross_sq[("a", "a")])
    assert len(TokenStats.concat([])) == 0


@pytest.mark.parametrize(
    ("n", "window", "context"), [(2, 4, 1), (5, 4, 1), (300, 64, 16), (9, 2, 0)]
)
def test_windows_predict_every_target_once_with_context(n: int, window: int, context: int) -> None:
    predicted = []
    for start, stop, first_row in windows(n, window, context):
        assert stop - start <= window
        rows = range(first_row, stop - start)
        predicted += [start + r + 1 for r in rows]
        if start > 0:
            assert first_row == context  # history re-fed before the new targets
    assert predicted == list(range(1, n))


def test_windows_validate_their_arguments() -> None:
    with pytest.raises(ValueError):
        windows(10, 4, 3)
    assert windows(1, 4, 1) == []


def test_char_starts_handle_multibyte_pieces() -> None:
    text = "né🙂x"
    pieces = [b"n", "é".encode(), "🙂".encode()[:2], "🙂".encode()[2:], b"x"]
    starts = char_starts(pieces, text)
    assert starts is not None
    assert starts.tolist() == [0, 1, 2, 2, 3]
    assert char_starts([b"nope"], text) is None


def stats_from(nll: list[float], cross: list[float], cross_sq: list[float]) -> TokenStats:
    pair = ("o", "p")
    return TokenStats(
        nll={"p": np.asarray(nll), "o": np.asarray(nll)},
        cross={pair: np.asarray(cross)},
        cross_sq={pair: np.asarray(cross_sq)},
    )


def test_binoculars_is_perplexity_over_cross_perplexity() -> None:
    stats = stats_from([1.0, 3.0], [4.0, 4.0], [0.0, 0.0])
    assert binoculars(stats, "o", "p") == pytest.approx(2.0 / 4.0)
    assert Method("binoculars", "o", "p").score(stats) == pytest.approx(0.5)


def test_fast_detectgpt_standardises_the_discrepancy() -> None:
    # log-likelihood sum -2, expected -8, variance sum (20-16)+(20-16) = 8
    stats = stats_from([1.0, 1.0], [4.0, 4.0], [20.0, 20.0])
    assert fast_detectgpt(stats, "o", "p") == pytest.approx(6.0 / math.sqrt(8.0))


def test_fast_detectgpt_is_near_zero_on_text_sampled_from_the_model() -> None:
    """Under the null (tokens drawn from the reference = scoring model) the criterion is
    approximately standard normal; the most likely tokens score far above it."""
    rng = np.random.default_rng(7)
    logits = fake_logits(400, 8, scale=2.0)
    probs = np.exp(log_softmax(logits).astype(np.float64))
    sampled = np.array([rng.choice(VOCAB, p=row / row.sum()) for row in probs])
    method = Method("fast-detectgpt", "m", "m")
    null = method.score(token_stats({"m": logits}, sampled, method.pairs))
    greedy = method.score(token_stats({"m": logits}, logits.argmax(axis=1), method.pairs))
    assert abs(null) < 4.0
    assert greedy > 10.0
    assert method.machine_likeness(greedy) > method.machine_likeness(null)


def test_predictable_text_looks_machine_made_to_every_method() -> None:
    logits = {"o": fake_logits(200, 9), "p": fake_logits(200, 9) + fake_logits(200, 10, 0.5)}
    greedy = logits["p"].argmax(axis=1)
    random_tokens = np.random.default_rng(11).integers(0, VOCAB, size=200)
    for method in (
        Method("log-perplexity", "p", "p"),
        Method("binoculars", "o", "p"),
        Method("fast-detectgpt", "o", "p"),
    ):
        machine = method.score(token_stats(logits, greedy, method.pairs))
        human = method.score(token_stats(logits, random_tokens, method.pairs))
        assert method.machine_likeness(machine) > method.machine_likeness(human), method.name


def test_method_validates_and_describes_itself() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Method("gptzero", "a", "a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one model"):
        Method("log-perplexity", "a", "b")
    both = Method("binoculars", "a", "b")
    assert both.models == ("a", "b")
    assert both.pairs == (("a", "b"),)
    assert not both.machine_high
    assert Method("log-perplexity", "a", "a").pairs == ()
    assert Method("fast-detectgpt", "a", "a").models == ("a",)
    with pytest.raises(ValueError, match="no tokens"):
        both.score(TokenStats())
