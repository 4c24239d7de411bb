"""Small pieces of the llama.cpp backend: its log routing, the last position's logits, and
the stop-sequence scans the sampler runs after every token."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from strata.core.models.base import TokenLogprob, TopLogprob

if TYPE_CHECKING:
    import numpy as np


def stop_holdback(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of ``text`` that could begin a stop sequence."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


# ggml's levels: 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation.
_LOG_LEVELS = {2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


@functools.cache
def route_llama_logs() -> Any:
    """Send llama.cpp's C-level log lines to the ``strata.llama`` logger (warnings and errors
    keep their level, chatter becomes DEBUG) instead of straight to stderr, where
    llama-cpp-python prints some of them even with ``verbose=False``. Cached: runs once, and
    the cache keeps the ctypes callback alive for as long as llama.cpp may call it."""
    import ctypes

    import llama_cpp

    logger = logging.getLogger("strata.llama")

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            logger.log(_LOG_LEVELS.get(level, logging.DEBUG), "%s", message)

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward


def last_logits(llama_cpp: Any, ctx: Any, n_vocab: int) -> np.ndarray:
    import numpy as np

    pointer = llama_cpp.llama_get_logits_ith(ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(n_vocab,))


def first_stop(text: str, stops: tuple[str, ...], start: int) -> int | None:
    found = [i for s in stops if (i := text.find(s, start)) >= 0]
    return min(found) if found else None


def token_logprob(llm: Any, token: int, piece: bytes, logits: np.ndarray, k: int) -> TokenLogprob:
    """The sampled token's logprob and the ``k`` most likely, from one log-softmax."""
    import numpy as np

    peak = float(logits.max())
    lse = peak + float(np.log(np.exp(logits - peak).sum()))
    top: tuple[TopLogprob, ...] = ()
    if k:
        idx = np.argpartition(logits, -k)[-k:]
        idx = idx[np.argsort(-logits[idx])]
        top = tuple(_top(llm, int(i), float(logits[i]) - lse) for i in idx)
    return TokenLogprob(
        token=piece.decode(errors="replace"),
        logprob=float(logits[token]) - lse,
        bytes=list(piece),
        top=top,
    )


def _top(llm: Any, token: int, logprob: float) -> TopLogprob:
    piece: bytes = llm.detokenize([token])
    return TopLogprob(piece.decode(errors="replace"), logprob, list(piece))
