"""Turn events: features that record a turn subscribe here instead of hooking the layers.

Handlers are awaited in subscription order before the answer is returned (or, for a stream,
before its last event), so what they write is durable when the client sees the answer; one
that must not delay the answer schedules its own background work. A handler that fails fails
the turn, as a failed write would: an answer is never acknowledged unrecorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from strata.core.turn import TurnCompleted

Handler = Callable[[TurnCompleted], Awaitable[None]]


class TurnEvents:
    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self.handlers.append(handler)

    async def publish(self, event: TurnCompleted) -> None:
        for handler in self.handlers:
            await handler(event)
