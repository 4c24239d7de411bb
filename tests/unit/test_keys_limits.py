"""The keys feature's pieces on their own: UTC budget periods, and the spending writer that
keeps what it could not write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strata.features.keys.limits import SpendWriter
from strata.features.keys.records import iso, period_bounds
from strata.features.keys.store import KeyStore


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_periods_are_utc_days_and_months() -> None:
    start, end = period_bounds("day", ts("2026-12-31T23:59:59"))
    assert (iso(start), iso(end)) == ("2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z")
    start, end = period_bounds("month", ts("2026-12-15T08:00:00"))
    assert (iso(start), iso(end)) == ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")
    start, end = period_bounds("month", ts("2028-02-29T12:00:00"))
    assert (iso(start), iso(end)) == ("2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z")


def test_spending_that_could_not_be_written_is_kept_for_the_next_flush(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    _, record = store.create("k", budget_usd=1.0)
    failing = {"left": 1}
    real = store.add_spend

    def flaky(batch: Any) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise OSError("disk full")
        real(batch)

    store.add_spend = flaky  # type: ignore[method-assign]
    writer = SpendWriter(store)

    async def go() -> None:
        writer.add(record.id, 0.0, 0.25)
        await asyncio.sleep(0.05)  # the background write fails, and keeps the amount
        writer.add(record.id, 0.0, 0.5)
        await writer.flush()

    asyncio.run(go())
    assert store.spent(record.id, 0.0) == 0.75
    store.close()
