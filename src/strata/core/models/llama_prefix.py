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
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
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
    """

    def __init__(self, budget_bytes: int, min_tokens: int = 256, min_gain: int = 32) -> None:
        self.budget_bytes = budget_bytes
        self.min_tokens = min_tokens
        self.min_gain = min_gain
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
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

    def best(self, tokens: Sequence[int]) -> tuple[int, tuple[int, ...] | None]:
        """The kept state sharing the longest prefix with ``tokens``, and that length."""
        best_len, best_key = 0, None
        for key in self._states:
            n = common_prefix(key, tokens)
            if n > best_len:
                best_len, best_key = n, key
        return best_len, best_key

    def restore(self, llm: Any, tokens: Sequence[int]) -> int:
        """Load the best kept state into ``llm`` when it shares more of ``tokens`` than the
        context does now; returns the prefix length the context then shares."""
        if not self.enabled:
            return 0
        current = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        with self._lock:
            found, key = self.best(tokens)
            if key is None or found < current + self.min_gain:
                self.misses += key is None or found <= current
                return current
            state = self._states[key]
            self._states.move_to_end(key)
        if not _load(llm, key, state):
            return 0
        self.hits += 1
        log.debug("prefix cache hit: %d of %d prompt tokens", found, len(tokens))
        return found

    def save(self, llm: Any) -> bool:
        """Keep ``llm``'s current context, evicting the oldest states past the budget."""
        n = int(llm.n_tokens)
        if not self.enabled or n < self.min_tokens:
            return False
        key = tuple(llm.input_ids[:n].tolist())
        with self._lock:
            if key in self._states:
                self._states.move_to_end(key)
                return True
            # A kept state that is a prefix of this one is now redundant.
            for old in [k for k in self._states if len(k) <= n and key[: len(k)] == k]:
                self._drop(old)
        state = _save(llm)
        size = len(state)
        if size > self.budget_bytes:
            return False
        with self._lock:
            self._states[key] = state
            self._size += size
            while self._size > self.budget_bytes:
                self._drop(next(iter(self._states)))
        return True

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._size = 0

    def _drop(self, key: tuple[int, ...]) -> None:
        self._size -= len(self._states.pop(key))


# ``Llama.save_state`` also copies its logits array, which without ``logits_all`` is
# n_batch x n_vocab floats (300 MB for Qwen's vocabulary) that strata never reads: the
# sequence-level state API copies only the KV cells.


def _save(llm: Any) -> bytes:
    import ctypes

    import llama_cpp

    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
    return bytes(memoryview(buffer)[:written])


def _load(llm: Any, tokens: tuple[int, ...], state: bytes) -> bool:
    import ctypes

    import llama_cpp

    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state), 0) != len(state):
        llm.reset()  # a failed restore leaves the context unknown: start it afresh
        return False
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    llm._requires_eval = True  # the logits are not restored: generate evaluates one token
    return True
