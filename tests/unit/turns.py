"""Driving the chat service directly, as the HTTP edge does: a kernel with its features'
runtimes at hand, and a turn that remembers what came of it once sent."""

from __future__ import annotations

from typing import Any

from strata.core.kernel import Kernel
from strata.core.turn import Turn, TurnResult
from strata.features.dialogue.feature import Dialogue
from strata.features.dialogue.store import SessionStore
from strata.features.dialogue.summary import Summariser
from strata.features.routing.feature import Routing


class Stack(Kernel):
    """The kernel, with the runtimes these tests reach into."""

    @property
    def routing(self) -> Routing:
        return self.feature("routing", Routing)

    @property
    def sessions(self) -> SessionStore:
        return self.feature("dialogue", Dialogue).sessions

    @property
    def summariser(self) -> Summariser:
        return self.feature("dialogue", Dialogue).summariser


class Asked:
    """A chat turn and, once sent, what came of it: who answered, the ``strata`` report."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.result = TurnResult(turn.model)

    @property
    def answered_by(self) -> str | None:
        return self.result.answered_by

    @property
    def info(self) -> dict[str, Any]:
        return self.result.report

    async def before(self, stack: Kernel) -> None:
        """Only the layers' ``before`` (what a test of refusals needs)."""
        self.result = stack.service.start(self.turn)
        await stack.service.before(self.turn, self.result)


async def send(stack: Kernel, asked: Asked) -> str:
    """One turn through the chat service: layers' before, the dispatch, layers' after."""
    asked.result = await stack.service.run(asked.turn)
    return asked.result.texts[0]
