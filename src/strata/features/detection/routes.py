"""``POST /v1/detections``: was each text written by a model? Per text: the decision
(``machine``, ``human`` or ``too_short``), the score, a calibrated probability, the threshold
and the tokens scored; optional per-sentence scores for highlighting."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from strata.core.web import CallerDep, kernel
from strata.features.detection.feature import Detections

router = APIRouter(prefix="/v1", tags=["detection"])


class DetectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(..., description="A text, or a list of texts")
    model: str | None = Field(
        None, description="Method: log-perplexity, binoculars or fast-detectgpt (default: shipped)"
    )
    sentences: bool = Field(False, description="Also score each sentence (for highlighting)")


@router.post("/detections", summary="Detect machine-written text")
async def detections(body: DetectionRequest, request: Request, who: CallerDep) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    runtime = kernel(request).feature("detection", Detections)
    found = await runtime.adetect(texts, body.model, body.sentences)
    method = found[0].method if found else body.model
    data = [{"object": "detection", "index": i, **d.to_json()} for i, d in enumerate(found)]
    return {"object": "list", "model": method, "data": data}
