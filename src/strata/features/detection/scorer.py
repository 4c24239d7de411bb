"""Per-position logits of local GGUF models, reduced to :class:`~.stats.TokenStats`.

The engine's generation path reads only the last position's logits (see
``strata.core.models.llama``); detection needs the distribution at *every* position of a text,
under every model of a method, and that needs ``logits_all=True``. That costs
``n_ctx × vocab × 4`` bytes per model (about 310 MB for Qwen at 512 positions), so a scorer
owns its own ``Llama`` instances with a small context and walks long texts in windows:
each window after the first re-reads ``context`` tokens already scored, so every scored
token still sees that much history, and memory stays the same at any text length.

Two-model methods compare the models' distributions token by token, which is only meaningful
when both split the text into the same tokens; :class:`LlamaScorer` checks the vocabularies
when it loads and the token ids of every text it scores.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from strata.core.errors import ConfigError, ModelLoadError
from strata.features.detection.stats import Pair, TokenStats, token_stats

IntArray = npt.NDArray[np.int64]

_PROBE = "Binoculars check: naïve café — 1234567 tokens, “quotes”, 数据 and emoji 🙂."


@dataclass(frozen=True)
class ScoredText:
    """A text's scored tokens: ids, the character offset where each starts, and the stats.

    Every token of the text is scored: a start-of-text token is fed first, so the first real
    token is predicted too.
    """

    token_ids: IntArray
    char_starts: IntArray | None  # None when token bytes do not map back onto the text
    stats: TokenStats
    truncated: bool = False  # only the first ``max_tokens`` tokens were scored


class Scorer(Protocol):
    """What :class:`~.detector.Detector` needs from a set of models with one tokenizer."""

    @property
    def models(self) -> tuple[str, ...]: ...

    def count_tokens(self, text: str) -> int: ...

    def score(
        self, text: str, pairs: Sequence[Pair], max_tokens: int | None = None
    ) -> ScoredText: ...


def windows(n_tokens: int, window: int, context: int) -> list[tuple[int, int, int]]:
    """Plan the passes over ``n_tokens`` inputs (position 0 being the start token).

    Returns ``(start, stop, first_row)`` per pass: feed ``tokens[start:stop]`` and keep the
    logit rows from ``first_row`` on; row ``r`` predicts ``tokens[start + r + 1]``. Targets
    ``1 .. n_tokens-1`` are each predicted exactly once, in order, and every pass after the
    first re-feeds up to ``context`` earlier tokens so predictions keep some history.
    """
    if window < 2 or not 0 <= context <= window - 2:
        raise ValueError("need window >= 2 and 0 <= context <= window - 2")
    plan: list[tuple[int, int, int]] = []
    next_target = 1
    while next_target < n_tokens:
        start = max(0, next_target - 1 - context)
        stop = min(n_tokens - 1, start + window)
        plan.append((start, stop, next_target - 1 - start))
        next_target = stop + 1
    return plan


def char_starts(pieces: Sequence[bytes], text: str) -> IntArray | None:
    """Character offset in ``text`` where each token's bytes begin, or None if the pieces are
    not a prefix of the text's UTF-8 bytes (a tokenizer that normalises)."""
    encoded = text.encode()
    if not encoded.startswith(b"".join(pieces)):
        return None
    # char index of every byte offset (continuation bytes map to the char they belong to)
    byte_to_char = np.zeros(len(encoded) + 1, dtype=np.int64)
    position = 0
    for index, char in enumerate(text):
        width = len(char.encode())
        byte_to_char[position : position + width] = index
        position += width
    byte_to_char[position] = len(text)
    offsets = np.cumsum([0, *[len(p) for p in pieces[:-1]]]) if pieces else np.array([])
    return byte_to_char[np.asarray(offsets, dtype=np.int64)]


