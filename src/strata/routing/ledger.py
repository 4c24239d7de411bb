"""The ledger: one row per chat request (routed or not) with what it cost and what the
biggest tier alone would have cost, so the saving is measured rather than claimed.

``LedgerLayer`` is a pipeline layer: ``before`` opens a tally for the turn in a context
variable, the engine observer adds every generation the turn causes (a route's small answer,
its samples and self-check, the big answer) to it, and ``after`` writes the row. Requests
that fail are not billed and write no row.

Tenants: API keys are never stored; a key is recorded as ``key:`` + the first 16 hex digits
of its sha256 (``tenant_id``), so usage can be filtered by key without keeping the secret.
"""

from __future__ import annotations

import contextvars
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.engine import Engine, Timings
from strata.models.base import Usage
from strata.pipeline import ChatTurn
from strata.routing.cost import CostMeter
from strata.store import Database, Migration
from strata.tenancy import API_KEY_PREFIX, key_digest

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            route TEXT,
            answered_by TEXT NOT NULL,
            tiers TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            confidence REAL,
            cost_usd REAL NOT NULL,
            baseline_usd REAL NOT NULL,
            degraded INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX requests_tenant_ts ON requests (tenant, ts);
        CREATE INDEX requests_route_ts ON requests (route, ts);
        """,
    ),
]


def tenant_id(key: str) -> str:
    """How a caller is recorded: API keys hashed, other identities (host:…, local) as is."""
    digest = key_digest(key)
    return API_KEY_PREFIX + digest[:16] if digest else key or "local"


@dataclass
class Tally:
    started: float = field(default_factory=time.perf_counter)
    usage: list[tuple[str, Usage]] = field(default_factory=list)
    cost: float = 0.0


_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("strata_tally", default=None)


class Ledger:
    def __init__(self, path: Path | str) -> None:
        self.db = Database(path, "ledger", MIGRATIONS)

    def record(self, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.db.transaction() as conn:
            conn.execute(f"INSERT INTO requests ({columns}) VALUES ({marks})", list(row.values()))

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        where, params = _where(**filters)
        found = self.db.query(f"SELECT * FROM requests{where} ORDER BY id", params)
        return [{**dict(r), "tiers": json.loads(r["tiers"])} for r in found]

    def summary(self, **filters: Any) -> dict[str, Any]:
        """Totals and the saving against sending every request to the biggest tier."""
        where, params = _where(**filters)
        total = self.db.query(
            "SELECT COUNT(*) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
            " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"
            " COALESCE(SUM(cost_usd), 0.0) AS cost_usd,"
            " COALESCE(SUM(baseline_usd), 0.0) AS baseline_usd,"
            " COALESCE(SUM(degraded), 0) AS degraded"
            f" FROM requests{where}",
            params,
        )[0]
        by = self.db.query(
            "SELECT COALESCE(route, model) AS name, answered_by, COUNT(*) AS requests,"
            " SUM(cost_usd) AS cost_usd, SUM(baseline_usd) AS baseline_usd"
            f" FROM requests{where} GROUP BY name, answered_by ORDER BY name, answered_by",
            params,
        )
        out = dict(total)
        out["saving_usd"] = out["baseline_usd"] - out["cost_usd"]
        out["saving_share"] = (
            out["saving_usd"] / out["baseline_usd"] if out["baseline_usd"] > 0 else 0.0
        )
        out["by_route"] = [dict(r) for r in by]
        return out

    def close(self) -> None:
        self.db.close()


def _where(
    tenant: str | None = None,
    route: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if tenant is not None:
        clauses.append("tenant = ?")
        params.append(tenant)
    if route is not None:
        clauses.append("COALESCE(route, model) = ?")
        params.append(route)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class LedgerLayer:
    """Bills every chat turn: the engine observer tallies, ``after`` writes the row."""

    name = "ledger"

    def __init__(self, ledger: Ledger, engine: Engine, costs: CostMeter, routes: set[str]) -> None:
        self.ledger = ledger
        self.costs = costs
        self.routes = routes
        engine.observers.append(self.observe)

    def observe(
        self, name: str, usage: Usage | None, timings: Timings, error: BaseException | None
    ) -> None:
        tally = _TALLY.get()
        if tally is not None and usage is not None:
            tally.usage.append((name, usage))
            tally.cost += self.costs.cost(name, usage)

    async def before(self, turn: ChatTurn) -> None:
        _TALLY.set(Tally())

    async def after(self, turn: ChatTurn, texts: list[str]) -> list[str]:
        tally = _TALLY.get()
        if tally is None:
            return texts
        _TALLY.set(None)
        route = turn.info.get("route") if turn.model in self.routes else None
        answered = turn.answered_by or turn.model
        if isinstance(route, dict):
            tiers = [t["model"] for t in route["tiers"] if t.get("ran")]
            baseline = float(route["baseline_cost"])
            confidence = route.get("confidence")
            degraded = bool(route.get("degraded"))
        else:
            tiers, baseline, confidence, degraded = [answered], tally.cost, None, False
        row = {
            "ts": time.time(),
            "tenant": tenant_id(turn.key),
            "model": turn.model,
            "route": turn.model if isinstance(route, dict) else None,
            "answered_by": answered,
            "tiers": json.dumps(tiers),
            "prompt_tokens": sum(u.prompt_tokens for _, u in tally.usage),
            "completion_tokens": sum(u.completion_tokens for _, u in tally.usage),
            "latency_s": round(time.perf_counter() - tally.started, 6),
            "confidence": confidence,
            "cost_usd": tally.cost,
            "baseline_usd": baseline,
            "degraded": int(degraded),
        }
        await self.ledger.db.run(self.ledger.record, row)
        return texts
