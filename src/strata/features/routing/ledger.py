"""The ledger: one row per chat request (routed or not) with what it cost and what the
biggest tier alone would have cost, so the saving is measured rather than claimed.

``LedgerRecorder`` subscribes to ``TurnCompleted``: the chat service bills every generation a
turn causes (a route's small answer, its samples and self-check, the big answer) to the turn's
result, and the recorder writes the row. Requests that fail are not billed and write no row.

Tenants are the caller's (``strata.core.tenancy``): API keys are never stored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from strata.core.storage import Migration, open_repository
from strata.core.turn import TurnCompleted

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
    # One tenancy rule (strata.core.tenancy): callers without a checked key ("local", a host)
    # are the default tenant. Rows of keyed callers keep their old id ("key:" + 16 hex digits
    # of the key's sha256), which cannot be extended to the new one.
    Migration(
        2,
        """
        UPDATE requests SET tenant = 'default' WHERE tenant = 'local' OR tenant LIKE 'host:%';
        """,
    ),
]


class Ledger:
    def __init__(self, path: Path | str) -> None:
        self.db = open_repository(path, "ledger", MIGRATIONS)

    def record(self, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.write(f"INSERT INTO requests ({columns}) VALUES ({marks})", list(row.values()))

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

    def latest(
        self, limit: int, answered_by: str | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """The newest rows first (the web app's table), at most ``limit``."""
        where, params = _where(**filters)
        if answered_by is not None:
            where += (" AND" if where else " WHERE") + " answered_by = ?"
            params.append(answered_by)
        found = self.db.query(
            f"SELECT * FROM requests{where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [{**dict(r), "tiers": json.loads(r["tiers"])} for r in found]

    def series(self, bucket_s: int, **filters: Any) -> list[dict[str, Any]]:
        """Requests, cost and the always-big baseline per ``bucket_s`` seconds, oldest first;
        buckets without requests are left out."""
        where, params = _where(**filters)
        found = self.db.query(
            "SELECT CAST(FLOOR(ts / ?) AS BIGINT) * ? AS start, COUNT(*) AS requests,"
            " SUM(cost_usd) AS cost_usd, SUM(baseline_usd) AS baseline_usd,"
            " SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens"
            f" FROM requests{where} GROUP BY start ORDER BY start",
            [bucket_s, bucket_s, *params],
        )
        return [{**dict(r), "saving_usd": r["baseline_usd"] - r["cost_usd"]} for r in found]

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


class LedgerRecorder:
    """Bills every answered chat turn from its ``TurnCompleted`` event: the generations the
    turn caused (priced as each ended) and, for a route, what its last tier alone would have
    cost. Requests that fail publish no event, so they are not billed."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def __call__(self, event: TurnCompleted) -> None:
        turn, result = event.turn, event.result
        cost = sum(g.cost for g in result.generations)
        answered = result.served_by
        route = result.route
        if route is not None:
            tiers, baseline = route.tiers_ran, route.baseline_cost
            confidence, degraded = route.confidence, route.degraded
        else:
            tiers, baseline, confidence, degraded = [answered], cost, None, False
        row = {
            "ts": time.time(),
            "tenant": turn.caller.tenant,
            "model": turn.model,
            "route": route.name if route is not None else None,
            "answered_by": answered,
            "tiers": json.dumps(tiers),
            "prompt_tokens": sum(g.usage.prompt_tokens for g in result.generations),
            "completion_tokens": sum(g.usage.completion_tokens for g in result.generations),
            "latency_s": round(time.perf_counter() - result.started, 6),
            "confidence": confidence,
            "cost_usd": cost,
            "baseline_usd": baseline,
            "degraded": int(degraded),
        }
        await self.ledger.db.run(self.ledger.record, row)
