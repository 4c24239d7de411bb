"""Keys as a strata feature: API keys issued at run time, each with an optional budget per
UTC day or month and requests/tokens per minute. It provides the core ``KeyRegistry`` (the
HTTP edge authenticates issued keys through it) and adds a ``Gate`` to the chat service (and
so to every request that generates) that enforces the limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.features.keys.settings import KeysSettings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel


class Keys:
    """The keys feature's runtime in one process."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.core.protocols import KeyRegistry
        from strata.features.keys.limits import KeyLimits
        from strata.features.keys.registry import KeyCache
        from strata.features.keys.store import KeyStore, keys_path

        settings = kernel.settings
        section = settings.section("keys", KeysSettings)
        self.store = KeyStore(keys_path(settings))
        self.cache = KeyCache(self.store, section.refresh_s)
        self.limits = KeyLimits(
            self.cache, self.store, kernel.engine, kernel.costs, section.answer_tokens
        )
        registry: KeyRegistry = self.cache
        kernel.provide(KeyRegistry, registry)  # type: ignore[type-abstract]
        kernel.service.add_gate(self.limits)

    async def shutdown(self) -> None:
        await self.limits.writer.flush()
        await self.cache.close()
        self.store.close()


class KeysFeature(Feature):
    name = "keys"

    def build(self, kernel: Kernel) -> Keys:
        return Keys(kernel)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        section: Any = Field(
            default_factory=KeysSettings, description="Issued API keys: budgets, rate limits"
        )
        return {"keys": (KeysSettings, section)}

    def router(self) -> APIRouter:
        from strata.features.keys.routes import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.keys.cli import keys

        return [keys]


feature = KeysFeature()
