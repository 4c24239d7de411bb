"""Issued keys and what each has spent, in the feature's own database (``keys.db``), written
only through the ``Repository`` contract with migrations as code, so a PostgreSQL repository
can take SQLite's place: the SQL here is the subset both speak (``ON CONFLICT … DO UPDATE``,
a partial unique index).

``version`` is a change stamp bumped by every create and revoke in the same transaction: a
running server compares it, about once a second, to notice keys another process (``strata
keys create`` with no server involved) added or revoked, and reloads its in-memory copy.

``spend`` has one row per key and budget period, incremented as requests settle (in the
background, batched: ``strata.features.keys.limits.SpendWriter``).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from strata.core.errors import InvalidRequest, NotFound
from strata.core.settings import CoreSettings
from strata.core.storage import Migration, Repository, open_repository
from strata.core.tenancy import key_digest
from strata.features.keys.records import PERIODS, KeyRecord, Period, new_token, period_bounds

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            digest TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            created REAL NOT NULL,
            budget_usd REAL,
            period TEXT,
            rpm INTEGER,
            tpm INTEGER,
            revoked REAL
        );
        CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked IS NULL;
        CREATE TABLE spend (
            key_id TEXT NOT NULL REFERENCES api_keys (id),
            period_start REAL NOT NULL,
            usd REAL NOT NULL,
            requests INTEGER NOT NULL,
            PRIMARY KEY (key_id, period_start)
        );
        CREATE TABLE keys_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
        INSERT INTO keys_version (id, version) VALUES (1, 0);
        """,
    ),
]

COLUMNS = "id, name, digest, hint, created, budget_usd, period, rpm, tpm, revoked"
MAX_NAME = 64


def keys_path(settings: CoreSettings) -> Path | str:
    """The keys' repository: ``keys.db`` in home, or the PostgreSQL database."""
    return settings.store("keys")


class KeyStore:
    def __init__(self, path: Path | str) -> None:
        self.db: Repository = open_repository(path, "keys", MIGRATIONS)

    def create(
        self,
        name: str,
        *,
        budget_usd: float | None = None,
        period: Period | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key and its record; the key is returned here once and never stored."""
        name = name.strip()
        _check(name, budget_usd, period, rpm, tpm)
        if budget_usd is not None and period is None:
            period = "month"
        token = new_token()
        record = KeyRecord(
            id="key_" + uuid.uuid4().hex[:20],
            name=name,
            digest=key_digest(token),
            hint=token[-4:],
            created=time.time(),
            budget_usd=budget_usd,
            period=period,
            rpm=rpm,
            tpm=tpm,
        )
        with self.db.transaction() as conn:
            taken = conn.execute(
                "SELECT 1 FROM api_keys WHERE name = ? AND revoked IS NULL", (name,)
            ).fetchone()
            if taken:
                raise InvalidRequest(f"a key named '{name}' already exists", param="name")
            conn.execute(
                f"INSERT INTO api_keys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _row(record),
            )
            conn.execute("UPDATE keys_version SET version = version + 1 WHERE id = 1")
        return token, record

    def all(self) -> list[KeyRecord]:
        rows = self.db.query(f"SELECT {COLUMNS} FROM api_keys ORDER BY created, id")
        return [KeyRecord(**dict(r)) for r in rows]

    def find(self, ref: str) -> KeyRecord:
        """A key by id, or a live key by name; ``NotFound`` otherwise."""
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM api_keys WHERE id = ? OR (name = ? AND revoked IS NULL)",
            (ref, ref),
        )
        if not rows:
            raise NotFound(f"no API key '{ref}'", param="key")
        return KeyRecord(**dict(rows[0]))

    def revoke(self, ref: str) -> KeyRecord:
        """Revoke a key by id or name. Its row stays (listed, and counting as a key that
        exists, so revoking the last key never turns authentication off)."""
        record = self.find(ref)
        if record.revoked is not None:
            return record
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (now, record.id))
            conn.execute("UPDATE keys_version SET version = version + 1 WHERE id = 1")
        return self.find(record.id)

    def version(self) -> int:
        return int(self.db.query("SELECT version FROM keys_version WHERE id = 1")[0][0])

    def spent(self, key_id: str, period_start: float) -> float:
        rows = self.db.query(
            "SELECT usd FROM spend WHERE key_id = ? AND period_start = ?", (key_id, period_start)
        )
        return float(rows[0][0]) if rows else 0.0

    def add_spend(self, spent: dict[tuple[str, float], tuple[float, int]]) -> None:
        """Add ``{(key id, period start): (usd, requests)}`` in one transaction."""
        with self.db.transaction() as conn:
            for (key_id, period_start), (usd, requests) in spent.items():
                conn.execute(
                    "INSERT INTO spend (key_id, period_start, usd, requests) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key_id, period_start) DO UPDATE SET"
                    " usd = spend.usd + excluded.usd,"
                    " requests = spend.requests + excluded.requests",
                    (key_id, period_start, usd, requests),
                )

    def describe(self, record: KeyRecord, now: float) -> dict[str, Any]:
        """A key as listed: its public record and, with a budget, this period's spending."""
        shown = record.public()
        if record.budget_usd is not None and record.period is not None:
            start, end = period_bounds(record.period, now)
            shown["spent_usd"] = self.spent(record.id, start)
            shown["resets_at"] = end
        return shown

    def close(self) -> None:
        self.db.close()


def _row(record: KeyRecord) -> list[Any]:
    return [getattr(record, c.strip()) for c in COLUMNS.split(",")]


def _check(
    name: str,
    budget_usd: float | None,
    period: Period | None,
    rpm: int | None,
    tpm: int | None,
) -> None:
    if not name or len(name) > MAX_NAME:
        raise InvalidRequest(f"a key's name has 1 to {MAX_NAME} characters", param="name")
    if budget_usd is not None and not budget_usd > 0:
        raise InvalidRequest("budget_usd must be more than 0", param="budget_usd")
    if period is not None and period not in PERIODS:
        raise InvalidRequest("period is 'day' or 'month'", param="period")
    if period is not None and budget_usd is None:
        raise InvalidRequest("a period needs a budget (budget_usd)", param="period")
    for field, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and value < 1:
            raise InvalidRequest(f"{field} must be at least 1", param=field)
