"""The three zero-shot detectors, as functions of :class:`~.stats.TokenStats`.

Each method names an ``observer`` and a ``performer`` model (the same model for the
one-model variants) and turns a text's per-token statistics into one number. Scores keep
the sign and scale of the papers, so a reader can compare them with published values;
:attr:`Method.machine_high` says which way machine text lies.

- **log-perplexity** (baseline): mean ``-log p(x_t)`` under the performer. Machine text is
  predictable, so it scores *low*.
- **Binoculars** (Hans et al. 2024): log-perplexity under the performer divided by the
  cross-perplexity, the performer's expected surprise when tokens are drawn from the
  observer. The ratio cancels how predictable the *topic* is (a hard prompt makes every
  continuation surprising), which plain perplexity cannot. Machine text scores *low*.
- **Fast-DetectGPT** analytic criterion (Bao et al. 2024): how much more likely the real
  tokens are under the scoring model (performer) than tokens sampled from the reference
  model (observer) would be, standardised by the analytic variance. Sums over tokens, as the
  paper does, so under the null it is roughly N(0, 1) at any length. Machine text scores
  *high*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from strata.features.detection.stats import Pair, TokenStats

MethodName = Literal["binoculars", "fast-detectgpt", "log-perplexity"]
METHOD_NAMES: tuple[MethodName, ...] = ("binoculars", "fast-detectgpt", "log-perplexity")

_EPS = 1e-9


def log_perplexity(stats: TokenStats, performer: str) -> float:
    """Mean negative log-likelihood per token (nats)."""
    return float(np.mean(stats.nll[performer]))


def binoculars(stats: TokenStats, observer: str, performer: str) -> float:
    """``log PPL_performer / log X-PPL_(observer, performer)`` (lower: more machine-like)."""
    ppl = float(np.mean(stats.nll[performer]))
    x_ppl = float(np.mean(stats.cross[(observer, performer)]))
    return ppl / max(x_ppl, _EPS)


def fast_detectgpt(stats: TokenStats, observer: str, performer: str) -> float:
    """Analytic sampling discrepancy with ``observer`` as the sampling (reference) model and
    ``performer`` as the scoring model (higher: more machine-like)."""
    pair = (observer, performer)
    mean = stats.cross[pair]  # E_q[-log p_s]
    var = stats.cross_sq[pair] - mean**2  # Var_q[log p_s]
    log_likelihood = -stats.nll[performer]
    discrepancy = float(np.sum(log_likelihood) + np.sum(mean))
    return discrepancy / math.sqrt(max(float(np.sum(var)), _EPS))


@dataclass(frozen=True)
class Method:
    """One detector configuration: which statistic, computed over which models."""

    name: MethodName
    observer: str
    performer: str

    def __post_init__(self) -> None:
        if self.name not in METHOD_NAMES:
            raise ValueError(f"unknown detection method {self.name!r} (known: {METHOD_NAMES})")
        if self.name == "log-perplexity" and self.observer != self.performer:
            raise ValueError("log-perplexity uses one model: observer must equal performer")

    @property
    def machine_high(self) -> bool:
        """True when machine text gets the higher score (Fast-DetectGPT), else lower."""
        return self.name == "fast-detectgpt"

    @property
    def models(self) -> tuple[str, ...]:
        """The distinct models whose logits the method needs, observer first."""
        return (
            (self.observer,)
            if self.observer == self.performer
            else (
                self.observer,
                self.performer,
            )
        )

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """The ``(q, s)`` cross terms the method reads (none for log-perplexity)."""
        return () if self.name == "log-perplexity" else ((self.observer, self.performer),)

    @property
    def label(self) -> str:
        """A readable id, e.g. ``binoculars[observer=a,performer=b]``."""
        if self.observer == self.performer:
            return f"{self.name}[{self.performer}]"
        return f"{self.name}[observer={self.observer},performer={self.performer}]"

    def score(self, stats: TokenStats) -> float:
        """The method's statistic over all tokens in ``stats`` (needs at least one)."""
        if len(stats) == 0:
            raise ValueError("no tokens to score")
        if self.name == "binoculars":
            return binoculars(stats, self.observer, self.performer)
        if self.name == "fast-detectgpt":
            return fast_detectgpt(stats, self.observer, self.performer)
        return log_perplexity(stats, self.performer)

    def machine_likeness(self, score: float) -> float:
        """The score oriented so that higher always means more machine-like."""
        return score if self.machine_high else -score
