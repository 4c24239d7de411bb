"""Everything a strata process serves, built once from the settings: the engine, the chat
pipeline, and each feature's stores and layers. The HTTP app and the CLI's in-process client
build the same stack, so a feature behaves alike whichever door a request came in by.

Each feature adds itself here in one place: its store(s) as an attribute, its layer or
dispatcher on the pipeline, and (in ``serve.app``) its REST router.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from strata.config import Settings
from strata.engine import Engine
from strata.pipeline import Pipeline

if TYPE_CHECKING:
    from strata.knowledge.base import KnowledgeBase


class Stack:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else Engine(settings)
        self.pipeline = Pipeline(self.engine)
        from strata.knowledge.grounding import KnowledgeLayer

        self.pipeline.add_layer(
            KnowledgeLayer(lambda: self.knowledge, settings.knowledge, bool(settings.api_keys))
        )

    @cached_property
    def knowledge(self) -> KnowledgeBase:
        """Opened on first use, so a process that never grounds never touches its file."""
        from strata.knowledge.base import KnowledgeBase

        return KnowledgeBase(self.settings.home, self.settings.knowledge)

    async def startup(self) -> None:
        await self.engine.startup()

    async def shutdown(self) -> None:
        await self.engine.shutdown()
        if "knowledge" in self.__dict__:
            self.knowledge.close()
            del self.__dict__["knowledge"]
