"""Speculative decoding for greedy requests: a small model drafts, the big one checks.

The draft model (same tokenizer) proposes ``k`` tokens one at a time, which is cheap; the
target model then evaluates the last accepted token and all ``k`` drafts in one batch and
keeps the drafts up to the first one that differs from its own argmax, plus its own token at
that position. So each batch yields between 1 and ``k + 1`` tokens, and the output is the
target's greedy output (up to the float rounding of a batched evaluation, which llama.cpp's
own speculative example shares).

llama-cpp-python's ``draft_model`` hook is not used: it forces ``logits_all`` on the target,
which keeps n_ctx x n_vocab floats (1.2 GB at 2,048 tokens of Qwen) and copies every
position's logits to numpy after every batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.core.errors import CatalogError, ModelLoadError
from strata.core.models.base import SamplingParams
from strata.core.models.llama_prefix import common_prefix
from strata.core.settings import ModelSpec


@dataclass
class DraftStats:
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


class Speculator:
    """Greedy generation on ``target`` with ``draft`` proposing ``k`` tokens a step."""

    def __init__(self, draft: Any, k: int = 4) -> None:
        self.draft = draft
        self.k = k
        self.stats = DraftStats()

    def generate(self, target: Any, tokens: Sequence[int]) -> Iterator[int]:
        """Yields the target's greedy tokens after ``tokens``, forever: the caller stops."""
        import llama_cpp
        import numpy as np

        n_vocab = target.n_vocab()
        n_ctx = target.n_ctx()
        _prefill(target, tokens)
        _prefill(self.draft, tokens)

        def argmax(llm: Any, i: int) -> int:
            logits = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, i)
            return int(np.argmax(np.ctypeslib.as_array(logits, shape=(n_vocab,))))

        token = argmax(target, -1)
        while True:
            yield token
            room = n_ctx - target.n_tokens - 1
            k = max(0, min(self.k, room - 1))
            drafts = self._propose(target, token, k)
            n_past = target.n_tokens
            batch = [token, *drafts]
            target._batch.set_batch(batch=batch, n_past=n_past, logits_all=True)
            target._ctx.decode(target._batch)
            target.input_ids[n_past : n_past + len(batch)] = batch
            target.n_tokens = n_past + len(batch)
            accepted = 0
            prediction = argmax(target, 0)
            while accepted < len(drafts) and prediction == drafts[accepted]:
                accepted += 1
                prediction = argmax(target, accepted)
            self.stats.drafted += len(drafts)
            self.stats.accepted += accepted
            # Forget the rejected drafts in both models' caches.
            target.n_tokens = n_past + 1 + accepted
            target._ctx.kv_cache_seq_rm(-1, target.n_tokens, -1)
            self.draft.n_tokens = min(self.draft.n_tokens, target.n_tokens)
            yield from drafts[:accepted]
            token = prediction

    def _propose(self, target: Any, token: int, k: int) -> list[int]:
        """The draft's ``k`` greedy tokens after the target's context plus ``token``."""
        import llama_cpp
        import numpy as np

        draft = self.draft
        n_vocab = draft.n_vocab()
        pending = [*target.input_ids[draft.n_tokens : target.n_tokens].tolist(), token]
        out: list[int] = []
        for _ in range(k):
            draft.eval(pending)  # trims its cache to n_tokens first
            logits = llama_cpp.llama_get_logits_ith(draft._ctx.ctx, -1)
            pending = [int(np.argmax(np.ctypeslib.as_array(logits, shape=(n_vocab,))))]
            out.append(pending[0])
        return out


def _prefill(llm: Any, tokens: Sequence[int]) -> None:
    """Evaluate ``tokens``, reusing the prefix the context already holds (at least the last
    token is evaluated, so its logits are fresh)."""
    held = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
    llm.n_tokens = min(held, len(tokens) - 1)
    llm.eval(list(tokens[llm.n_tokens :]))


def plain_greedy(params: SamplingParams, grammar: Any) -> bool:
    """Drafting keeps the output only for plain greedy decoding (no grammar, penalties or
    logprobs, which would need each position's own logits)."""
    return (
        params.temperature == 0
        and grammar is None
        and not params.logprobs
        and not params.presence_penalty
        and not params.frequency_penalty
    )


def load_draft(name: str, spec: ModelSpec, home: Path, kwargs: dict[str, Any]) -> Any:
    """The draft model of ``spec``: a bundled name or a GGUF path, on the same context size
    and threads as the model it drafts for."""
    from llama_cpp import Llama

    from strata.core import catalog

    draft = str(spec.draft)
    try:
        if Path(draft).suffix == ".gguf":
            path = Path(draft)
        else:
            path = catalog.assemble(catalog.lookup(draft), home)
        return Llama(model_path=str(path), **kwargs)
    except (CatalogError, ValueError, RuntimeError, OSError) as exc:
        message = getattr(exc, "message", str(exc))
        raise ModelLoadError(f"model '{name}': draft '{draft}': {message}") from exc
