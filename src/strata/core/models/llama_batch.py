"""Concurrent streams on one local model, decoded together in one llama.cpp batch.

On a CPU a decode step is bound by reading the weights, so evaluating four sequences' next
tokens in one batch costs little more than one: a second llama.cpp context on the same
weights holds up to ``slots`` sequences (one KV sequence id each), and one thread runs the
steps. Each step puts every running sequence's last token (and a chunk of any newcomer's
prompt) into one ``llama_batch``, decodes it, and samples each sequence with its own sampler
chain (its temperature, top_p, seed). Requests join and leave between steps.

The request side keeps its own thread and its own text handling (stop sequences, UTF-8,
budget, cancellation): ``generate`` returns a blocking iterator of token ids fed by the batch
thread, so closing it (a stop sequence, a client gone) frees the sequence at the next step.

A slot keeps the tokens it last held, and a newcomer takes the free slot sharing the longest
prefix with its prompt, so a repeated system prompt is not evaluated again.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.core.models.base import SamplingParams
from strata.core.models.llama_prefix import common_prefix

_DONE = -1


@dataclass
class _Seq:
    prompt: list[int]
    params: SamplingParams
    budget: int
    out: queue.SimpleQueue[int | BaseException] = field(default_factory=queue.SimpleQueue)
    slot: int = -1
    pending: list[int] = field(default_factory=list)  # to evaluate at the next steps
    sampler: Any = None
    generated: int = 0
    closed: bool = False


class BatchDecoder:
    """Runs up to ``slots`` generations of one model together on a second context."""

    def __init__(self, llm: Any, slots: int, n_ctx: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        base = llm.context_params
        for name in ("n_threads", "n_threads_batch", "n_batch", "n_ubatch", "type_k", "type_v"):
            setattr(params, name, getattr(base, name))
        params.n_ctx = slots * n_ctx
        params.n_seq_max = slots
        params.kv_unified = True  # one KV pool; a step's batch may mix any sequences
        self._llama_cpp = llama_cpp
        self._model = llm._model
        self._internals: Any = _internals
        self._ctx: Any = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._n_batch = int(base.n_batch)
        self._batch: Any = _internals.LlamaBatch(n_tokens=self._n_batch, embd=0, n_seq_max=slots)
        self.slots = slots
        self._held: list[list[int]] = [[] for _ in range(slots)]  # tokens each slot's KV holds
        self._free = list(range(slots))
        self._running: list[_Seq] = []
        self._joining: list[_Seq] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    # ---- request side ----

    def generate(self, tokens: Sequence[int], params: SamplingParams, budget: int) -> Iterator[int]:
        """Token ids after ``tokens``; ends after ``budget`` tokens or end of generation."""
        seq = _Seq(list(tokens), params, budget)
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
                    self._finish(seq)
                    self._held[seq.slot] = []  # what its KV holds is unknown now
                    self._llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq.slot, -1, -1)

    def _admit(self, seq: _Seq) -> None:
        """Give ``seq`` the free slot sharing most of its prompt; trim that slot's KV."""
        lcp = self._llama_cpp
        slot = max(self._free, key=lambda s: common_prefix(self._held[s], seq.prompt))
        self._free.remove(slot)
        keep = min(common_prefix(self._held[slot], seq.prompt), len(seq.prompt) - 1)
        lcp.llama_memory_seq_rm(self._ctx.memory, slot, keep, -1)
        self._held[slot] = seq.prompt[:keep]
        seq.slot, seq.pending = slot, seq.prompt[keep:]
        seq.sampler = self._sampler(seq.params)
        self._running.append(seq)

    def _sampler(self, params: SamplingParams) -> Any:
        sampler = self._internals.LlamaSampler()
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
        for seq in [s for s in self._running if s.closed]:
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
            token = seq.sampler.sample(self._ctx, index)
            seq.generated += 1
            seq.out.put(token)
            if (
                self._llama_cpp.llama_vocab_is_eog(vocab, token)
                or seq.generated >= seq.budget
                or seq.closed
            ):
                self._finish(seq)
            else:
                seq.pending = [token]

    def _finish(self, seq: _Seq) -> None:
        if seq in self._running:
            self._running.remove(seq)
            seq.out.put(_DONE)
            self._free.append(seq.slot)
            seq.sampler = None
