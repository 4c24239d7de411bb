"""OpenAIBackend against a tiny real OpenAI-shaped upstream (Starlette under uvicorn, in a
thread): relays answers and streams with usage, and turns every way the upstream can fail
into strata's error tree (and so into the right HTTP status)."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from strata.core.engine import Engine, Timings
from strata.core.errors import BackendTimeout, BackendUnavailable, UpstreamError
from strata.core.models import remote
from strata.core.models.base import Chunk, GenerationRequest, ResponseFormat, SamplingParams
from strata.core.models.remote import OpenAIBackend
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, free_port
from tests.unit.conftest import assert_error_body, sdk, wait_until

TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
}


class Upstream:
    """What the fake upstream does depends on the model name it is asked for."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()  # lets "hang" requests finish at teardown

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            ]
        )

    async def _failure(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        body: dict[str, Any] = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        model = body.get("model")
        if model == "bad":
            error = {"message": "temperature is silly", "type": "x", "param": "temperature"}
            return body, JSONResponse({"error": error}, status_code=400)
        if model == "limited":
            return body, JSONResponse({"error": {"message": "slow down"}}, status_code=429)
        if model == "boom":
            return body, Response("internal kaboom", status_code=500)
        if model == "garbage":
            return body, Response("{not json", media_type="application/json")
        if model == "hang":  # past any client's timeout here, but not forever
            for _ in range(200):
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
            return body, JSONResponse({"error": {"message": "too late"}}, status_code=500)
        return body, None

    async def chat(self, request: Request) -> Response:
        body, failure = await self._failure(request)
        if failure is not None:
            return failure
        words = ["Hello", " from", " upstream"]
        if body.get("stream"):
            return self._stream(body, words, chat=True)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(words)}
        finish = "stop"
        if body.get("tools"):
            message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
            finish = "tool_calls"
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        if body.get("logprobs"):
            choice["logprobs"] = {
                "content": [
                    {
                        "token": w,
                        "logprob": -0.5,
                        "bytes": list(w.encode()),
                        "top_logprobs": [{"token": w, "logprob": -0.5, "bytes": None}],
                    }
                    for w in words
                ]
            }
        return JSONResponse(
            {
                "id": "up-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )

    async def completions(self, request: Request) -> Response:
        body, failure = await self._failure(request)
        if failure is not None:
            return failure
        words = [" jumps", " over"]
        if body.get("stream"):
            return self._stream(body, words, chat=False)
        choice: dict[str, Any] = {"index": 0, "text": "".join(words), "finish_reason": "length"}
        if body.get("logprobs") is not None:
            choice["logprobs"] = {
                "tokens": words,
                "token_logprobs": [-0.1, -0.2],
                "top_logprobs": [{w: -0.1} for w in words],
                "text_offset": [0, 6],
            }
        return JSONResponse(
            {
                "id": "up-2",
                "object": "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
            }
        )

    def _stream(self, body: dict[str, Any], words: list[str], *, chat: bool) -> Response:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({'id': 'up', 'choices': choices, **extra})}\n\n".encode()

        def piece(text: str, finish: str | None = None) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            return {"index": 0, "text": text, "finish_reason": finish}

        async def gen() -> AsyncIterator[bytes]:
            if chat:
                yield event([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
            yield b": keep-alive comment\n\n"
            for w in words:
                yield event([piece(w)])
            if body.get("messages") and body["messages"][-1].get("content") == "fail midway":
                yield f"data: {json.dumps({'error': {'message': 'upstream died'}})}\n\n".encode()
                return
            yield event([piece("", "length")])
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 0}
                yield event([], usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    async def embeddings(self, request: Request) -> Response:
        body, failure = await self._failure(request)
        if failure is not None:
            return failure
        inputs = body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i), 0.5]}
            for i in range(len(inputs))
        ]
        return JSONResponse(
            {"object": "list", "data": data[::-1], "usage": {"prompt_tokens": 9}}
        )  # out of order on purpose


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[tuple[Upstream, LiveServer]]:
    up = Upstream()
    with LiveServer(up.app()) as server:
        yield up, server
        up.release.set()


