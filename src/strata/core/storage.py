"""Durable state behind one contract, ``Repository``: what a feature's store needs from a
database (transactions, queries, a way off the event loop, change notices to other
replicas), with that feature's own migrations. ``Database`` is the SQLite implementation, the
embedded default; ``strata.core.postgres.PostgresRepository`` is the PostgreSQL one, chosen
when the location is a ``postgresql://`` URL (the ``database`` setting). Features open theirs
with ``open_repository(settings.store(component), component, migrations)``.

Stores write the SQL both engines speak: ``?`` placeholders, ``ON CONFLICT … DO UPDATE`` /
``DO NOTHING`` instead of ``INSERT OR …``, ``RETURNING id`` instead of ``lastrowid``, ``IS NOT
DISTINCT FROM`` instead of ``IS ?``. Where the dialects really differ (full-text search, JSON
paths), a store branches on ``repo.dialect`` and a migration declares both (``postgres=``).

One SQLite database file per component (ledger, knowledge, dialogue, ...), migrated as code.

Why one file per component: their write patterns differ (a ledger row per request, bulk
ingests, chat turns) and SQLite serialises writers per file, so separate files keep a large
ingest from delaying the ledger. Every file runs in WAL mode with ``synchronous=FULL``: a
transaction that returned is on disk, which is what "acknowledged" means everywhere in strata.

Migrations are an ordered list of ``Migration(version, sql_or_function)``; each runs in its
own transaction together with the bump of ``schema_version``, so a crash mid-migration leaves
the previous version intact and the next start simply retries.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from strata.core.errors import ConfigError

T = TypeVar("T")


Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Migration:
    """One schema step. ``apply`` is SQL (or a function of the connection) for SQLite, and
    for PostgreSQL too after its column types are mapped (``strata.core.postgres``);
    ``postgres`` replaces it there when the dialects differ beyond types."""

    version: int
    apply: str | Callable[[Any], None]
    postgres: str | Callable[[Any], None] | None = None


class Repository(Protocol):
    """A feature's database. ``transaction`` commits durably when the block ends (what
    "acknowledged" means everywhere in strata) or rolls back if it raises; the connection it
    yields has sqlite3's ``execute``/``executemany`` (``?`` placeholders) on both engines.
    ``run`` moves a synchronous call off the event loop. ``notify`` (inside a transaction)
    tells every other replica's ``listen`` callback once the transaction commits; SQLite has
    no other replicas, so there both do nothing."""

    dialect: Dialect

    def transaction(self) -> AbstractContextManager[Any]: ...

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]: ...

    def write(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
        """One statement as its own durable transaction (a ledger row per request): the
        same promise as ``transaction``, in one round trip where the engine allows."""
        ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def notify(self, conn: Any, channel: str, payload: str) -> None: ...

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> None: ...

    def close(self) -> None: ...


def is_url(location: Path | str) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def open_repository(
    location: Path | str, component: str, migrations: Sequence[Migration]
) -> Repository:
    """The feature ``component``'s repository, migrated to its latest version: a SQLite file
    at ``location``, or its own schema in the PostgreSQL database a URL names."""
    if is_url(location):
        from strata.core.postgres import PostgresRepository

        return PostgresRepository(str(location), component, migrations)
    return Database(location, component, migrations)


class Database:
    """A thread-safe SQLite connection: one writer at a time, explicit transactions.

    Calls are synchronous (SQLite is); async code uses ``await db.run(fn, ...)`` which moves
    the call to a worker thread so the event loop keeps serving.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str, component: str, migrations: Sequence[Migration]) -> None:
        self.path = Path(path)
        self.component = component
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open database {path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self._migrate(migrations)

    @property
    def version(self) -> int:
        row = self.conn.execute(
            "SELECT version FROM schema_version WHERE component = ?", (self.component,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        versions = [m.version for m in migrations]
        if versions != sorted(set(versions)):
            raise ConfigError(f"{self.component}: migration versions must increase")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        current = self.version
        if versions and current > versions[-1]:
            raise ConfigError(
                f"{self.path} has {self.component} schema v{current}, newer than this strata"
                f" knows (v{versions[-1]}); upgrade strata"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            with self.transaction() as conn:
                if isinstance(migration.apply, str):
                    for statement in _statements(migration.apply):
                        conn.execute(statement)
                else:
                    migration.apply(conn)
                conn.execute(
                    "INSERT INTO schema_version (component, version) VALUES (?, ?)"
                    " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (self.component, migration.version),
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the block raises."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def write(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
        with self.transaction() as conn:
            conn.execute(sql, params)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def notify(self, conn: Any, channel: str, payload: str) -> None:
        """Nothing to tell: one SQLite file has one serving process."""

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Nothing to hear (see ``notify``)."""

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit early)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out
