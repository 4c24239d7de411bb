"""Any OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, hosted APIs).

One pooled ``aiohttp.ClientSession`` per model, made lazily inside the running event loop
(httpx's ``AsyncClient`` cost 1-3 ms of CPU per call here; aiohttp about 0.3 ms). A failure
to connect is retried ``connect_retries`` times; a request that reached the server is never
retried, since it may have been billed. aiohttp's errors and the remote's error bodies are
translated here, at the boundary, into strata's exception tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from strata.core.errors import BackendTimeout, BackendUnavailable, UpstreamError
from strata.core.models.base import (
    Backend,
    Capability,
    Chunk,
    GenerationRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from strata.core.settings import ModelSpec

CONNECT_TIMEOUT_S = 10.0
# Below the 5 s keep-alive of uvicorn (vLLM) and most servers, so a pooled connection is
# dropped by us before the server closes it under a request that could then not be retried.
KEEPALIVE_S = 4.0
RETRY_BACKOFF_S = 0.1  # doubled per retry, at most 1 s
# Failures before a single byte of the request reached the server: safe to retry.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class OpenAIBackend(Backend):
    kind = "openai"
    capabilities: frozenset[Capability] = frozenset(Capability)
    default_concurrency = 64

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        super().__init__(name, spec, home)
        assert spec.url is not None
        self.base_url = spec.url.rstrip("/")
        self.remote_name = spec.remote_name or name
        self._urls = {
            path: URL(self.base_url + path)
            for path in ("/chat/completions", "/completions", "/embeddings")
        }
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: asyncio.Task[None] | None = None
        self._proxy: str | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        """The pooled session of the running event loop (call it inside that loop).

        A session belongs to the loop it was made in; asked from another loop, the old one is
        handed back to its own loop to close and a new one is made.
        """
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop and not session.closed:
            return session
        self._abandon()
        headers = {"Content-Type": "application/json"}
        if self.spec.api_key_env and os.environ.get(self.spec.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.spec.api_key_env]}"
        concurrency = self.spec.max_concurrency or self.default_concurrency
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=KEEPALIVE_S),
            headers=headers,
            timeout=aiohttp.ClientTimeout(
                sock_connect=CONNECT_TIMEOUT_S, sock_read=self.spec.timeout_s
            ),
        )
        self._session, self._loop = session, loop
        self._proxy = _env_proxy(self.base_url)
        # asyncio.run (and uvicorn) cancel the tasks left when their loop ends: this one then
        # closes the session inside its loop, so a caller that never unloads leaks nothing.
        self._guard = loop.create_task(_close_at_loop_end(session))
        return session

    def _abandon(self) -> None:
        """Drop the current session without awaiting (it may belong to another loop)."""
        session, loop, guard = self._session, self._loop, self._guard
        self._session = self._loop = self._guard = None
        if session is None or session.closed or loop is None or guard is None:
            return
        if not loop.is_closed():
            # The guard closes the session on its own loop, once that loop runs (or ends).
            with contextlib.suppress(RuntimeError):  # closed meanwhile: its end ran the guard
                loop.call_soon_threadsafe(guard.cancel)

    async def unload(self) -> None:
        session, loop, guard = self._session, self._loop, self._guard
        if session is None:
            return
        if loop is not asyncio.get_running_loop():
            self._abandon()
            return
        self._session = self._loop = self._guard = None
        if guard is not None:
            guard.cancel()
        await session.close()

    @property
    def loaded(self) -> bool:
        return self._session is not None and not self._session.closed

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

    async def _post(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """Send ``body``; retry only when the connection was never made."""
        session = self.client
        url, data, proxy = self._urls[path], json.dumps(body), self._proxy
        attempt = 0
        while True:
            try:
                return await session.post(url, data=data, proxy=proxy)
            except _NOT_SENT:
                if attempt >= self.spec.connect_retries:
                    raise
                await asyncio.sleep(min(RETRY_BACKOFF_S * 2**attempt, 1.0))
                attempt += 1

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        path = "/chat/completions" if request.kind == "chat" else "/completions"
        try:
            response = await self._post(path, self.body(request))
            async with response:
                if response.status >= 400:
                    raise self._upstream_error(response.status, await response.read())
                if not request.stream:
                    payload = json.loads(await response.read())
                    yield _chunk_from_choice(request.kind, payload, final=True)
                    return
                async for chunk in self._parse_sse(request.kind, response.content):
                    yield chunk
        except TimeoutError as exc:  # aiohttp.ServerTimeoutError is one
            raise BackendTimeout(f"model '{self.name}' at {self.base_url} timed out") from exc
        except aiohttp.ClientError as exc:  # refused, reset, disconnected, truncated, garbled
            raise BackendUnavailable(
                f"model '{self.name}' at {self.base_url} is unreachable: {_describe(exc)}"
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UpstreamError(
                f"model '{self.name}' answered with invalid JSON", upstream_status=502
            ) from exc

    async def _parse_sse(self, kind: str, content: aiohttp.StreamReader) -> AsyncIterator[Chunk]:
        usage: Usage | None = None
        finish: str | None = None
        async for line in _lines(content):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                raise self._upstream_error(502, data)
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
            response = await self._post("/embeddings", {"model": self.remote_name, "input": texts})
            async with response:
                content = await response.read()
        except TimeoutError as exc:
            raise BackendTimeout(f"model '{self.name}' timed out") from exc
        except aiohttp.ClientError as exc:
            raise BackendUnavailable(
                f"model '{self.name}' is unreachable: {_describe(exc)}"
            ) from exc
        if response.status >= 400:
            raise self._upstream_error(response.status, content)
        try:
            payload = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UpstreamError(
                f"model '{self.name}' answered with invalid JSON", upstream_status=502
            ) from exc
        vectors = [item["embedding"] for item in sorted(payload["data"], key=lambda d: d["index"])]
        return vectors, int(payload.get("usage", {}).get("prompt_tokens", 0))


async def _close_at_loop_end(session: aiohttp.ClientSession) -> None:
    try:
        await asyncio.get_running_loop().create_future()  # until cancelled
    except asyncio.CancelledError:
        if not session.closed:
            await session.close()
        raise


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The body's lines, ``\\n``, ``\\r\\n`` or ``\\r`` ended, of any length (unlike
    ``StreamReader.readline``, whose limit a big event could pass)."""
    pending = b""
    async for data in content.iter_any():
        pending += data
        lines = pending.splitlines(keepends=True)
        # The last one may be incomplete, or a "\r" whose "\n" is still to come.
        pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
        for line in lines:
            yield line.rstrip(b"\r\n")
    if pending:
        yield pending.rstrip(b"\r\n")


def _describe(exc: aiohttp.ClientError) -> str:
    return str(exc) or type(exc).__name__


def _env_proxy(url: str) -> str | None:
    """The HTTP(S)_PROXY that applies to ``url`` (NO_PROXY honoured), as httpx found it."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


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
