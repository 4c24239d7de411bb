"""REST endpoints of the routing feature: ``GET /v1/usage`` (totals), ``/v1/usage/series``
(per period, for charts), ``/v1/usage/requests`` (the ledger's latest rows) and
``GET /v1/routes``.

A caller sees only its own usage: with API keys on, the report is always filtered to the
caller's key (asking for another key or tenant is refused), unless it is an admin key, which
may name any ``key`` or ``tenant`` (an issued key's tenant is in ``GET /v1/keys``); with auth
off every caller is the one default tenant (``strata.core.tenancy``), and ``key`` or
``tenant`` may name any tenant.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from strata.core.errors import InvalidRequest
from strata.core.tenancy import API_KEY_PREFIX, DEFAULT_TENANT, tenant_of
from strata.core.web import CallerDep, caller, kernel
from strata.features.routing.feature import Routing
from strata.features.routing.timeparse import parse_time

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


def _routing(request: Request) -> Routing:
    return kernel(request).feature("routing", Routing)


def _filters(
    who: CallerDep,
    key: str | None = Query(None, description="API key to report on (default: your own)"),
    tenant: str | None = Query(None, description="Tenant to report on (admin or no auth)"),
    route: str | None = Query(None, description="Route or model name"),
    since: str | None = Query(None, description="Unix seconds, ISO 8601, or a span like 24h"),
    until: str | None = Query(None, description="Unix seconds, ISO 8601, or a span like 1h"),
) -> dict[str, Any]:
    """The ledger filters for a caller: its own tenant unless it is an admin or auth is off.
    A dependency, so the three usage endpoints share one set of query parameters."""
    asked = tenant_of(API_KEY_PREFIX + key) if key is not None else tenant
    chosen = who.tenant if asked is None else asked
    keyed = who.tenant != DEFAULT_TENANT
    if keyed and not who.admin and chosen != who.tenant:
        param = "key" if key is not None else "tenant"
        raise InvalidRequest("you can only see the usage of your own API key", param=param)
    return {
        "tenant": chosen,
        "route": route,
        "since": parse_time(since, "since"),
        "until": parse_time(until, "until"),
    }


UsageFilters = Annotated[dict[str, Any], Depends(_filters)]


@router.get("/usage", summary="Requests, tokens, cost and the saving against always-big")
async def usage(
    request: Request,
    filters: UsageFilters,
) -> dict[str, Any]:
    routing = _routing(request)
    summary = await routing.ledger.db.run(lambda: routing.ledger.summary(**filters))
    return {"object": "usage", "tenant": filters["tenant"], "filters": filters, **summary}


@router.get("/usage/series", summary="Requests, cost and always-big baseline per period")
async def usage_series(
    request: Request,
    filters: UsageFilters,
    bucket: int = Query(3600, ge=60, le=31 * 86400, description="Seconds per period"),
) -> dict[str, Any]:
    routing = _routing(request)
    data = await routing.ledger.db.run(lambda: routing.ledger.series(bucket, **filters))
    return {"object": "list", "bucket": bucket, "filters": filters, "data": data}


@router.get("/usage/requests", summary="The ledger's latest requests, newest first")
async def usage_requests(
    request: Request,
    filters: UsageFilters,
    limit: int = Query(50, ge=1, le=1000),
    answered_by: str | None = Query(None, description="Model that answered"),
) -> dict[str, Any]:
    routing = _routing(request)
    rows = await routing.ledger.db.run(lambda: routing.ledger.latest(limit, answered_by, **filters))
    return {"object": "list", "filters": filters, "data": rows}


@router.get("/routes", summary="The routes, their tiers, thresholds and signals")
async def routes(request: Request) -> dict[str, Any]:
    routing = _routing(request)
    data = []
    for name in routing.routes:
        data.append({"id": name, "object": "route", **routing.router.describe(name)})
    return {"object": "list", "data": data}
