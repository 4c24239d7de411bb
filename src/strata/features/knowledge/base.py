"""The knowledge base: collections per tenant, atomic upserts, hybrid search.

A write goes: chunk → look up the embedding cache → embed what is missing (batched, outside
any lock) → ONE SQLite transaction (delete the document's old chunks from the table and the
FTS index, insert the new ones, record the content hash) → commit (WAL, synchronous=FULL:
on disk) → build the next in-memory vector and keyword indexes (copy-on-write) → publish
both with ONE reference assignment → return (the acknowledgement).

Searches take no lock: each reads the collection's published ``Snapshot`` (both indexes),
so it sees a document entirely old or entirely new, a write that returned is found by the
next query, and commits (serialised by one mutex) and searches never wait for each other.
A crash before the commit loses only unacknowledged work; the indexes are rebuilt on start.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from strata.core.embeddings import Embedder, create_embedder
from strata.core.errors import InvalidRequest, NotFound
from strata.core.storage import Database, open_repository
from strata.features.knowledge import store as sql
from strata.features.knowledge.bm25 import KeywordIndex
from strata.features.knowledge.documents import DocumentInput, Hit, Prepared, WriteResult
from strata.features.knowledge.preparing import PrepareMixin
from strata.features.knowledge.replicas import CHANNEL, ReplicaMixin
from strata.features.knowledge.search import MODES, SearchMixin, Snapshot
from strata.features.knowledge.settings import KnowledgeSettings
from strata.features.knowledge.store import Collection
from strata.features.knowledge.vectors import VectorIndex

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["MODES", "DocumentInput", "Hit", "KnowledgeBase", "WriteResult"]

Mode = Literal["hybrid", "bm25", "vector"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KnowledgeBase(PrepareMixin, SearchMixin, ReplicaMixin):
    def __init__(
        self,
        home: Path,
        settings: KnowledgeSettings,
        embedder: Embedder | None = None,
        database: str | None = None,
    ) -> None:
        """The base in ``home/knowledge.db``, or in the PostgreSQL ``database`` when given
        (shared with other replicas: see ``strata.features.knowledge.replicas``)."""
        self.settings = settings
        self.embedder = embedder if embedder is not None else create_embedder(settings)
        self.db = open_repository(database or home / "knowledge.db", "knowledge", sql.MIGRATIONS)
        self.lock = threading.RLock()  # writers only: searches read published snapshots
        self._load_lock = threading.Lock()
        self._indexes: dict[int, VectorIndex] = {}  # the writer's side of each vector index
        self._keywords: dict[int, KeywordIndex] = {}  # the latest published keyword index
        self._snapshots: dict[int, Snapshot] = {}
        # Recent query texts → their vectors: a repeated question (a retry, a follow-up that
        # searches the same words, the chat layer and the API asking alike) skips the model.
        self._query_vectors: OrderedDict[str, Any] = OrderedDict()
        self._query_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self.replica = uuid.uuid4().hex  # tells this replica's own notices from others'
        self.db.listen(CHANNEL, self._changed_elsewhere)

    def close(self) -> None:
        for conn in self._readers:
            conn.close()
        self.db.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """A connection for one search, in one read transaction (one snapshot of the tables
        for the search's queries): on SQLite this thread's read-only one (WAL readers never
        block, nor block a commit), on PostgreSQL one from the pool."""
        if not isinstance(self.db, Database):
            with self.db.transaction() as shared:
                yield shared
            return
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.db.path), check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            self._readers.append(conn)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")  # read only: nothing to keep or undo

    # collections -------------------------------------------------------------------------

    def create_collection(self, tenant: str, name: str) -> tuple[Collection, bool]:
        """The collection, and whether it was created now (creating twice is harmless)."""
        if not _NAME.match(name):
            raise InvalidRequest(
                "a collection name is 1-64 letters, digits, '_', '-' or '.', starting with a"
                " letter or digit",
                param="name",
            )
        with self.lock, self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO collections (tenant, name, created) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
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
        with self.lock:
            with self.db.transaction() as conn:
                self._write_lock(conn, coll)
                conn.execute(
                    "DELETE FROM chunks_fts WHERE rowid IN"
                    " (SELECT id FROM chunks WHERE collection_id = ?)",
                    (coll.id,),
                )
                conn.execute("DELETE FROM chunks WHERE collection_id = ?", (coll.id,))
                conn.execute("DELETE FROM documents WHERE collection_id = ?", (coll.id,))
                conn.execute("DELETE FROM collections WHERE id = ?", (coll.id,))
                self._tell(conn, coll, None, None)
            self._snapshots.pop(coll.id, None)
            self._indexes.pop(coll.id, None)
            self._keywords.pop(coll.id, None)

    def stats(self, tenant: str, name: str) -> dict[str, Any]:
        coll = self.collection(tenant, name)
        docs, chunks = self.db.query(
            "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents WHERE collection_id = ?",
            (coll.id,),
        )[0]
        view = self._snapshot(coll).vectors
        rows = view.n - view.dead
        return {
            "name": name,
            "documents": docs,
            "chunks": chunks,
            "vectors": rows,
            "vector_bytes": rows * view.matrix.shape[1] * 4,
            "embedder": self.embedder.name,
            "dimensions": int(view.matrix.shape[1]),
        }

    # the vector matrix ---------------------------------------------------------------------

    def _index(self, coll: Collection) -> VectorIndex:
        """The writer's side of the collection's vector index (loading it on first use)."""
        self._snapshot(coll)
        return self._indexes[coll.id]

    def _snapshot(self, coll: Collection) -> Snapshot:
        """What searches read: loaded from the stored rows on first use."""
        snapshot = self._snapshots.get(coll.id)
        if snapshot is not None:
            return snapshot
        with self._load_lock:
            snapshot = self._snapshots.get(coll.id)
            if snapshot is None:
                index, keywords = self._load(coll)
                self._indexes[coll.id] = index
                snapshot = self._publish(coll.id, index, keywords)
        return snapshot

    def _publish(self, coll_id: int, index: VectorIndex, keywords: KeywordIndex) -> Snapshot:
        """One assignment makes a write visible to searches in both indexes at once."""
        snapshot = Snapshot(index.view, keywords)
        self._keywords[coll_id] = keywords
        self._snapshots[coll_id] = snapshot
        return snapshot

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

    def commit(self, coll: Collection, prepared: Sequence[Prepared]) -> list[WriteResult]:
        """One transaction for the whole batch, then the indexes' new snapshot is published."""
        results: list[WriteResult] = []
        swaps: list[tuple[list[int], list[int], npt.NDArray[np.float32], Prepared]] = []
        now = time.time()
        with self.lock:
            index = self._index(coll)
            with self.db.transaction() as conn:
                self._write_lock(conn, coll)
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
                        "INSERT INTO vectors (key, vector) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        p.fresh,
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
                if swaps:
                    self._tell(
                        conn,
                        coll,
                        [i for s in swaps for i in s[0]],
                        [i for s in swaps for i in s[1]],
                    )
            if not swaps:
                return results
            keywords = self._keywords[coll.id].clone()
            for old, new, vectors, p in swaps:
                index.remove(old)
                index.add(new, vectors)
                keywords.remove(old)
                keywords.add(
                    new, [p.doc.title] * len(new), [_body(c.heading, c.text) for c in p.chunks]
                )
            self._publish(coll.id, index, keywords)
        return results

    def delete_document(self, tenant: str, name: str, doc_id: str) -> None:
        coll = self.collection(tenant, name)
        with self.lock:
            index = self._index(coll)
            with self.db.transaction() as conn:
                self._write_lock(conn, coll)
                old = sql.delete_chunks(conn, coll.id, doc_id)
                gone = conn.execute(
                    "DELETE FROM documents WHERE collection_id = ? AND doc_id = ?",
                    (coll.id, doc_id),
                ).rowcount
                if not gone:
                    raise NotFound(f"no document '{doc_id}' in '{name}'", param="document_id")
                self._tell(conn, coll, old, [])
            index.remove(old)
            keywords = self._keywords[coll.id].clone()
            keywords.remove(old)
            self._publish(coll.id, index, keywords)

    def get_document(self, tenant: str, name: str, doc_id: str) -> dict[str, Any]:
        coll = self.collection(tenant, name)
        with self._reading() as conn:  # the document and its chunks from the same commit
            rows = conn.execute(
                "SELECT title, source, metadata, content_hash, updated FROM documents"
                " WHERE collection_id = ? AND doc_id = ?",
                (coll.id, doc_id),
            ).fetchall()
            chunks = conn.execute(
                "SELECT position, heading, text FROM chunks WHERE collection_id = ? AND doc_id = ?"
                " ORDER BY position",
                (coll.id, doc_id),
            ).fetchall()
        if not rows:
            raise NotFound(f"no document '{doc_id}' in '{name}'", param="document_id")
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


def _body(heading: str, text: str) -> str:
    """A chunk's FTS ``body`` column (as ``store.insert_chunks`` writes it)."""
    return f"{heading}\n{text}" if heading else text
