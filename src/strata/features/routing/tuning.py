"""Calibrated route settings, saved under ``settings.home/routing/routes.json``.

``strata calibrate`` writes one entry per route: the fitted thresholds, the signal (and its
fitted weights), an optional prompt-only prefilter, and the measured operating curve
(threshold → share of the big tier's quality kept, share of requests escalated, cost), so a
request's ``quality`` override can pick the cheapest calibrated threshold that meets it.
These override the thresholds in the settings file; delete the file to go back to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from strata.core.errors import ConfigError


class CurvePoint(BaseModel):
    threshold: float
    quality: float  # accuracy / the big tier's accuracy
    big_share: float
    cost_per_request: float


class RouteTuning(BaseModel):
    thresholds: list[float] = Field(default_factory=list)
    signal: str | None = None
    signal_options: dict[str, Any] = Field(default_factory=dict)
    prefilter: str | None = None
    prefilter_options: dict[str, Any] = Field(default_factory=dict)
    prefilter_below: float = 0.0
    curve: list[CurvePoint] = Field(default_factory=list)
    target: dict[str, float] = Field(default_factory=dict)
    items: int = 0
    fitted_at: float = 0.0

    def threshold_for(self, quality: float) -> float | None:
        """The cheapest calibrated threshold that keeps ``quality`` of the big tier's."""
        if not self.curve:
            return None
        meeting = [p for p in self.curve if p.quality >= quality - 1e-12]
        if not meeting:
            return max(self.curve, key=lambda p: (p.quality, -p.big_share)).threshold
        return min(meeting, key=lambda p: (p.cost_per_request, p.big_share)).threshold


def tuning_path(home: Path) -> Path:
    return home / "routing" / "routes.json"


def load_tuning(home: Path) -> dict[str, RouteTuning]:
    path = tuning_path(home)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {name: RouteTuning.model_validate(v) for name, v in raw.items()}
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid calibration file: {exc}") from exc


def save_tuning(home: Path, name: str, tuning: RouteTuning) -> Path:
    path = tuning_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    current = load_tuning(home)
    current[name] = tuning
    data = {n: t.model_dump(mode="json") for n, t in current.items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path
