"""The confidence-signal contract: one required method, ``score``.

A signal reads a tier's answer to a request and says how likely the answer is to be right,
as a number in [0, 1] (higher: keep it; lower: escalate). What it needs to say so is declared
in ``needs``: the answer's token logprobs (free: the router asks the tier for them), extra
samples from the same model, a judge call to the same model, or only the prompt (such a
signal can run *before* any model, so the router may skip a tier it expects to fail).

Signals get what they need through a ``Probe`` instead of calling models themselves, so the
router stays in charge of admission, cost and degradation, and the benchmark can back the
probe with cached outputs.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from strata.core.models.base import TokenLogprob


class Need(enum.StrEnum):
    LOGPROBS = "logprobs"
    SAMPLES = "samples"
    JUDGE = "judge"
    PROMPT_ONLY = "prompt_only"


@dataclass
class Attempt:
    """A request and (unless the signal is prompt-only) one tier's answer to it."""

    messages: list[dict[str, Any]]
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


class Probe(Protocol):
    """More evidence from the tier that answered: extra samples, or its own verdict."""

    async def samples(self, k: int) -> list[str]: ...

    async def judge(self) -> list[TokenLogprob]: ...


class ConfidenceSignal(ABC):
    name: ClassVar[str]
    needs: frozenset[Need] = frozenset({Need.LOGPROBS})
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    async def score(self, attempt: Attempt, probe: Probe) -> float:
        """Confidence in [0, 1] that ``attempt.text`` answers ``attempt.messages`` well."""

    @property
    def prompt_only(self) -> bool:
        return Need.PROMPT_ONLY in self.needs
