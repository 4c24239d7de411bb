"""The ``Repository`` contract on both engines (the ``database`` fixture): migrations run once,
in order, each with its version bump; a transaction commits durably or rolls back whole; the
sqlite3 surface (``?`` placeholders, rows by position and name, ``RETURNING``, upserts) means
the same thing on both; notices reach every replica of a PostgreSQL database."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from strata.core.errors import ConfigError
from strata.core.storage import Migration, open_repository

V1 = Migration(
    1,
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, ts REAL, b BLOB);\nCREATE INDEX t_v ON t (v);",
)


def _add_column(conn: Any) -> None:
    conn.execute("ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 0")


def test_migrates_once_and_in_order(database: Path | str) -> None:
    db = open_repository(database, "demo", [V1])
    assert db.version == 1  # type: ignore[attr-defined]
    db.close()
    db = open_repository(database, "demo", [V1, Migration(2, _add_column)])
    assert db.version == 2  # type: ignore[attr-defined]
    with db.transaction() as conn:
        conn.execute("INSERT INTO t (v, w) VALUES ('x', 3)")
    assert [tuple(r) for r in db.query("SELECT v, w FROM t")] == [("x", 3)]
    db.close()


def test_newer_schema_is_refused(database: Path | str) -> None:
    open_repository(database, "demo", [V1, Migration(2, _add_column)]).close()
    with pytest.raises(ConfigError, match="newer"):
        open_repository(database, "demo", [V1])


def test_failed_migration_leaves_previous_version(database: Path | str) -> None:
    open_repository(database, "demo", [V1]).close()
    with pytest.raises(Exception, match=r"(?i)already exists"):
        open_repository(database, "demo", [V1, Migration(2, "CREATE TABLE t (x INTEGER);")])
    db = open_repository(database, "demo", [V1])
    assert db.version == 1  # type: ignore[attr-defined]
    db.close()


def test_components_are_independent(database: Path | str) -> None:
    """Schemas in one PostgreSQL database, as ``settings.store`` gives files for SQLite."""
    other = database if isinstance(database, str) else database.with_name("two.db")
    one = open_repository(database, "one", [V1])
    two = open_repository(other, "two", [Migration(1, "CREATE TABLE t (x TEXT);")])
    with one.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('one')")
    with two.transaction() as conn:
        conn.execute("INSERT INTO t (x) VALUES ('two')")
    assert [tuple(r) for r in one.query("SELECT v FROM t")] == [("one",)]
    assert [tuple(r) for r in two.query("SELECT x FROM t")] == [("two",)]
    one.close()
    two.close()


def test_transaction_rolls_back_on_error(database: Path | str) -> None:
    db = open_repository(database, "demo", [V1])
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('gone')")
        raise RuntimeError
    assert db.query("SELECT count(*) FROM t")[0][0] == 0
    db.close()


def test_the_shared_sql_means_the_same_on_both(database: Path | str) -> None:
    db = open_repository(database, "demo", [V1])
    with db.transaction() as conn:
        first = conn.execute(
            "INSERT INTO t (v, ts, b) VALUES (?, ?, ?) RETURNING id",
            ("100% '?'", 1.7e9 + 0.25, b"\0\1"),
        ).fetchone()[0]
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",)])
        conn.execute(
            "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            (first, "replaced"),
        )
        skipped = conn.execute(
            "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING", (first, "no")
        )
        assert skipped.rowcount == 0
    row = db.query("SELECT id, v, ts, b FROM t WHERE id = ?", (first,))[0]
    assert row["v"] == row[1] == "replaced"
    assert row["ts"] == 1.7e9 + 0.25  # double precision, not single
    assert bytes(row["b"]) == b"\0\1"
    assert dict(row)["id"] == first
    assert db.query("SELECT count(*) FROM t WHERE v LIKE 'a%' OR v = '?'")[0][0] == 1
    assert db.query("SELECT 7 % 4")[0][0] == db.query("SELECT ? % 4", (7,))[0][0] == 3
    assert db.query("SELECT v FROM t WHERE v IS NOT DISTINCT FROM ?", (None,)) == []
    assert db.query("SELECT COALESCE(SUM(id), 0) AS s FROM t")[0]["s"] > first
    assert db.query("SELECT v FROM t WHERE id > :low ORDER BY id", {"low": first})[0][0] == "a"
    db.close()


def test_a_single_write_is_its_own_transaction(database: Path | str) -> None:
    db = open_repository(database, "demo", [V1])
    db.write("INSERT INTO t (v, ts) VALUES (?, ?)", ("one", 2.5))
    with pytest.raises(Exception, match=r"(?i)unique|constraint"):
        db.write("INSERT INTO t (id, v) VALUES (1, 'again')")
    assert [tuple(r) for r in db.query("SELECT id, v, ts FROM t")] == [(1, "one", 2.5)]
    db.close()


def test_commits_are_durable(database: Path | str) -> None:
    """What the server's durability promise rests on: synchronous=FULL on SQLite,
    synchronous_commit=on on PostgreSQL (whatever the server's default)."""
    db = open_repository(database, "demo", [V1])
    if db.dialect == "sqlite":
        assert db.query("PRAGMA synchronous")[0][0] == 2
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    else:
        assert db.query("SHOW synchronous_commit")[0][0] == "on"
    db.close()


def test_notices_reach_every_replica(database: Path | str) -> None:
    if not str(database).startswith("postgresql://"):
        pytest.skip("one SQLite file has one process: nothing to notify")
    writer = open_repository(database, "demo", [V1])
    reader = open_repository(database, "demo", [V1])
    heard: list[str | None] = []
    arrived = threading.Event()

    def hear(payload: str | None) -> None:
        heard.append(payload)
        arrived.set()

    reader.listen("changes", hear)
    with pytest.raises(RuntimeError), writer.transaction() as conn:
        writer.notify(conn, "changes", "rolled back")
        raise RuntimeError
    start = time.monotonic()
    with writer.transaction() as conn:
        writer.notify(conn, "changes", "committed")
    assert arrived.wait(2)
    assert time.monotonic() - start < 0.1
    assert heard == ["committed"]
    writer.close()
    reader.close()
