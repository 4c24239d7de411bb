"""Any OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, hosted APIs).

One pooled ``httpx.AsyncClient`` per model. Connection failures are retried by the transport
(``connect_retries``); a request that reached the server is never retried, since it may have
been billed. httpx errors and the remote's error bodies are translated here, at the boundary,
into strata's exception tree.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from strata.config import ModelSpec
from strata.errors import BackendTimeout, BackendUnavailable, UpstreamError
from strata.models.base import (
    Backend,
    Capability,
    Chunk,
    GenerationRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)


class OpenAIBackend(Backend):
    kind = "openai"
    capabilities: frozenset[Capability] = frozenset(Capability)
    default_concurrency = 64

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        super().__init__(name, spec, home)
        assert spec.url is not None
        self.base_url = spec.url.rstrip("/")
        self.remote_name = spec.remote_name or name
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {}
            if self.spec.api_key_env and os.environ.get(self.spec.api_key_env):
                headers["Authorization"] = f"Bearer {os.environ[self.spec.api_key_env]}"
            concurrency = self.spec.max_concurrency or self.default_concurrency
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.spec.timeout_s, connect=10.0),
                limits=httpx.Limits(
                    max_connections=concurrency, max_keepalive_connections=concurrency
                ),
                transport=httpx.AsyncHTTPTransport(retries=self.spec.connect_retries),
            )
        return self._client

    async def unload(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {**request.passthrough, "model": self.remote_name}
        if request.kind == "chat":
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        body.update(temperature=p.temperature, top_p=p.top_p)
        if p.max_tokens is not None:
            body["max_tokens"] = p.max_tokens
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        if p.presence_penalty:
            body["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            body["frequency_penalty"] = p.frequency_penalty
        if p.logprobs:
            if request.kind == "chat":
                body["logprobs"] = True
                body["top_logprobs"] = p.top_logprobs
            else:
                body["logprobs"] = p.top_logprobs
        fmt = p.response_format
        if fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt.type == "json_schema":
            spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        path = "/chat/completions" if request.kind == "chat" else "/completions"
        body = self.body(request)
        try:
            if not request.stream:
                response = await self.client.post(path, json=body)
                if response.status_code >= 400:
                    raise self._upstream_error(response.status_code, response.content)
                yield _chunk_from_choice(request.kind, response.json(), final=True)
                return
            async with self.client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    raise self._upstream_error(response.status_code, await response.aread())
                async for chunk in self._parse_sse(request.kind, response):
                    yield chunk
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"model '{self.name}' at {self.base_url} timed out") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise BackendUnavailable(
                f"model '{self.name}' at {self.base_url} is unreachable: {exc}"
            ) from exc
        except json.JSONDecodeError as exc:
            raise UpstreamError(
                f"model '{self.name}' answered with invalid JSON", upstream_status=502
            ) from exc

    async def _parse_sse(self, kind: str, response: httpx.Response) -> AsyncIterator[Chunk]:
        usage: Usage | None = None
        finish: str | None = None
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                raise self._upstream_error(502, data.encode())
            if event.get("usage"):
                usage = _usage(event["usage"])
            for choice in event.get("choices") or []:
                chunk = _chunk_from_choice(kind, {"choices": [choice]}, final=False)
                finish = chunk.finish_reason or finish
                chunk.finish_reason = None
                if chunk.text or chunk.logprobs or chunk.extra:
                    yield chunk
        yield Chunk(finish_reason=finish or "stop", usage=usage or Usage(0, 0))

    def _upstream_error(self, status: int, content: bytes) -> UpstreamError:
        message, param = content.decode(errors="replace")[:500], None
        try:
            error = json.loads(content)["error"]
            message, param = error.get("message") or message, error.get("param")
        except (ValueError, KeyError, TypeError):
            pass
        return UpstreamError(
            f"model '{self.name}' returned {status}: {message}",
            upstream_status=status,
            param=param,
        )

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        try:
            response = await self.client.post(
                "/embeddings", json={"model": self.remote_name, "input": texts}
            )
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"model '{self.name}' timed out") from exc
        except httpx.NetworkError as exc:
            raise BackendUnavailable(f"model '{self.name}' is unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise self._upstream_error(response.status_code, response.content)
        payload = response.json()
        vectors = [item["embedding"] for item in sorted(payload["data"], key=lambda d: d["index"])]
        return vectors, int(payload.get("usage", {}).get("prompt_tokens", 0))


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def _logprobs(kind: str, raw: Any) -> list[TokenLogprob] | None:
    if not raw:
        return None
    if kind == "chat":
        return [
            TokenLogprob(
                token=t["token"],
                logprob=t["logprob"],
                bytes=t.get("bytes"),
                top=tuple(
                    TopLogprob(a["token"], a["logprob"], a.get("bytes"))
                    for a in t.get("top_logprobs") or []
                ),
            )
            for t in raw.get("content") or []
        ]
    tops = raw.get("top_logprobs") or [None] * len(raw.get("tokens", []))
    return [
        TokenLogprob(
            token=tok,
            logprob=lp,
            top=tuple(TopLogprob(k, v) for k, v in (top or {}).items()),
        )
        for tok, lp, top in zip(
            raw.get("tokens", []), raw.get("token_logprobs", []), tops, strict=False
        )
    ]


def _chunk_from_choice(kind: str, payload: dict[str, Any], *, final: bool) -> Chunk:
    choices = payload.get("choices") or [{}]
    choice = choices[0]
    extra: dict[str, Any] | None = None
    if kind == "chat":
        message = choice.get("message") or choice.get("delta") or {}
        text = message.get("content") or ""
        if message.get("tool_calls"):
            extra = {"tool_calls": message["tool_calls"]}
    else:
        text = choice.get("text") or ""
    usage = _usage(payload["usage"]) if final and payload.get("usage") else None
    if final and usage is None:
        usage = Usage(0, 0)
    return Chunk(
        text=text,
        logprobs=_logprobs(kind, choice.get("logprobs")),
        finish_reason=choice.get("finish_reason") or ("stop" if final else None),
        usage=usage,
        extra=extra,
    )
