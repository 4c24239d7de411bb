"""``GET /v1/tools``: every tool this server can run for a request, built-in, entry-point and
MCP, with its JSON-schema parameters and where it came from (``source``), so a client knows
which names it may put in ``strata.agent.tools`` or ``/v1/responses`` ``tools``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from strata.core.web import caller, kernel
from strata.features.tools.feature import Tools

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


@router.get("/tools", summary="List the server-side tools")
async def list_tools(request: Request) -> dict[str, Any]:
    tools = kernel(request).feature("tools", Tools)
    registry = await tools.registry()
    return {"object": "list", "data": registry.listing()}
