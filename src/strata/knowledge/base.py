"""The knowledge base: collections per tenant, atomic upserts, hybrid search.

A write goes: chunk → look up the embedding cache → embed what is missing (batched, outside
any lock) → ONE SQLite transaction (delete the document's old chunks from the table and the
FTS index, insert the new ones, record the content hash) → commit (WAL, synchronous=FULL:
on disk) → swap the rows in the in-memory vector matrix → return (the acknowledgement).
Searches hold the same lock as the commit-and-swap step, so a reader sees a document either
entirely old or entirely new, in both indexes, and a write that returned is found by the
very next query (read-after-write). A crash before the commit loses only unacknowledged
work; the matrix is rebuilt from the stored vectors on start.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from strata.config import KnowledgeSettings
from strata.errors import InvalidRequest, NotFound
from strata.knowledge import fusion
from strata.knowledge import store as sql
from strata.knowledge.bm25 import KeywordIndex
from strata.knowledge.chunking import chunk_blocks
from strata.knowledge.embedders import Embedder, create_embedder
from strata.knowledge.locks import RWLock
from strata.knowledge.parsers import Block, paragraphs
from strata.knowledge.store import Collection, NewChunk
from strata.knowledge.vectors import VectorIndex
from strata.store import Database
from strata.tenancy import key_digest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Mode = Literal["hybrid", "bm25", "vector"]
MODES = ("hybrid", "bm25", "vector")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def tenant_of(key: str, keyed: bool = True) -> str:
    """The tenant an API key maps to. Keys are hashed (never stored). Without keys (a server
    with auth off, whatever token a client sends; the in-process CLI) everything is the one
    ``default`` tenant."""
    digest = key_digest(key) if keyed else None
    return "k" + digest[:24] if digest else "default"


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
class _Prepared:
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


class KnowledgeBase:
    def __init__(
        self, home: Path, settings: KnowledgeSettings, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings
        self.embedder = embedder if embedder is not None else create_embedder(settings)
        self.db = Database(home / "knowledge.db", "knowledge", sql.MIGRATIONS)
        self.lock = RWLock()
        self._load_lock = threading.Lock()
        self._indexes: dict[int, VectorIndex] = {}
        self._keywords: dict[int, KeywordIndex] = {}
        # Recent query texts → their vectors: a repeated question (a retry, a follow-up that
        # searches the same words, the chat layer and the API asking alike) skips the model.
        self._query_vectors: OrderedDict[str, Any] = OrderedDict()
        self._query_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    def close(self) -> None:
        for conn in self._readers:
            conn.close()
        self.db.close()

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection: searches run in parallel with each other (WAL
        readers never block), while the write lock keeps them off a half-applied commit."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.db.path), check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    # collections -------------------------------------------------------------------------

    def create_collection(self, tenant: str, name: str) -> tuple[Collection, bool]:
        """The collection, and whether it was created now (creating twice is harmless)."""
        if not _NAME.match(name):
            raise InvalidRequest(
                "a collection name is 1-64 letters, digits, '_', '-' or '.', starting with a"
                " letter or digit",
                param="name",
            )
        with self.lock.write(), self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO collections (tenant, name, created) VALUES (?, ?, ?)",
                (tenant, name, time.time()),
            )
            created = cursor.rowcount == 1
        return self.collection(tenant, name), created

    def collection(self, tenant: str, name: str) -> Collection:
        rows = self.db.query(
            "SELECT id FROM collections WHERE tenant = ? AND name = ?", (tenant, name)
        )
        if not rows:
            raise NotFound(f"no collection named '{name}'", param="collection")
        return Collection(int(rows[0][0]), tenant, name)

    def list_collections(self, tenant: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT c.name, c.created, COUNT(d.doc_id), COALESCE(SUM(d.chunks), 0)"
            " FROM collections c LEFT JOIN documents d ON d.collection_id = c.id"
            " WHERE c.tenant = ? GROUP BY c.id ORDER BY c.name",
            (tenant,),
        )
        return [
            {"name": r[0], "created": int(r[1]), "documents": r[2], "chunks": r[3]} for r in rows
        ]

    def delete_collection(self, tenant: str, name: str) -> None:
        coll = self.collection(tenant, name)
        with self.lock.write():
            with self.db.transaction() as conn:
                conn.execute(
                    "DELETE FROM chunks_fts WHERE rowid IN"
                    " (SELECT id FROM chunks WHERE collection_id = ?)",
                    (coll.id,),
                )
                conn.execute("DELETE FROM chunks WHERE collection_id = ?", (coll.id,))
                conn.execute("DELETE FROM documents WHERE collection_id = ?", (coll.id,))
                conn.execute("DELETE FROM collections WHERE id = ?", (coll.id,))
            self._indexes.pop(coll.id, None)
            self._keywords.pop(coll.id, None)

    def stats(self, tenant: str, name: str) -> dict[str, Any]:
        coll = self.collection(tenant, name)
        docs, chunks = self.db.query(
            "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents WHERE collection_id = ?",
            (coll.id,),
        )[0]
        with self.lock.read():
            index = self._index(coll)
            rows, nbytes = len(index), index.nbytes
        return {
            "name": name,
            "documents": docs,
            "chunks": chunks,
            "vectors": rows,
            "vector_bytes": nbytes,
            "embedder": self.embedder.name,
            "dimensions": index.dim,
        }

    # the vector matrix ---------------------------------------------------------------------

    def _index(self, coll: Collection) -> VectorIndex:
        """The collection's matrix, loaded from the stored vectors on first use (a lock held)."""

        index = self._indexes.get(coll.id)
        if index is not None:
            return index
        with self._load_lock:
            index = self._indexes.get(coll.id)
            if index is None:
                index, keywords = self._load(coll)
                self._keywords[coll.id] = keywords
                self._indexes[coll.id] = index
        return index

    def _load(self, coll: Collection) -> tuple[VectorIndex, KeywordIndex]:
        import numpy as np

        index = VectorIndex(self.embedder.dim)
        keywords = KeywordIndex()
        rows = self.db.query(
            "SELECT c.id, v.vector, d.title, c.heading, c.text FROM chunks c"
            " JOIN vectors v ON v.key = c.vector_key JOIN documents d"
            " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
            " WHERE c.collection_id = ?",
            (coll.id,),
        )
        if rows:
            ids = [int(r[0]) for r in rows]
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            index.add(ids, matrix.reshape(len(ids), -1))
            keywords.add(ids, [r[2] for r in rows], [_body(r[3], r[4]) for r in rows])
        return index, keywords

    # writes --------------------------------------------------------------------------------

    def upsert(self, tenant: str, name: str, docs: Sequence[DocumentInput]) -> list[WriteResult]:
        """Add or replace documents by id; returns once they are durable and searchable."""
        coll = self.collection(tenant, name)
        return self.commit(coll, self.prepare(coll, docs))

    def _vector_key(self, text: str) -> str:
        return hashlib.sha256(f"{self.embedder.name}\0{text}".encode()).hexdigest()[:32]

    def prepare(self, coll: Collection, docs: Sequence[DocumentInput]) -> list[_Prepared]:
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
        out: list[_Prepared] = []
        wanted: dict[str, str] = {}
        for doc in docs:
            digest = doc.content_hash()
            prepared = _Prepared(doc, digest, stored.get(doc.id) == digest)
            out.append(prepared)
            if prepared.unchanged:
                continue
            pieces = chunk_blocks(
                doc.structure(),
                self.embedder.count_tokens,
                self.settings.chunk_tokens,
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

    def commit(self, coll: Collection, prepared: Sequence[_Prepared]) -> list[WriteResult]:
        """One transaction for the whole batch, then the matrix swap, under the search lock."""
        results: list[WriteResult] = []
        swaps: list[tuple[list[int], list[int], npt.NDArray[np.float32], _Prepared]] = []
        now = time.time()
        with self.lock.write():
            index = self._index(coll)
            with self.db.transaction() as conn:
                if not conn.execute(
                    "SELECT 1 FROM collections WHERE id = ?", (coll.id,)
                ).fetchone():
                    raise NotFound(f"no collection named '{coll.name}'", param="collection")
                for p in prepared:
                    doc = p.doc
                    row = conn.execute(
                        "SELECT content_hash FROM documents WHERE collection_id = ? AND doc_id = ?",
                        (coll.id, doc.id),
                    ).fetchone()
                    if p.unchanged or (row is not None and row[0] == p.content_hash):
                        results.append(WriteResult(doc.id, "unchanged", len(p.chunks)))
                        continue
                    old = sql.delete_chunks(conn, coll.id, doc.id)
                    conn.executemany(
                        "INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)", p.fresh
                    )
                    new = sql.insert_chunks(conn, coll, doc.id, doc.title, p.chunks)
                    sql.upsert_document(
                        conn,
                        coll,
                        doc.id,
                        doc.title,
                        doc.source,
                        doc.metadata,
                        p.content_hash,
                        len(new),
                        now,
                    )
                    swaps.append((old, new, p.vectors, p))
                    status: Literal["new", "updated"] = "updated" if row is not None else "new"
                    results.append(WriteResult(doc.id, status, len(new)))
            keywords = self._keywords[coll.id]
            for old, new, vectors, p in swaps:
                index.remove(old)
                index.add(new, vectors)
                keywords.remove(old)
                keywords.add(
                    new, [p.doc.title] * len(new), [_body(c.heading, c.text) for c in p.chunks]
                )
        return results

    def delete_document(self, tenant: str, name: str, doc_id: str) -> None:
        coll = self.collection(tenant, name)
        with self.lock.write():
            index = self._index(coll)
            with self.db.transaction() as conn:
                old = sql.delete_chunks(conn, coll.id, doc_id)
                gone = conn.execute(
                    "DELETE FROM documents WHERE collection_id = ? AND doc_id = ?",
                    (coll.id, doc_id),
                ).rowcount
                if not gone:
                    raise NotFound(f"no document '{doc_id}' in '{name}'", param="document_id")
            index.remove(old)
            self._keywords[coll.id].remove(old)

    def get_document(self, tenant: str, name: str, doc_id: str) -> dict[str, Any]:
        coll = self.collection(tenant, name)
        with self.lock.read():
            rows = self.db.query(
                "SELECT title, source, metadata, content_hash, updated FROM documents"
                " WHERE collection_id = ? AND doc_id = ?",
                (coll.id, doc_id),
            )
            if not rows:
                raise NotFound(f"no document '{doc_id}' in '{name}'", param="document_id")
            chunks = self.db.query(
                "SELECT position, heading, text FROM chunks WHERE collection_id = ? AND doc_id = ?"
                " ORDER BY position",
                (coll.id, doc_id),
            )
        title, source, metadata, digest, updated = rows[0]
        return {
            "id": doc_id,
            "title": title,
            "source": source,
            "metadata": json.loads(metadata),
            "content_hash": digest,
            "updated": updated,
            "chunks": [{"chunk": c[0], "heading": c[1], "text": c[2]} for c in chunks],
        }

    # search --------------------------------------------------------------------------------

    def search(
        self,
        tenant: str,
        name: str,
        query: str,
        top_k: int = 10,
        mode: str = "hybrid",
        filters: dict[str, Any] | None = None,
        per_document: bool = False,
        query_vector: Any = None,
    ) -> list[Hit]:
        """The ``top_k`` best chunks (or documents' best chunks with ``per_document``).
        ``query_vector`` skips embedding the query (a caller that already has it)."""
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}", param="mode")
        if not query.strip():
            raise InvalidRequest("the query is empty", param="query")
        coll = self.collection(tenant, name)
        vector = query_vector
        if vector is None and mode != "bm25":
            vector = self._embed_query(query)
        depth = max(self.settings.candidates, top_k * (3 if per_document else 1))
        with self.lock.read():
            conn = self._reader()
            index = self._index(coll)
            allowed = self._allowed(conn, coll, filters) if filters else None
            keyword = (
                self._keyword(conn, coll, query, depth, filters, allowed)
                if mode != "vector"
                else []
            )
            dense = (
                index.search(vector, depth, allowed)
                if vector is not None and mode != "bm25"
                else []
            )
            if per_document:
                owners = self._owners(conn, [i for i, _ in keyword] + [i for i, _ in dense])
                shown: dict[str, int] = {}  # one chunk id per document, so fusion meets it once
                dense = _best_per_doc(dense, owners, shown)
                keyword = _best_per_doc(keyword, owners, shown)
            ranked: Sequence[tuple[int, float]]
            if mode == "bm25":
                ranked = keyword
            elif mode == "vector":
                ranked = dense
            else:
                s = self.settings
                ranked = fusion.fuse(s.fusion, keyword, dense, s.vector_weight, s.rrf_k)
            top = list(ranked[:top_k])
            return self._hits(conn, top, index, vector)

    def _embed_query(self, query: str) -> Any:
        with self._query_lock:
            vector = self._query_vectors.get(query)
            if vector is not None:
                self._query_vectors.move_to_end(query)
                return vector
        vector = self.embedder.embed([query])[0]
        vector.flags.writeable = False  # shared between searches
        with self._query_lock:
            self._query_vectors[query] = vector
            while len(self._query_vectors) > 1024:
                self._query_vectors.popitem(last=False)
        return vector

    def _allowed(
        self, conn: sqlite3.Connection, coll: Collection, filters: dict[str, Any]
    ) -> list[int]:
        params: list[Any] = [coll.id]
        where = sql.filter_sql(filters, params)
        rows = conn.execute(
            "SELECT c.id FROM chunks c JOIN documents d"
            " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
            f" WHERE c.collection_id = ? AND {where}",
            params,
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _keyword(
        self,
        conn: sqlite3.Connection,
        coll: Collection,
        query: str,
        depth: int,
        filters: dict[str, Any] | None,
        allowed: list[int] | None,
    ) -> list[tuple[int, float]]:
        """BM25 from the in-memory index; through FTS5 only for a query word that FTS5 splits
        into several tokens (``il_6``: a phrase, which the postings do not model)."""
        keywords = self._keywords[coll.id]
        max_df = self.settings.keyword_max_df
        prune = None if max_df >= 1.0 else (lambda t: keywords.prune(t, max_df))
        words = fusion.query_terms(query, prune)
        if not words:
            return []
        tokens = [keywords.tokens.term(w) for w in words]
        if all(len(t) == 1 for t in tokens):
            return keywords.search(
                [t[0] for t in tokens], depth, self.settings.title_weight, allowed
            )
        return self._keyword_fts(conn, coll, " OR ".join(f'"{w}"' for w in words), depth, filters)

    def _keyword_fts(
        self,
        conn: sqlite3.Connection,
        coll: Collection,
        terms: str,
        depth: int,
        filters: dict[str, Any] | None,
    ) -> list[tuple[int, float]]:
        """FTS5's own ``bm25()`` (the durable index; also the reference the tests compare
        the in-memory scores with)."""
        params: list[Any] = [self.settings.title_weight, f"coll:{coll.token} AND ({terms})"]
        join = where = ""
        if filters:
            join = (
                " JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d"
                " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
            )
            where = " AND " + sql.filter_sql(filters, params)
        params.append(depth)
        rows = conn.execute(
            "SELECT chunks_fts.rowid, bm25(chunks_fts, 0.0, ?, 1.0) AS s FROM chunks_fts"
            f"{join} WHERE chunks_fts MATCH ?{where} ORDER BY s LIMIT ?",
            params,
        ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _owners(self, conn: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = conn.execute(f"SELECT id, doc_id FROM chunks WHERE id IN ({marks})", part)
            out.update({int(r[0]): r[1] for r in rows})
        return out

    def _hits(
        self,
        conn: sqlite3.Connection,
        top: list[tuple[int, float]],
        index: VectorIndex,
        vector: Any,
    ) -> list[Hit]:
        if not top:
            return []
        marks = ", ".join("?" for _ in top)
        rows = conn.execute(
            "SELECT c.id, c.doc_id, d.title, c.heading, c.text, c.position, d.source, d.metadata"
            " FROM chunks c JOIN documents d"
            " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
            f" WHERE c.id IN ({marks})",
            [i for i, _ in top],
        ).fetchall()
        by_id = {int(r[0]): r for r in rows}
        hits = []
        for chunk_id, score in top:
            r = by_id.get(chunk_id)
            if r is None:
                continue
            similarity = None
            stored = index.vector(chunk_id)
            if vector is not None and stored is not None:
                similarity = float(stored @ vector)
            hits.append(
                Hit(
                    chunk_id,
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    score,
                    similarity,
                    r[6],
                    json.loads(r[7]),
                )
            )
        return hits


def _best_per_doc(
    ranking: list[tuple[int, float]], owners: dict[int, str], shown: dict[str, int]
) -> list[tuple[int, float]]:
    """Each document once, at its best chunk's rank (a document ranks by its best passage),
    named by the chunk ``shown`` picked for it first."""
    seen: set[str] = set()
    out = []
    for chunk_id, score in ranking:
        doc = owners.get(chunk_id)
        if doc is not None and doc not in seen:
            seen.add(doc)
            out.append((shown.setdefault(doc, chunk_id), score))
    return out


def _body(heading: str, text: str) -> str:
    """A chunk's FTS ``body`` column (as ``store.insert_chunks`` writes it)."""
    return f"{heading}\n{text}" if heading else text
