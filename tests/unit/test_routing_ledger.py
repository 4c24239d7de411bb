"""The ledger and usage report: exact arithmetic, filters, tenants, and the HTTP/SDK path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.core.tenancy import tenant_of as tenant_id
from strata.edges.http.app import create_app
from strata.features.routing.ledger import Ledger
from tests.conftest import LiveServer, fake
from tests.unit.conftest import assert_error_body, http_client, sdk
from tests.unit.routing_helpers import (
    BIG_PRICE,
    SCORES,
    SMALL_PRICE,
    ask,
    cost,
    routing_settings,
)
from tests.unit.turns import Stack


@pytest.fixture(autouse=True)
def _fresh_scores() -> Iterator[None]:
    SCORES.clear()
    yield
    SCORES.clear()


def test_ledger_rows_and_saving_are_exact(tmp_path: Path) -> None:
    stack = Stack(routing_settings(tmp_path))
    small, big = fake(stack.engine, "small"), fake(stack.engine, "big")
    small.enqueue("one two", "a b c")  # kept (2 tokens), then escalated (3 tokens)
    big.enqueue("w x y z")  # 4 tokens
    SCORES.extend([0.9, 0.1])
    ask(stack, "r")
    ask(stack, "r")
    ask(stack, "big", key="key:bob")  # a plain model: its own cost is its baseline
    rows = stack.routing.ledger.rows()
    assert [r["answered_by"] for r in rows] == ["small", "big", "big"]
    kept, escalated, plain = rows
    assert kept["route"] == "r" and kept["tiers"] == ["small"]
    assert kept["cost_usd"] == pytest.approx(cost(SMALL_PRICE, 3, 2), abs=1e-15)
    assert kept["baseline_usd"] == pytest.approx(cost(BIG_PRICE, 3, 2), abs=1e-15)
    assert kept["confidence"] == 0.9
    assert escalated["tiers"] == ["small", "big"]
    assert escalated["prompt_tokens"] == 6 and escalated["completion_tokens"] == 7
    assert escalated["cost_usd"] == pytest.approx(
        cost(SMALL_PRICE, 3, 3) + cost(BIG_PRICE, 3, 4), abs=1e-15
    )
    assert escalated["baseline_usd"] == pytest.approx(cost(BIG_PRICE, 3, 4), abs=1e-15)
    assert plain["route"] is None and plain["model"] == "big"
    assert plain["cost_usd"] == plain["baseline_usd"] == pytest.approx(cost(BIG_PRICE, 3, 1))
    assert plain["tenant"] == tenant_id("key:bob") != "key:bob"

    summary = stack.routing.ledger.summary(tenant=tenant_id("key:alice"))
    expected_cost = kept["cost_usd"] + escalated["cost_usd"]
    expected_base = kept["baseline_usd"] + escalated["baseline_usd"]
    assert summary["requests"] == 2
    assert summary["cost_usd"] == pytest.approx(expected_cost, abs=1e-15)
    assert summary["baseline_usd"] == pytest.approx(expected_base, abs=1e-15)
    assert summary["saving_usd"] == pytest.approx(expected_base - expected_cost, abs=1e-15)
    assert summary["saving_share"] == pytest.approx(1 - expected_cost / expected_base)
    by = {(r["name"], r["answered_by"]): r["requests"] for r in summary["by_route"]}
    assert by == {("r", "small"): 1, ("r", "big"): 1}
    assert stack.routing.ledger.summary(route="big")["requests"] == 1
    stack.routing.close()


def test_time_filters(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    for ts, c in ((100.0, 1.0), (200.0, 2.0), (300.0, 4.0)):
        ledger.record(
            {
                "ts": ts,
                "tenant": "t",
                "model": "m",
                "route": None,
                "answered_by": "m",
                "tiers": "[]",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "latency_s": 0.1,
                "confidence": None,
                "cost_usd": c,
                "baseline_usd": c,
                "degraded": 0,
            }
        )
    assert ledger.summary(since=150)["cost_usd"] == 6.0
    assert ledger.summary(since=150, until=300)["cost_usd"] == 2.0
    assert ledger.summary(until=100)["requests"] == 0
    ledger.close()


def test_failed_requests_write_no_row(tmp_path: Path) -> None:
    from strata.core.errors import BackendUnavailable

    stack = Stack(routing_settings(tmp_path))
    fake(stack.engine, "big").enqueue(BackendUnavailable("down"))
    with pytest.raises(BackendUnavailable):
        ask(stack, "big")
    assert stack.routing.ledger.rows() == []
    stack.routing.close()


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Stack]]:
    settings = routing_settings(tmp_path)
    settings.api_keys = ["alice-key", "bob-key"]
    app = create_app(settings)
    with LiveServer(app) as server:
        yield server, app.state.kernel


def test_auto_through_the_sdk_reports_route_and_bills_the_tenant(
    keyed_server: tuple[LiveServer, Stack],
) -> None:
    server, stack = keyed_server
    fake(stack.engine, "small").enqueue("small says")
    fake(stack.engine, "big").enqueue("big says this")
    SCORES.extend([0.95, 0.05])
    with sdk(server.url, "alice-key") as alice, sdk(server.url, "bob-key") as bob:
        done = alice.chat.completions.create(
            model="r", messages=[{"role": "user", "content": "hi there"}]
        )
        assert done.model == "small"
        assert done.choices[0].message.content == "small says"
        route = done.model_extra["strata"]["route"]  # type: ignore[index]
        assert route["answered_by"] == "small" and route["tiers"][0]["confidence"] == 0.95
        stream = bob.chat.completions.create(
            model="r",
            messages=[{"role": "user", "content": "hi there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "big says this"
        assert {c.model for c in chunks} == {"big"}
        tail = chunks[-1].model_extra["strata"]  # type: ignore[index]
        assert tail["route"]["answered_by"] == "big"
    with http_client(server.root) as http:
        mine = http.get("/v1/usage", headers={"Authorization": "Bearer alice-key"}).json()
        assert mine["requests"] == 1 and mine["tenant"] == tenant_id("key:alice-key")
        assert mine["cost_usd"] == pytest.approx(cost(SMALL_PRICE, 3, 2), abs=1e-15)
        theirs = http.get("/v1/usage", headers={"Authorization": "Bearer bob-key"}).json()
        assert theirs["requests"] == 1
        assert theirs["cost_usd"] == pytest.approx(
            cost(SMALL_PRICE, 3, 1) + cost(BIG_PRICE, 3, 3), abs=1e-15
        )
        spy = http.get(
            "/v1/usage", params={"key": "bob-key"}, headers={"Authorization": "Bearer alice-key"}
        )
        assert spy.status_code == 400
        assert assert_error_body(spy.json())["param"] == "key"
        bad = http.get(
            "/v1/usage", params={"since": "yesterday"}, headers={"Authorization": "Bearer bob-key"}
        )
        assert bad.status_code == 400
        recent = http.get(
            "/v1/usage",
            params={"since": "1h", "route": "r"},
            headers={"Authorization": "Bearer bob-key"},
        ).json()
        assert recent["requests"] == 1
        future = http.get(
            "/v1/usage",
            params={"since": str(time.time() + 60)},
            headers={"Authorization": "Bearer bob-key"},
        ).json()
        assert future["requests"] == 0
        routes = http.get("/v1/routes", headers={"Authorization": "Bearer bob-key"}).json()
        by_id = {r["id"]: r for r in routes["data"]}
        assert set(by_id) == {"auto", "auto-cheap", "auto-best", "r"}
        assert by_id["r"]["tiers"] == [
            {"model": "small", "threshold": 0.5},
            {"model": "big", "threshold": 0.0},
        ]
        assert json.dumps(routes)  # plain JSON