class LlamaScorer:
    """Scores texts with one or more GGUF models that share a tokenizer.

    Loading is lazy and guarded by a lock; one text is scored at a time (a ``Llama`` context
    is not safe to share between threads), so callers on an event loop should run
    :meth:`score` in a worker thread.
    """

    def __init__(
        self,
        paths: Mapping[str, Path],
        *,
        window: int = 512,
        context: int = 128,
        n_threads: int | None = None,
    ) -> None:
        if not paths:
            raise ConfigError("a scorer needs at least one model")
        windows(window + 1, window, context)  # validates window/context
        self._paths = dict(paths)
        self.window = window
        self.context = context
        self.n_threads = n_threads or os.cpu_count() or 1
        self._llms: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        """Cumulative wall time per model's forward passes, and ``"stats"`` for the
        reduction, so a caller can tell what a one-model method would have cost."""

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._paths)

    def load(self) -> None:
        """Load every model and check that they tokenise identically."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._llms:
            return
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelLoadError(
                "detection needs llama-cpp-python: pip install 'strata[local]'"
            ) from exc
        llms: dict[str, Any] = {}
        for name, path in self._paths.items():
            if not path.is_file():
                raise ModelLoadError(f"detection model '{name}': no GGUF file at {path}")
            try:
                llms[name] = Llama(
                    model_path=str(path),
                    n_ctx=self.window,
                    n_batch=self.window,
                    n_ubatch=self.window,
                    n_threads=self.n_threads,
                    logits_all=True,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelLoadError(f"detection model '{name}' failed to load: {exc}") from exc
        first, *rest = llms
        for name in rest:
            same_vocab = llms[name].n_vocab() == llms[first].n_vocab()
            if not same_vocab or _tokens(llms[name], _PROBE) != _tokens(llms[first], _PROBE):
                raise ConfigError(
                    f"detection models '{first}' and '{name}' do not share a tokenizer"
                )
        self._llms = llms

    def close(self) -> None:
        with self._lock:
            for llm in self._llms.values():
                llm.close()
            self._llms = {}

    def count_tokens(self, text: str) -> int:
        with self._lock:
            self._load_locked()
            return len(_tokens(next(iter(self._llms.values())), text))

    def score(self, text: str, pairs: Sequence[Pair], max_tokens: int | None = None) -> ScoredText:
        """Every model's :class:`TokenStats` on ``text`` plus the ``pairs``' cross terms,
        over its first ``max_tokens`` tokens (all of them when None)."""
        with self._lock:
            self._load_locked()
            names = list(self._llms)
            reference = self._llms[names[0]]
            every_id = _tokens(reference, text)
            for name in names[1:]:
                if _tokens(self._llms[name], text) != every_id:
                    raise ConfigError(f"models '{names[0]}' and '{name}' tokenised a text apart")
            ids = every_id[:max_tokens] if max_tokens is not None else every_id
            start = reference.token_bos()
            if start < 0:
                start = reference.token_eos()
            tokens = [start, *ids]
            parts = []
            for lo, hi, first_row in windows(len(tokens), self.window, self.context):
                rows = {}
                for name in names:
                    began = time.perf_counter()
                    rows[name] = self._logits(self._llms[name], tokens[lo:hi])[first_row:]
                    self._tick(name, began)
                targets = np.asarray(tokens[lo + first_row + 1 : hi + 1], dtype=np.int64)
                began = time.perf_counter()
                parts.append(token_stats(rows, targets, pairs))
                self._tick("stats", began)
            pieces = [reference.detokenize([t]) for t in ids]
        return ScoredText(
            token_ids=np.asarray(ids, dtype=np.int64),
            char_starts=char_starts(pieces, text),
            stats=TokenStats.concat(parts),
            truncated=len(ids) < len(every_id),
        )

    def _tick(self, key: str, began: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - began

    @staticmethod
    def _logits(llm: Any, tokens: Sequence[int]) -> npt.NDArray[np.float32]:
        """Logits at every position of ``tokens`` from a fresh context (a view into the
        model's buffer, valid until its next evaluation)."""
        llm.reset()
        llm.eval(list(tokens))
        scores: npt.NDArray[np.float32] = llm.scores[: len(tokens)]
        return scores


def _tokens(llm: Any, text: str) -> list[int]:
    ids: list[int] = llm.tokenize(text.encode(), add_bos=False, special=False)
    return ids
