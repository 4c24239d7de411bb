"""REST endpoints of the routing feature: ``GET /v1/usage`` and ``GET /v1/routes``.

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
from strata.core.tenancy import API_KEY_PREFIX, DEFAULT_TENANT, tenant_of
from strata.core.web import CallerDep, caller, kernel
from strata.features.routing.feature import Routing
from strata.features.routing.timeparse import parse_time

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


def _routing(request: Request) -> Routing:
    return kernel(request).feature("routing", Routing)


@router.get("/usage", summary="Requests, tokens, cost and the saving against always-big")
async def usage(
    request: Request,
    who: CallerDep,
    key: str | None = Query(None, description="API key to report on (default: your own)"),
    tenant: str | None = Query(None, description="Tenant to report on (admin or no auth)"),
    route: str | None = Query(None, description="Route or model name"),
    since: str | None = Query(None, description="Unix seconds, ISO 8601, or a span like 24h"),
    until: str | None = Query(None, description="Unix seconds, ISO 8601, or a span like 1h"),
) -> dict[str, Any]:
    routing = _routing(request)
    asked = tenant_of(API_KEY_PREFIX + key) if key is not None else tenant
    tenant = who.tenant if asked is None else asked
    keyed = who.tenant != DEFAULT_TENANT
    if keyed and not who.admin and tenant != who.tenant:
        param = "key" if key is not None else "tenant"
        raise InvalidRequest("you can only see the usage of your own API key", param=param)
    filters = {
        "tenant": tenant,
        "route": route,
        "since": parse_time(since, "since"),
        "until": parse_time(until, "until"),
    }
    summary = await routing.ledger.db.run(lambda: routing.ledger.summary(**filters))
    return {"object": "usage", "tenant": tenant, "filters": filters, **summary}


@router.get("/routes", summary="The routes, their tiers, thresholds and signals")
async def routes(request: Request) -> dict[str, Any]:
    routing = _routing(request)
    data = []
    for name in routing.routes:
        data.append({"id": name, "object": "route", **routing.router.describe(name)})
    return {"object": "list", "data": data}
