"""A disk cache under a served model's backend, for benchmarks that replay the same requests:
a rerun (or a larger run over the same seeded items) pays only for the calls it adds.

Keyed by the model file's sha256 and the whole ``GenerationRequest`` (messages, sampling
parameters, response format), so a changed prompt or a different model never reuses an
answer. The chunks are stored with their logprobs, so confidence signals read exactly what
the model gave. Timings of a cached call are near zero: benchmarks that use this give the
models fixed prices instead of measured ones, so the cost of a call does not depend on
whether it was cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from strata.core.engine import Engine
from strata.core.models.base import Chunk, GenerationRequest, TokenLogprob, TopLogprob, Usage


def _key(sha: str, request: GenerationRequest) -> str:
    raw = json.dumps(dataclasses.asdict(request), sort_keys=True, default=str)
    return hashlib.sha256((sha + raw).encode()).hexdigest()


def _chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {
        "text": chunk.text,
        "finish_reason": chunk.finish_reason,
        "usage": None if chunk.usage is None else dataclasses.asdict(chunk.usage),
        "logprobs": None
        if chunk.logprobs is None
        else [
            [t.token, t.logprob, t.bytes, [[p.token, p.logprob] for p in t.top]]
            for t in chunk.logprobs
        ],
    }


def _chunk(data: dict[str, Any]) -> Chunk:
    logprobs = data["logprobs"]
    return Chunk(
        text=data["text"],
        finish_reason=data["finish_reason"],
        usage=None if data["usage"] is None else Usage(**data["usage"]),
        logprobs=None
        if logprobs is None
        else [
            TokenLogprob(tok, lp, b, tuple(TopLogprob(t, p) for t, p in top))
            for tok, lp, b, top in logprobs
        ],
    )


class ModelCallCache:
    """Wraps ``generate`` of the named models' backends in ``engine``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def install(self, engine: Engine, models: dict[str, str]) -> None:
        """``models``: served name → the weights' identity (sha256 of the model file)."""
        for name, sha in models.items():
            self._wrap(engine.get(name).backend, sha)

    def _wrap(self, backend: Any, sha: str) -> None:
        path = self.folder / f"{sha[:16]}.jsonl"
        table: dict[str, list[dict[str, Any]]] = {}
        read = [0]  # bytes of the file already in ``table``

        def catch_up() -> None:
            """Read what was appended since (another run filling the same cache ahead)."""
            if not path.exists():
                return
            with path.open("rb") as f:
                f.seek(read[0])
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line being written waits
            read[0] += len(complete)
            for line in complete.decode().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # blank, or a line cut short by an interrupted run
                    continue
                table[row["key"]] = row["chunks"]

        catch_up()
        original = backend.generate
        cache = self

        async def generate(request: GenerationRequest) -> AsyncIterator[Chunk]:
            key = _key(sha, request)
            if key not in table:
                catch_up()
            if key in table:
                cache.hits += 1
                for data in table[key]:
                    yield _chunk(data)
                return
            cache.misses += 1
            chunks: list[Chunk] = []
            async for chunk in original(request):
                chunks.append(chunk)
                yield chunk
            table[key] = [_chunk_json(c) for c in chunks]
            with path.open("a") as out:  # one write per line: readers see whole lines
                out.write(json.dumps({"key": key, "chunks": table[key]}) + "\n")

        backend.generate = generate
