"""Over HTTP: chat requests with an enum schema teach a specialist, ``POST /v1/feedback``
reaches it through the core ``FeedbackGiven`` event, ``GET /v1/specialists``, ``POST
/v1/specialists/distill`` and ``strata specialists`` / ``strata distill --url``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from strata.core.engine import Engine
from strata.core.events import FeedbackGiven
from strata.edges.cli.main import main
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake
from tests.unit.distill_helpers import LABELS, distill_settings, schema, text_for
from tests.unit.routing_helpers import SCORES


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, Engine, Any]]:
    SCORES.clear()
    # The first training at 30 examples: enough held out (40%) to set a threshold.
    settings = distill_settings(tmp_path, min_examples=30, retrain_every=30)
    engine = Engine(settings)
    app = create_app(settings, engine)
    with LiveServer(app) as live:
        yield live, engine, app
    SCORES.clear()


def _chat(http: httpx.Client, engine: Engine, text: str, big_label: str) -> dict[str, Any]:
    fake(engine, "small").enqueue(json.dumps({"label": LABELS[0]}))
    fake(engine, "big").enqueue(json.dumps({"label": big_label}))
    SCORES.append(0.1)
    fmt = schema()
    body = {
        "model": "r",
        "messages": [{"role": "user", "content": text}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "label", "schema": fmt.schema},
        },
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _serving(http: httpx.Client) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data: list[dict[str, Any]] = http.get("/v1/specialists").json()["data"]
        if data and data[0]["serving"]:
            return data
        time.sleep(0.05)
    raise AssertionError("no specialist trained")


def test_specialists_learn_over_http_and_are_listed(
    server: tuple[LiveServer, Engine, Any],
) -> None:
    live, engine, app = server
    heard: list[FeedbackGiven] = []

    async def hear(event: FeedbackGiven) -> None:
        heard.append(event)

    app.state.kernel.events.on_feedback(hear)
    with httpx.Client(base_url=live.root, timeout=30) as http:
        empty = http.get("/v1/specialists").json()
        assert empty["data"] == [] and empty["exemplars"]["kept"] == 0
        answers = [
            _chat(http, engine, text_for(LABELS[i % 2], i), LABELS[i % 2]) for i in range(40)
        ]
        assert answers[0]["strata"]["route"]["answered_by"] == "big"
        # A user corrects one answer: the core event carries it to the specialist's store.
        wrong = _chat(http, engine, text_for("weather", 7), "sports")
        fixed = http.post(
            "/v1/feedback",
            json={"response_id": wrong["id"], "edited_text": '{"label": "weather"}'},
        )
        assert fixed.status_code == 200, fixed.text
        assert heard and heard[0].response_id == wrong["id"]
        assert heard[0].edited_text == '{"label": "weather"}'
        (row,) = _serving(http)
        assert row["route"] == "r" and row["labels"] == 2 and row["examples"] >= 30
        assert 0 <= row["accuracy_vs_big"] <= 1 and row["version"] >= 1
        answered = _chat(http, engine, text_for("sports", 3), "weather")
        route = answered["strata"]["route"]
        assert answered["model"].startswith("specialist:r-")
        assert json.loads(answered["choices"][0]["message"]["content"]) == {"label": "sports"}
        assert route["tiers"][0]["model"] == answered["model"]
        usage = http.get("/v1/usage", params={"route": "r"}).json()
        # What the specialist answered cost next to nothing against the big tier alone (the
        # cascaded turns cost small + big, so the route's total saving may still be negative).
        (by_specialist,) = [b for b in usage["by_route"] if b["answered_by"] == answered["model"]]
        assert 0 < by_specialist["cost_usd"] < by_specialist["baseline_usd"] / 100
        (after,) = http.get("/v1/specialists").json()["data"]
        assert after["answered_share"] > 0 and after["traffic"]["specialist"] >= 1
        bad = http.post("/v1/specialists/distill", json={"route": "nope"})
        assert bad.status_code == 404 and bad.json()["error"]["param"] == "route"
        assert http.post("/v1/specialists/distill", json={}).status_code == 400

    runner = CliRunner()
    listed = runner.invoke(main, ["specialists", "--json", "--url", live.url])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["id"] == row["id"]
    table = runner.invoke(main, ["specialists", "--url", live.url], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "acc vs big" in table.output
    trained = runner.invoke(main, ["distill", "--route", "r", "--url", live.url])
    assert trained.exit_code == 0, trained.output
    assert row["id"] in trained.output and "held-out accuracy" in trained.output
