"""The knowledge base as a strata feature: the ``[knowledge]`` settings, the grounding layer,
``/v1/collections``, ``strata ingest|search|kb``, and the ``KnowledgeSearch`` protocol for
other features (an agent's ``knowledge_search`` tool, say)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.core.protocols import KnowledgeSearch, Passage
from strata.features.knowledge.settings import KnowledgeSettings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel
    from strata.features.knowledge.base import KnowledgeBase


class Knowledge:
    """The knowledge feature's runtime; the base opens on first use, so a process that never
    grounds never touches its file (nor loads the embedder)."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.features.knowledge.grounding import KnowledgeLayer

        self.home = kernel.settings.home
        self.database = kernel.settings.database
        self.settings = kernel.settings.section("knowledge", KnowledgeSettings)
        kernel.service.add_layer(KnowledgeLayer(lambda: self.base, self.settings))
        kernel.provide(KnowledgeSearch, self)  # type: ignore[type-abstract]

    @cached_property
    def base(self) -> KnowledgeBase:
        from strata.features.knowledge.base import KnowledgeBase

        return KnowledgeBase(self.home, self.settings, database=self.database)

    def search(self, tenant: str, collection: str, query: str, top_k: int) -> list[Passage]:
        return [
            Passage(h.document_id, h.position, h.text, h.score, h.title, h.metadata)
            for h in self.base.search(tenant, collection, query, top_k)
        ]

    async def shutdown(self) -> None:
        if "base" in self.__dict__:
            self.base.close()
            del self.__dict__["base"]


class KnowledgeFeature(Feature):
    name = "knowledge"

    def build(self, kernel: Kernel) -> Knowledge:
        return Knowledge(kernel)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        return {"knowledge": (KnowledgeSettings, Field(default_factory=KnowledgeSettings))}

    def router(self) -> APIRouter:
        from strata.features.knowledge.routes import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.knowledge.cli import COMMANDS

        return COMMANDS


feature = KnowledgeFeature()
