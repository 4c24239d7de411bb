"""Routing as a strata feature: the cost meter, the ledger and the router, wired into the
stack once (``strata.stack``) so the HTTP app and the CLI route and bill alike."""

from __future__ import annotations

from strata.config import Settings
from strata.engine import Engine
from strata.pipeline import Pipeline
from strata.routing.cascade import Router
from strata.routing.cost import CostMeter
from strata.routing.ledger import Ledger, LedgerLayer
from strata.routing.settings import all_routes
from strata.routing.tuning import load_tuning


def ledger_path(settings: Settings) -> str:
    return str(settings.home / "ledger.db")


class Routing:
    def __init__(self, settings: Settings, engine: Engine, pipeline: Pipeline) -> None:
        self.costs = CostMeter(engine, settings.cpu_hour_usd)
        self.routes = all_routes(settings.routes, set(engine.models))
        self.router = Router(engine, self.routes, self.costs, load_tuning(settings.home))
        self.ledger = Ledger(ledger_path(settings))
        pipeline.add_dispatcher(self.router)
        pipeline.add_layer(LedgerLayer(self.ledger, engine, self.costs, set(self.routes)))

    def close(self) -> None:
        self.ledger.close()
