"""Sessions as a strata feature: the session store, the rolling summariser, the memory layer
that builds each prompt, the transcript recorder (a ``TurnCompleted`` subscriber),
``/v1/sessions`` and ``strata sessions``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strata.core.feature import Feature

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel


class Dialogue:
    """The dialogue feature's runtime in one process."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.features.dialogue.memory import SessionMemory, SessionRecorder
        from strata.features.dialogue.store import SessionStore
        from strata.features.dialogue.summary import Summariser

        self.kernel = kernel
        self.settings = kernel.settings.dialogue
        self.sessions = SessionStore(kernel.settings.store("dialogue"))
        self.summariser = Summariser(
            self.sessions, kernel.service, self.settings, self.summary_model
        )
        kernel.service.add_layer(SessionMemory(self.sessions, kernel.engine, self.settings))
        kernel.events.subscribe(SessionRecorder(self.sessions, self.summariser))

    def summary_model(self, chat_model: str) -> str:
        """The model that summarises sessions: configured, else the default, else the chat's."""
        models = self.kernel.engine.models
        configured = self.settings.summary_model
        for name in (configured, self.kernel.settings.default_model, chat_model):
            if name and name in models:
                return name
        return configured or next(iter(models), chat_model)

    async def shutdown(self) -> None:
        await self.summariser.close()
        self.sessions.close()


class DialogueFeature(Feature):
    name = "dialogue"

    def build(self, kernel: Kernel) -> Dialogue:
        return Dialogue(kernel)

    def router(self) -> APIRouter:
        from strata.features.dialogue.routes import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.dialogue.cli import sessions

        return [sessions]


feature = DialogueFeature()
