"""REST API of the knowledge base, scoped to the caller's API key (its tenant).

    POST   /v1/collections                              create (idempotent)
    GET    /v1/collections                              list this key's collections
    DELETE /v1/collections/{name}                       delete with every document
    POST   /v1/collections/{name}/documents             add or replace a batch (upsert)
    GET    /v1/collections/{name}/documents/{id}        one document and its chunks
    DELETE /v1/collections/{name}/documents/{id}        delete from every index
    POST   /v1/collections/{name}/search                hybrid / bm25 / vector search
    GET    /v1/collections/{name}/stats                 counts and sizes

Another key's collection is indistinguishable from a missing one (404), so a key cannot
even learn that a name is taken elsewhere. A 200 from ``documents`` means durable and
searchable: the next search finds what it wrote.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from strata.core.errors import InvalidRequest
from strata.core.web import CallerDep, kernel
from strata.features.knowledge.base import DocumentInput, KnowledgeBase
from strata.features.knowledge.feature import Knowledge
from strata.features.knowledge.ingest import documents_from_bytes

router = APIRouter(prefix="/v1/collections", tags=["knowledge"])

Scalar = str | int | float | bool


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=64)


class DocumentIn(BaseModel):
    """Plain ``text``, or a file as ``data`` (base64) with its ``filename`` (the extension
    picks the parser: .txt, .md, .html, .pdf, .jsonl)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=512)
    text: str | None = None
    data: str | None = Field(None, description="File content, base64")
    filename: str | None = None
    title: str = ""
    source: str = ""
    metadata: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_body(self) -> DocumentIn:
        if (self.text is None) == (self.data is None):
            raise ValueError("give exactly one of text or data")
        if self.data is not None and not self.filename:
            raise ValueError("data needs a filename (its extension picks the parser)")
        return self


class DocumentsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(..., min_length=1, max_length=1000)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(..., min_length=1, max_length=4000)
    top_k: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filter: dict[str, Scalar | list[Scalar]] | None = None
    per_document: bool = False


def _kb(request: Request) -> KnowledgeBase:
    return kernel(request).feature("knowledge", Knowledge).base


def _inputs(doc: DocumentIn) -> list[DocumentInput]:
    if doc.text is not None:
        return [DocumentInput(doc.id, doc.text, doc.title, doc.source, dict(doc.metadata))]
    try:
        raw = base64.b64decode(doc.data or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"document '{doc.id}': data is not base64", param="data") from exc
    docs = documents_from_bytes(
        raw, doc.filename or "", doc.id, doc.source or doc.filename or "", dict(doc.metadata)
    )
    for d in docs:
        d.title = doc.title or d.title
    return docs


@router.post("", summary="Create a collection (idempotent)")
async def create_collection(
    body: CollectionCreate, request: Request, who: CallerDep
) -> dict[str, Any]:
    coll, created = await asyncio.to_thread(_kb(request).create_collection, who.tenant, body.name)
    return {"object": "collection", "name": coll.name, "created": created}


@router.get("", summary="List this key's collections")
async def list_collections(request: Request, who: CallerDep) -> dict[str, Any]:
    data = await asyncio.to_thread(_kb(request).list_collections, who.tenant)
    return {"object": "list", "data": [{"object": "collection", **c} for c in data]}


@router.delete("/{name}", summary="Delete a collection and its documents")
async def delete_collection(name: str, request: Request, who: CallerDep) -> dict[str, Any]:
    await asyncio.to_thread(_kb(request).delete_collection, who.tenant, name)
    return {"object": "collection", "name": name, "deleted": True}


@router.post("/{name}/documents", summary="Add or replace documents (durable when 200)")
async def add_documents(
    name: str, body: DocumentsAdd, request: Request, who: CallerDep
) -> dict[str, Any]:
    docs = [d for doc in body.documents for d in _inputs(doc)]
    results = await asyncio.to_thread(_kb(request).upsert, who.tenant, name, docs)
    return {
        "object": "list",
        "data": [{"id": r.id, "status": r.status, "chunks": r.chunks} for r in results],
    }


@router.get("/{name}/documents/{doc_id:path}", summary="One document and its chunks")
async def get_document(name: str, doc_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    doc = await asyncio.to_thread(_kb(request).get_document, who.tenant, name, doc_id)
    return {"object": "document", **doc}


@router.delete("/{name}/documents/{doc_id:path}", summary="Delete a document everywhere")
async def delete_document(
    name: str, doc_id: str, request: Request, who: CallerDep
) -> dict[str, Any]:
    await asyncio.to_thread(_kb(request).delete_document, who.tenant, name, doc_id)
    return {"object": "document", "id": doc_id, "deleted": True}


@router.post("/{name}/search", summary="Search a collection")
async def search(
    name: str, body: SearchRequest, request: Request, who: CallerDep
) -> dict[str, Any]:
    hits = await asyncio.to_thread(
        _kb(request).search,
        who.tenant,
        name,
        body.query,
        body.top_k,
        body.mode,
        body.filter,
        body.per_document,
    )
    return {"object": "list", "data": [h.as_dict() for h in hits]}


@router.get("/{name}/stats", summary="Counts and sizes of a collection")
async def stats(name: str, request: Request, who: CallerDep) -> dict[str, Any]:
    return await asyncio.to_thread(_kb(request).stats, who.tenant, name)
