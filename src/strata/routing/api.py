"""REST endpoints of the routing feature: ``GET /v1/usage`` and ``GET /v1/routes``.

A caller sees only its own usage: with API keys on, the report is always filtered to the
caller's key (asking for another key is refused); with auth off there is one tenant per
client identity and ``key`` may name any of them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from strata.errors import InvalidRequest
from strata.routing.feature import Routing
from strata.routing.ledger import tenant_id
from strata.routing.timeparse import parse_time
from strata.serve.auth import client_key
from strata.stack import Stack
from strata.tenancy import API_KEY_PREFIX

router = APIRouter(prefix="/v1", dependencies=[Depends(client_key)])


def _routing(request: Request) -> Routing:
    stack: Stack = request.app.state.stack
    return stack.routing


@router.get("/usage", summary="Requests, tokens, cost and the saving against always-big")
async def usage(
    request: Request,
    key: str | None = Query(None, description="API key to report on (default: your own)"),
    route: str | None = Query(None, description="Route or model name"),
    since: str | None = Query(None, description="Unix seconds, ISO 8601, or a span like 24h"),
    until: str | None = Query(None, description="Unix seconds, ISO 8601, or a span like 1h"),
    caller: str = Depends(client_key),
) -> dict[str, Any]:
    routing = _routing(request)
    own = tenant_id(caller)
    tenant = own
    if key is not None:
        tenant = tenant_id(API_KEY_PREFIX + key)
        if request.app.state.settings.api_keys and tenant != own:
            raise InvalidRequest("you can only see the usage of your own API key", param="key")
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
