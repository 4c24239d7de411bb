"""The chat service's gates (``strata.core.turn.Gate``): asked once the layers have written
the prompt, before any model runs, and settled exactly once however the turn ends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from strata.core.engine import Engine
from strata.core.errors import BackendUnavailable, RateLimited
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.service import ChatService
from strata.core.tenancy import Caller
from strata.core.turn import Generation, Turn
from tests.conftest import fake


class Recorder:
    """A gate that admits everyone and keeps what it was asked and told."""

    def __init__(self) -> None:
        self.admitted: list[tuple[str, int]] = []
        self.settled: list[list[Generation]] = []

    def admit(self, caller: Caller, model: str, gens: Sequence[GenerationRequest]) -> Recorder:
        self.admitted.append((model, len(gens)))
        return self

    async def settle(self, generations: Sequence[Generation]) -> None:
        self.settled.append(list(generations))


class Refuser:
    def admit(self, caller: Caller, model: str, gens: Sequence[GenerationRequest]) -> None:
        raise RateLimited("slow down", retry_after=3)


def turn(content: str = "hi") -> Turn:
    gen = GenerationRequest(
        kind="chat",
        params=SamplingParams(max_tokens=4),
        messages=[{"role": "user", "content": content}],
    )
    return Turn("fake", gen)


def service(engine: Engine, *gates: object) -> ChatService:
    chat = ChatService(engine, price=lambda model, usage: 0.5)
    for gate in gates:
        chat.add_gate(gate)  # type: ignore[arg-type]
    return chat


def test_an_answered_turn_settles_once_with_its_generations(engine: Engine) -> None:
    gate = Recorder()
    fake(engine).enqueue("one", "two")
    asyncio.run(service(engine, gate).run(turn(), n=2))
    assert gate.admitted == [("fake", 2)]
    assert len(gate.settled) == 1 and [g.cost for g in gate.settled[0]] == [0.5, 0.5]


def test_a_failed_turn_settles_with_nothing(engine: Engine) -> None:
    gate = Recorder()
    fake(engine).enqueue(BackendUnavailable("down"))
    with pytest.raises(BackendUnavailable):
        asyncio.run(service(engine, gate).run(turn()))
    assert gate.settled == [[]]


def test_a_refusal_releases_what_earlier_gates_granted(engine: Engine) -> None:
    first = Recorder()
    with pytest.raises(RateLimited):
        asyncio.run(service(engine, first, Refuser()).run(turn()))
    assert first.settled == [[]]
    assert fake(engine).calls == []  # no model ran


def test_a_stream_settles_when_it_ends_or_is_abandoned(engine: Engine) -> None:
    gate = Recorder()
    chat = service(engine, gate)
    fake(engine).enqueue("a b c", "d e f")

    async def whole() -> None:
        stream = await chat.stream(turn())
        assert [c.text async for _, c in stream if c.text] == ["a", " b", " c"]

    async def abandoned() -> None:
        stream = await chat.stream(turn())
        await anext(aiter(stream))
        assert len(gate.settled) == 1  # still running
        await stream.aclose()

    asyncio.run(whole())
    assert len(gate.settled) == 1 and gate.settled[0][0].usage.completion_tokens == 3
    asyncio.run(abandoned())
    assert len(gate.settled) == 2
    (partial,) = gate.settled[1]  # billed for what it generated before the client left
    assert partial.usage.completion_tokens == 1 and partial.cost == 0.5