@pytest.fixture
def upstream(upstream_server: tuple[Upstream, LiveServer]) -> tuple[Upstream, LiveServer]:
    up, _ = upstream_server
    up.bodies.clear()
    up.headers.clear()
    return upstream_server


def backend(url: str, remote_name: str = "up-model", **spec: Any) -> OpenAIBackend:
    spec.setdefault("connect_retries", 0)
    return OpenAIBackend(
        "r", ModelSpec(backend="openai", url=url, remote_name=remote_name, **spec), Path("/tmp")
    )


def chat(stream: bool = False, content: str = "hi", **params: Any) -> GenerationRequest:
    return GenerationRequest(
        kind="chat",
        params=SamplingParams(**params),
        messages=[{"role": "user", "content": content}],
        stream=stream,
    )


def collect(b: OpenAIBackend, request: GenerationRequest) -> list[Chunk]:
    async def go() -> list[Chunk]:
        try:
            return [c async for c in b.generate(request)]
        finally:
            await b.unload()

    return asyncio.run(asyncio.wait_for(go(), timeout=10))


# ---- the backend on its own ----


def test_non_stream_relay(upstream: tuple[Upstream, LiveServer]) -> None:
    up, server = upstream
    chunks = collect(backend(server.url), chat(temperature=0.2, max_tokens=5, stop=("x",)))
    assert len(chunks) == 1
    (chunk,) = chunks
    assert chunk.text == "Hello from upstream"
    assert chunk.finish_reason == "stop"
    assert chunk.usage is not None
    assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) == (7, 3)
    body = up.bodies[0]
    assert body["model"] == "up-model"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.2, 5, ["x"])
    assert "stream" not in body


def test_stream_relay_with_usage(upstream: tuple[Upstream, LiveServer]) -> None:
    up, server = upstream
    chunks = collect(backend(server.url), chat(stream=True))
    assert [c.text for c in chunks[:-1]] == ["Hello", " from", " upstream"]
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.text == ""
    assert last.finish_reason == "length"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, 3)
    assert up.bodies[0]["stream"] is True
    assert up.bodies[0]["stream_options"] == {"include_usage": True}


def test_completion_relay(upstream: tuple[Upstream, LiveServer]) -> None:
    up, server = upstream
    request = GenerationRequest(
        kind="completion",
        params=SamplingParams(logprobs=True, top_logprobs=1),
        prompt="The fox",
    )
    (chunk,) = collect(backend(server.url), request)
    assert chunk.text == " jumps over"
    assert chunk.finish_reason == "length"
    assert chunk.logprobs is not None
    assert [t.token for t in chunk.logprobs] == [" jumps", " over"]
    assert chunk.logprobs[0].top[0].token == " jumps"
    body = up.bodies[0]
    assert body["prompt"] == "The fox"
    assert body["logprobs"] == 1  # the completions API takes an int


def test_body_maps_every_parameter() -> None:
    b = backend("http://127.0.0.1:9/v1/")
    assert b.base_url == "http://127.0.0.1:9/v1"
    request = chat(
        stream=True,
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        logprobs=True,
        top_logprobs=2,
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}, strict=True),
    )
    request.passthrough = {"tools": [{"type": "function"}], "user": "u"}
    body = b.body(request)
    assert body["model"] == "up-model"
    assert (body["seed"], body["presence_penalty"], body["frequency_penalty"]) == (3, 0.5, 0.25)
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object"}, "strict": True},
    }
    assert body["tools"] == [{"type": "function"}]
    assert body["user"] == "u"
    assert body["stream_options"] == {"include_usage": True}
    plain = b.body(chat())
    for absent in ("max_tokens", "stop", "seed", "logprobs", "response_format", "stream"):
        assert absent not in plain
    json_object = b.body(chat(response_format=ResponseFormat(type="json_object")))
    assert json_object["response_format"] == {"type": "json_object"}


