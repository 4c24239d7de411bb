"""The knowledge base's records: a document as written, a write's outcome, a search hit."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from strata.features.knowledge.parsers import Block, paragraphs
from strata.features.knowledge.store import NewChunk


@dataclass
class DocumentInput:
    id: str
    text: str = ""
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] | None = None

    def structure(self) -> list[Block]:
        return self.blocks if self.blocks is not None else [Block(p) for p in paragraphs(self.text)]

    def content_hash(self) -> str:
        body = [[b.heading, b.text] for b in self.structure()]
        payload = json.dumps([self.title, self.source, self.metadata, body], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class WriteResult:
    id: str
    status: Literal["new", "updated", "unchanged"]
    chunks: int


@dataclass
class Prepared:
    doc: DocumentInput
    content_hash: str
    unchanged: bool
    chunks: list[NewChunk] = field(default_factory=list)
    vectors: Any = None  # float32 matrix, one row per chunk
    fresh: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Hit:
    chunk_id: int
    document_id: str
    title: str
    heading: str
    text: str
    position: int
    score: float
    similarity: float | None
    source: str
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "title": self.title,
            "chunk": self.position,
            "heading": self.heading,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "source": self.source,
            "metadata": self.metadata,
        }
