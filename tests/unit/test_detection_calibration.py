"""Thresholds, probabilities and metrics of the detectors' calibration (pure arithmetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strata.features.detection import (
    METHOD_NAMES,
    Calibration,
    Method,
    auroc,
    default_calibration,
    fit,
    shipped_calibrations,
    threshold_at_fpr,
    tpr_at_fpr,
)
from strata.features.detection.calibration import expected_calibration_error, fit_logistic


def test_auroc_orders_and_ties() -> None:
    assert auroc([0.0, 1.0], [2.0, 3.0]) == 1.0
    assert auroc([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert auroc([1.0], [1.0]) == 0.5
    assert auroc([0.0, 2.0], [1.0]) == 0.5
    with pytest.raises(ValueError):
        auroc([], [1.0])


def test_threshold_flags_at_most_the_stated_share_of_human_text() -> None:
    human = np.random.default_rng(0).normal(size=1000).tolist()
    for fpr in (0.0, 0.01, 0.05, 0.2):
        t = threshold_at_fpr(human, fpr)
        flagged = sum(h >= t for h in human) / len(human)
        assert flagged <= fpr
        assert flagged >= fpr - 0.002  # and not needlessly strict
    assert tpr_at_fpr([0.0, 1.0], [5.0, 0.5], fpr=0.0) == 0.5
    with pytest.raises(ValueError):
        threshold_at_fpr(human, 1.0)


def test_logistic_fit_recovers_a_known_slope() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2.0 * x - 0.5)))).astype(int)
    slope, intercept = fit_logistic(x.tolist(), y.tolist(), l2=0.0)
    assert slope == pytest.approx(2.0, rel=0.15)
    assert intercept == pytest.approx(-0.5, abs=0.15)
    # separable classes stay finite thanks to the penalty
    slope, _ = fit_logistic([0.0, 1.0, 2.0, 3.0], [0, 0, 1, 1])
    assert 0 < slope < 1e3


@pytest.mark.parametrize(
    ("name", "human", "machine"),
    [
        ("binoculars", [0.95, 1.0, 1.05], [0.7, 0.75, 0.8]),  # machine lower
        ("fast-detectgpt", [-1.0, 0.0, 0.5], [3.0, 4.0, 5.0]),  # machine higher
    ],
)
def test_calibration_decides_in_the_methods_direction(
    name: str, human: list[float], machine: list[float], tmp_path: Path
) -> None:
    method = Method(name, "o", "p")  # type: ignore[arg-type]
    cal = fit(method, human, machine, fpr=0.0, min_tokens=10)
    assert not any(cal.is_machine(h) for h in human)
    assert all(cal.is_machine(m) for m in machine)
    assert all(cal.probability(m) > 0.5 > cal.probability(h) for h in human for m in machine)
    cal.save(tmp_path / "cal.json")
    assert Calibration.load(tmp_path / "cal.json") == cal


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([0.0, 1.0], [0, 1]) == 0.0
    assert expected_calibration_error([0.9, 0.9], [0, 0]) == pytest.approx(0.9)


def test_the_package_ships_a_calibration_for_every_method() -> None:
    default, methods = shipped_calibrations()
    assert set(methods) == set(METHOD_NAMES)
    assert default in methods
    for name, cal in methods.items():
        assert cal.method.name == name
        assert cal.fpr == 0.01
        assert cal.min_tokens > 0
        assert 0.0 < cal.probability(cal.threshold) < 1.0
    assert default_calibration() == methods[default]
