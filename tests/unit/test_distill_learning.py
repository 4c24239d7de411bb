"""The flywheel on fake tiers and the hashing embedder: big-tier answers become examples, a
specialist trains in the background and answers as the route's first tier, feedback corrects
labels, tenants never share a specialist."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.core.events import FeedbackGiven
from strata.core.tenancy import Caller, tenant_of
from strata.features.routing.ledger import Ledger
from tests.conftest import fake
from tests.unit.distill_helpers import (
    LABELS,
    big_answers,
    closed_turn,
    distill_of,
    distill_settings,
    teach,
    text_for,
)
from tests.unit.routing_helpers import SCORES
from tests.unit.turns import Stack, send


@pytest.fixture(autouse=True)
def _fresh_scores() -> Iterator[None]:
    SCORES.clear()
    yield
    SCORES.clear()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(distill_settings(tmp_path))
    yield s
    asyncio.run(s.shutdown())


def test_big_tier_answers_are_kept_as_examples_and_small_ones_are_not(stack: Stack) -> None:
    async def scenario() -> None:
        await big_answers(stack, "weather", text_for("weather", 0))
        fake(stack.engine, "small").enqueue(json.dumps({"label": "sports"}))
        SCORES.append(0.9)  # the small tier is sure: its answer is no training label
        small = closed_turn(text_for("sports", 1))
        await send(stack, small)
        assert small.answered_by == "small"
        open_ended = closed_turn("hello")
        open_ended.turn.gen.params = type(open_ended.turn.gen.params)(temperature=0.0)
        fake(stack.engine, "small").enqueue("hi")
        SCORES.append(0.9)
        await send(stack, open_ended)  # no label set: not observed at all

    asyncio.run(scenario())
    store = distill_of(stack).store
    tenant = tenant_of("key:alice")
    (task,) = store.tasks(tenant)
    examples = store.examples(tenant, task)
    assert [(e.text, e.label) for e in examples] == [(text_for("weather", 0), "weather")]
    assert store.traffic(tenant, task, 100)["all"] == {"big": 1, "small": 1}


def test_a_specialist_trains_in_the_background_and_answers_first(stack: Stack) -> None:
    async def scenario() -> None:
        await teach(stack, 40)
        assert distill_of(stack).serving, "40 examples should have trained a specialist"
        small_calls = len(fake(stack.engine, "small").calls)
        big_calls = len(fake(stack.engine, "big").calls)
        asked = closed_turn(text_for("weather", 2))
        text = await send(stack, asked)
        assert json.loads(text) == {"label": "weather"}
        assert asked.answered_by is not None and asked.answered_by.startswith("specialist:r-")
        assert len(fake(stack.engine, "small").calls) == small_calls  # no model ran
        assert len(fake(stack.engine, "big").calls) == big_calls
        route = asked.info["route"]
        first = route["tiers"][0]
        assert first["model"] == asked.answered_by and first["ran"]
        assert first["confidence"] >= first["threshold"] >= 0.6
        assert route["confidence"] == first["confidence"]
        assert [t["ran"] for t in route["tiers"][1:]] == [False, False]
        assert route["cost"] < route["baseline_cost"]

    asyncio.run(scenario())
    ledger = Ledger(stack.settings.home / "ledger.db")
    last = ledger.rows()[-1]
    ledger.close()
    assert last["answered_by"].startswith("specialist:")
    assert last["cost_usd"] < last["baseline_usd"] / 100  # priced as compute, near zero


def test_an_unsure_specialist_hands_the_turn_to_the_cascade(stack: Stack) -> None:
    async def scenario() -> None:
        await teach(stack, 40)
        distill = distill_of(stack)
        for serving in distill.serving.values():
            serving.threshold = 1.01  # nothing reaches it
        asked = await big_answers(stack, "sports", text_for("sports", 4))
        route = asked.info["route"]
        assert asked.answered_by == "big"
        assert route["tiers"][0]["model"].startswith("specialist:")
        assert route["tiers"][0]["confidence"] < 1.01
        assert [t["ran"] for t in route["tiers"]] == [True, True, True]

    asyncio.run(scenario())


def test_specialists_are_per_tenant(stack: Stack) -> None:
    async def scenario() -> None:
        await teach(stack, 40, key="key:alice")
        asked = await big_answers(stack, "weather", text_for("weather", 2), key="key:bob")
        assert asked.answered_by == "big"  # bob has no specialist: the cascade ran
        assert "specialist" not in asked.info["route"]["tiers"][0]["model"]
        assert await distill_of(stack).distill(tenant_of("key:bob"), "r") != []

    asyncio.run(scenario())
    distill = distill_of(stack)
    assert {tenant for tenant, _ in distill.serving} == {tenant_of("key:alice")}
    assert distill.listing(tenant_of("key:bob"))[0]["examples"] == 1


def test_feedback_corrects_and_drops_labels(stack: Stack) -> None:
    async def scenario() -> None:
        first = await big_answers(stack, "sports", text_for("weather", 0))
        second = await big_answers(stack, "sports", text_for("weather", 1))
        caller = first.turn.caller
        events = stack.events
        await events.feedback(
            FeedbackGiven(caller, first.turn.response_id, 0, json.dumps({"label": "weather"}))
        )
        await events.feedback(FeedbackGiven(caller, second.turn.response_id, -1))
        other = Caller(tenant_of("key:eve"), tenant_of("key:eve"), "key:eve")
        await events.feedback(FeedbackGiven(other, second.turn.response_id, 0, "sports"))

    asyncio.run(scenario())
    store = distill_of(stack).store
    tenant = tenant_of("key:alice")
    (task,) = store.tasks(tenant)
    assert [(e.text, e.label) for e in store.examples(tenant, task)] == [
        (text_for("weather", 0), "weather")
    ]


def test_training_waits_for_enough_new_examples(stack: Stack) -> None:
    async def scenario() -> None:
        await teach(stack, 9)
        assert not distill_of(stack).serving  # under min_examples / retrain_every
        await teach(stack, 31)
        assert len(distill_of(stack).serving) == 1

    asyncio.run(scenario())
    tenant = tenant_of("key:alice")
    (row,) = distill_of(stack).listing(tenant)
    assert row["trainings"] >= 1 and row["labels"] == len(LABELS)
    # Once serving, the specialist answers some of the rest: those teach it nothing.
    traffic = row["traffic"]
    assert sum(traffic.values()) == 40
    assert row["examples"] == traffic["big"]


def test_users_corrections_alone_start_a_retraining(stack: Stack) -> None:
    async def scenario() -> None:
        asked = await teach(stack, 10)
        tenant = asked[0].turn.caller.tenant
        (task,) = distill_of(stack).store.tasks(tenant)
        assert distill_of(stack).store.trainings(tenant, task) == 1
        for one in asked[:5]:  # five corrections, no new big-tier answer
            await stack.events.feedback(
                FeedbackGiven(
                    one.turn.caller, one.turn.response_id, 0, json.dumps({"label": "weather"})
                )
            )
        await distill_of(stack).drain()
        assert distill_of(stack).store.trainings(tenant, task) == 2

    asyncio.run(scenario())


def test_users_labels_stop_a_wrong_big_tier_being_copied(stack: Stack) -> None:
    """The big tier answers "sports" to everything; users correct 12 of 24 turns. The
    specialist learns from the corrections, not the big tier, and answers weather."""

    async def scenario() -> None:
        asked = []
        for i in range(24):
            truth = LABELS[i % 2]
            one = await big_answers(stack, "sports", text_for(truth, i))
            asked.append(one)
            if i % 2 == 0 or i % 4 == 1:  # every sports turn confirmed, half the weather
                await stack.events.feedback(
                    FeedbackGiven(
                        one.turn.caller, one.turn.response_id, 0, json.dumps({"label": truth})
                    )
                )
        await distill_of(stack).drain()
        distill = distill_of(stack)
        (serving,) = distill.serving.values()
        assert serving.threshold < 1.01  # below NEVER: it answers
        reply = await distill.answer("r", closed_turn(text_for("weather", 5)).turn)
        assert reply is not None and json.loads(reply.text) == {"label": "weather"}
        assert reply.confidence >= reply.threshold

    asyncio.run(scenario())
    tenant = tenant_of("key:alice")
    store = distill_of(stack).store
    (task,) = store.tasks(tenant)
    rows = store.db.query(
        "SELECT report FROM specialists WHERE tenant = ? AND task = ? AND active = 1",
        (tenant, task),
    )
    report = json.loads(rows[0]["report"])
    assert report["source"] == "feedback" and report["swap_judged_on"] == "users"
    assert report["route_accuracy"] < 0.8


def test_examples_that_arrive_during_a_training_start_the_next_one(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training held open while ten more answers arrive: when it ends, the flywheel trains
    again on all twenty, rather than waiting for the next request to notice them."""
    from strata.features.distill import runtime, trainer

    release = threading.Event()
    real_train = trainer.train

    def slow_train(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runtime, "train", slow_train)  # the name runtime calls

    async def scenario() -> None:
        for i in range(20):  # the 10th starts a training; the next ten arrive during it
            await big_answers(stack, LABELS[i % 2], text_for(LABELS[i % 2], i))
        release.set()
        await distill_of(stack).drain()

    asyncio.run(scenario())
    tenant = tenant_of("key:alice")
    (task,) = distill_of(stack).store.tasks(tenant)
    assert distill_of(stack).store.trainings(tenant, task) == 2
    assert distill_of(stack).store.last_training(tenant, task)[0] == 20