def test_remote_name_defaults_to_model_name() -> None:
    b = OpenAIBackend("gpt-x", ModelSpec(backend="openai", url="http://h/v1"))
    assert b.remote_name == "gpt-x"
    assert b.body(chat())["model"] == "gpt-x"


def test_api_key_from_env(
    upstream: tuple[Upstream, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    up, server = upstream
    monkeypatch.setenv("UPSTREAM_KEY", "sk-test")
    collect(backend(server.url, api_key_env="UPSTREAM_KEY"), chat())
    collect(backend(server.url, api_key_env="UNSET_KEY_VAR"), chat())
    assert up.headers[0]["authorization"] == "Bearer sk-test"
    assert up.headers[0]["content-type"] == "application/json"
    assert "authorization" not in up.headers[1]


def test_upstream_400_keeps_message_and_status(upstream: tuple[Upstream, LiveServer]) -> None:
    _, server = upstream
    for stream in (False, True):
        with pytest.raises(UpstreamError) as info:
            collect(backend(server.url, remote_name="bad"), chat(stream=stream))
        error = info.value
        assert error.status_code == 400
        assert error.upstream_status == 400
        assert error.error_type == "invalid_request_error"
        assert error.param == "temperature"
        assert "temperature is silly" in error.message
        assert "returned 400" in error.message


def test_upstream_500_is_502(upstream: tuple[Upstream, LiveServer]) -> None:
    _, server = upstream
    for stream in (False, True):
        with pytest.raises(UpstreamError) as info:
            collect(backend(server.url, remote_name="boom"), chat(stream=stream))
        assert info.value.status_code == 502
        assert info.value.upstream_status == 500
        assert info.value.code == "upstream_error"
        assert "internal kaboom" in info.value.message


def test_upstream_invalid_json(upstream: tuple[Upstream, LiveServer]) -> None:
    _, server = upstream
    with pytest.raises(UpstreamError, match="invalid JSON") as info:
        collect(backend(server.url, remote_name="garbage"), chat())
    assert info.value.status_code == 502


def test_upstream_error_event_mid_stream(upstream: tuple[Upstream, LiveServer]) -> None:
    _, server = upstream
    b = backend(server.url)
    seen: list[str] = []

    async def go() -> None:
        try:
            async for c in b.generate(chat(stream=True, content="fail midway")):
                seen.append(c.text)
        finally:
            await b.unload()

    with pytest.raises(UpstreamError, match="upstream died"):
        asyncio.run(go())
    assert seen == ["Hello", " from", " upstream"]


def test_connection_refused_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    for stream in (False, True):
        with pytest.raises(BackendUnavailable) as info:
            collect(backend(url, connect_retries=1), chat(stream=stream))
        assert info.value.status_code == 503
        assert "unreachable" in info.value.message


def test_slow_upstream_times_out(upstream: tuple[Upstream, LiveServer]) -> None:
    _, server = upstream
    for stream in (False, True):
        with pytest.raises(BackendTimeout) as info:
            collect(backend(server.url, remote_name="hang", timeout_s=0.2), chat(stream=stream))
        assert info.value.status_code == 504
        assert "timed out" in info.value.message


def test_embeddings_relay_and_errors(upstream: tuple[Upstream, LiveServer]) -> None:
    up, server = upstream

    async def go() -> None:
        b = backend(server.url)
        try:
            vectors, tokens = await b.embed(["a", "b", "c"])
            assert vectors == [[0.0, 0.5], [1.0, 0.5], [2.0, 0.5]]  # re-sorted by index
            assert tokens == 9
            assert up.bodies[-1] == {"model": "up-model", "input": ["a", "b", "c"]}
        finally:
            await b.unload()
        bad = backend(server.url, remote_name="bad")
        try:
            with pytest.raises(UpstreamError, match="temperature is silly"):
                await bad.embed(["a"])
        finally:
            await bad.unload()
        down = backend(f"http://127.0.0.1:{free_port()}/v1")
        try:
            with pytest.raises(BackendUnavailable):
                await down.embed(["a"])
        finally:
            await down.unload()

    asyncio.run(go())


def test_client_lifecycle() -> None:
    b = backend("http://127.0.0.1:9/v1", max_concurrency=3)

    async def go() -> None:
        assert not b.loaded
        client = b.client
        assert b.client is client  # pooled, built once
        assert b.loaded
        await b.unload()
        assert not b.loaded
        await b.unload()  # twice is fine

    asyncio.run(go())


# ---- retries, connection handling and event loops ----

CHAT_OK = json.dumps(
    {
        "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
).encode()

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


def answer(status: int, body: bytes, content_type: str = "application/json") -> Reply:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return reply


async def hang_up(writer: asyncio.StreamWriter) -> None:
    """Read the request, then close without a word (the request did reach the server)."""


class RawUpstream:
    """A bare HTTP/1.1 server in the test's own event loop that counts the requests that
    reached it (read in full) and answers each with ``reply``."""

    def __init__(self, reply: Reply, port: int = 0) -> None:
        self.reply, self.port, self.hits = reply, port, 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            self.hits += 1
            await self.reply(writer)
        finally:
            writer.close()
            await writer.wait_closed()


def test_connect_failure_is_retried_until_the_upstream_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "RETRY_BACKOFF_S", 0.001)
    real_post = aiohttp.ClientSession.post
    up = RawUpstream(answer(200, CHAT_OK), port=free_port())
    attempts = 0

    async def counting_post(self: aiohttp.ClientSession, *args: Any, **kw: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts == 2:  # the first one was refused: the upstream comes up now
            await up.start()
        return await real_post(self, *args, **kw)

    monkeypatch.setattr(aiohttp.ClientSession, "post", counting_post)

    async def go() -> list[Chunk]:
        b = backend(up.url, connect_retries=2)
        try:
            return [c async for c in b.generate(chat())]
        finally:
            await b.unload()
            await up.stop()

    chunks = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert [c.text for c in chunks] == ["ok"]
    assert (attempts, up.hits) == (2, 1)


def test_connection_refused_is_retried_connect_retries_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "RETRY_BACKOFF_S", 0.001)
    real_post = aiohttp.ClientSession.post
    attempts = 0

    async def counting_post(self: aiohttp.ClientSession, *args: Any, **kw: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await real_post(self, *args, **kw)

    monkeypatch.setattr(aiohttp.ClientSession, "post", counting_post)
    url = f"http://127.0.0.1:{free_port()}/v1"
    for retries in (0, 3):
        for stream in (False, True):
            attempts = 0
            with pytest.raises(BackendUnavailable, match="unreachable") as info:
                collect(backend(url, connect_retries=retries), chat(stream=stream))
            assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
            assert attempts == retries + 1, (retries, stream)


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_that_reached_the_upstream_is_never_retried(stream: bool) -> None:
    async def go(reply: Reply) -> tuple[RawUpstream, BaseException]:
        up = await RawUpstream(reply).start()
        b = backend(up.url, connect_retries=3)
        try:
            with pytest.raises((UpstreamError, BackendUnavailable)) as info:
                async for _ in b.generate(chat(stream=stream)):
                    pass
            return up, info.value
        finally:
            await b.unload()
            await up.stop()

    up, error = asyncio.run(asyncio.wait_for(go(answer(500, b"kaboom")), timeout=10))
    assert isinstance(error, UpstreamError)
    assert (error.status_code, error.upstream_status) == (502, 500)
    assert up.hits == 1
    up, error = asyncio.run(asyncio.wait_for(go(hang_up), timeout=10))
    assert isinstance(error, BackendUnavailable)
    assert isinstance(error.__cause__, aiohttp.ServerDisconnectedError)
    assert up.hits == 1


def sse(*events: Any) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\r\n\r\n".encode() for e in events) + b"data: [DONE]\r\n"


def test_stream_lines_of_any_length_and_ending() -> None:
    big = "x" * 300_000  # past aiohttp's readline limit (128 KiB)
    delta = {"choices": [{"index": 0, "delta": {"content": big}, "finish_reason": None}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    body = sse(delta, end, {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    body = body.replace(b"\r\n\r\ndata", b"\r\rdata", 1)  # bare CRs end lines too

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for i in range(0, len(body), 7_000):  # split mid-line, and between CR and LF
            writer.write(body[i : i + 7_000])
            await writer.drain()
            await asyncio.sleep(0)

    async def go() -> list[Chunk]:
        up = await RawUpstream(reply).start()
        b = backend(up.url)
        try:
            return [c async for c in b.generate(chat(stream=True))]
        finally:
            await b.unload()
            await up.stop()

    chunks = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert [c.text for c in chunks] == [big, ""]
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2


@pytest.mark.parametrize("failure", ["stall", "truncate"])
def test_stream_failing_midway(failure: str) -> None:
    delta = {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]}
    first = f"data: {json.dumps(delta)}\n\n".encode()

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: 100000\r\n\r\n" + first
        )
        await writer.drain()
        if failure == "stall":
            await asyncio.sleep(2)

    async def go() -> tuple[list[str], BaseException]:
        up = await RawUpstream(reply).start()
        b = backend(up.url, timeout_s=0.2)
        seen: list[str] = []
        try:
            with pytest.raises((BackendTimeout, BackendUnavailable)) as info:
                async for c in b.generate(chat(stream=True)):
                    seen.append(c.text)
            return seen, info.value
        finally:
            await b.unload()
            await up.stop()

    seen, error = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert seen == ["a"]
    expected = BackendTimeout if failure == "stall" else BackendUnavailable
    assert isinstance(error, expected)


def test_session_is_per_event_loop_and_closed_when_its_loop_ends(
    upstream: tuple[Upstream, LiveServer],
) -> None:
    _, server = upstream
    b = backend(server.url)
    sessions: list[aiohttp.ClientSession] = []

    async def once() -> str:
        sessions.append(b.client)
        return "".join([c.text async for c in b.generate(chat())])

    # No unload at all: asyncio.run ends each loop, and the session goes with it.
    assert asyncio.run(once()) == "Hello from upstream"
    assert sessions[0].closed
    assert not b.loaded
    assert asyncio.run(once()) == "Hello from upstream"
    assert sessions[1] is not sessions[0]
    assert sessions[1].closed
    gc.collect()  # an unclosed session or connector would warn (an error here) when collected


def test_session_of_a_loop_in_another_thread_is_closed_in_that_loop(
    upstream: tuple[Upstream, LiveServer],
) -> None:
    _, server = upstream
    b = backend(server.url)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def once() -> str:
        return "".join([c.text async for c in b.generate(chat())])

    async def session() -> aiohttp.ClientSession:
        return b.client

    try:
        assert asyncio.run_coroutine_threadsafe(once(), loop).result(10) == "Hello from upstream"
        first = asyncio.run_coroutine_threadsafe(session(), loop).result(10)

        async def elsewhere() -> None:
            try:
                assert await once() == "Hello from upstream"
                assert b.client is not first
            finally:
                await b.unload()

        asyncio.run(elsewhere())
        wait_until(lambda: first.closed, what="the first loop to close its session")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert not b.loaded
    gc.collect()


# ---- end to end: strata in front of the upstream, through the SDK ----


@pytest.fixture(scope="module")
def gateway_server(
    upstream_server: tuple[Upstream, LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Upstream, openai.OpenAI, Engine]]:
    up, server = upstream_server
    down = f"http://127.0.0.1:{free_port()}/v1"

    def spec(remote: str, url: str = server.url, **extra: Any) -> ModelSpec:
        return ModelSpec(backend="openai", url=url, remote_name=remote, connect_retries=0, **extra)

    models = {
        "remote": spec("up-model", price_input_per_mtok=1.0),
        "bad": spec("bad"),
        "boom": spec("boom"),
        "limited": spec("limited"),
        "down": spec("x", url=down),
        "hang": spec("hang", timeout_s=0.2),
    }
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, bundled_models=False, models=models)
    engine = Engine(settings)
    with LiveServer(create_app(settings, engine)) as strata, sdk(strata.url) as client:
        yield up, client, engine


@pytest.fixture
def gateway(
    gateway_server: tuple[Upstream, openai.OpenAI, Engine],
    upstream: tuple[Upstream, LiveServer],
) -> tuple[Upstream, openai.OpenAI, Engine]:
    return gateway_server


def test_e2e_chat(gateway: tuple[Upstream, openai.OpenAI, Engine]) -> None:
    up, client, _ = gateway
    r = client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1
    )
    assert r.model == "remote"
    assert r.choices[0].message.content == "Hello from upstream"
    assert r.usage is not None and r.usage.prompt_tokens == 7
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert [t.token for t in lp.content] == ["Hello", " from", " upstream"]
    assert (r.model_extra or {})["strata"]["model"] == "remote"
    assert up.bodies[-1]["model"] == "up-model"


def test_e2e_stream(gateway: tuple[Upstream, openai.OpenAI, Engine]) -> None:
    _, client, _ = gateway
    chunks = list(
        client.chat.completions.create(
            model="remote",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from upstream"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_e2e_completion_and_embeddings(gateway: tuple[Upstream, openai.OpenAI, Engine]) -> None:
    _, client, _ = gateway
    r = client.completions.create(model="remote", prompt="The fox", logprobs=1)
    assert r.choices[0].text == " jumps over"
    assert r.choices[0].logprobs is not None
    assert r.choices[0].logprobs.tokens == [" jumps", " over"]
    e = client.embeddings.create(model="remote", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in e.data] == [[0.0, 0.5], [1.0, 0.5]]


def test_e2e_tool_calls(gateway: tuple[Upstream, openai.OpenAI, Engine]) -> None:
    up, client, _ = gateway
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    r = client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "hi"}], tools=tools
    )
    message = r.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert message.tool_calls[0].id == "call_1"
    assert up.bodies[-1]["tools"] == tools


def test_e2e_errors(gateway: tuple[Upstream, openai.OpenAI, Engine]) -> None:
    _, client, engine = gateway
    messages: Any = [{"role": "user", "content": "hi"}]
    cases: list[tuple[str, type[openai.APIStatusError], int, str]] = [
        ("bad", openai.BadRequestError, 400, "temperature is silly"),
        ("limited", openai.RateLimitError, 429, "slow down"),
        ("boom", openai.InternalServerError, 502, "internal kaboom"),
        ("down", openai.InternalServerError, 503, "unreachable"),
        ("hang", openai.InternalServerError, 504, "timed out"),
    ]
    for model, cls, status, text in cases:
        for stream in (False, True):
            with pytest.raises(cls) as info:
                client.chat.completions.create(model=model, messages=messages, stream=stream)
            assert info.value.status_code == status, (model, stream)
            error = assert_error_body(info.value.response.json())
            assert text in error["message"], (model, error)
            assert "Traceback" not in error["message"]
    assert all(h.scheduler.active == 0 for h in engine.models.values())


def test_e2e_error_mid_stream(gateway: tuple[Upstream, openai.OpenAI, Engine]) -> None:
    _, client, _ = gateway
    stream = client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "fail midway"}], stream=True
    )
    parts = []
    with pytest.raises(openai.APIError, match="upstream died"):
        for chunk in stream:
            parts.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(parts) == "Hello from upstream"


def test_engine_timings_for_remote(upstream: tuple[Upstream, LiveServer]) -> None:
    _, server = upstream
    spec = ModelSpec(backend="openai", url=server.url, remote_name="up-model")
    engine = Engine(Settings(bundled_models=False, models={"remote": spec}))
    timings = Timings()

    async def go() -> list[Chunk]:
        try:
            return [c async for c in engine.generate("remote", chat(stream=True), timings=timings)]
        finally:
            await engine.shutdown()

    chunks = asyncio.run(go())
    assert "".join(c.text for c in chunks) == "Hello from upstream"
    assert chunks[-1].usage is not None
    assert timings.ttft_s is not None and timings.total_s >= timings.ttft_s
    assert timings.prompt_tokens_per_s is not None
    assert not engine.get("remote").backend.loaded  # shutdown closed the pool
