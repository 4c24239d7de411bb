"""``Detector``: was this text written by a model? A score, a calibrated value, a decision.

The detector joins a :class:`~.scorer.Scorer` (the models) with a
:class:`~.calibration.Calibration` (the method, its threshold and probability map). It
refuses inputs past a size limit before any model runs (``InvalidRequest``, a 400 at the
HTTP edge), and answers ``too_short`` rather than guessing when a text has fewer tokens
than the calibration's minimum: below that the scores of human and machine text overlap
too much for the threshold to mean its stated false-positive rate.

The answer is evidence, not proof: a low false-positive rate on the calibration texts does
not carry over to languages, genres or lengths the calibration never saw.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from strata.core.errors import ConfigError, InvalidRequest
from strata.features.detection.calibration import Calibration
from strata.features.detection.scorer import LlamaScorer, ScoredText, Scorer
from strata.features.detection.settings import DEFAULT_MAX_CHARS, DEFAULT_MAX_INPUTS

Decision = Literal["machine", "human", "too_short"]

MIN_SENTENCE_TOKENS = 4
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class SentenceScore:
    """The method's score over one sentence's tokens, in the context of the whole text.

    For highlighting only: the threshold is calibrated on whole texts, and a sentence's
    score is too noisy (and, for Fast-DetectGPT, on another scale) to decide anything.
    """

    start: int  # character offsets into the text
    end: int
    tokens: int
    score: float | None  # None below MIN_SENTENCE_TOKENS (or past the judged window)


@dataclass(frozen=True)
class Detection:
    """The verdict on one text. ``score``/``probability`` are None when ``too_short``.

    ``machine_if`` says which side of ``threshold`` a machine-written text falls on (the
    score keeps the method's published sign: Binoculars and log-perplexity are *lower* for
    machine text, Fast-DetectGPT *higher*).
    """

    decision: Decision
    score: float | None
    probability: float | None
    threshold: float
    machine_if: Literal["above", "below"]
    fpr: float
    tokens: int  # tokens scored
    min_tokens: int
    method: str
    truncated: bool = False  # True when only the first ``max_tokens`` tokens were judged
    sentences: tuple[SentenceScore, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for an API body or ``--json`` output."""
        data: dict[str, Any] = {
            "decision": self.decision,
            "score": self.score,
            "probability": self.probability,
            "threshold": self.threshold,
            "machine_if": self.machine_if,
            "fpr": self.fpr,
            "tokens": self.tokens,
            "min_tokens": self.min_tokens,
            "method": self.method,
            "truncated": self.truncated,
        }
        if self.sentences is not None:
            data["sentences"] = [
                {"start": s.start, "end": s.end, "tokens": s.tokens, "score": s.score}
                for s in self.sentences
            ]
        return data


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences in ``text`` (a plain punctuation
    and line-break split: good enough to point at a passage, not a linguistic parser)."""
    spans = []
    position = 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() > position:
            spans.append((position, match.start()))
        position = match.end()
    if position < len(text):
        spans.append((position, len(text)))
    return spans


class Detector:
    """Scores texts with one calibrated method.

    Thread-safe as far as the scorer is (the bundled :class:`LlamaScorer` serialises
    texts); it blocks while models run, so an async caller should use a worker thread.
    """

    def __init__(
        self,
        scorer: Scorer,
        calibration: Calibration,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_inputs: int = DEFAULT_MAX_INPUTS,
    ) -> None:
        missing = set(calibration.method.models) - set(scorer.models)
        if missing:
            raise ConfigError(f"detection method needs models the scorer lacks: {sorted(missing)}")
        self.scorer = scorer
        self.calibration = calibration
        self.max_chars = max_chars
        self.max_inputs = max_inputs

    @classmethod
    def from_paths(
        cls,
        paths: Mapping[str, Path],
        calibration: Calibration | None = None,
        **options: Any,
    ) -> Detector:
        """A detector on GGUF files named as in the calibration (default: the shipped one).
        ``options`` go to :class:`Detector` (``max_chars``, ``max_inputs``)."""
        calibration = calibration or default_calibration()
        needed = calibration.method.models
        missing = [name for name in needed if name not in paths]
        if missing:
            raise ConfigError(f"no GGUF path for detection model(s) {missing}")
        # a text is judged on at most max_tokens tokens: one window of that size suffices,
        # and the logits buffer (window × vocab floats per model) shrinks with it
        window = min(512, max(16, calibration.max_tokens or 512))
        scorer = LlamaScorer(
            {name: paths[name] for name in needed}, window=window, context=window // 4
        )
        return cls(scorer, calibration, **options)

    @classmethod
    def bundled(
        cls, home: Path, calibration: Calibration | None = None, **options: Any
    ) -> Detector:
        """A detector on the bundled Qwen models, assembling them into ``home`` if needed."""
        calibration = calibration or default_calibration()
        return cls.from_paths(
            bundled_paths(home, calibration.method.models), calibration, **options
        )

    # ---- checks before any model runs ----

    def check(self, texts: Sequence[str]) -> None:
        """Raise ``InvalidRequest`` naming the limit if the batch or a text is too large."""
        check_inputs(texts, self.max_chars, self.max_inputs)

    # ---- scoring ----

    def detect(self, text: str, *, sentences: bool = False) -> Detection:
        """Score one text (see :class:`Detection`)."""
        self.check([text])
        return self._detect(text, sentences)

    def detect_many(self, texts: Sequence[str], *, sentences: bool = False) -> list[Detection]:
        """Score several texts; the whole batch is checked against the limits first."""
        self.check(texts)
        return [self._detect(text, sentences) for text in texts]

    def _detect(self, text: str, sentences: bool) -> Detection:
        cal = self.calibration
        method = cal.method
        n_tokens = self.scorer.count_tokens(text) if text.strip() else 0
        verdict = Detection(
            decision="too_short",
            score=None,
            probability=None,
            threshold=cal.threshold,
            machine_if="above" if method.machine_high else "below",
            fpr=cal.fpr,
            tokens=n_tokens,
            min_tokens=cal.min_tokens,
            method=method.name,
        )
        if n_tokens < cal.min_tokens:
            return verdict
        scored = self.scorer.score(text, method.pairs, cal.max_tokens)
        score = method.score(scored.stats)
        return dataclasses.replace(
            verdict,
            decision="machine" if cal.is_machine(score) else "human",
            score=score,
            probability=cal.probability(score),
            tokens=len(scored.token_ids),
            truncated=scored.truncated,
            sentences=self._sentences(text, scored) if sentences else None,
        )

    def _sentences(self, text: str, scored: ScoredText) -> tuple[SentenceScore, ...] | None:
        if scored.char_starts is None:
            return None
        out = []
        for start, end in sentence_spans(text):
            index = np.flatnonzero((scored.char_starts >= start) & (scored.char_starts < end))
            score = None
            if len(index) >= MIN_SENTENCE_TOKENS:
                score = self.calibration.method.score(scored.stats.select(index))
            out.append(SentenceScore(start=start, end=end, tokens=len(index), score=score))
        return tuple(out)


# ---- the shipped calibration ----


def shipped_calibrations() -> tuple[str, dict[str, Calibration]]:
    """``(default method name, {method name: calibration})`` fitted on the dev data and
    shipped in the package (see ``bench/detection.py --write-calibration``)."""
    raw = resources.files(__package__).joinpath(_CALIBRATION_FILE).read_text()
    data = json.loads(raw)
    methods = {name: Calibration.from_json(c) for name, c in data["methods"].items()}
    return str(data["default"]), methods


def default_calibration(method: str | None = None) -> Calibration:
    """The shipped calibration of ``method`` (default: the shipped default method)."""
    default, methods = shipped_calibrations()
    name = method or default
    try:
        return methods[name]
    except KeyError:
        raise InvalidRequest(
            f"no detection method '{name}' (available: {', '.join(sorted(methods))})",
            param="model",
        ) from None


def check_inputs(texts: Sequence[str], max_chars: int, max_inputs: int) -> None:
    """Raise ``InvalidRequest`` naming the limit if the batch or a text is too large (before
    any model is loaded)."""
    if len(texts) > max_inputs:
        raise InvalidRequest(
            f"{len(texts)} texts in one request; the limit is {max_inputs}", param="input"
        )
    for index, text in enumerate(texts):
        if len(text) > max_chars:
            where = f"input[{index}]" if len(texts) > 1 else "input"
            raise InvalidRequest(
                f"{where} has {len(text)} characters; the detection limit is "
                f"{max_chars} characters",
                param="input",
            )


def bundled_paths(home: Path, names: Sequence[str]) -> dict[str, Path]:
    """GGUF paths of bundled models by catalog name, assembled (and verified) on first use."""
    from strata.core import catalog

    return {name: catalog.assemble(catalog.lookup(name), home) for name in names}
