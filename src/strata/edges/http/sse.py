"""Server-sent events, in one place: the ``data:`` framing, the stream response that frees
the model the moment a client goes, the first event awaited before any header is sent (so
errors before the first token are ordinary HTTP errors), the disconnect watcher, and the
status for a request whose client hung up."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

CLIENT_CLOSED = 499  # nginx's code for "client closed request"; never reaches the client
MEDIA_TYPE = "text/event-stream"
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: {}}, "description": "JSON, or SSE when stream"}
}


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


class ClosingStreamingResponse(StreamingResponse):
    """Closes the body generator however the response ends, so a client that disconnects
    stops its generation at once rather than whenever the generator is collected."""

    def __init__(self, content: Any) -> None:
        super().__init__(content, media_type=MEDIA_TYPE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


async def disconnected(request: Request) -> None:
    """Returns when the client hangs up (the body is already read, so the next ASGI message
    is the hang-up)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
