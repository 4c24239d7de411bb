"""The prompt cache's bookkeeping: longest-prefix choice, the gain threshold, LRU eviction
within the byte budget (the llama.cpp state copy itself is exercised by the real-model test)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from strata.core.models import llama_prefix
from strata.core.models.llama_prefix import PrefixCache, common_prefix


class FakeLlm:
    def __init__(self) -> None:
        self.input_ids = np.zeros(4096, dtype=np.intc)
        self.n_tokens = 0
        self.context_params = SimpleNamespace(flash_attn_type=0, type_k=1, type_v=1)
        self.loaded: list[tuple[int, ...]] = []

    def hold(self, tokens: list[int]) -> None:
        self.input_ids[: len(tokens)] = tokens
        self.n_tokens = len(tokens)


@pytest.fixture(autouse=True)
def fake_state(monkeypatch: pytest.MonkeyPatch) -> None:
    def save(llm: Any) -> bytes:
        return bytes(10 * llm.n_tokens)  # 10 bytes a token

    def load(llm: Any, tokens: tuple[int, ...], state: bytes) -> bool:
        assert len(state) == 10 * len(tokens)
        llm.loaded.append(tokens)
        llm.hold(list(tokens))
        return True

    monkeypatch.setattr(llama_prefix, "_save", save)
    monkeypatch.setattr(llama_prefix, "_load", load)


def test_common_prefix_across_slices() -> None:
    a = list(range(300))
    assert common_prefix(a, a) == 300
    assert common_prefix(a, a[:130]) == 130
    assert common_prefix(a, [*a[:129], -1, *a[130:]]) == 129
    assert common_prefix(a, [5]) == 0
    assert common_prefix([], a) == 0


def test_restores_the_longest_matching_prefix() -> None:
    cache, llm = PrefixCache(10**6, min_tokens=4, min_gain=2), FakeLlm()
    system = list(range(100, 200))
    for tail in ([1, 2, 3], [4, 5, 6, 7, 8]):
        llm.hold(system[:50] + tail)
        assert cache.save(llm)
    llm.hold([*system, 9])
    assert cache.save(llm)
    llm.hold([7, 7, 7])  # another request in between
    assert cache.restore(llm, [*system, 42]) == 100
    assert llm.loaded == [(*system, 9)]
    assert llm.n_tokens == 101 and cache.hits == 1


def test_no_restore_when_the_context_already_holds_as_much() -> None:
    cache, llm = PrefixCache(10**6, min_tokens=4, min_gain=8), FakeLlm()
    llm.hold(list(range(40)))
    cache.save(llm)
    llm.hold(list(range(35)))  # the context shares 35; the cache only 5 more (< min_gain)
    assert cache.restore(llm, list(range(60))) == 35
    assert llm.loaded == []


def test_budget_evicts_least_recently_used_and_skips_short_contexts() -> None:
    cache, llm = PrefixCache(2500, min_tokens=50, min_gain=1), FakeLlm()
    llm.hold(list(range(20)))
    assert not cache.save(llm)  # under min_tokens
    for start in (1000, 2000, 3000):
        llm.hold(list(range(start, start + 100)))  # 1,000 bytes each
        assert cache.save(llm)
    assert len(cache) == 2 and cache.size_bytes == 2000
    llm.hold([0])
    assert cache.restore(llm, list(range(1000, 1100))) == 0  # evicted
    assert cache.restore(llm, list(range(2000, 2100))) == 100


def test_a_longer_context_replaces_its_own_prefix_and_zero_budget_is_off() -> None:
    cache, llm = PrefixCache(10**6, min_tokens=4, min_gain=1), FakeLlm()
    llm.hold(list(range(60)))
    cache.save(llm)
    llm.hold(list(range(90)))
    cache.save(llm)
    assert len(cache) == 1 and cache.size_bytes == 900
    off = PrefixCache(0)
    assert not off.save(llm) and off.restore(llm, list(range(90))) == 0


def test_a_state_loads_only_into_a_context_of_its_layout() -> None:
    """Flash attention changes how llama.cpp lays out V: a state saved without it is never
    offered to a context with it (llama.cpp would refuse it after the copy)."""
    cache, llm = PrefixCache(10**6, min_tokens=4, min_gain=1), FakeLlm()
    llm.hold(list(range(60)))
    assert cache.save(llm)
    other = llama_prefix.context_layout(SimpleNamespace(flash_attn_type=1, type_k=1, type_v=1))
    assert cache.find(list(range(70)), 0, other) is None
    own = llama_prefix.context_layout(llm.context_params)
    kept = cache.find(list(range(70)), 0, own)
    assert kept is not None and kept[0] == tuple(range(60))
    copies: list[int] = []

    def read() -> bytes:
        copies.append(1)
        return bytes(800)

    assert cache.keep(list(range(80)), read, other)
    assert copies == [1] and len(cache) == 2  # another layout's state is no redundant prefix
    assert cache.keep(list(range(80)), read, other)
    assert copies == [1]  # kept already: not copied out again
