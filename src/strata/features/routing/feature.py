"""Routing as a strata feature: the router (a dispatcher for ``auto`` and the configured
routes, with any ``Specialist`` another feature provides as its first tier and any
``Exemplars`` it provides in its lower tiers' prompts) and the ledger
(a ``TurnCompleted`` subscriber), over the kernel's cost meter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.core.protocols import Exemplars, Specialist
from strata.core.settings import CoreSettings
from strata.features.routing.settings import RouteSpec

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel


def ledger_path(settings: CoreSettings) -> Path | str:
    """The ledger's repository: ``ledger.db`` in home, or the PostgreSQL database."""
    return settings.store("ledger")


class Routing:
    """The routing feature's runtime in one process."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.features.routing.cascade import Router
        from strata.features.routing.ledger import Ledger, LedgerRecorder
        from strata.features.routing.settings import all_routes
        from strata.features.routing.tuning import load_tuning

        settings, engine = kernel.settings, kernel.engine
        self.costs = kernel.costs
        configured: dict[str, RouteSpec] = getattr(settings, "routes", {})
        self.routes = all_routes(configured, set(engine.models))
        self.router = Router(
            engine,
            self.routes,
            self.costs,
            load_tuning(settings.home),
            specialist=lambda: kernel.lookup(Specialist),  # type: ignore[type-abstract]
            exemplars=lambda: kernel.lookup(Exemplars),  # type: ignore[type-abstract]
        )
        self.ledger = Ledger(ledger_path(settings))
        kernel.service.add_dispatcher(self.router)
        kernel.events.subscribe(LedgerRecorder(self.ledger))

    def close(self) -> None:
        self.ledger.close()

    async def shutdown(self) -> None:
        self.close()


class RoutingFeature(Feature):
    name = "routing"

    def build(self, kernel: Kernel) -> Routing:
        return Routing(kernel)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        routes: Any = Field(
            default_factory=dict, description="Named routes (model: NAME), added to auto, auto-*"
        )
        return {"routes": (dict[str, RouteSpec], routes)}

    def router(self) -> APIRouter:
        from strata.features.routing.api import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.routing.cli import commands

        return commands()


feature = RoutingFeature()
