"""Sessions as a strata feature: the session store, the rolling summariser, the memory layer
that builds each prompt, the transcript recorder (a ``TurnCompleted`` subscriber),
``/v1/sessions`` and ``strata sessions``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.core.feature import Feature
from strata.core.protocols import Embeddings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel


@dataclass
class _EmbedderConfig:
    """The ``EmbedderConfig`` for session turns: short texts, the model's whole window."""

    embedder: str
    embedding_model: str
    embed_batch: int = 32
    embed_max_tokens: int | None = None


class Dialogue:
    """The dialogue feature's runtime in one process."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.features.dialogue.index import TurnIndex
        from strata.features.dialogue.memory import SessionMemory, SessionRecorder
        from strata.features.dialogue.store import SessionStore
        from strata.features.dialogue.summary import Summariser

        self.kernel = kernel
        self.settings = kernel.settings.dialogue
        self.sessions = SessionStore(kernel.settings.store("dialogue"))
        self.summariser = Summariser(
            self.sessions, kernel.service, self.settings, self.summary_model
        )
        self.index = TurnIndex(self.sessions, self.embeddings, self.serving_users)
        kernel.service.add_layer(
            SessionMemory(self.sessions, kernel.engine, self.settings, self.index, self.stored)
        )
        kernel.events.subscribe(SessionRecorder(self.sessions, self.stored))

    def stored(self, sid: int, chat_model: str) -> None:
        """New turns are in ``sid``: embed them, and roll the summary if it is due (both in
        the background)."""
        self.index.schedule(sid)
        self.summariser.schedule(sid, chat_model)

    def serving_users(self) -> bool:
        return any(h.scheduler.serving_users for h in self.kernel.engine.models.values())

    def embeddings(self) -> Embeddings | None:
        """What embeds turns: an ``Embeddings`` another feature provides, else the embedder
        the settings name (``none``: keyword recall only)."""
        provided = self.kernel.lookup(Embeddings)  # type: ignore[type-abstract]
        if provided is not None:
            return provided
        if self.settings.embedder == "none":
            return None
        from strata.core.embeddings import create_embedder

        config = _EmbedderConfig(self.settings.embedder, self.settings.embedding_model)
        return create_embedder(config)

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
        await self.index.close()
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
