"""Concurrent streams on one local model, decoded together in one llama.cpp batch.

On a CPU a decode step is bound by reading the weights, so evaluating four sequences' next
tokens in one batch costs little more than one: a second llama.cpp context on the same
weights holds up to ``slots`` sequences (one KV sequence id each), and one thread runs the
steps. Each step puts every running sequence's last token (and a chunk of any newcomer's
prompt) into one ``llama_batch``, decodes it, and samples each sequence with its own sampler
chain (its grammar, temperature, top_p, seed) from its own row of the batch's logits, which
is also copied out for a request that asks for logprobs. Requests join and leave between
steps. A grammar's check runs on the batch thread, so while one is in the batch every
sequence's step waits for it; on the model's own context it would compete for the same two
cores instead. Penalties stay on the own context: reproducing llama-cpp-python's penalty
sampler (its window and token history) exactly here is not done yet.

The request side keeps its own thread and its own text handling (stop sequences, UTF-8,
budget, cancellation): ``generate`` returns a blocking iterator of token ids fed by the batch
thread, so closing it (a stop sequence, a client gone) frees the sequence at the next step.

A slot keeps the tokens it last held, and a newcomer takes the free slot sharing the longest
prefix with its prompt, so a repeated system prompt is not evaluated again. Four slots forget
quickly, so the model's prompt cache (``llama_prefix``) backs them: when a kept state shares
more of the newcomer's prompt than its slot does, the state is loaded into the slot's
sequence, and a finished sequence's tokens are kept in the cache. Both copies run on the
batch thread between steps (a few MB, milliseconds, against a step of tens of ms). This
context copies the model's own KV types and flash-attention setting, so states pass between
the two contexts (``context_layout`` checks it).

A request's ``cancel`` event is checked at every step, so a stopped request (a client gone,
background work yielding to a user) leaves the batch at the next step boundary even while its
prompt is still being evaluated and no token has come back to notice it by.
"""

from __future__ import annotations

import queue
import random
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.core.errors import InvalidRequest
from strata.core.models.base import SamplingParams
from strata.core.models.llama_prefix import (
    PrefixCache,
    common_prefix,
    context_layout,
    read_seq,
    write_seq,
)

_DONE = -1


@dataclass
class _Seq:
    prompt: list[int]
    params: SamplingParams
    budget: int
    cancel: threading.Event | None
    out: queue.SimpleQueue[int | BaseException] = field(default_factory=queue.SimpleQueue)
    slot: int = -1
    pending: list[int] = field(default_factory=list)  # to evaluate at the next steps
    sampler: Any = None
    rows: deque[Any] | None = None  # each sampled position's logits, when logprobs are asked
    generated: int = 0
    closed: bool = False


