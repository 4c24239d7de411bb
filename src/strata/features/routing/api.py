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

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from strata.core.errors import InvalidRequest
from strata.core.tenancy import API_KEY_PREFIX, DEFAULT_TENANT, Caller, tenant_of
from strata.core.web import CallerDep, caller, kernel
from strata.features.routing.feature import Routing
from strata.features.routing.timeparse import parse_time

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])

KeyQuery = Query(None, description="API key to report on (default: your own)")
TenantQuery = Query(None, description="Tenant to report on (admin or no auth)")
RouteQuery = Query(None, description="Route or model name")
SinceQuery = Query(None, description="Unix seconds, ISO 8601, or a span like 24h")
UntilQuery = Query(None, description="Unix seconds, ISO 8601, or a span like 1h")


def _routing(request: Request) -> Routing:
    return kernel(request).feature("routing", Routing)


def _filters(
    who: Caller,
    key: str | None,
    tenant: str | None,
    route: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    """The ledger filters for a caller: its own tenant unless it is an admin or auth is off."""
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


@router.get("/usage", summary="Requests, tokens, cost and the saving against always-big")
async def usage(
    request: Request,
    who: CallerDep,
    key: str | None = KeyQuery,
    tenant: str | None = TenantQuery,
    route: str | None = RouteQuery,
    since: str | None = SinceQuery,
    until: str | None = UntilQuery,
) -> dict[str, Any]:
    routing = _routing(request)
    filters = _filters(who, key, tenant, route, since, until)
    summary = await routing.ledger.db.run(lambda: routing.ledger.summary(**filters))
    return {"object": "usage", "tenant": filters["tenant"], "filters": filters, **summary}


@router.get("/usage/series", summary="Requests, cost and always-big baseline per period")
async def usage_series(
    request: Request,
    who: CallerDep,
    bucket: int = Query(3600, ge=60, le=31 * 86400, description="Seconds per period"),
    key: str | None = KeyQuery,
    tenant: str | None = TenantQuery,
    route: str | None = RouteQuery,
    since: str | None = SinceQuery,
    until: str | None = UntilQuery,
) -> dict[str, Any]:
    routing = _routing(request)
    filters = _filters(who, key, tenant, route, since, until)
    data = await routing.ledger.db.run(lambda: routing.ledger.series(bucket, **filters))
    return {"object": "list", "bucket": bucket, "filters": filters, "data": data}


@router.get("/usage/requests", summary="The ledger's latest requests, newest first")
async def usage_requests(
    request: Request,
    who: CallerDep,
    limit: int = Query(50, ge=1, le=1000),
    answered_by: str | None = Query(None, description="Model that answered"),
    key: str | None = KeyQuery,
    tenant: str | None = TenantQuery,
    route: str | None = RouteQuery,
    since: str | None = SinceQuery,
    until: str | None = UntilQuery,
) -> dict[str, Any]:
    routing = _routing(request)
    filters = _filters(who, key, tenant, route, since, until)
    rows = await routing.ledger.db.run(lambda: routing.ledger.latest(limit, answered_by, **filters))
    return {"object": "list", "filters": filters, "data": rows}


@router.get("/routes", summary="The routes, their tiers, thresholds and signals")
async def routes(request: Request) -> dict[str, Any]:
    routing = _routing(request)
    data = []
    for name in routing.routes:
        data.append({"id": name, "object": "route", **routing.router.describe(name)})
    return {"object": "list", "data": data}
