"""Sessions and their turns in SQLite (``dialogue.db``), with an FTS5 index over the turns.

A turn is stored the moment it is known: the user's message before generation starts (so a
message the server accepted is never lost, even if the model then fails), the answer once it
is complete. Deleting a session deletes its turns (foreign key, ``ON DELETE CASCADE``) and
their index entries (trigger). Every lookup is by ``(owner, id)``: two API keys may both have
a session called ``work``, and neither can see the other's.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from strata.core.errors import InvalidRequest, NotFound
from strata.core.storage import Migration, open_repository

ROLES = ("user", "assistant")

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE sessions (
            sid INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            system TEXT NOT NULL DEFAULT '',
            title TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            updated REAL NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            summary_upto INTEGER NOT NULL DEFAULT 0,
            UNIQUE (owner, id)
        );
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            sid INTEGER NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            name TEXT,
            created REAL NOT NULL,
            UNIQUE (sid, seq)
        );
        CREATE VIRTUAL TABLE turns_fts USING fts5(
            content, content='turns', content_rowid='id', tokenize='porter unicode61'
        );
        CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
            INSERT INTO turns_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
            INSERT INTO turns_fts(turns_fts, rowid, content) VALUES ('delete', old.id, old.content);
        END;
        """,
    ),
    # One tenancy rule for every feature (strata.core.tenancy): the anonymous owner "" is the
    # default tenant, and a key's owner id, the first 32 hex digits of its sha256, becomes its
    # tenant id, "k" + the first 24.
    Migration(
        2,
        """
        UPDATE sessions SET owner = 'default' WHERE owner = '';
        UPDATE sessions SET owner = 'k' || substr(owner, 1, 24) WHERE length(owner) = 32;
        """,
    ),
]


@dataclass(frozen=True)
class Turn:
    seq: int
    role: str
    content: str
    name: str | None
    created: float

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "role": self.role,
            "content": self.content,
            "name": self.name,
            "created": self.created,
        }


@dataclass(frozen=True)
class NewTurn:
    role: str
    content: str
    name: str | None = None
    created: float | None = None  # imported turns keep their own time


@dataclass(frozen=True)
class Session:
    sid: int
    id: str
    owner: str
    system: str
    title: str
    created: float
    updated: float
    summary: str
    summary_upto: int
    turns: int
    last_seq: int

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "session",
            "title": self.title,
            "system": self.system,
            "created": self.created,
            "updated": self.updated,
            "turn_count": self.turns,
            "summary": self.summary,
            "summary_upto": self.summary_upto,
        }


_SESSION_SQL = """
    SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.sid = s.sid) AS turns,
           (SELECT COALESCE(MAX(seq), 0) FROM turns t WHERE t.sid = s.sid) AS last_seq
    FROM sessions s
"""


def _session(row: sqlite3.Row) -> Session:
    return Session(
        sid=row["sid"],
        id=row["id"],
        owner=row["owner"],
        system=row["system"],
        title=row["title"],
        created=row["created"],
        updated=row["updated"],
        summary=row["summary"],
        summary_upto=row["summary_upto"],
        turns=row["turns"],
        last_seq=row["last_seq"],
    )


def _turn(row: sqlite3.Row) -> Turn:
    return Turn(row["seq"], row["role"], row["content"], row["name"], row["created"])


