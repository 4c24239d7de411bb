"""Per-token statistics of a text under one or more language models, from raw logits.

Every zero-shot detector here is a function of a few numbers per scored token, so the
expensive part (a forward pass with logits at every position) runs once per model and is
reduced at once to these numbers; the ``n × vocab`` logits are never kept. For models ``q``
and ``s`` and the token ``x_t`` that actually follows position ``t``:

    nll[s]_t        = -log p_s(x_t)                       surprise of the real token
    cross[q, s]_t   = -Σ_v p_q(v) log p_s(v)              expected surprise, ``v ~ q``
    cross_sq[q, s]_t = Σ_v p_q(v) (log p_s(v))²           its second moment

With ``q == s``, ``cross`` is the model's entropy. Binoculars needs ``cross[observer,
performer]``; Fast-DetectGPT's analytic criterion needs the mean and variance of ``log p_s``
under ``q``, that is ``cross`` and ``cross_sq``.

The reduction runs over blocks of positions so its temporaries stay a few tens of MB however
long the window is (a row of Qwen's logits is 152k floats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Pair = tuple[str, str]
"""(reference model ``q``, scoring model ``s``): which model's distribution the expectation
is taken under, and which model's log-probabilities are averaged."""

_BLOCK_ROWS = 32


@dataclass
class TokenStats:
    """The per-token numbers of one text (or one window of it), all arrays of equal length.

    ``nll`` is keyed by model name, ``cross`` and ``cross_sq`` by :data:`Pair`.
    """

    nll: dict[str, FloatArray] = field(default_factory=dict)
    cross: dict[Pair, FloatArray] = field(default_factory=dict)
    cross_sq: dict[Pair, FloatArray] = field(default_factory=dict)

    def __len__(self) -> int:
        for values in self.nll.values():
            return len(values)
        return 0

    def select(self, index: slice | npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> TokenStats:
        """The same statistics restricted to some tokens (a sentence, a prefix)."""
        return TokenStats(
            nll={k: v[index] for k, v in self.nll.items()},
            cross={k: v[index] for k, v in self.cross.items()},
            cross_sq={k: v[index] for k, v in self.cross_sq.items()},
        )

    @staticmethod
    def concat(parts: Sequence[TokenStats]) -> TokenStats:
        """Join the stats of consecutive windows into the stats of the whole text."""
        if not parts:
            return TokenStats()
        first = parts[0]
        return TokenStats(
            nll={k: np.concatenate([p.nll[k] for p in parts]) for k in first.nll},
            cross={k: np.concatenate([p.cross[k] for p in parts]) for k in first.cross},
            cross_sq={k: np.concatenate([p.cross_sq[k] for p in parts]) for k in first.cross_sq},
        )

    def to_arrays(self) -> dict[str, FloatArray]:
        """Flat name → array mapping (for ``numpy.savez``); :meth:`from_arrays` inverts it."""
        out: dict[str, FloatArray] = {}
        for model, values in self.nll.items():
            out[f"nll|{model}"] = values
        for (q, s), values in self.cross.items():
            out[f"cross|{q}|{s}"] = values
        for (q, s), values in self.cross_sq.items():
            out[f"cross_sq|{q}|{s}"] = values
        return out

    @staticmethod
    def from_arrays(arrays: Mapping[str, FloatArray]) -> TokenStats:
        stats = TokenStats()
        for key, values in arrays.items():
            kind, *names = key.split("|")
            array = np.asarray(values, dtype=np.float64)
            if kind == "nll":
                stats.nll[names[0]] = array
            elif kind == "cross":
                stats.cross[(names[0], names[1])] = array
            elif kind == "cross_sq":
                stats.cross_sq[(names[0], names[1])] = array
        return stats


def log_softmax(logits: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Row-wise log-softmax in float32 (stable: the row maximum is subtracted first)."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def token_stats(
    logits: Mapping[str, npt.NDArray[np.floating]],
    targets: npt.NDArray[np.integer],
    pairs: Sequence[Pair],
) -> TokenStats:
    """Reduce each model's logits (``n × vocab``, row ``t`` predicting ``targets[t]``) to
    :class:`TokenStats` for every model and every requested ``(q, s)`` pair.

    All models must share one vocabulary (same tokenizer), which is what makes the cross
    terms meaningful; a vocabulary size mismatch raises ``ValueError``.
    """
    names = list(logits)
    n = len(targets)
    shapes = {name: np.shape(logits[name]) for name in names}
    vocab = {shape[1] for shape in shapes.values()}
    if len(vocab) > 1:
        raise ValueError(f"models disagree on vocabulary size: {shapes}")
    for name, shape in shapes.items():
        if shape[0] != n:
            raise ValueError(f"{name}: {shape[0]} logit rows for {n} targets")
    for q, s in pairs:
        if q not in logits or s not in logits:
            raise ValueError(f"pair ({q}, {s}) names a model without logits")
    stats = TokenStats(
        nll={name: np.empty(n) for name in names},
        cross={pair: np.empty(n) for pair in pairs},
        cross_sq={pair: np.empty(n) for pair in pairs},
    )
    rows = np.arange(n)
    target_ids = np.asarray(targets, dtype=np.intp)
    references = {q for q, _ in pairs}
    squared = {s for _, s in pairs}
    for start in range(0, n, _BLOCK_ROWS):
        block = slice(start, min(n, start + _BLOCK_ROWS))
        logp = {name: log_softmax(logits[name][block]) for name in names}
        for name in names:
            stats.nll[name][block] = -logp[name][rows[block] - start, target_ids[block]]
        probs = {q: np.exp(logp[q]) for q in references}
        logp_sq = {s: np.square(logp[s]) for s in squared}
        for q, s in pairs:
            # einsum fuses the product and the row sum: one pass, no n × vocab temporary
            stats.cross[(q, s)][block] = -np.einsum("ij,ij->i", probs[q], logp[s])
            stats.cross_sq[(q, s)][block] = np.einsum("ij,ij->i", probs[q], logp_sq[s])
    return stats
