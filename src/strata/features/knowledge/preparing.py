"""The slow half of a write, outside any lock: chunk each document to fit the embedder's
window, look its chunks up in the embedding cache and embed what is missing, in one batch.
A mixin of ``KnowledgeBase``; ``commit`` is the other half (``base.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from strata.core.embeddings import Embedder
from strata.core.errors import InvalidRequest
from strata.core.storage import Repository
from strata.features.knowledge.chunking import chunk_blocks
from strata.features.knowledge.documents import DocumentInput, Prepared
from strata.features.knowledge.parsers import Block
from strata.features.knowledge.settings import KnowledgeSettings
from strata.features.knowledge.store import Collection, NewChunk


class PrepareMixin:
    db: Repository
    settings: KnowledgeSettings
    embedder: Embedder

    def _vector_key(self, text: str) -> str:
        return hashlib.sha256(f"{self.embedder.name}\0{text}".encode()).hexdigest()[:32]

    def prepare(self, coll: Collection, docs: Sequence[DocumentInput]) -> list[Prepared]:
        """Chunk and embed (the slow part) without holding any lock."""
        import numpy as np

        seen: set[str] = set()
        for doc in docs:
            if not doc.id or len(doc.id) > 512:
                raise InvalidRequest("every document needs an id of 1-512 characters", param="id")
            if doc.id in seen:
                raise InvalidRequest(f"document id '{doc.id}' appears twice", param="id")
            seen.add(doc.id)
        stored = self._hashes(coll, [d.id for d in docs])
        out: list[Prepared] = []
        wanted: dict[str, str] = {}
        for doc in docs:
            digest = doc.content_hash()
            prepared = Prepared(doc, digest, stored.get(doc.id) == digest)
            out.append(prepared)
            if prepared.unchanged:
                continue
            blocks = doc.structure()
            pieces = chunk_blocks(
                blocks,
                self.embedder.count_tokens,
                self._budget(doc.title, blocks),
                self.settings.chunk_overlap,
            )
            if not pieces:
                raise InvalidRequest(f"document '{doc.id}' has no text", param="text")
            for piece in pieces:
                embed_text = "\n".join(x for x in (doc.title, piece.heading, piece.text) if x)
                key = self._vector_key(embed_text)
                wanted[key] = embed_text
                prepared.chunks.append(NewChunk(piece.position, piece.heading, piece.text, key))
        cached = self._cached_vectors(list(wanted))
        missing = [k for k in wanted if k not in cached]
        fresh: dict[str, bytes] = {}
        if missing:
            matrix = self.embedder.embed([wanted[k] for k in missing])
            for key, row in zip(missing, matrix, strict=True):
                fresh[key] = np.asarray(row, dtype=np.float32).tobytes()
        for prepared in out:
            if prepared.unchanged:
                continue
            blobs = [cached.get(c.vector_key) or fresh[c.vector_key] for c in prepared.chunks]
            prepared.vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(
                len(blobs), -1
            )
            prepared.fresh = [
                (c.vector_key, fresh[c.vector_key])
                for c in prepared.chunks
                if c.vector_key in fresh
            ]
        return out

    def _budget(self, title: str, blocks: Sequence[Block]) -> int:
        """``chunk_tokens``, or less: title + heading + chunk fit the embedder's window."""
        window = self.embedder.window
        if window is None:
            return self.settings.chunk_tokens
        count = self.embedder.count_tokens
        head = count(title) + max((count(b.heading) for b in blocks if b.heading), default=0)
        return max(16, min(self.settings.chunk_tokens, window - head))

    def _hashes(self, coll: Collection, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self.db.query(
                f"SELECT doc_id, content_hash FROM documents WHERE collection_id = ?"
                f" AND doc_id IN ({marks})",
                [coll.id, *part],
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    def _cached_vectors(self, keys: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self.db.query(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part)
            out.update({r[0]: bytes(r[1]) for r in rows})
        return out
