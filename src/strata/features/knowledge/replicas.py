"""Several replicas on one PostgreSQL database: a document acknowledged by one is searchable
on every other within milliseconds.

Each replica keeps its own in-memory indexes (the vector matrix and the BM25 postings) as a
cache of the shared tables. A commit that changes a collection sends, in its own transaction,
a notice naming the chunk ids it removed and added (``NOTIFY``, delivered only once the
transaction commits, in commit order); every other replica's listener thread then removes
those ids from a copy of its indexes and loads the added chunks from the database, under the
same writer lock a local commit takes, and publishes the copy as a local commit does, so its
searches see the change whole or not at all (and never wait for it).

A notice too large for PostgreSQL's 8000 bytes names only the collection, and a lost notice
connection (``None``) may have missed some: either way the replica drops what it holds and
reloads it from the database on the next search. Writes to one collection from several
replicas take turns on an advisory lock, as SQLite's one writer would.

On SQLite there is one process per file, and ``notify``/``listen`` do nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from strata.core.storage import Repository
from strata.features.knowledge.store import Collection

if TYPE_CHECKING:
    from strata.features.knowledge.bm25 import KeywordIndex
    from strata.features.knowledge.search import Snapshot
    from strata.features.knowledge.vectors import VectorIndex

CHANNEL = "documents"
MAX_NOTICE = 7900  # bytes; PostgreSQL refuses a NOTIFY payload of 8000 or more
log = logging.getLogger(__name__)


class ReplicaMixin:
    db: Repository
    lock: threading.RLock
    replica: str
    _indexes: dict[int, VectorIndex]
    _keywords: dict[int, KeywordIndex]
    _snapshots: dict[int, Snapshot]

    def _publish(self, coll_id: int, index: VectorIndex, keywords: KeywordIndex) -> Snapshot:
        raise NotImplementedError

    def _write_lock(self, conn: Any, coll: Collection) -> None:
        """Take turns with other replicas writing to this collection (PostgreSQL)."""
        if self.db.dialect == "postgres":
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (0x5354, coll.id))

    def _tell(
        self, conn: Any, coll: Collection, removed: list[int] | None, added: list[int] | None
    ) -> None:
        """Notify the other replicas of this transaction's change to ``coll``; ``None`` for
        both: reload the whole collection (it was deleted)."""
        if self.db.dialect == "sqlite":
            return
        notice: dict[str, Any] = {"r": self.replica, "c": coll.id}
        if removed is not None and added is not None:
            notice.update(old=removed, new=added)
        payload = json.dumps(notice, separators=(",", ":"))
        if len(payload) > MAX_NOTICE:
            payload = json.dumps({"r": self.replica, "c": coll.id}, separators=(",", ":"))
        self.db.notify(conn, CHANNEL, payload)

    def _changed_elsewhere(self, payload: str | None) -> None:
        """A notice from a replica (the listener thread): apply the change to what this
        replica holds; collections it has not loaded load fresh when first searched."""
        if payload is None:
            with self.lock:
                self._snapshots.clear()
                self._indexes.clear()
                self._keywords.clear()
            return
        notice = json.loads(payload)
        if notice.get("r") == self.replica:
            return  # our own commit, applied already
        coll_id = int(notice["c"])
        with self.lock:
            index = self._indexes.get(coll_id)
            keywords = self._keywords.get(coll_id)
            if index is None or keywords is None:
                return
            if "new" not in notice:
                self._snapshots.pop(coll_id, None)
                self._indexes.pop(coll_id, None)
                self._keywords.pop(coll_id, None)
                return
            keywords = keywords.clone()
            index.remove(notice["old"])
            keywords.remove(notice["old"])
            self._load_chunks(index, keywords, [int(i) for i in notice["new"]])
            self._publish(coll_id, index, keywords)

    def _load_chunks(self, index: VectorIndex, keywords: KeywordIndex, ids: list[int]) -> None:
        import numpy as np

        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self.db.query(
                "SELECT c.id, v.vector, d.title, c.heading, c.text FROM chunks c"
                " JOIN vectors v ON v.key = c.vector_key JOIN documents d"
                " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id"
                f" WHERE c.id IN ({marks})",
                part,
            )
            if not rows:
                continue
            found = [int(r[0]) for r in rows]
            matrix = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=np.float32)
            index.add(found, matrix.reshape(len(found), -1))
            keywords.add(
                found,
                [r[2] for r in rows],
                [f"{r[3]}\n{r[4]}" if r[3] else r[4] for r in rows],
            )
