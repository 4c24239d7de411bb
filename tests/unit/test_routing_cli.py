"""``strata ask --model ROUTE``, ``strata routes``, ``strata usage`` and ``strata calibrate``
in-process on fake models from a TOML config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from strata.edges.cli.main import main

CONFIG = """
bundled_models = false
default_model = "small"

[models.small]
backend = "fake"
price_input_per_mtok = 1.0
price_output_per_mtok = 2.0
options = { default_output = "A" }

[models.big]
backend = "fake"
price_input_per_mtok = 10.0
price_output_per_mtok = 20.0
options = { default_output = "A" }

[routes.mine]
tiers = [{model = "small", threshold = 0.5}, {model = "big", threshold = 0}]
description = "test route"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "strata.toml"
    path.write_text(f'home = "{tmp_path / "home"}"\n' + CONFIG)
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_ask_through_a_route_shows_it(config: Path) -> None:
    # the fake model's tokens have p = 0.819 >= 0.5: the small tier answers
    result = invoke("ask", "hello", "--model", "mine", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "A"
    assert "[mine: small 0.82/0.50; answered by small" in result.stderr
    as_json = invoke(
        "ask", "hello", "-m", "mine", "--json", "--quality", "0.9", "--config", str(config)
    )
    data = json.loads(as_json.stdout)
    assert data["strata"]["model"] == "big"
    assert data["strata"]["route"]["tiers"][0]["threshold"] == 0.9
    usage = invoke("usage", "--json", "--config", str(config))
    report = json.loads(usage.stdout)
    assert report["requests"] == 2
    # "hello" = 2 fake prompt tokens, "A" = 1 token: small, then small + big
    small, big = (2 * 1.0 + 2.0) / 1e6, (2 * 10.0 + 20.0) / 1e6
    assert report["cost_usd"] == pytest.approx(small + small + big, abs=1e-15)
    assert report["baseline_usd"] == pytest.approx(2 * big, abs=1e-15)
    table = invoke("usage", "--route", "mine", "--since", "1h", "--config", str(config))
    assert "2 requests" in table.stdout and "saved" in table.stdout
    none = invoke("usage", "--key", "somebody", "--json", "--config", str(config))
    assert json.loads(none.stdout)["requests"] == 0


def test_routes_lists_configured_and_bundled(config: Path) -> None:
    result = invoke("routes", "--json", "--config", str(config))
    routes = json.loads(result.stdout)
    assert set(routes) == {"auto", "auto-cheap", "auto-best", "mine"}
    assert routes["mine"]["tiers"] == [
        {"model": "small", "threshold": 0.5},
        {"model": "big", "threshold": 0.0},
    ]
    assert routes["mine"]["calibrated"] is False
    assert "mine" in invoke("routes", "--config", str(config)).stdout


def test_calibrate_fits_and_saves_thresholds(config: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {
            "id": f"q{i}",
            "question": f"Question number {i} about {'cats' if i % 2 else 'dogs'}?",
            "choices": ["yes", "no"],
            "answer": "A" if i % 3 else "B",
        }
        for i in range(24)
    ]
    (data / "toy.dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = invoke(
        "calibrate",
        "--route",
        "mine",
        "--data",
        str(data),
        "--limit",
        "24",
        "--target-quality",
        "0.9",
        "--signals",
        "answer_prob,verify,learned",
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    assert "mine: threshold" in result.stdout
    saved = json.loads((tmp_path / "home" / "routing" / "routes.json").read_text())
    assert saved["mine"]["signal"] == "combined"
    assert saved["mine"]["items"] == 24
    assert saved["mine"]["target"]["quality"] == 0.9
    routes = json.loads(invoke("routes", "--json", "--config", str(config)).stdout)
    assert routes["mine"]["calibrated"] is True
    assert routes["mine"]["signal"] == "combined"
    # the calibrated route answers (learned model and combiner loaded from routes.json)
    answer = invoke("ask", "hello", "-m", "mine", "--json", "--config", str(config))
    assert json.loads(answer.stdout)["strata"]["route"]["name"] == "mine"


def test_calibrate_refuses_bad_targets(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "calibrate",
            "--route",
            "mine",
            "--data",
            str(tmp_path),
            "--target-quality",
            "1.5",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 1 and "target-quality" in result.stderr
    result = CliRunner().invoke(
        main, ["calibrate", "--route", "nope", "--data", str(tmp_path), "--config", str(config)]
    )
    assert result.exit_code == 1 and "no route 'nope'" in result.stderr
