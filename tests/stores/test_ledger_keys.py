"""The ledger's and the keys' store contracts, once per engine (the ``database`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from strata.core.errors import InvalidRequest, NotFound
from strata.features.keys.store import KeyStore
from strata.features.routing.ledger import Ledger


def _row(ts: float, cost: float, **extra: Any) -> dict[str, Any]:
    return {
        "ts": ts,
        "tenant": "t",
        "model": "m",
        "route": None,
        "answered_by": "m",
        "tiers": json.dumps(["m"]),
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "latency_s": 0.125,
        "confidence": None,
        "cost_usd": cost,
        "baseline_usd": cost * 2,
        "degraded": 0,
        **extra,
    }


def test_ledger_rows_summary_and_filters(database: Path | str) -> None:
    ledger = Ledger(database)
    ledger.record(_row(1_700_000_100.5, 1.0))
    ledger.record(_row(1_700_000_200.25, 2.0, tenant="u", route="auto", answered_by="big"))
    ledger.record(_row(1_700_000_300.0, 4.0, route="auto", answered_by="small", degraded=1))
    rows = ledger.rows()
    assert [r["ts"] for r in rows] == [1_700_000_100.5, 1_700_000_200.25, 1_700_000_300.0]
    assert rows[0]["tiers"] == ["m"] and rows[0]["latency_s"] == 0.125
    total = ledger.summary()
    assert total["requests"] == 3 and total["prompt_tokens"] == 9
    assert total["completion_tokens"] == 6 and total["degraded"] == 1
    assert total["cost_usd"] == 7.0 and total["baseline_usd"] == 14.0
    assert total["saving_usd"] == 7.0 and total["saving_share"] == 0.5
    assert [(r["name"], r["answered_by"], r["requests"]) for r in total["by_route"]] == [
        ("auto", "big", 1),
        ("auto", "small", 1),
        ("m", "m", 1),
    ]
    assert ledger.summary(tenant="u")["cost_usd"] == 2.0
    assert ledger.summary(route="auto")["requests"] == 2
    assert ledger.summary(since=1_700_000_150, until=1_700_000_300)["cost_usd"] == 2.0
    assert ledger.summary(tenant="nobody")["cost_usd"] == 0.0
    latest = ledger.latest(2)
    assert [r["cost_usd"] for r in latest] == [4.0, 2.0]
    assert [r["cost_usd"] for r in ledger.latest(5, answered_by="big")] == [2.0]
    ledger.close()


def test_ledger_series_buckets_floor_the_time(database: Path | str) -> None:
    ledger = Ledger(database)
    for ts, cost in ((119.9, 1.0), (60.0, 2.0), (180.5, 4.0)):
        ledger.record(_row(ts, cost))
    series = ledger.series(60)
    assert [(s["start"], s["requests"], s["cost_usd"]) for s in series] == [
        (60, 2, 3.0),
        (180, 1, 4.0),
    ]
    assert series[0]["saving_usd"] == 3.0
    ledger.close()


def test_keys_create_find_revoke_and_version(database: Path | str) -> None:
    store = KeyStore(database)
    assert store.version() == 0 and store.all() == []
    token, record = store.create("alice", budget_usd=5.0, rpm=10)
    assert record.period == "month" and record.hint == token[-4:]
    assert store.find("alice") == record == store.find(record.id)
    with pytest.raises(InvalidRequest, match="already exists"):
        store.create("alice")
    assert store.version() == 1
    revoked = store.revoke("alice")
    assert revoked.revoked is not None and store.version() == 2
    with pytest.raises(NotFound):
        store.find("alice")
    _, again = store.create("alice", tpm=100)  # the name is free once revoked
    assert [k.name for k in store.all()] == ["alice", "alice"]
    assert again.tpm == 100 and store.version() == 3
    store.close()


def test_keys_spend_adds_up_per_period(database: Path | str) -> None:
    store = KeyStore(database)
    _, record = store.create("bob", budget_usd=1.0, period="day")
    store.add_spend({(record.id, 86_400.0): (0.25, 1)})
    store.add_spend({(record.id, 86_400.0): (0.5, 2), (record.id, 172_800.0): (0.125, 1)})
    assert store.spent(record.id, 86_400.0) == 0.75
    assert store.spent(record.id, 172_800.0) == 0.125
    assert store.spent(record.id, 0.0) == 0.0
    shown = store.describe(record, now=86_400.0 + 5)
    assert shown["spent_usd"] == 0.75 and shown["resets_at"] == 172_800.0
    store.close()
