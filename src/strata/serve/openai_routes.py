"""OpenAI-compatible routes: chat completions, completions, embeddings, models.

A request flows API → engine (admission, the model) → response. For streams the first chunk
is awaited before any header is sent, so errors that happen before the first token (unknown
model, context window, a full queue) still reach the client as a proper HTTP error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from strata.engine import Engine, Timings
from strata.errors import InvalidRequest, StrataError
from strata.models.base import Capability, Chunk, GenerationRequest, Usage
from strata.pipeline import ChatTurn, Pipeline
from strata.serve import convert
from strata.serve.auth import client_key
from strata.serve.errors import error_body, strata_error_response
from strata.serve.metrics import Metrics
from strata.serve.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ErrorResponse,
    ModelList,
)
from strata.stack import Stack

CLIENT_CLOSED = 499  # nginx's code for "client closed request"; never reaches the client

router = APIRouter(prefix="/v1", dependencies=[Depends(client_key)])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 429, 500, 502, 503, 504)
}
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE when stream"}
}


class ClosingStreamingResponse(StreamingResponse):
    """Closes the body generator however the response ends, so a client that disconnects
    stops its generation at once rather than whenever the generator is collected."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _pipeline(request: Request) -> Pipeline:
    stack: Stack = request.app.state.stack
    return stack.pipeline


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _collect(stream: AsyncIterator[Chunk]) -> convert.Collected:
    collected = convert.Collected()
    async for chunk in stream:
        collected.add(chunk)
    return collected


class ClientGone(Exception):
    """The client hung up before a non-streamed answer was ready."""


