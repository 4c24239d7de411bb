"""Hybrid search over one collection: BM25 (in memory, FTS5 for phrases) and exact vector
search, fused. A mixin of ``KnowledgeBase``: a search reads the collection's published
``Snapshot`` (both indexes, swapped together by one assignment after each commit) and takes
no lock, so it never delays a commit; it sees a document entirely old or entirely new. A
chunk the snapshot still holds but a later commit already deleted from SQLite is dropped
from the hits (chunk rows are immutable: a hit's text is always its own)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from strata.core.embeddings import Embedder
from strata.core.errors import InvalidRequest
from strata.core.storage import Repository
from strata.features.knowledge import evidence, fusion
from strata.features.knowledge import store as sql
from strata.features.knowledge.bm25 import K1, KeywordIndex, inverse_df
from strata.features.knowledge.documents import Hit
from strata.features.knowledge.settings import KnowledgeSettings
from strata.features.knowledge.store import Collection
from strata.features.knowledge.vectors import VectorView

MODES = ("hybrid", "bm25", "vector")


@dataclass(frozen=True)
class Snapshot:
    """One collection's indexes as one commit left them; never mutated once published."""

    vectors: VectorView
    keywords: KeywordIndex


class SearchMixin:
    db: Repository
    settings: KnowledgeSettings
    embedder: Embedder
    _query_vectors: OrderedDict[str, Any]
    _query_lock: threading.Lock

    def collection(self, tenant: str, name: str) -> Collection:
        raise NotImplementedError

    def _reading(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _snapshot(self, coll: Collection) -> Snapshot:
        raise NotImplementedError

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
        return self._search(tenant, name, query, top_k, mode, filters, per_document, query_vector)[
            0
        ]

    def search_with_evidence(
        self, tenant: str, name: str, query: str, top_k: int = 10
    ) -> tuple[list[Hit], dict[str, float]]:
        """Hybrid hits and the evidence that the collection answers ``query``: the
        ``evidence.SIGNALS`` of the keyword and vector rankings (per document), and
        ``support``, the calibrated probability (see ``evidence``)."""
        hits, keyword, dense = self._search(tenant, name, query, top_k, "hybrid", None, False, None)
        with self._reading() as conn:
            owners = self._owners(conn, [i for i, _ in keyword] + [i for i, _ in dense])
        ceiling = self.keyword_ceiling(tenant, name, query)
        values = evidence.signals(_per_doc(keyword, owners), _per_doc(dense, owners), ceiling)
        s = self.settings
        values["support"] = evidence.support(values, s.evidence_weights, s.evidence_bias)
        return hits, values

    def keyword_ceiling(self, tenant: str, name: str, query: str) -> float:
        """The most BM25 any chunk could score for ``query`` (``evidence`` divides by it)."""
        keywords = self._snapshot(self.collection(tenant, name)).keywords
        max_df = self.settings.keyword_max_df
        prune = None if max_df >= 1.0 else (lambda t: keywords.prune(t, max_df))
        terms = [t for w in fusion.query_terms(query, prune) for t in keywords.tokens.term(w)]
        n = len(keywords)
        return sum(inverse_df(n, keywords.df(t)) * (K1 + 1) for t in terms if keywords.df(t))

    def _search(
        self,
        tenant: str,
        name: str,
        query: str,
        top_k: int,
        mode: str,
        filters: dict[str, Any] | None,
        per_document: bool,
        query_vector: Any,
    ) -> tuple[list[Hit], list[tuple[int, float]], list[tuple[int, float]]]:
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}", param="mode")
        if not query.strip():
            raise InvalidRequest("the query is empty", param="query")
        coll = self.collection(tenant, name)
        vector = query_vector
        if vector is None and mode != "bm25":
            vector = self._embed_query(query)
        depth = max(self.settings.candidates, top_k * (3 if per_document else 1))
        snapshot = self._snapshot(coll)
        with self._reading() as conn:
            allowed = self._allowed(conn, coll, filters) if filters else None
            keyword = (
                self._keyword(conn, coll, snapshot.keywords, query, depth, filters, allowed)
                if mode != "vector"
                else []
            )
            dense = (
                snapshot.vectors.search(vector, depth, allowed)
                if vector is not None and mode != "bm25"
                else []
            )
            if per_document:
                owners = self._owners(conn, [i for i, _ in keyword] + [i for i, _ in dense])
                shown: dict[str, int] = {}  # one chunk id per document, so fusion meets it once
                dense = _best_per_doc(dense, owners, shown)
                keyword = _best_per_doc(keyword, owners, shown)
            ranked: Sequence[tuple[int, float]]
            chunk_keyword, chunk_dense = keyword, dense
            if mode == "bm25":
                ranked = keyword
            elif mode == "vector":
                ranked = dense
            else:
                s = self.settings
                ranked = fusion.fuse(s.fusion, keyword, dense, s.vector_weight, s.rrf_k)
            top = list(ranked[:top_k])
            return self._hits(conn, top, snapshot.vectors, vector), chunk_keyword, chunk_dense

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

    def _allowed(self, conn: Any, coll: Collection, filters: dict[str, Any]) -> list[int]:
        params: list[Any] = [coll.id]
        where = sql.filter_sql(filters, params, dialect=self.db.dialect)
        rows = conn.execute(
            "SELECT c.id FROM chunks c JOIN documents d"
            " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
            f" WHERE c.collection_id = ? AND {where}",
            params,
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _keyword(
        self,
        conn: Any,
        coll: Collection,
        keywords: KeywordIndex,
        query: str,
        depth: int,
        filters: dict[str, Any] | None,
        allowed: list[int] | None,
    ) -> list[tuple[int, float]]:
        """BM25 from the in-memory index; through FTS5 only for a query word that FTS5 splits
        into several tokens (``il_6``: a phrase, which the postings do not model)."""
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
        return self._keyword_fts(conn, coll, words, depth, filters)

    def _keyword_fts(
        self,
        conn: Any,
        coll: Collection,
        words: list[str],
        depth: int,
        filters: dict[str, Any] | None,
    ) -> list[tuple[int, float]]:
        """The durable full-text index: FTS5's own ``bm25()`` on SQLite (also the reference
        the tests compare the in-memory scores with); on PostgreSQL, ``ts_rank`` over the
        stored ``tsvector`` (title weighted ``title_weight`` to the body's 1), each word a
        phrase, any of them matching."""
        join = where = ""
        if filters:
            join = (
                " JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d"
                " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
            )
        if self.db.dialect == "postgres":
            quoted = " or ".join('"' + w.replace('"', " ") + '"' for w in words)
            params: list[Any] = [self.settings.title_weight, quoted, coll.token]
            if filters:
                where = " AND " + sql.filter_sql(filters, params, dialect="postgres")
            params.append(depth)
            rows = conn.execute(
                "SELECT chunks_fts.rowid, ts_rank(ARRAY[0, 0, 1.0, ?]::float4[], tsv, q) AS s"
                " FROM chunks_fts CROSS JOIN websearch_to_tsquery('english', ?) AS q"
                f"{join} WHERE coll = ? AND tsv @@ q{where} ORDER BY s DESC, chunks_fts.rowid"
                " LIMIT ?",
                params,
            ).fetchall()
            return [(int(r[0]), float(r[1])) for r in rows]
        terms = " OR ".join(f'"{w}"' for w in words)
        params = [self.settings.title_weight, f"coll:{coll.token} AND ({terms})"]
        if filters:
            where = " AND " + sql.filter_sql(filters, params)
        params.append(depth)
        rows = conn.execute(
            "SELECT chunks_fts.rowid, bm25(chunks_fts, 0.0, ?, 1.0) AS s FROM chunks_fts"
            f"{join} WHERE chunks_fts MATCH ?{where} ORDER BY s LIMIT ?",
            params,
        ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _owners(self, conn: Any, ids: list[int]) -> dict[int, str]:
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
        conn: Any,
        top: list[tuple[int, float]],
        index: VectorView,
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


def _per_doc(ranking: list[tuple[int, float]], owners: dict[int, str]) -> list[tuple[str, float]]:
    """Each document once, at its best chunk's rank and score, named by its id."""
    seen: dict[str, float] = {}
    for chunk_id, score in ranking:
        doc = owners.get(chunk_id)
        if doc is not None and doc not in seen:
            seen[doc] = score
    return list(seen.items())


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
