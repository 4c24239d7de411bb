"""Prompt caching for a local model: KV states of recent prompts, reused by longest prefix.

llama-cpp-python reuses only the prompt still in its context: one request in between (another
user, a summary) and a 1,000-token system prompt, session history or set of knowledge passages
is evaluated again from scratch. Its ``LlamaRAMCache`` would keep more, but only
``create_completion`` consults it and strata drives ``Llama.generate`` directly.

So after each generation whose context is long enough to be worth it, the context's state
(its KV cells, a few MB per hundred tokens) is copied out and kept, newest last, within a byte
budget; before the next prompt is evaluated, the kept state sharing the longest prefix with it
is loaded when that prefix is longer than what the context already holds. ``Llama.generate``
then trims the KV cache to the shared prefix and evaluates only the rest.

The batch decoder (``llama_batch``) shares the same cache: a newcomer whose slot holds less
of its prompt than a kept state loads that state into its slot's sequence, and a finished
sequence's tokens are kept like a finished one-at-a-time generation's.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("strata.llama.prefix")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    step = 64
    while i < n:  # compare in slices: C-speed list equality, then narrow down
        j = min(n, i + step)
        if list(a[i:j]) == list(b[i:j]):
            i = j
            continue
        while i < j and a[i] == b[i]:
            i += 1
        return i
    return n


class PrefixCache:
    """Saved llama.cpp states keyed by the tokens they hold, least recently used first.

    ``budget_bytes`` bounds the states' total size (0 turns caching off); a context shorter
    than ``min_tokens`` is not saved, since evaluating it again costs less than keeping it.
    A restore must beat the context's own prefix by ``min_gain`` tokens to be worth the copy.
    Each state carries its context's layout (``context_layout``) and loads only into a
    context of the same layout.
    """

    def __init__(self, budget_bytes: int, min_tokens: int = 256, min_gain: int = 32) -> None:
        self.budget_bytes = budget_bytes
        self.min_tokens = min_tokens
        self.min_gain = min_gain
        self._states: OrderedDict[tuple[int, ...], tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._states)

    def best(self, tokens: Sequence[int], layout: str = "") -> tuple[int, tuple[int, ...] | None]:
        """The kept state of ``layout`` sharing the longest prefix with ``tokens``, and that
        length."""
        best_len, best_key = 0, None
        for key, (kept_layout, _) in self._states.items():
            if kept_layout != layout:
                continue
            n = common_prefix(key, tokens)
            if n > best_len:
                best_len, best_key = n, key
        return best_len, best_key

    def find(
        self, tokens: Sequence[int], have: int, layout: str = ""
    ) -> tuple[tuple[int, ...], bytes] | None:
        """The kept state (its tokens and bytes) sharing the longest prefix with ``tokens``,
        when that beats the ``have`` tokens a context already shares by ``min_gain``."""
        if not self.enabled:
            return None
        with self._lock:
            found, key = self.best(tokens, layout)
            if key is None or found < have + self.min_gain:
                self.misses += key is None or found <= have
                return None
            self._states.move_to_end(key)
            return key, self._states[key][1]

    def restore(self, llm: Any, tokens: Sequence[int]) -> int:
        """Load the best kept state into ``llm`` when it shares more of ``tokens`` than the
        context does now; returns the prefix length the context then shares."""
        if not self.enabled:
            return 0
        current = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        kept = self.find(tokens, current, context_layout(llm.context_params))
        if kept is None:
            return current
        key, state = kept
        if not _load(llm, key, state):
            return 0
        self.hits += 1
        found = common_prefix(key, tokens)
        log.debug("prefix cache hit: %d of %d prompt tokens", found, len(tokens))
        return found

    def save(self, llm: Any) -> bool:
        """Keep ``llm``'s current context, evicting the oldest states past the budget."""
        n = int(llm.n_tokens)
        return self.keep(
            llm.input_ids[:n].tolist(), lambda: _save(llm), context_layout(llm.context_params)
        )

    def keep(self, tokens: Sequence[int], read: Callable[[], bytes], layout: str = "") -> bool:
        """Keep the state ``read()`` copies out of a context holding ``tokens`` (called only
        when it is worth keeping and not kept already), evicting the oldest past the budget."""
        n = len(tokens)
        if not self.enabled or n < self.min_tokens:
            return False
        key = tuple(tokens)
        with self._lock:
            if key in self._states and self._states[key][0] == layout:
                self._states.move_to_end(key)
                return True
            # A kept state of this layout that is a prefix of this one is now redundant.
            for old, (kept_layout, _) in list(self._states.items()):
                if kept_layout == layout and len(old) <= n and key[: len(old)] == old:
                    self._drop(old)
        state = read()
        size = len(state)
        if size > self.budget_bytes:
            return False
        with self._lock:
            if key in self._states:  # kept meanwhile by another context
                self._drop(key)
            self._states[key] = (layout, state)
            self._size += size
            while self._size > self.budget_bytes:
                self._drop(next(iter(self._states)))
        return True

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._size = 0

    def _drop(self, key: tuple[int, ...]) -> None:
        self._size -= len(self._states.pop(key)[1])


def context_layout(params: Any) -> str:
    """What a saved state's bytes depend on besides the model: the KV types, and flash
    attention, without which llama.cpp stores V transposed (a state of the other layout is
    refused, "incompatible V transposition")."""
    return f"fa{params.flash_attn_type}:k{params.type_k}:v{params.type_v}"


# ``Llama.save_state`` also copies its logits array, which without ``logits_all`` is
# n_batch x n_vocab floats (300 MB for Qwen's vocabulary) that strata never reads: the
# sequence-level state API copies only the KV cells. A sequence's state carries its cells'
# positions, not where they lay, so one saved from the model's own context (sequence 0) loads
# into a slot of the batch context (sequence ``slot``) and back, as both keep one KV stream,
# when the two agree on ``context_layout``.


def read_seq(ctx: Any, seq: int) -> bytes:
    """The KV cells sequence ``seq`` of the llama.cpp context ``ctx`` holds, as bytes."""
    import ctypes

    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(ctx, seq)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, seq)
    return bytes(memoryview(buffer)[:written])


def write_seq(ctx: Any, state: bytes, seq: int) -> bool:
    """Replace sequence ``seq`` of ``ctx`` with a state ``read_seq`` copied out; False when
    llama.cpp refused it (no room), and then what the sequence holds is unknown."""
    import ctypes

    import llama_cpp

    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    return bool(llama_cpp.llama_state_seq_set_data(ctx, buffer, len(state), seq) == len(state))


def _save(llm: Any) -> bytes:
    return read_seq(llm._ctx.ctx, 0)


def _load(llm: Any, tokens: tuple[int, ...], state: bytes) -> bool:
    if not write_seq(llm._ctx.ctx, state, 0):
        llm.reset()  # a failed restore leaves the context unknown: start it afresh
        return False
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    llm._requires_eval = True  # the logits are not restored: generate evaluates one token
    return True
