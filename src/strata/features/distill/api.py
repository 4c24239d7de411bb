"""REST endpoints of the distill feature, scoped to the caller's tenant:

GET  /v1/specialists            each closed-set task seen, its serving specialist, held-out
                                accuracy against the big tier and the share of traffic it answers;
                                ``exemplars``: how many the tenant has kept, and their settings
POST /v1/specialists/distill    ``{"route": NAME}``: train that route's specialists now
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from strata.core.web import CallerDep, caller, kernel
from strata.features.distill.runtime import Distill

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


def _distill(request: Request) -> Distill:
    return kernel(request).feature("distill", Distill)


@router.get("/specialists", summary="Specialists, their accuracy and share of traffic")
async def specialists(request: Request, who: CallerDep) -> dict[str, Any]:
    distill = _distill(request)
    data = await distill.store.db.run(distill.listing, who.tenant)
    exemplars = await distill.store.db.run(distill.exemplars.listing, who.tenant)
    return {"object": "list", "data": data, "exemplars": exemplars}


class DistillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: str = Field(..., min_length=1, max_length=200)


@router.post("/specialists/distill", summary="Train a route's specialists now")
async def distill_now(body: DistillIn, request: Request, who: CallerDep) -> dict[str, Any]:
    reports = await _distill(request).distill(who.tenant, body.route)
    return {"object": "list", "route": body.route, "data": reports}
