"""The cascade: escalation on confidence, overrides, degradation, and the route report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.core.errors import BackendError, BackendUnavailable, QueueFull
from strata.features.routing.tuning import CurvePoint, RouteTuning, save_tuning
from tests.conftest import fake
from tests.unit.routing_helpers import (
    BIG_PRICE,
    PROMPT_SCORES,
    SCORES,
    SMALL_PRICE,
    ask,
    cost,
    routing_settings,
    send,
    turn_for,
)
from tests.unit.turns import Stack


@pytest.fixture(autouse=True)
def _fresh_scores() -> Iterator[None]:
    SCORES.clear()
    PROMPT_SCORES.clear()
    yield
    SCORES.clear()
    PROMPT_SCORES.clear()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(routing_settings(tmp_path))
    yield s
    s.routing.close()


def test_confident_small_answers_and_big_is_never_called(stack: Stack) -> None:
    fake(stack.engine, "small").enqueue("small answer")
    SCORES.append(0.9)
    turn, text = ask(stack, "r")
    assert text == "small answer"
    assert turn.answered_by == "small"
    assert fake(stack.engine, "big").calls == []
    route = turn.info["route"]
    small, big = route["tiers"]
    assert small["ran"] and small["confidence"] == 0.9 and small["threshold"] == 0.5
    assert not big["ran"]
    assert "0.900 >= threshold 0.5" in route["reason"]
    # prompt "hi there" = 3 fake tokens, answer = 2
    assert small["cost"] == pytest.approx(cost(SMALL_PRICE, 3, 2), abs=1e-15)
    assert route["baseline_cost"] == pytest.approx(cost(BIG_PRICE, 3, 2), abs=1e-15)
    assert route["degraded"] is False


def test_unsure_small_escalates_to_big(stack: Stack) -> None:
    fake(stack.engine, "small").enqueue("maybe this")
    fake(stack.engine, "big").enqueue("the real answer here")
    SCORES.append(0.2)
    turn, text = ask(stack, "r")
    assert text == "the real answer here"
    assert turn.answered_by == "big"
    route = turn.info["route"]
    assert [t["ran"] for t in route["tiers"]] == [True, True]
    assert "0.200 < threshold 0.5 at small" in route["reason"]
    assert route["cost"] == pytest.approx(
        cost(SMALL_PRICE, 3, 2) + cost(BIG_PRICE, 3, 4), abs=1e-15
    )
    assert route["baseline_cost"] == pytest.approx(cost(BIG_PRICE, 3, 4), abs=1e-15)


def test_small_tier_is_asked_for_logprobs_but_the_client_gets_none(stack: Stack) -> None:
    SCORES.append(0.9)
    turn = turn_for("r")
    chunks = asyncio.run(_chunks(stack, turn))
    assert fake(stack.engine, "small").calls[0].params.logprobs is True
    assert all(c.logprobs is None for c in chunks)


async def _chunks(stack: Stack, asked):  # type: ignore[no-untyped-def]
    return [c async for c in stack.service.generate(asked.turn, asked.result)]


def test_quality_override_raises_the_bar(stack: Stack) -> None:
    SCORES.extend([0.9, 0.9])
    turn, _ = ask(stack, "r")
    assert turn.answered_by == "small"
    turn, _ = ask(stack, "r", options={"quality": 0.95})
    assert turn.answered_by == "big"
    assert turn.info["route"]["tiers"][0]["threshold"] == 0.95


def test_quality_override_uses_the_calibrated_curve(tmp_path: Path) -> None:
    settings = routing_settings(tmp_path)
    curve = [
        CurvePoint(threshold=0.3, quality=0.80, big_share=0.1, cost_per_request=1.0),
        CurvePoint(threshold=0.6, quality=0.93, big_share=0.3, cost_per_request=2.0),
        CurvePoint(threshold=0.8, quality=0.97, big_share=0.5, cost_per_request=3.0),
    ]
    save_tuning(settings.home, "r", RouteTuning(thresholds=[0.6], curve=curve))
    stack = Stack(settings)
    SCORES.extend([0.7, 0.7])
    turn, _ = ask(stack, "r")
    assert turn.answered_by == "small" and turn.info["route"]["tiers"][0]["threshold"] == 0.6
    turn, _ = ask(stack, "r", options={"quality": 0.95})
    assert turn.info["route"]["tiers"][0]["threshold"] == 0.8
    assert turn.answered_by == "big"
    stack.routing.close()


def test_max_cost_stops_escalation(stack: Stack) -> None:
    SCORES.append(0.1)
    turn, _ = ask(stack, "r", options={"max_cost": cost(SMALL_PRICE, 3, 1) * 1.5})
    assert turn.answered_by == "small"
    assert fake(stack.engine, "big").calls == []
    assert turn.info["route"]["tiers"][1]["skipped"] == "max_cost"
    assert "max_cost" in turn.info["route"]["reason"]


def test_small_tier_down_answers_from_big_marked_degraded(stack: Stack) -> None:
    fake(stack.engine, "small").enqueue(BackendUnavailable("small is down"))
    fake(stack.engine, "big").enqueue("big answer")
    turn, text = ask(stack, "r")
    assert text == "big answer" and turn.answered_by == "big"
    route = turn.info["route"]
    assert route["degraded"] is True
    assert route["tiers"][0]["skipped"] == "down"
    assert "small is down" in route["tiers"][0]["error"]


def test_big_tier_down_keeps_the_small_answer(stack: Stack) -> None:
    fake(stack.engine, "small").enqueue("small answer")
    fake(stack.engine, "big").enqueue(BackendUnavailable("big is down"))
    SCORES.append(0.1)
    turn, text = ask(stack, "r")
    assert text == "small answer" and turn.answered_by == "small"
    route = turn.info["route"]
    assert route["degraded"] is True
    assert "big unavailable" in route["reason"]


def test_saturated_small_tier_sends_requests_straight_up(stack: Stack) -> None:
    """small has max_queue = 0: while its one slot is held, a request cannot wait for it."""

    async def go() -> tuple[str, dict[str, object]]:
        scheduler = stack.engine.get("small").scheduler
        await scheduler.acquire("someone-else")
        try:
            turn = turn_for("r")
            text = await send(stack, turn)
            return text, turn.info["route"]
        finally:
            scheduler.release()

    fake(stack.engine, "big").enqueue("big answer")
    text, route = asyncio.run(go())
    assert text == "big answer"
    assert route["degraded"] is True
    assert route["tiers"][0]["skipped"] == "queue full"  # type: ignore[index]
    assert fake(stack.engine, "small").calls == []


def test_every_tier_down_is_an_error(stack: Stack) -> None:
    fake(stack.engine, "small").enqueue(BackendUnavailable("down"))
    fake(stack.engine, "big").enqueue(BackendUnavailable("down too"))
    with pytest.raises(BackendError):
        ask(stack, "r")


def test_queue_full_on_the_only_remaining_tier_surfaces(stack: Stack) -> None:
    fake(stack.engine, "small").enqueue(BackendUnavailable("down"))
    fake(stack.engine, "big").enqueue(QueueFull("busy", retry_after=2))
    with pytest.raises(QueueFull):
        ask(stack, "r")


def test_answer_prob_signal_on_real_logprobs(tmp_path: Path) -> None:
    """The fake backend gives every token logprob -0.2 (p = 0.819)."""
    stack = Stack(routing_settings(tmp_path, signal="answer_prob"))
    turn, _ = ask(stack, "r")
    assert turn.answered_by == "small"
    assert turn.info["route"]["tiers"][0]["confidence"] == pytest.approx(0.8187, abs=1e-4)
    stack.routing.close()
    stack = Stack(
        routing_settings(
            tmp_path,
            signal="answer_prob",
            tiers=[{"model": "small", "threshold": 0.9}, {"model": "big", "threshold": 0}],
        )
    )
    turn, _ = ask(stack, "r")
    assert turn.answered_by == "big"
    stack.routing.close()


def test_self_verification_asks_the_small_model_and_bills_it(tmp_path: Path) -> None:
    stack = Stack(routing_settings(tmp_path, signal="verify"))
    small = fake(stack.engine, "small")
    small.enqueue("42", "Yes")
    turn, text = ask(stack, "r")
    assert text == "42"
    judge = small.calls[1]
    assert judge.messages is not None and judge.messages[-2] == {
        "role": "assistant",
        "content": "42",
    }
    assert judge.params.max_tokens == 1
    # fake top logprobs: "Yes" first (-0.2), alternatives "alt1".. never "No": P(yes) = 1
    assert turn.info["route"]["tiers"][0]["confidence"] == 1.0
    tier = turn.info["route"]["tiers"][0]
    judge_prompt = 3 + 1 + 10  # "hi there" + "42" + the judge question, in fake tokens
    assert tier["cost"] == pytest.approx(
        cost(SMALL_PRICE, 3, 1) + cost(SMALL_PRICE, judge_prompt, 1), abs=1e-15
    )
    stack.routing.close()


def test_self_consistency_samples_the_small_model(tmp_path: Path) -> None:
    stack = Stack(routing_settings(tmp_path, signal="consistency", signal_options={"k": 3}))
    small = fake(stack.engine, "small")
    small.enqueue("Answer: 12", "so Answer: 12", "Answer: 13", "it is 12")
    turn, text = ask(stack, "r")
    assert text == "Answer: 12"
    assert len(small.calls) == 4
    assert all(c.params.temperature >= 0.7 for c in small.calls[1:])
    assert turn.info["route"]["tiers"][0]["confidence"] == pytest.approx(2 / 3, abs=1e-4)
    stack.routing.close()


def test_stream_direct_skips_the_cascade(tmp_path: Path) -> None:
    stack = Stack(routing_settings(tmp_path, stream="direct"))
    turn, _ = ask(stack, "r", stream=True)
    assert turn.answered_by == "big"
    assert fake(stack.engine, "small").calls == []
    assert turn.info["route"]["tiers"][0]["skipped"] == "stream = direct"
    stack.routing.close()


def test_plain_models_still_work_next_to_routes(stack: Stack) -> None:
    turn, text = ask(stack, "small")
    assert text == "ok" and turn.answered_by == "small"
    assert "route" not in turn.info


def test_prefilter_sends_expected_failures_straight_up(tmp_path: Path) -> None:
    stack = Stack(routing_settings(tmp_path, prefilter="prompt_scripted", prefilter_below=0.2))
    PROMPT_SCORES.extend([0.05, 0.6])
    SCORES.append(0.9)
    turn, _ = ask(stack, "r")
    assert turn.answered_by == "big"
    assert fake(stack.engine, "small").calls == []
    route = turn.info["route"]
    assert route["tiers"][0]["prefilter"] == 0.05
    assert "expected to fail" in route["reason"]
    # the small tier's cost is saved: the request costs exactly the big call
    assert route["cost"] == pytest.approx(cost(BIG_PRICE, 3, 1), abs=1e-15)
    turn, _ = ask(stack, "r")  # prefilter 0.6: the cascade runs as usual
    assert turn.answered_by == "small"
    assert turn.info["route"]["tiers"][0]["prefilter"] == 0.6
    stack.routing.close()


def test_a_prefiltered_tier_stands_in_when_the_big_one_is_down(tmp_path: Path) -> None:
    stack = Stack(routing_settings(tmp_path, prefilter="prompt_scripted", prefilter_below=0.2))
    PROMPT_SCORES.append(0.05)
    fake(stack.engine, "big").enqueue(BackendUnavailable("big is down"))
    fake(stack.engine, "small").enqueue("small after all")
    turn, text = ask(stack, "r")
    assert text == "small after all" and turn.answered_by == "small"
    route = turn.info["route"]
    assert route["degraded"] is True and route["confidence"] is None
    assert route["cost"] == pytest.approx(cost(SMALL_PRICE, 3, 3), abs=1e-15)
