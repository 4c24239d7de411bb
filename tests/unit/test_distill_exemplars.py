"""Exemplars on fake tiers and the hashing embedder: a confident big-tier answer to an
open-ended request becomes a worked example; a later similar request to the small tier
carries it in its prompt (an unrelated one does not), within the token budget and the
window; feedback keeps or drops one; tenants never see each other's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.core.events import FeedbackGiven
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.tenancy import Caller, tenant_of
from strata.core.turn import Turn
from tests.conftest import fake
from tests.unit.distill_helpers import distill_of, distill_settings
from tests.unit.routing_helpers import SCORES
from tests.unit.turns import Asked, Stack, send

BREAD = "how do I bake a loaf of sourdough bread at home with a starter"
BREAD_AGAIN = "how do I bake sourdough bread at home without a starter"
BREAD_ANSWER = "Mix flour, water and starter, let it rise overnight, then bake it hot."
UNRELATED = "which planets of the solar system have rings around them"
FAKE_CONFIDENCE = 0.8187  # exp(-0.2): every fake token's logprob


@pytest.fixture(autouse=True)
def _fresh_scores() -> Iterator[None]:
    SCORES.clear()
    yield
    SCORES.clear()


def make_stack(tmp_path: Path, **distill: Any) -> Stack:
    values = {"exemplars": True, "exemplars_min_similarity": 0.3, **distill}
    return Stack(distill_settings(tmp_path, **values))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = make_stack(tmp_path)
    yield s
    asyncio.run(s.shutdown())


def open_turn(text: str, key: str = "key:alice", system: str | None = None) -> Asked:
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    gen = GenerationRequest(
        kind="chat", messages=messages, params=SamplingParams(temperature=0.0, max_tokens=64)
    )
    tenant = tenant_of(key)
    return Asked(Turn("r", gen, Caller(tenant, tenant, key)))


async def big_answers(stack: Stack, text: str, answer: str, key: str = "key:alice") -> Asked:
    """The small tier is unsure, so the big tier answers (and is scored)."""
    fake(stack.engine, "small").enqueue("not sure")
    fake(stack.engine, "big").enqueue(answer)
    SCORES.append(0.1)
    asked = open_turn(text, key)
    await send(stack, asked)
    await distill_of(stack).drain()  # the exemplar's embedding, off the answer path
    return asked


async def small_answers(stack: Stack, asked: Asked) -> list[dict[str, Any]]:
    """The small tier answers ``asked`` confidently; returns the messages it was sent."""
    fake(stack.engine, "small").enqueue("an answer")
    SCORES.append(0.9)
    await send(stack, asked)
    assert asked.answered_by == "small"
    await distill_of(stack).drain()
    return list(fake(stack.engine, "small").calls[-1].messages or [])


def test_a_kept_big_answer_is_a_similar_requests_few_shot_example(stack: Stack) -> None:
    async def scenario() -> None:
        first = await big_answers(stack, BREAD, BREAD_ANSWER)
        last = first.info["route"]["tiers"][-1]
        assert first.answered_by == "big" and last["confidence"] == FAKE_CONFIDENCE
        assert fake(stack.engine, "big").calls[-1].params.logprobs  # asked, to score it
        similar = open_turn(BREAD_AGAIN)
        sent = await small_answers(stack, similar)
        assert sent == [
            {"role": "user", "content": BREAD},
            {"role": "assistant", "content": BREAD_ANSWER},
            {"role": "user", "content": BREAD_AGAIN},
        ]
        entry = similar.info["route"]["tiers"][0]
        assert entry["exemplars"] == [first.turn.response_id]
        assert entry["exemplar_tokens"] == len((BREAD + " " + BREAD_ANSWER).split())
        unrelated = open_turn(UNRELATED)
        assert await small_answers(stack, unrelated) == [{"role": "user", "content": UNRELATED}]
        assert "exemplars" not in unrelated.info["route"]["tiers"][0]

    asyncio.run(scenario())
    counts = distill_of(stack).exemplars.listing(tenant_of("key:alice"))
    assert (counts["kept"], counts["candidates"]) == (1, 2)  # the small answers may be voted up


def test_exemplars_follow_the_system_prompt_most_similar_last(stack: Stack) -> None:
    async def scenario() -> None:
        await big_answers(stack, BREAD, BREAD_ANSWER)
        await big_answers(stack, "bake sourdough bread", "Bake it.")
        asked = open_turn("bake sourdough bread", system="Be brief.")
        sent = await small_answers(stack, asked)
        assert [m["role"] for m in sent] == ["system", "user", "assistant"] * 1 + [
            "user",
            "assistant",
            "user",
        ]
        assert sent[0]["content"] == "Be brief." and sent[3]["content"] == "bake sourdough bread"

    asyncio.run(scenario())


def test_an_unsure_big_answer_is_kept_only_once_a_user_votes_it_up(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, exemplars_keep_confidence=0.9)

    async def scenario() -> None:
        first = await big_answers(stack, BREAD, BREAD_ANSWER)
        assert await small_answers(stack, open_turn(BREAD_AGAIN)) == [
            {"role": "user", "content": BREAD_AGAIN}
        ]
        await stack.events.feedback(FeedbackGiven(first.turn.caller, first.turn.response_id, 1))
        await distill_of(stack).drain()
        sent = await small_answers(stack, open_turn(BREAD_AGAIN))
        assert sent[1] == {"role": "assistant", "content": BREAD_ANSWER}
        # A thumbs-down takes it out again.
        await stack.events.feedback(FeedbackGiven(first.turn.caller, first.turn.response_id, -1))
        assert len(await small_answers(stack, open_turn(BREAD_AGAIN))) == 1

    asyncio.run(scenario())
    asyncio.run(stack.shutdown())


def test_a_users_correction_becomes_the_exemplars_answer(stack: Stack) -> None:
    async def scenario() -> None:
        asked = open_turn(BREAD)
        await small_answers(stack, asked)  # a small-tier answer: a candidate only
        fixed = "Feed the starter, mix, proof for twelve hours, bake at 250 C."
        await stack.events.feedback(
            FeedbackGiven(asked.turn.caller, asked.turn.response_id, 0, fixed)
        )
        await distill_of(stack).drain()
        sent = await small_answers(stack, open_turn(BREAD_AGAIN))
        assert sent[:2] == [
            {"role": "user", "content": BREAD},
            {"role": "assistant", "content": fixed},
        ]

    asyncio.run(scenario())


def test_tenants_never_share_exemplars(stack: Stack) -> None:
    async def scenario() -> None:
        first = await big_answers(stack, BREAD, BREAD_ANSWER, key="key:alice")
        assert len(await small_answers(stack, open_turn(BREAD_AGAIN, key="key:bob"))) == 1
        # bob cannot vote alice's answer into his exemplars either
        bob = Caller(tenant_of("key:bob"), tenant_of("key:bob"), "key:bob")
        await stack.events.feedback(FeedbackGiven(bob, first.turn.response_id, 1))
        assert len(await small_answers(stack, open_turn(BREAD_AGAIN, key="key:bob"))) == 1
        assert len(await small_answers(stack, open_turn(BREAD_AGAIN, key="key:alice"))) == 3

    asyncio.run(scenario())


def test_the_token_budget_and_the_window_are_respected(tmp_path: Path) -> None:
    long_answer = " ".join(["knead"] * 60)
    stack = make_stack(tmp_path, exemplars_tokens=40, exemplars_k=3)

    async def scenario() -> None:
        await big_answers(stack, BREAD, long_answer)  # 72 tokens: never fits 40
        short = await big_answers(stack, "bake sourdough bread at home", "Bake it hot.")
        asked = open_turn(BREAD_AGAIN)
        sent = await small_answers(stack, asked)
        entry = asked.info["route"]["tiers"][0]
        assert entry["exemplars"] == [short.turn.response_id]
        assert entry["exemplar_tokens"] <= 40 and len(sent) == 3
        # A prompt that leaves no room in the small tier's 512-token window gets none.
        crowded = open_turn(BREAD_AGAIN + " " + " ".join(["please"] * 430))
        assert len(await small_answers(stack, crowded)) == 1

    asyncio.run(scenario())
    asyncio.run(stack.shutdown())


def test_exemplars_are_bounded_per_tenant(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, exemplars_max=2)

    async def scenario() -> None:
        for i in range(3):
            await big_answers(stack, f"{BREAD} number {i}", f"answer {i}")

    asyncio.run(scenario())
    rows = distill_of(stack).exemplars.store.kept(tenant_of("key:alice"))
    assert [r.answer for r in rows] == ["answer 1", "answer 2"]
    asyncio.run(stack.shutdown())


def test_off_nothing_is_kept_and_the_big_tier_is_not_scored(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, exemplars=False)

    async def scenario() -> None:
        first = await big_answers(stack, BREAD, BREAD_ANSWER)
        assert "confidence" not in first.info["route"]["tiers"][-1]
        assert not fake(stack.engine, "big").calls[-1].params.logprobs
        assert len(await small_answers(stack, open_turn(BREAD_AGAIN))) == 1

    asyncio.run(scenario())
    assert distill_of(stack).exemplars.store.counts(tenant_of("key:alice")) == {
        "kept": 0,
        "candidates": 0,
    }
    asyncio.run(stack.shutdown())
