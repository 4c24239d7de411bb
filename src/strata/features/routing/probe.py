"""What a route's signals may ask of the tier that answered: its answer as chunks, more
samples, a self-check (``TierProbe``, each call costed), or nothing (``NoProbe``, for the
prompt-only signals)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from strata.core.engine import Timings
from strata.core.models.base import Chunk, GenerationRequest, TokenLogprob, Usage
from strata.core.turn import Turn, TurnResult
from strata.features.routing.judge import judge_messages

if TYPE_CHECKING:
    from strata.features.routing.cascade import Router

JUDGE_TOP_LOGPROBS = 10
_RNG = random.Random()


@dataclass
class Answer:
    chunks: list[Chunk] = field(default_factory=list)
    usage: Usage | None = None

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def logprobs(self) -> list[TokenLogprob]:
        return [t for c in self.chunks for t in (c.logprobs or [])]

    @property
    def finish_reason(self) -> str | None:
        return next((c.finish_reason for c in reversed(self.chunks) if c.finish_reason), None)


class TierProbe:
    """A signal's extra evidence, asked of the tier that answered; each call is costed."""

    def __init__(
        self, router: Router, turn: Turn, result: TurnResult, model: str, answer: Answer
    ) -> None:
        self.router, self.turn, self.result = router, turn, result
        self.model, self.answer = model, answer
        self.cost = 0.0

    async def _run(self, gen: GenerationRequest) -> Answer:
        answer = await self.router.collect(self.model, gen, self.turn, self.result, Timings())
        self.cost += self.router.costs.cost(self.model, answer.usage)
        return answer

    async def samples(self, k: int) -> list[str]:
        params = self.turn.gen.params
        out = []
        for i in range(k):
            sample = replace(
                params,
                temperature=max(params.temperature, 0.7),
                # distinct draws: the request's seed + i, or fresh ones when it set none
                seed=params.seed + i + 1 if params.seed is not None else _RNG.randrange(2**31),
                logprobs=False,
                top_logprobs=0,
            )
            out.append((await self._run(replace(self.turn.gen, params=sample))).text)
        return out

    async def judge(self) -> list[TokenLogprob]:
        params = replace(
            self.turn.gen.params,
            temperature=0.0,
            max_tokens=1,
            logprobs=True,
            top_logprobs=JUDGE_TOP_LOGPROBS,
            stop=(),
        )
        messages = judge_messages(self.turn.gen.messages or [], self.answer.text)
        gen = replace(self.turn.gen, messages=messages, params=params, stream=False)
        return (await self._run(gen)).logprobs


class NoProbe:
    """For prompt-only signals, which must not ask a model for anything."""

    async def samples(self, k: int) -> list[str]:
        raise RuntimeError("a prompt-only signal asked for samples")

    async def judge(self) -> list[TokenLogprob]:
        raise RuntimeError("a prompt-only signal asked for a judge call")