class SessionStore:
    """Synchronous on purpose (SQLite is); async callers go through ``db.run``."""

    def __init__(self, path: Path | str) -> None:
        self.db = open_repository(path, "dialogue", MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    # ---- sessions ----

    def create(
        self, owner: str, id: str | None = None, system: str = "", title: str = ""
    ) -> Session:
        session_id = id or f"sess-{uuid.uuid4().hex[:20]}"
        now = time.time()
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO sessions (owner, id, system, title, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (owner, session_id, system, title, now, now),
                )
        except sqlite3.IntegrityError:
            raise InvalidRequest(f"session '{session_id}' already exists", param="id") from None
        return self.get(owner, session_id)

    def get(self, owner: str, id: str) -> Session:
        rows = self.db.query(_SESSION_SQL + " WHERE s.owner = ? AND s.id = ?", (owner, id))
        if not rows:
            raise NotFound(f"No session '{id}'.", param="session")
        return _session(rows[0])

    def find(self, owner: str, id: str) -> Session | None:
        try:
            return self.get(owner, id)
        except NotFound:
            return None

    def by_sid(self, sid: int) -> Session | None:
        rows = self.db.query(_SESSION_SQL + " WHERE s.sid = ?", (sid,))
        return _session(rows[0]) if rows else None

    def all(self, owner: str) -> list[Session]:
        rows = self.db.query(_SESSION_SQL + " WHERE s.owner = ? ORDER BY s.updated DESC", (owner,))
        return [_session(r) for r in rows]

    def delete(self, owner: str, id: str) -> None:
        with self.db.transaction() as conn:
            cursor = conn.execute("DELETE FROM sessions WHERE owner = ? AND id = ?", (owner, id))
            if cursor.rowcount == 0:
                raise NotFound(f"No session '{id}'.", param="session")

    def update(
        self, owner: str, id: str, title: str | None = None, system: str | None = None
    ) -> Session:
        """Rename a session or change its system prompt; its turns stay as they are."""
        session = self.get(owner, id)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET title = ?, system = ? WHERE sid = ?",
                (
                    session.title if title is None else title,
                    session.system if system is None else system,
                    session.sid,
                ),
            )
        return self.get(owner, id)

    def truncate(self, owner: str, id: str, from_seq: int) -> int:
        """Delete the turns from ``from_seq`` on (an edited message is resent in their place);
        a summary that covered any of them is dropped, to be rebuilt from what remains.
        Returns how many turns were deleted."""
        session = self.get(owner, id)
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM turns WHERE sid = ? AND seq >= ?", (session.sid, from_seq)
            )
            if session.summary_upto >= from_seq:
                conn.execute(
                    "UPDATE sessions SET summary = '', summary_upto = 0 WHERE sid = ?",
                    (session.sid,),
                )
        return cursor.rowcount

    def set_summary(self, sid: int, summary: str, upto: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET summary = ?, summary_upto = ? WHERE sid = ?",
                (summary, upto, sid),
            )

    # ---- turns ----

    def append(self, session: Session, turns: Sequence[NewTurn]) -> list[Turn]:
        """Add turns at the end, in order, in one durable transaction."""
        for turn in turns:
            if turn.role not in ROLES:
                raise InvalidRequest(
                    f"a session keeps {' and '.join(ROLES)} messages, not '{turn.role}'",
                    param="messages",
                )
        now = time.time()
        out: list[Turn] = []
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE sid = ?", (session.sid,)
            ).fetchone()
            seq = int(row[0])
            for turn in turns:
                seq += 1
                created = turn.created if turn.created is not None else now
                conn.execute(
                    "INSERT INTO turns (sid, seq, role, content, name, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (session.sid, seq, turn.role, turn.content, turn.name, created),
                )
                out.append(Turn(seq, turn.role, turn.content, turn.name, created))
            conn.execute("UPDATE sessions SET updated = ? WHERE sid = ?", (now, session.sid))
        return out

    def turns(self, sid: int, after: int = 0, upto: int | None = None) -> list[Turn]:
        """Turns with ``after < seq <= upto`` in order."""
        rows = self.db.query(
            "SELECT * FROM turns WHERE sid = ? AND seq > ? AND seq <= ? ORDER BY seq",
            (sid, after, upto if upto is not None else 2**62),
        )
        return [_turn(r) for r in rows]

    def recent(self, sid: int, limit: int, before: int) -> list[Turn]:
        """The last ``limit`` turns with ``seq < before``, oldest first."""
        rows = self.db.query(
            "SELECT * FROM turns WHERE sid = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (sid, before, limit),
        )
        return [_turn(r) for r in reversed(rows)]

    def search(
        self, sid: int, terms: Sequence[str], before: int, limit: int
    ) -> list[tuple[Turn, float]]:
        """BM25 matches (any of ``terms``) among turns with ``seq < before``; higher is better."""
        if not terms or limit <= 0:
            return []
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self.db.query(
            "SELECT t.*, bm25(turns_fts) AS rank FROM turns_fts"
            " JOIN turns t ON t.id = turns_fts.rowid"
            " WHERE turns_fts MATCH ? AND t.sid = ? AND t.seq < ?"
            " ORDER BY rank LIMIT ?",
            (query, sid, before, limit),
        )
        return [(_turn(r), -float(r["rank"])) for r in rows]
