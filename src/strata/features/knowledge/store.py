"""The knowledge base's tables in one SQLite file (``knowledge.db``), tenant as a column.

Why one file with a tenant column rather than a file per tenant: a key's collections are
found by one indexed lookup, every query is scoped by the collection id that lookup returns
(so a key can never name another key's rows), and one WAL file keeps ingest commits
sequential instead of fsyncing many files.

    collections  (tenant, name) → id
    documents    (collection, doc id) → title, source, metadata JSON, content hash
    chunks       id, collection, doc id, position, heading, text, vector key
    vectors      vector key (hash of embedder + text) → float32 BLOB: the embedding cache
    chunks_fts   FTS5 (porter) over coll | title | body, rowid = chunk id

The ``coll`` column holds one token per chunk (``c<collection id>``), so a keyword query is
``coll:c7 AND (terms)``: FTS5 intersects posting lists instead of filtering other tenants'
matches after the fact. Its BM25 weight is 0.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata.core.storage import Migration

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            created REAL NOT NULL,
            UNIQUE (tenant, name)
        );
        CREATE TABLE documents (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            doc_id TEXT NOT NULL,
            title TEXT NOT NULL,
            source TEXT NOT NULL,
            metadata TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            chunks INTEGER NOT NULL,
            updated REAL NOT NULL,
            PRIMARY KEY (collection_id, doc_id)
        ) WITHOUT ROWID;
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL,
            doc_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            heading TEXT NOT NULL,
            text TEXT NOT NULL,
            vector_key TEXT NOT NULL
        );
        CREATE INDEX chunks_by_doc ON chunks (collection_id, doc_id);
        CREATE TABLE vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID;
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            coll, title, body, tokenize = 'porter unicode61'
        );
        """,
    )
]


@dataclass(frozen=True)
class Collection:
    id: int
    tenant: str
    name: str

    @property
    def token(self) -> str:
        return f"c{self.id}"


@dataclass
class NewChunk:
    position: int
    heading: str
    text: str
    vector_key: str


def delete_chunks(conn: sqlite3.Connection, collection_id: int, doc_id: str) -> list[int]:
    """Remove a document's chunks from the table and the FTS index; returns their ids, for
    the in-memory indexes to forget them."""
    rows = conn.execute(
        "SELECT id FROM chunks WHERE collection_id = ? AND doc_id = ?", (collection_id, doc_id)
    ).fetchall()
    ids = [int(r[0]) for r in rows]
    if ids:
        conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        conn.execute(
            "DELETE FROM chunks WHERE collection_id = ? AND doc_id = ?", (collection_id, doc_id)
        )
    return ids


def insert_chunks(
    conn: sqlite3.Connection,
    collection: Collection,
    doc_id: str,
    title: str,
    chunks: Sequence[NewChunk],
) -> list[int]:
    ids = []
    for chunk in chunks:
        cursor = conn.execute(
            "INSERT INTO chunks (collection_id, doc_id, position, heading, text, vector_key)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (collection.id, doc_id, chunk.position, chunk.heading, chunk.text, chunk.vector_key),
        )
        chunk_id = int(cursor.lastrowid or 0)
        body = f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text
        conn.execute(
            "INSERT INTO chunks_fts (rowid, coll, title, body) VALUES (?, ?, ?, ?)",
            (chunk_id, collection.token, title, body),
        )
        ids.append(chunk_id)
    return ids


def upsert_document(
    conn: sqlite3.Connection,
    collection: Collection,
    doc_id: str,
    title: str,
    source: str,
    metadata: dict[str, Any],
    content_hash: str,
    chunks: int,
    now: float,
) -> None:
    conn.execute(
        "INSERT INTO documents (collection_id, doc_id, title, source, metadata, content_hash,"
        " chunks, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (collection_id, doc_id) DO UPDATE SET title = excluded.title,"
        " source = excluded.source, metadata = excluded.metadata,"
        " content_hash = excluded.content_hash, chunks = excluded.chunks,"
        " updated = excluded.updated",
        (
            collection.id,
            doc_id,
            title,
            source,
            json.dumps(metadata, sort_keys=True),
            content_hash,
            chunks,
            now,
        ),
    )


def filter_sql(filters: dict[str, Any], params: list[Any], alias: str = "d") -> str:
    """SQL conditions on document metadata: ``{"k": v}`` equality, ``{"k": [a, b]}`` any of.
    Keys are bound as JSON paths, never spliced into the SQL."""
    clauses = []
    for key, value in filters.items():
        path = "$." + json.dumps(str(key))
        if isinstance(value, list):
            if not value:
                clauses.append("0")
                continue
            marks = ", ".join("?" for _ in value)
            clauses.append(f"json_extract({alias}.metadata, ?) IN ({marks})")
            params.append(path)
            params.extend(value)
        else:
            clauses.append(f"json_extract({alias}.metadata, ?) = ?")
            params.extend((path, value))
    return " AND ".join(clauses) or "1"