class BatchDecoder:
    """Runs up to ``slots`` generations of one model together on a second context."""

    def __init__(self, llm: Any, slots: int, n_ctx: int, cache: PrefixCache | None = None) -> None:
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        base = llm.context_params
        for name in ("n_threads", "n_threads_batch", "n_batch", "n_ubatch", "type_k", "type_v"):
            setattr(params, name, getattr(base, name))
        params.n_ctx = slots * n_ctx
        params.n_seq_max = slots
        params.kv_unified = True  # one KV pool; a step's batch may mix any sequences
        # The model's own attention kernels (llama-cpp-python's default: no flash attention,
        # where llama.cpp's context default is auto, on for a CPU): a request alone in the
        # batch then gets the logits it would one at a time, and the KV layout matches, so
        # prompt-cache states pass between the two contexts.
        params.flash_attn_type = base.flash_attn_type
        self._layout = context_layout(params)
        self._llama_cpp = llama_cpp
        self._model = llm._model
        self._internals: Any = _internals
        self._ctx: Any = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._n_batch = int(base.n_batch)
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(llm._model.vocab))
        self._batch: Any = _internals.LlamaBatch(n_tokens=self._n_batch, embd=0, n_seq_max=slots)
        self.slots = slots
        self.cache = cache
        self.evaluated = 0  # tokens put through the model: what a cache hit saves
        self._held: list[list[int]] = [[] for _ in range(slots)]  # tokens each slot's KV holds
        self._free = list(range(slots))
        self._running: list[_Seq] = []
        self._joining: list[_Seq] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    # ---- request side ----

    def generate(
        self,
        tokens: Sequence[int],
        params: SamplingParams,
        budget: int,
        cancel: threading.Event | None = None,
        rows: deque[Any] | None = None,
        grammar: Any = None,
    ) -> Iterator[int]:
        """Token ids after ``tokens``; ends after ``budget`` tokens, end of generation, or
        at the step after ``cancel`` is set. With ``rows``, a copy of the logits each token
        was sampled from is appended there before the token is yielded (the batch's logits
        are overwritten by the next step). A ``grammar`` (a ``LlamaGrammar``) constrains
        the sequence's sampling, before its temperature and top_p."""
        # Built here, on the request's thread: a grammar that does not parse is this
        # request's error, and the batch thread never waits for the parse.
        sampler = self._sampler(params, grammar)
        seq = _Seq(list(tokens), params, budget, cancel, rows=rows, sampler=sampler)
        with self._wake:
            self._joining.append(seq)
            self._wake.notify()
        try:
            while (item := seq.out.get()) != _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            seq.closed = True  # the batch thread drops it at its next step

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join()
        self._batch.close()
        self._ctx.close()

    # ---- batch thread ----

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and not (self._running or (self._joining and self._free)):
                    self._wake.wait()
                if self._stopped:
                    for seq in self._running + self._joining:
                        seq.out.put(RuntimeError("model unloaded"))
                    return
                while self._joining and self._free:
                    self._admit(self._joining.pop(0))
            try:
                self._step()
            except BaseException as exc:  # every running request hears of it, then goes
                for seq in list(self._running):
                    seq.out.put(exc)
                    self._finish(seq, keep=False)
                    self._held[seq.slot] = []  # what its KV holds is unknown now
                    self._llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq.slot, -1, -1)

    def _admit(self, seq: _Seq) -> None:
        """Give ``seq`` the free slot sharing most of its prompt, or load a longer prefix
        from the prompt cache into it; trim that slot's KV to what the prompt shares."""
        lcp = self._llama_cpp
        slot = max(self._free, key=lambda s: common_prefix(self._held[s], seq.prompt))
        self._free.remove(slot)
        have = common_prefix(self._held[slot], seq.prompt)
        kept = self.cache.find(seq.prompt, have, self._layout) if self.cache is not None else None
        if kept is not None and self.cache is not None:
            key, state = kept
            if write_seq(self._ctx.ctx, state, slot):
                self.cache.hits += 1
                self._held[slot], have = list(key), common_prefix(key, seq.prompt)
            else:  # no room for its cells: the slot holds nothing known, start it afresh
                self._held[slot], have = [], 0
        keep = min(have, len(seq.prompt) - 1)
        lcp.llama_memory_seq_rm(self._ctx.memory, slot, keep, -1)
        self._held[slot] = seq.prompt[:keep]
        seq.slot, seq.pending = slot, seq.prompt[keep:]
        self._running.append(seq)

    def _sampler(self, params: SamplingParams, grammar: Any) -> Any:
        sampler = self._internals.LlamaSampler()
        if grammar is not None:
            constraint = self._llama_cpp.llama_sampler_init_grammar(
                self._model.vocab, grammar._grammar.encode(), grammar._root.encode()
            )
            if not constraint:
                raise InvalidRequest("the response_format grammar does not parse")
            self._llama_cpp.llama_sampler_chain_add(sampler.sampler, constraint)
        if params.temperature <= 0:
            sampler.add_greedy()
            return sampler
        if params.top_p < 1.0:
            sampler.add_top_p(params.top_p, 1)
        sampler.add_temp(params.temperature)
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        sampler.add_dist(seed & 0xFFFFFFFF)
        return sampler

    def _step(self) -> None:
        for seq in [s for s in self._running if s.closed or _cancelled(s)]:
            self._finish(seq)
        if not self._running:
            return
        batch = self._batch.batch
        batch.n_tokens = 0
        sampled: list[tuple[_Seq, int]] = []
        room = self._n_batch
        # Decoding sequences first (one token each), then prompt chunks in the room left.
        for seq in sorted(self._running, key=lambda s: len(s.pending)):
            if room == 0:
                break
            take = seq.pending[:room]
            start = len(self._held[seq.slot])
            for i, token in enumerate(take):
                j = batch.n_tokens
                batch.token[j], batch.pos[j] = token, start + i
                batch.seq_id[j][0], batch.n_seq_id[j] = seq.slot, 1
                batch.logits[j] = False
                batch.n_tokens += 1
            self._held[seq.slot].extend(take)
            self.evaluated += len(take)
            del seq.pending[: len(take)]
            room -= len(take)
            if take and not seq.pending:  # its whole input is in: sample after this step
                batch.logits[batch.n_tokens - 1] = True
                sampled.append((seq, batch.n_tokens - 1))
        if batch.n_tokens == 0:
            return
        self._ctx.decode(self._batch)
        vocab = self._model.vocab
        for seq, index in sampled:
            if seq.rows is not None:
                seq.rows.append(self._logits(index))
            token = seq.sampler.sample(self._ctx, index)
            seq.generated += 1
            seq.out.put(token)
            if (
                self._llama_cpp.llama_vocab_is_eog(vocab, token)
                or seq.generated >= seq.budget
                or seq.closed
                or _cancelled(seq)
            ):
                self._finish(seq)
            else:
                seq.pending = [token]

    def _logits(self, index: int) -> Any:
        import numpy as np

        pointer = self._llama_cpp.llama_get_logits_ith(self._ctx.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).copy()

    def _finish(self, seq: _Seq, *, keep: bool = True) -> None:
        """Free ``seq``'s slot; its KV state goes to the prompt cache unless it is unknown
        (``keep=False``: a failed step)."""
        if seq in self._running:
            self._running.remove(seq)
            seq.out.put(_DONE)
            self._free.append(seq.slot)
            seq.sampler = None
            held = self._held[seq.slot]
            if keep and self.cache is not None:
                slot = seq.slot
                self.cache.keep(held, lambda: read_seq(self._ctx.ctx, slot), self._layout)


def _cancelled(seq: _Seq) -> bool:
    return seq.cancel is not None and seq.cancel.is_set()
