"""Freshness across replicas: two strata servers (each its own app, kernel and in-memory
indexes) on one PostgreSQL database. A document one acknowledges is searchable on the other
within 100 ms, in both indexes (keywords and vectors); a replacement and a deletion too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.core.engine import Engine
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake_settings
from tests.postgres import Cluster
from tests.unit.conftest import http_client
from tests.unit.knowledge_helpers import hash_settings

FRESH_S = 0.1  # the bound


@pytest.fixture
def replicas(postgres_cluster: Cluster, tmp_path: Path) -> Iterator[list[httpx.Client]]:
    name = postgres_cluster.create_database()
    url = postgres_cluster.database_url(name)
    clients: list[httpx.Client] = []
    with LiveServer(_app(tmp_path / "a", url)) as one, LiveServer(_app(tmp_path / "b", url)) as two:
        for server in (one, two):
            clients.append(http_client(server.root))
        yield clients
        for c in clients:
            c.close()
    postgres_cluster.drop_database(name)


def _app(home: Path, url: str) -> Any:
    settings = fake_settings(home, knowledge=hash_settings(), database=url)
    return create_app(settings, Engine(settings))


def _found(c: httpx.Client, query: str, mode: str) -> list[str]:
    r = c.post("/v1/collections/kb/search", json={"query": query, "mode": mode, "top_k": 5})
    assert r.status_code == 200, r.text
    return [h["document_id"] for h in r.json()["data"]]


def _within(predicate: Any, what: str) -> float:
    """Seconds until ``predicate()`` holds, asserting it does within ``FRESH_S``."""
    start = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - start < FRESH_S, f"{what} not seen within {FRESH_S}s"
        time.sleep(0.002)
    return time.perf_counter() - start


def test_a_write_on_one_replica_is_searchable_on_the_other(replicas: list[httpx.Client]) -> None:
    writer, reader = replicas
    assert writer.post("/v1/collections", json={"name": "kb"}).status_code == 200
    doc = {"id": "old", "title": "Tides", "text": "The moon pulls the oceans into tides."}
    assert writer.post("/v1/collections/kb/documents", json={"documents": [doc]}).status_code == 200
    assert _found(reader, "moon tides", "bm25") == ["old"]  # the reader has loaded its indexes

    fresh = {"id": "new", "title": "Lichen", "text": "Lichen is a fungus living with algae."}
    r = writer.post("/v1/collections/kb/documents", json={"documents": [fresh]})
    assert r.status_code == 200 and r.json()["data"][0]["status"] == "new"
    _within(lambda: _found(reader, "lichen fungus", "bm25") == ["new"], "keywords")
    _within(lambda: "new" in _found(reader, "lichen fungus", "vector"), "vectors")

    changed = {**doc, "text": "Sea levels rise and fall twice a day."}
    assert writer.post("/v1/collections/kb/documents", json={"documents": [changed]}).is_success
    _within(lambda: _found(reader, "sea levels", "bm25") == ["old"], "a replacement")
    assert _found(reader, "moon", "bm25") == []

    # A deleted chunk drops out of results at once (hits are read from the tables); the
    # reader's in-memory indexes must let go of it too (stats counts the matrix's rows).
    assert writer.delete("/v1/collections/kb/documents/new").status_code == 200
    assert "new" not in _found(reader, "lichen fungus", "hybrid")
    _within(lambda: _vectors(reader) == 1, "a deletion")


def _vectors(c: httpx.Client) -> int:
    stats = c.get("/v1/collections/kb/stats").json()
    assert stats["documents"] == stats["chunks"] == 1, stats
    return int(stats["vectors"])


def test_writes_from_both_replicas_meet(replicas: list[httpx.Client]) -> None:
    """Both replicas write to one collection; each sees the other's documents and its own."""
    one, two = replicas
    assert one.post("/v1/collections", json={"name": "kb"}).status_code == 200
    for i, c in enumerate(replicas * 3):
        body = {"documents": [{"id": f"d{i}", "text": f"note {i} about topic{i}"}]}
        assert c.post("/v1/collections/kb/documents", json=body).status_code == 200
    for c in (one, two):
        _within(lambda c=c: c.get("/v1/collections/kb/stats").json()["vectors"] == 6, "vectors")
        assert _found(c, "topic4", "bm25") == ["d4"] and _found(c, "topic5", "bm25") == ["d5"]
