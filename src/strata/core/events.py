"""Turn events: features that record a turn subscribe here instead of hooking the layers.

Two kinds: ``TurnCompleted`` (``subscribe``/``publish``), once per answered turn, and
``FeedbackGiven`` (``on_feedback``/``feedback``), once per rating or correction a user sent
about an answer (the apps feature owns ``POST /v1/feedback`` and publishes it), so a feature
that learns from corrections (distill) needs no import of the one that takes them.

Handlers are awaited in subscription order before the answer is returned (or, for a stream,
before its last event), so what they write is durable when the client sees the answer; one
that must not delay the answer schedules its own background work. A handler that fails fails
the turn, as a failed write would: an answer is never acknowledged unrecorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from strata.core.tenancy import Caller
from strata.core.turn import TurnCompleted


@dataclass(frozen=True)
class FeedbackGiven:
    """A user rated (``rating``: 1 up, -1 down, 0 none) and/or corrected (``edited_text``)
    the answer ``response_id``; published only once the feedback is stored."""

    caller: Caller
    response_id: str
    rating: int = 0
    edited_text: str | None = None


Handler = Callable[[TurnCompleted], Awaitable[None]]
FeedbackHandler = Callable[[FeedbackGiven], Awaitable[None]]


class TurnEvents:
    def __init__(self) -> None:
        self.handlers: list[Handler] = []
        self.feedback_handlers: list[FeedbackHandler] = []

    def subscribe(self, handler: Handler) -> None:
        self.handlers.append(handler)

    async def publish(self, event: TurnCompleted) -> None:
        for handler in self.handlers:
            await handler(event)

    def on_feedback(self, handler: FeedbackHandler) -> None:
        self.feedback_handlers.append(handler)

    async def feedback(self, event: FeedbackGiven) -> None:
        for handler in self.feedback_handlers:
            await handler(event)
