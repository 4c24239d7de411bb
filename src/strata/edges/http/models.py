"""``GET /v1/models`` and ``/v1/models/{id}``: the served models and, beside them, the names
dispatchers answer for (routes such as ``auto``). Each served model's card carries strata's
``stats`` (queue depth, running generations, measured tokens/s), which OpenAI clients ignore."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from strata.core.web import caller, kernel
from strata.edges.http.errors import ERRORS
from strata.edges.http.metrics import Metrics
from strata.edges.http.schemas import ModelList

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


@router.get("/models", response_model=ModelList, summary="List the served models")
async def list_models(request: Request) -> ModelList:
    engine = kernel(request).engine
    metrics: Metrics = request.app.state.metrics
    cards = []
    for name, handle in engine.models.items():
        backend = handle.backend
        prompt_tps, tps = metrics.speed.get(name, (None, None))
        stats = {
            "queue_depth": handle.scheduler.depth,
            "active": handle.scheduler.active,
            "generations": metrics.generations.get(name, 0),
            "tokens_per_s": None if tps is None else round(tps, 2),
            "prompt_tokens_per_s": None if prompt_tps is None else round(prompt_tps, 2),
        }
        cards.append(
            {
                "id": name,
                "object": "model",
                "created": int(request.app.state.started),
                "owned_by": "strata" if backend.local else "remote",
                "capabilities": sorted(c.value for c in backend.capabilities),
                "loaded": backend.loaded,
                "description": backend.spec.description or None,
                "stats": stats,
            }
        )
    for name in kernel(request).service.dispatched_names():  # routes such as ``auto``
        card = {"id": name, "object": "model", "created": int(request.app.state.started)}
        cards.append({**card, "owned_by": "strata", "capabilities": ["chat"], "loaded": True})
    return ModelList.model_validate({"object": "list", "data": cards})


@router.get("/models/{model_id}", summary="Describe one model", responses=ERRORS)
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    card = {"id": model_id, "object": "model", "created": int(request.app.state.started)}
    if model_id in kernel(request).service.dispatched_names():
        return {**card, "owned_by": "strata"}
    handle = kernel(request).engine.get(model_id)
    return {**card, "owned_by": "strata" if handle.backend.local else "remote"}
