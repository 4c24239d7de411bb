"""What the web app needs from the server: the page and its assets at ``/`` and ``/ui``, and
the REST it calls that other clients may use too: rename a session and drop its turns from
one on (edit-and-resend), usage per period and the ledger's latest rows, model stats."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from strata.edges.http.app import create_app
from strata.edges.web import STATIC
from tests.conftest import LiveServer, fake_settings


def test_the_page_and_every_asset_it_loads(http: httpx.Client) -> None:
    for path in ("/", "/ui", "/ui/"):
        page = http.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'id="nav"' in page.text and 'href="#/usage"' in page.text
    assets = re.findall(r'(?:href|src)="(/ui/static/[^"]+)"', page.text)
    assert len(assets) == 2
    modules = sorted(p.name for p in (STATIC / "js").glob("*.js"))
    for name in modules:
        source = (STATIC / "js" / name).read_text()
        for imported in re.findall(r'(?:from |import\()"\./([\w-]+\.js)"', source):
            assert imported in modules, f"{name} imports missing {imported}"
        assets.append(f"/ui/static/js/{name}")
    for asset in assets:
        r = http.get(asset)
        assert r.status_code == 200, asset
        kind = "text/css" if asset.endswith(".css") else "javascript"
        assert kind in r.headers["content-type"], (asset, r.headers["content-type"])
    assert http.get("/ui/static/nope.js").status_code == 404


def test_rename_and_truncate_a_session(http: httpx.Client) -> None:
    sid = http.post("/v1/sessions", json={"title": "draft"}).json()["id"]
    turns = [{"role": r, "content": f"{r} {i}"} for i in range(2) for r in ("user", "assistant")]
    http.post(f"/v1/sessions/{sid}/messages", json={"messages": turns})
    renamed = http.patch(f"/v1/sessions/{sid}", json={"title": "Launch plan"}).json()
    assert renamed["title"] == "Launch plan" and renamed["turn_count"] == 4
    assert http.get("/v1/sessions").json()["data"][0]["title"] == "Launch plan"

    gone = http.delete(f"/v1/sessions/{sid}/turns", params={"from_seq": 3}).json()
    assert gone["deleted"] == 2
    kept = http.get(f"/v1/sessions/{sid}").json()["turns"]
    assert [t["content"] for t in kept] == ["user 0", "assistant 0"]

    assert http.patch("/v1/sessions/nope", json={"title": "x"}).status_code == 404
    assert http.patch(f"/v1/sessions/{sid}", json={"owner": "x"}).status_code == 400
    bad = http.delete(f"/v1/sessions/{sid}/turns", params={"from_seq": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"]


def test_usage_series_and_latest_rows(http: httpx.Client) -> None:
    for model in ("fake", "fake", "slow"):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/v1/chat/completions", json=body).status_code == 200
    summary = http.get("/v1/usage").json()
    series = http.get("/v1/usage/series", params={"bucket": 60}).json()
    assert sum(b["requests"] for b in series["data"]) == 3
    assert sum(b["cost_usd"] for b in series["data"]) == summary["cost_usd"]
    assert all(b["start"] % 60 == 0 for b in series["data"])

    rows = http.get("/v1/usage/requests").json()["data"]
    assert [r["answered_by"] for r in rows] == ["slow", "fake", "fake"]  # newest first
    assert rows[0]["id"] > rows[1]["id"] > rows[2]["id"]
    only = http.get("/v1/usage/requests", params={"answered_by": "fake", "limit": 1}).json()
    assert [r["answered_by"] for r in only["data"]] == ["fake"]
    assert http.get("/v1/usage/requests", params={"route": "slow"}).json()["data"][0]["model"] == (
        "slow"
    )
    assert http.get("/v1/usage/series", params={"bucket": 1}).status_code == 400


def test_usage_rows_are_the_callers_own(tmp_path: Path) -> None:
    keyed = fake_settings(tmp_path, api_keys=["ka", "kb"])
    with LiveServer(create_app(keyed)) as live, httpx.Client(base_url=live.root) as client:
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer ka"})
        mine = client.get("/v1/usage/requests", headers={"Authorization": "Bearer ka"})
        theirs = client.get("/v1/usage/requests", headers={"Authorization": "Bearer kb"})
        assert len(mine.json()["data"]) == 1 and theirs.json()["data"] == []
        other = client.get(
            "/v1/usage/series", params={"key": "ka"}, headers={"Authorization": "Bearer kb"}
        )
        assert other.status_code == 400 and other.json()["error"]["param"] == "key"
        assert client.get("/v1/usage/requests").status_code == 401


def test_model_cards_carry_queue_and_speed(http: httpx.Client) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    reply = http.post("/v1/chat/completions", json=body).json()
    assert reply["strata"]["cost_usd"] >= 0
    cards = {c["id"]: c for c in http.get("/v1/models").json()["data"]}
    stats = cards["fake"]["stats"]
    assert stats["queue_depth"] == 0 and stats["active"] == 0
    assert stats["generations"] == 1
    assert set(stats) >= {"tokens_per_s", "prompt_tokens_per_s"}
