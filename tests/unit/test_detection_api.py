"""``POST /v1/detections`` and ``strata detect`` over a scripted scorer: the shape of the
answer, the limits refused with a 400 naming them (before any model loads), unknown methods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from strata.core.settings import ModelSpec, Settings
from strata.edges.cli.main import main
from strata.edges.http.app import create_app
from strata.features.detection import Detector
from strata.features.detection.feature import Detections
from tests.conftest import LiveServer
from tests.unit.conftest import assert_error_body, http_client
from tests.unit.test_detection_detector import WordScorer, calibration

MACHINE = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"
HUMAN = "my cat sat on a warm mat and purred at the rain outside"


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | None]]:
    """Every method resolves to a detector over the word scorer; records what was asked."""
    asked: list[str | None] = []

    def detector(self: Detections, method: str | None) -> Detector:
        if method not in (None, "binoculars"):
            from strata.features.detection.detector import default_calibration

            default_calibration(method)  # raises the 400 for an unknown method
        asked.append(method)
        s = self.settings
        return Detector(WordScorer(), calibration(), max_chars=s.max_chars, max_inputs=s.max_inputs)

    monkeypatch.setattr(Detections, "detector", detector)
    yield asked


def _settings(tmp_path: Path, **detection: int) -> Settings:
    return Settings(
        home=tmp_path / "home",
        bundled_models=False,
        models={"fake": ModelSpec(backend="fake")},
        detection=detection,
    )


def test_detections_endpoint(tmp_path: Path) -> None:
    with LiveServer(create_app(_settings(tmp_path))) as server, http_client(server.root) as c:
        one = c.post("/v1/detections", json={"input": MACHINE}).json()
        assert one["object"] == "list" and one["model"] == "binoculars"
        [verdict] = one["data"]
        assert verdict["decision"] == "machine" and verdict["tokens"] == 9
        assert {"score", "probability", "threshold", "min_tokens"} <= set(verdict)
        many = c.post(
            "/v1/detections", json={"input": [MACHINE, HUMAN, "too short"], "sentences": True}
        ).json()["data"]
        assert [d["decision"] for d in many] == ["machine", "human", "too_short"]
        assert many[0]["sentences"] and many[2]["probability"] is None
        bad = c.post("/v1/detections", json={"input": MACHINE, "model": "tea-leaves"})
        assert bad.status_code == 400 and assert_error_body(bad.json())["param"] == "model"
        empty = c.post("/v1/detections", json={})
        assert empty.status_code == 400


def test_long_inputs_are_refused_naming_the_limit(tmp_path: Path, scripted: list[str]) -> None:
    settings = _settings(tmp_path, max_chars=40, max_inputs=2)
    with LiveServer(create_app(settings)) as server, http_client(server.root) as c:
        long = c.post("/v1/detections", json={"input": MACHINE + " AND MORE"})
        assert long.status_code == 400
        assert "40 characters" in assert_error_body(long.json())["message"]
        many = c.post("/v1/detections", json={"input": ["A", "B", "C"]})
        assert many.status_code == 400 and "limit is 2" in many.json()["error"]["message"]
    assert scripted == []  # refused before any detector (or model) was built


def test_detect_command(tmp_path: Path) -> None:
    text = tmp_path / "essay.txt"
    text.write_text(MACHINE)
    home = ["--home", str(tmp_path / "home")]
    table = CliRunner().invoke(main, ["detect", str(text), *home])
    assert table.exit_code == 0, table.output
    assert "machine" in table.output
    as_json = CliRunner().invoke(main, ["detect", "-", "--json", *home], input=HUMAN)
    assert as_json.exit_code == 0, as_json.output
    assert '"decision": "human"' in as_json.output