async def _disconnected(request: Request) -> None:
    # The body is already read, so the next ASGI message is the client's hang-up.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _collect_all(
    request: Request, jobs: Sequence[Awaitable[convert.Collected]]
) -> list[convert.Collected]:
    """Run the n choices together. When one fails (a full queue, say) or the client hangs
    up, stop the rest rather than let them hold the model for an answer nobody receives."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    gathered = asyncio.gather(*tasks)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        both: set[asyncio.Future[Any]] = {gathered, watcher}
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        if not gathered.done():
            raise ClientGone
        return gathered.result()
    finally:
        watcher.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(watcher, *tasks, return_exceptions=True)


async def _prime(agen: AsyncIterator[Chunk]) -> Chunk:
    """First chunk of a stream; errors here still become ordinary HTTP errors."""
    try:
        return await anext(agen)
    except BaseException:
        with contextlib.suppress(Exception):
            await agen.aclose()  # type: ignore[attr-defined]
        raise


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={**ERRORS, **STREAM_DOC},
    summary="Create a chat completion",
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, key: str = Depends(client_key)
) -> Response:
    pipeline, metrics = _pipeline(request), _metrics(request)
    options = body.strata.model_dump(exclude_none=True) if body.strata else {}
    rid = convert.new_id("chatcmpl")
    turn = ChatTurn(body.model, convert.chat_request(body), key, options, rid)
    timings = Timings()
    try:
        await pipeline.before(turn)
        if body.stream and not turn.buffer_output:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _stream_chat(pipeline, turn, body.n, include_usage, timings)
        results = await _collect_all(
            request, [_collect(pipeline.generate(turn, timings)) for _ in range(body.n)]
        )
        texts = await pipeline.after(turn, [c.text for c in results])
    except StrataError as exc:
        metrics.observe_request("chat", body.model, exc.status_code)
        return strata_error_response(exc)
    except ClientGone:
        metrics.observe_request("chat", body.model, CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    metrics.observe_request("chat", body.model, 200)
    model = turn.answered_by or body.model
    choices = []
    for i, (c, text) in enumerate(zip(results, texts, strict=True)):
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if c.extra.get("tool_calls"):
            message["tool_calls"] = c.extra["tool_calls"]
            message["content"] = text or None
        choices.append(
            {
                "index": i,
                "message": message,
                "logprobs": convert.chat_logprobs(c.logprobs) if turn.gen.params.logprobs else None,
                "finish_reason": c.finish_reason or "stop",
            }
        )
    usage = convert.usage_dict(convert.sum_usage([c.usage for c in results]))
    if body.stream:  # buffered for a layer that may rewrite the text: replay it as a stream
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        tail = _strata_field(turn, model, timings)
        return _replay_stream(rid, model, choices, usage if include_usage else None, tail)
    payload = convert.envelope("chat.completion", rid, model, choices)
    payload["usage"] = usage
    payload["strata"] = _strata_field(turn, model, timings)
    return JSONResponse(payload)


def _strata_field(turn: ChatTurn, model: str, timings: Timings) -> dict[str, Any]:
    return {**convert.strata_field(model, timings), **turn.info}


def _replay_stream(
    rid: str,
    model: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    strata: dict[str, Any],
) -> Response:
    def events() -> Iterator[bytes]:
        for choice in choices:
            index, message = choice["index"], choice["message"]
            for delta, finish in (
                ({"role": "assistant", "content": ""}, None),
                ({"content": message["content"]}, None),
                ({}, choice["finish_reason"]),
            ):
                part = {"index": index, "delta": delta, "finish_reason": finish}
                if finish and choice["logprobs"] is not None:
                    part["logprobs"] = choice["logprobs"]
                yield _sse(convert.envelope("chat.completion.chunk", rid, model, [part]))
        if usage is not None:
            tail = convert.envelope("chat.completion.chunk", rid, model, [])
            tail["usage"], tail["strata"] = usage, strata
            yield _sse(tail)
        yield _sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream")


async def _stream_chat(
    pipeline: Pipeline, turn: ChatTurn, n: int, include_usage: bool, timings: Timings
) -> Response:
    first_stream = pipeline.generate(turn, timings)
    first = await _prime(first_stream)
    rid, logprobs = turn.response_id, turn.gen.params.logprobs

    def chunk_payload(index: int, delta: dict[str, Any], chunk: Chunk | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": None}
        if chunk is not None:
            choice["finish_reason"] = chunk.finish_reason
            if logprobs:
                choice["logprobs"] = convert.chat_logprobs(chunk.logprobs or [])
        model = turn.answered_by or turn.model
        return convert.envelope("chat.completion.chunk", rid, model, [choice])

    async def events() -> AsyncIterator[bytes]:
        usages = []
        texts: list[str] = []
        stream = first_stream
        try:
            for index in range(n):
                if index == 0:
                    pending = first
                else:
                    stream = pipeline.generate(turn, timings)
                    pending = await anext(stream)
                yield _sse(chunk_payload(index, {"role": "assistant", "content": ""}, None))
                parts: list[str] = []
                chunk: Chunk | None = pending
                while chunk is not None:
                    if chunk.usage:
                        usages.append(chunk.usage)
                    delta: dict[str, Any] = {}
                    if chunk.text:
                        delta["content"] = chunk.text
                        parts.append(chunk.text)
                    if chunk.extra and chunk.extra.get("tool_calls"):
                        delta["tool_calls"] = chunk.extra["tool_calls"]
                    if delta or chunk.finish_reason or chunk.logprobs:
                        yield _sse(chunk_payload(index, delta, chunk))
                    chunk = await anext(stream, None)
                texts.append("".join(parts))
            await pipeline.after(turn, texts)
        except StrataError as exc:
            yield _sse(error_body(exc.message, exc.error_type, exc.param, exc.code))
        finally:
            await stream.aclose()  # a client gone mid-stream frees the model now, not at GC
        if include_usage:
            model = turn.answered_by or turn.model
            tail = convert.envelope("chat.completion.chunk", rid, model, [])
            tail["usage"] = convert.usage_dict(convert.sum_usage(usages))
            tail["strata"] = _strata_field(turn, model, timings)
            yield _sse(tail)
        yield _sse("[DONE]")

    return ClosingStreamingResponse(events(), media_type="text/event-stream")


@router.post(
    "/completions",
    response_model=Completion,
    responses={**ERRORS, **STREAM_DOC},
    summary="Create a text completion (base models)",
)
async def completions(
    body: CompletionRequest, request: Request, key: str = Depends(client_key)
) -> Response:
    engine, metrics = _engine(request), _metrics(request)
    rid = convert.new_id("cmpl")
    try:
        gens = convert.completion_requests(body)
        if body.stream:
            return await _stream_completion(engine, body, gens, key, rid)
        timings = Timings()
        jobs = [
            _collect(engine.generate(body.model, g, key=key, timings=timings))
            for g in gens
            for _ in range(body.n)
        ]
        results = await _collect_all(request, jobs)
    except StrataError as exc:
        metrics.observe_request("completions", body.model, exc.status_code)
        return strata_error_response(exc)
    except ClientGone:
        metrics.observe_request("completions", body.model, CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    metrics.observe_request("completions", body.model, 200)
    choices = []
    for i, c in enumerate(results):
        prompt = gens[i // body.n].prompt or ""
        text = prompt + c.text if body.echo else c.text
        offset = len(prompt) if body.echo else 0
        choices.append(
            {
                "index": i,
                "text": text,
                "logprobs": convert.completion_logprobs(c.logprobs, offset)
                if body.logprobs is not None
                else None,
                "finish_reason": c.finish_reason or "stop",
            }
        )
    payload = convert.envelope("text_completion", rid, body.model, choices)
    usages = [c.usage for c in results]
    payload["usage"] = convert.usage_dict(
        Usage(
            sum(u.prompt_tokens for u in usages[:: body.n]),
            sum(u.completion_tokens for u in usages),
        )
    )
    payload["strata"] = convert.strata_field(body.model, timings)
    return JSONResponse(payload)


async def _stream_completion(
    engine: Engine, body: CompletionRequest, gens: list[GenerationRequest], key: str, rid: str
) -> Response:
    timings = Timings()
    jobs = [g for g in gens for _ in range(body.n)]
    first_stream = engine.generate(body.model, jobs[0], key=key, timings=timings)
    first = await _prime(first_stream)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events() -> AsyncIterator[bytes]:
        prompt_tokens = completion_tokens = 0
        stream = first_stream
        try:
            for index, gen in enumerate(jobs):
                chunk: Chunk | None
                if index == 0:
                    chunk = first
                else:
                    stream = engine.generate(body.model, gen, key=key, timings=timings)
                    chunk = await anext(stream)
                choice: dict[str, Any]
                offset = 0  # text_offset counts from the start of the choice's text
                if body.echo:
                    choice = {"index": index, "text": gen.prompt, "finish_reason": None}
                    yield _sse(convert.envelope("text_completion", rid, body.model, [choice]))
                    offset = len(gen.prompt or "")
                while chunk is not None:
                    if chunk.usage:
                        prompt_tokens += chunk.usage.prompt_tokens if index % body.n == 0 else 0
                        completion_tokens += chunk.usage.completion_tokens
                    tokens = chunk.logprobs or []
                    choice = {
                        "index": index,
                        "text": chunk.text,
                        "logprobs": convert.completion_logprobs(tokens, offset)
                        if body.logprobs is not None
                        else None,
                        "finish_reason": chunk.finish_reason,
                    }
                    offset += sum(len(t.token) for t in tokens)
                    if chunk.text or chunk.finish_reason:
                        yield _sse(convert.envelope("text_completion", rid, body.model, [choice]))
                    chunk = await anext(stream, None)
        except StrataError as exc:
            yield _sse(error_body(exc.message, exc.error_type, exc.param, exc.code))
        finally:
            await stream.aclose()  # a client gone mid-stream frees the model now, not at GC
        if include_usage:
            tail = convert.envelope("text_completion", rid, body.model, [])
            tail["usage"] = convert.usage_dict(Usage(prompt_tokens, completion_tokens))
            tail["strata"] = convert.strata_field(body.model, timings)
            yield _sse(tail)
        yield _sse("[DONE]")

    return ClosingStreamingResponse(events(), media_type="text/event-stream")


@router.post(
    "/embeddings", response_model=EmbeddingList, responses=ERRORS, summary="Create embeddings"
)
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    engine = _engine(request)
    handle = engine.get(body.model)
    if not handle.backend.supports(Capability.EMBEDDINGS):
        raise InvalidRequest(f"model '{body.model}' does not support embeddings", param="model")
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors, tokens = await handle.backend.embed(texts)
    data: list[dict[str, Any]] = []
    for i, full in enumerate(vectors):
        if body.dimensions is not None and body.dimensions > len(full):
            raise InvalidRequest(
                f"dimensions {body.dimensions} exceeds the model's {len(full)}",
                param="dimensions",
            )
        vector = full[: body.dimensions] if body.dimensions else full
        value: list[float] | str = vector
        if body.encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage})


@router.get("/models", response_model=ModelList, summary="List the served models")
async def list_models(request: Request) -> ModelList:
    engine = _engine(request)
    cards = []
    for name, handle in engine.models.items():
        backend = handle.backend
        cards.append(
            {
                "id": name,
                "object": "model",
                "created": int(request.app.state.started),
                "owned_by": "strata" if backend.local else "remote",
                "capabilities": sorted(c.value for c in backend.capabilities),
                "loaded": backend.loaded,
            }
        )
    for name in _pipeline(request).dispatched_names():  # routes such as ``auto``
        card = {"id": name, "object": "model", "created": int(request.app.state.started)}
        cards.append({**card, "owned_by": "strata", "capabilities": ["chat"], "loaded": True})
    return ModelList.model_validate({"object": "list", "data": cards})


@router.get("/models/{model_id}", summary="Describe one model", responses=ERRORS)
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    card = {"id": model_id, "object": "model", "created": int(request.app.state.started)}
    if model_id in _pipeline(request).dispatched_names():
        return {**card, "owned_by": "strata"}
    handle = _engine(request).get(model_id)
    return {**card, "owned_by": "strata" if handle.backend.local else "remote"}
