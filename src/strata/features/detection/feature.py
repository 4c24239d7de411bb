"""Synthetic-text detection as a strata feature: ``POST /v1/detections``, ``strata detect``.

The detectors read every position's log-probabilities, which the engine's generation path
does not give, so they load their own llama.cpp instances of the bundled models (on first
use, once per method) and score one text at a time on a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.features.detection.settings import DetectionSettings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel
    from strata.core.settings import CoreSettings
    from strata.features.detection.detector import Detection, Detector


class Detections:
    """The detection feature's runtime: one detector per method, built on first use."""

    def __init__(self, settings: CoreSettings) -> None:
        self.home = settings.home
        self.settings = settings.section("detection", DetectionSettings)
        self._detectors: dict[str, Detector] = {}
        self._lock = threading.Lock()

    def detector(self, method: str | None) -> Detector:
        from strata.features.detection.detector import Detector, default_calibration

        calibration = default_calibration(method or self.settings.method)
        name = calibration.method.name
        with self._lock:
            if name not in self._detectors:
                self._detectors[name] = Detector.bundled(
                    self.home,
                    calibration,
                    max_chars=self.settings.max_chars,
                    max_inputs=self.settings.max_inputs,
                )
            return self._detectors[name]

    def detect(
        self, texts: Sequence[str], method: str | None, sentences: bool = False
    ) -> list[Detection]:
        """Blocking: the limits are checked before any model loads (a 400 naming the limit)."""
        from strata.features.detection.detector import check_inputs

        check_inputs(texts, self.settings.max_chars, self.settings.max_inputs)
        return self.detector(method).detect_many(texts, sentences=sentences)

    async def adetect(
        self, texts: Sequence[str], method: str | None, sentences: bool = False
    ) -> list[Detection]:
        return await asyncio.to_thread(self.detect, texts, method, sentences)

    async def shutdown(self) -> None:
        self._detectors.clear()


class DetectionFeature(Feature):
    name = "detection"

    def build(self, kernel: Kernel) -> Detections:
        return Detections(kernel.settings)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        return {"detection": (DetectionSettings, Field(default_factory=DetectionSettings))}

    def router(self) -> APIRouter:
        from strata.features.detection.routes import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.detection.cli import detect

        return [detect]


feature = DetectionFeature()
