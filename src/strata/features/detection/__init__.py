"""Synthetic-text detection: was a text written by a language model?

Zero-shot detectors over the bundled Qwen models (which share a tokenizer): Binoculars,
Fast-DetectGPT's analytic criterion and plain log-perplexity, each calibrated on human text
for a stated false-positive rate. Domain code only: the HTTP endpoint and the CLI command
call :class:`Detector` and render :class:`Detection`.

    detector = Detector.bundled(home)            # shipped default method and calibration
    detector.detect(text).decision               # "machine" | "human" | "too_short"
"""

from __future__ import annotations

import importlib
from typing import Any

# Names load on first use (PEP 562): ``strata --help`` loads this feature, not numpy.
_WHERE = {
    "Calibration": "calibration",
    "DEFAULT_FPR": "calibration",
    "DEFAULT_MAX_CHARS": "settings",
    "DEFAULT_MAX_INPUTS": "settings",
    "Decision": "detector",
    "Detection": "detector",
    "Detector": "detector",
    "LlamaScorer": "scorer",
    "METHOD_NAMES": "methods",
    "Method": "methods",
    "MethodName": "methods",
    "ScoredText": "scorer",
    "Scorer": "scorer",
    "SentenceScore": "detector",
    "TokenStats": "stats",
    "auroc": "calibration",
    "bundled_paths": "detector",
    "default_calibration": "detector",
    "fit": "calibration",
    "shipped_calibrations": "detector",
    "threshold_at_fpr": "calibration",
    "token_stats": "stats",
    "tpr_at_fpr": "calibration",
}

__all__ = [
    "DEFAULT_FPR",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_INPUTS",
    "METHOD_NAMES",
    "Calibration",
    "Decision",
    "Detection",
    "Detector",
    "LlamaScorer",
    "Method",
    "MethodName",
    "ScoredText",
    "Scorer",
    "SentenceScore",
    "TokenStats",
    "auroc",
    "bundled_paths",
    "default_calibration",
    "fit",
    "shipped_calibrations",
    "threshold_at_fpr",
    "token_stats",
    "tpr_at_fpr",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'strata.features.detection' has no attribute {name!r}")
    return getattr(importlib.import_module(f"strata.features.detection.{_WHERE[name]}"), name)
