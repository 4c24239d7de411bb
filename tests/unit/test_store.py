from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from strata.core.errors import ConfigError
from strata.core.storage import Database, Migration

V1 = Migration(1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\nCREATE INDEX t_v ON t (v);")


def _add_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 0")


def test_migrates_once_and_in_order(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", "demo", [V1])
    assert db.version == 1
    db.close()
    db = Database(tmp_path / "a.db", "demo", [V1, Migration(2, _add_column)])
    assert db.version == 2
    with db.transaction() as conn:
        conn.execute("INSERT INTO t (v, w) VALUES ('x', 3)")
    assert [tuple(r) for r in db.query("SELECT v, w FROM t")] == [("x", 3)]
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL


def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    Database(tmp_path / "a.db", "demo", [V1]).close()
    with pytest.raises(sqlite3.OperationalError):
        Database(tmp_path / "a.db", "demo", [V1, Migration(2, "CREATE TABLE t (x);")])
    assert Database(tmp_path / "a.db", "demo", [V1]).version == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Database(tmp_path / "a.db", "demo", [V1, Migration(2, _add_column)]).close()
    with pytest.raises(ConfigError, match="newer"):
        Database(tmp_path / "a.db", "demo", [V1])


def test_components_share_a_file_independently(tmp_path: Path) -> None:
    Database(tmp_path / "a.db", "one", [V1]).close()
    other = Database(tmp_path / "a.db", "two", [Migration(1, "CREATE TABLE u (x);")])
    assert other.version == 1


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", "demo", [V1])
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('gone')")
        raise RuntimeError
    assert db.query("SELECT count(*) FROM t")[0][0] == 0
