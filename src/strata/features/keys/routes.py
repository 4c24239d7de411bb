"""REST for issued keys, for admin keys only (``admin_keys``; any other caller gets 403).

POST   /v1/keys          create: ``{name, budget_usd, period, rpm, tpm}`` → the record and,
                         this once, ``key``
GET    /v1/keys          every key (revoked ones too), with this period's spending
DELETE /v1/keys/{ref}    revoke by id or name; a revoked key gets 401 from then on
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from strata.core.errors import PermissionDenied
from strata.core.tenancy import Caller
from strata.core.web import CallerDep, caller, kernel
from strata.features.keys.feature import Keys
from strata.features.keys.records import KeyRecord, Period

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=64, description="Who or what the key is for")
    budget_usd: float | None = Field(None, gt=0, description="USD the key may spend per period")
    period: Period | None = Field(None, description="Budget period, UTC: day or month (default)")
    rpm: int | None = Field(None, ge=1, description="Requests per minute")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute (prompt + answer)")


def _keys(request: Request, who: Caller) -> Keys:
    if not who.admin:
        raise PermissionDenied("Managing API keys needs an admin key (the admin_keys setting).")
    return kernel(request).feature("keys", Keys)


@router.post("/keys", summary="Issue an API key (admin)")
async def create_key(body: KeyCreate, request: Request, who: CallerDep) -> dict[str, Any]:
    keys = _keys(request, who)

    def create() -> tuple[str, KeyRecord]:
        made = keys.store.create(**body.model_dump())
        keys.cache.reload()
        return made

    token, record = await keys.store.db.run(create)
    return {**record.public(), "key": token}


@router.get("/keys", summary="List the issued keys (admin)")
async def list_keys(request: Request, who: CallerDep) -> dict[str, Any]:
    keys = _keys(request, who)
    await keys.limits.writer.flush()  # what has settled, in the figures

    def listing() -> list[dict[str, Any]]:
        now = time.time()
        return [keys.store.describe(r, now) for r in keys.store.all()]

    return {"object": "list", "data": await keys.store.db.run(listing)}


@router.delete("/keys/{ref}", summary="Revoke an API key by id or name (admin)")
async def revoke_key(ref: str, request: Request, who: CallerDep) -> dict[str, Any]:
    keys = _keys(request, who)

    def revoke() -> KeyRecord:
        record = keys.store.revoke(ref)
        keys.cache.reload()
        return record

    return (await keys.store.db.run(revoke)).public()
