"""Everything a strata process serves, built once from the settings: the model pool, the turn
events, the chat service, the cost meter, the tracer, and each installed feature's runtime.
The HTTP app and the CLI build the same kernel, so a feature behaves alike whichever door a
request came in by.
"""

from __future__ import annotations

from typing import Any, TypeVar

from strata.core.engine import Engine
from strata.core.events import TurnEvents
from strata.core.feature import Runtime, installed_features
from strata.core.pricing import CostMeter
from strata.core.service import ChatService
from strata.core.settings import CoreSettings
from strata.core.tracing import make_tracer

T = TypeVar("T")


class Kernel:
    def __init__(self, settings: CoreSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else Engine(settings)
        self.events = TurnEvents()
        self.costs = CostMeter(self.engine, settings.cpu_hour_usd)
        self.tracer = make_tracer(settings.traces)
        self.service = ChatService(self.engine, self.events, self.costs.cost, self.tracer)
        self._provided: dict[type[Any], Any] = {}
        self.features: dict[str, Runtime] = {}
        for feature in installed_features():
            self.features[feature.name] = feature.build(self)

    def feature(self, name: str, kind: type[T]) -> T:
        """A feature's runtime, typed, for that feature's own edges (its router, its CLI)."""
        runtime = self.features.get(name)
        if not isinstance(runtime, kind):
            raise LookupError(f"feature {name!r} is not installed")
        return runtime

    def provide(self, protocol: type[T], implementation: T) -> None:
        """Offer a core protocol (``strata.core.protocols``) to the other features."""
        self._provided[protocol] = implementation

    def lookup(self, protocol: type[T]) -> T | None:
        found: T | None = self._provided.get(protocol)
        return found

    async def startup(self) -> None:
        await self.engine.startup()

    async def shutdown(self) -> None:
        for runtime in reversed(list(self.features.values())):
            await runtime.shutdown()
        await self.engine.shutdown()
        self.service.tracer.shutdown()
