"""Synthetic-text detection: was a text written by a language model?

Zero-shot detectors over the bundled Qwen models (which share a tokenizer): Binoculars,
Fast-DetectGPT's analytic criterion and plain log-perplexity, each calibrated on human text
for a stated false-positive rate. Domain code only: the HTTP endpoint and the CLI command
call :class:`Detector` and render :class:`Detection`.

    detector = Detector.bundled(home)            # shipped default method and calibration
    detector.detect(text).decision               # "machine" | "human" | "too_short"
"""

from __future__ import annotations

from strata.features.detection.calibration import (
    DEFAULT_FPR,
    Calibration,
    auroc,
    fit,
    threshold_at_fpr,
    tpr_at_fpr,
)
from strata.features.detection.detector import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_INPUTS,
    Decision,
    Detection,
    Detector,
    SentenceScore,
    bundled_paths,
    default_calibration,
    shipped_calibrations,
)
from strata.features.detection.methods import METHOD_NAMES, Method, MethodName
from strata.features.detection.scorer import LlamaScorer, ScoredText, Scorer
from strata.features.detection.stats import TokenStats, token_stats

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
