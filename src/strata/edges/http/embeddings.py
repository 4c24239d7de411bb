"""``POST /v1/embeddings`` on models that embed (float or base64, optional dimensions)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from strata.core.errors import InvalidRequest
from strata.core.models.base import Capability
from strata.core.web import caller, kernel
from strata.edges.http.errors import ERRORS
from strata.edges.http.schemas import EmbeddingList, EmbeddingRequest

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


@router.post(
    "/embeddings", response_model=EmbeddingList, responses=ERRORS, summary="Create embeddings"
)
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    engine = kernel(request).engine
    handle = engine.get(body.model)
    if not handle.backend.supports(Capability.EMBEDDINGS):
        raise InvalidRequest(f"model '{body.model}' does not support embeddings", param="model")
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors, tokens = await handle.backend.embed(texts)
    data: list[dict[str, Any]] = []
    for i, full in enumerate(vectors):
        if body.dimensions is not None and body.dimensions > len(full):
            raise InvalidRequest(
                f"dimensions {body.dimensions} exceeds the model's {len(full)}",
                param="dimensions",
            )
        vector = full[: body.dimensions] if body.dimensions else full
        value: list[float] | str = vector
        if body.encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage})
