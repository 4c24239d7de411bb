"""What the CLI talks to: the engine in-process, or a running strata server over HTTP.

Both yield the same ``Chunk``s, so ``strata chat`` and ``strata ask`` behave alike whether they
load the model themselves or use a server someone else started (``--url``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from strata.core.engine import Timings
from strata.core.errors import BackendUnavailable, StrataError, UpstreamError
from strata.core.kernel import Kernel
from strata.core.models.base import Chunk, GenerationRequest, Usage
from strata.core.settings import CoreSettings
from strata.core.turn import Turn


class Client(Protocol):
    """``stream`` runs one request; afterwards ``info`` holds its ``strata`` response field
    (route, citations, session, ...) and ``timings`` its timings."""

    info: dict[str, Any]

    def stream(
        self, model: str, request: GenerationRequest, options: dict[str, Any] | None = None
    ) -> AsyncIterator[Chunk]: ...

    async def models(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class LocalClient:
    """Runs models in this process (the CLI's default), through the same kernel as the server."""

    def __init__(self, settings: CoreSettings) -> None:
        self.kernel = Kernel(settings)
        self.engine = self.kernel.engine
        self.timings = Timings()
        self.info: dict[str, Any] = {}

    async def stream(
        self, model: str, request: GenerationRequest, options: dict[str, Any] | None = None
    ) -> AsyncIterator[Chunk]:
        self.timings = Timings()
        if request.kind != "chat":
            async for chunk in self.engine.generate(model, request, timings=self.timings):
                yield chunk
            return
        turn = Turn(model, request, options=dict(options or {}))
        stream = await self.kernel.service.stream(turn)
        async for _, chunk in stream:
            yield chunk
        result = stream.result
        self.timings = result.timings
        self.info = {"model": result.served_by, **result.report}

    async def models(self) -> list[dict[str, Any]]:
        return [
            {
                "id": name,
                "backend": h.backend.kind,
                "capabilities": sorted(c.value for c in h.backend.capabilities),
                "description": h.backend.spec.description,
            }
            for name, h in self.engine.models.items()
        ]

    async def close(self) -> None:
        await self.kernel.shutdown()


class HTTPClient:
    """Talks to a running strata (or any OpenAI-compatible) server."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=600)
        self.timings = Timings()
        self.info: dict[str, Any] = {}

    async def stream(
        self, model: str, request: GenerationRequest, options: dict[str, Any] | None = None
    ) -> AsyncIterator[Chunk]:
        p = request.params
        body: dict[str, Any] = {
            "model": model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": p.temperature,
        }
        if p.max_tokens:
            body["max_tokens"] = p.max_tokens
        if p.response_format.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        if options:
            body["strata"] = options
        if request.kind == "chat":
            path, body["messages"] = "/chat/completions", request.messages
        else:
            path, body["prompt"] = "/completions", request.prompt
        usage, finish = Usage(0, 0), "stop"
        try:
            async with self.http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    raise _error(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        raise _error(500, line[6:].encode())
                    if event.get("strata"):
                        self.info = event["strata"]
                    if event.get("usage"):
                        u = event["usage"]
                        usage = Usage(u["prompt_tokens"], u["completion_tokens"])
                    for choice in event.get("choices", []):
                        text = (choice.get("delta") or {}).get("content") or choice.get("text")
                        finish = choice.get("finish_reason") or finish
                        if text:
                            yield Chunk(text=text)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach {self.http.base_url}: {exc}") from exc
        yield Chunk(finish_reason=finish, usage=usage)

    async def models(self) -> list[dict[str, Any]]:
        try:
            response = await self.http.get("/models")
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response.status_code, response.content)
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def close(self) -> None:
        await self.http.aclose()


def _error(status: int, content: bytes) -> StrataError:
    try:
        message = json.loads(content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = content.decode(errors="replace")[:300]
    return UpstreamError(f"server answered {status}: {message}", upstream_status=status)
