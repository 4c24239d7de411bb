"""The wire-level parts of the gateway benchmark: an instant canned OpenAI-compatible
backend, a bare Starlette + httpx pass-through, and a raw HTTP/1.1 load generator.

Kept apart from ``gateway_overhead.py`` (which starts the targets and measures them) because
these run in child processes or on the hot path of the measurement, where every microsecond
spent in the client or the backend would be charged to the gateway under test.

Run as a child server: ``python bench/_gateway_wire.py backend PORT`` or
``python bench/_gateway_wire.py passthrough PORT UPSTREAM``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import httpx

T = TypeVar("T")

MODEL = "canned"
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
REQUEST_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello in one word."}],
    "max_tokens": 16,
}
BODY_BYTES = json.dumps(REQUEST_BODY, separators=(",", ":")).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# ---- the canned backend (runs in a child process) ----------------------------------------


def _canned_responses() -> tuple[bytes, bytes]:
    completion = {
        "id": "chatcmpl-canned",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "system_fingerprint": "canned",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 13, "completion_tokens": 3, "total_tokens": 16},
    }
    models = {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}],
    }

    def response(payload: dict[str, Any]) -> bytes:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
        )
        return head.encode() + body

    return response(completion), response(models)


def _chunked_end(buffer: bytearray, start: int) -> int | None:
    """Index just past a chunked body that begins at ``start``; None while incomplete."""
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)  # no trailers expected: just CRLF
            return None if trailer_end < 0 else trailer_end + 2
        if len(buffer) < pos + size + 2:
            return None
        pos += size + 2


class CannedProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: answers any POST with one fixed chat.completion, any GET
    with a model list. Raw asyncio (plus uvloop) so the backend is never the bottleneck."""

    completion, models = _canned_responses()

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            body_start = head_end + 4
            if b"\r\ntransfer-encoding: chunked" in head:
                end = _chunked_end(self.buffer, body_start)
                if end is None:
                    return
            else:
                length = 0
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    line_end = head.find(b"\r\n", at + 2)
                    length = int(head[at + 17 : line_end if line_end >= 0 else None])
                end = body_start + length
                if len(self.buffer) < end:
                    return
            del self.buffer[:end]
            self.transport.write(self.models if head.startswith(b"get ") else self.completion)
            if b"\r\nconnection: close" in head:
                self.transport.close()
                return


async def _serve_backend(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedProtocol, HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


# ---- the bare pass-through proxy (runs in a child process) -------------------------------


def _serve_passthrough(port: int, upstream: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    client = httpx.AsyncClient(base_url=upstream, limits=limits)

    async def chat(request: Request) -> Response:
        answer = await client.post(
            "/chat/completions",
            content=await request.body(),
            headers={"content-type": "application/json"},
        )
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"ok")

    routes = [Route(CHAT_PATH, chat, methods=["POST"]), Route("/health", health)]
    uvicorn.run(Starlette(routes=routes), host=HOST, port=port, log_level="warning")


# ---- the raw load generator ----------------------------------------------------------------


def _raw_request(port: int, authorization: str) -> bytes:
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nhost: {HOST}:{port}\r\n"
        f"content-type: application/json\r\nauthorization: {authorization}\r\n"
        f"content-length: {len(BODY_BYTES)}\r\n\r\n"
    )
    return head.encode() + BODY_BYTES


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head[9:12])
    if b"\r\ntransfer-encoding: chunked" in head:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            await reader.readexactly(size + 2)
    else:
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
        await reader.readexactly(length)
    return status, b"\r\nconnection: close" not in head


async def throughput(
    port: int, concurrency: int, seconds: float, authorization: str = HEADERS["authorization"]
) -> tuple[int, int, float]:
    """``concurrency`` keep-alive connections, each sending its next request as soon as the
    last one is answered, for ``seconds``; (answered 200, other answers, elapsed seconds)."""
    request = _raw_request(port, authorization)
    ok = bad = 0
    connections = [await asyncio.open_connection(HOST, port) for _ in range(concurrency)]

    async def worker(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        nonlocal ok, bad
        reader, writer = conn
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                status, keep_alive = await _read_response(reader)
                if status == 200:
                    ok += 1
                else:
                    bad += 1
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.timeout(seconds + 30.0), asyncio.TaskGroup() as group:
        for conn in connections:
            group.create_task(worker(conn))
    return ok, bad, time.perf_counter() - started


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "backend":
        run_async(_serve_backend(int(argv[1])))
        return 0
    if len(argv) == 3 and argv[0] == "passthrough":
        _serve_passthrough(int(argv[1]), argv[2])
        return 0
    print("usage: _gateway_wire.py backend PORT | passthrough PORT UPSTREAM", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
