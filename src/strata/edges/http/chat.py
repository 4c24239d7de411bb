"""``POST /v1/chat/completions``: OpenAI's request and response shapes around the
``ChatService``, which owns the turn (layers, dispatch, n, buffering, events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from strata.core.errors import StrataError
from strata.core.ids import new_id
from strata.core.service import ClientGone, TurnStream
from strata.core.turn import Turn, TurnResult
from strata.core.web import CallerDep, caller, kernel
from strata.edges.http import convert
from strata.edges.http.errors import ERRORS, error_body, strata_error_response
from strata.edges.http.metrics import Metrics
from strata.edges.http.schemas import ChatCompletion, ChatCompletionRequest
from strata.edges.http.sse import (
    CLIENT_CLOSED,
    STREAM_DOC,
    ClosingStreamingResponse,
    disconnected,
    sse,
)

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={**ERRORS, **STREAM_DOC},
    summary="Create a chat completion",
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, who: CallerDep
) -> Response:
    service = kernel(request).service
    metrics: Metrics = request.app.state.metrics
    options = body.strata.model_dump(exclude_none=True) if body.strata else {}
    turn = Turn(body.model, convert.chat_request(body), who, options, new_id("chatcmpl"))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    try:
        if body.stream:
            stream = await service.stream(turn, body.n, hangup=partial(disconnected, request))
            metrics.observe_request("chat", body.model, 200)
            return ClosingStreamingResponse(_events(turn, stream, include_usage))
        result = await service.run(turn, body.n, hangup=partial(disconnected, request))
    except StrataError as exc:
        metrics.observe_request("chat", body.model, exc.status_code)
        return strata_error_response(exc)
    except ClientGone:
        metrics.observe_request("chat", body.model, CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    metrics.observe_request("chat", body.model, 200)
    payload = convert.envelope("chat.completion", turn.response_id, result.served_by, [])
    logprobs = turn.gen.params.logprobs
    for i, choice in enumerate(result.choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
        if choice.tool_calls:
            message["tool_calls"] = choice.tool_calls
            message["content"] = choice.text or None
        payload["choices"].append(
            {
                "index": i,
                "message": message,
                "logprobs": convert.chat_logprobs(choice.logprobs) if logprobs else None,
                "finish_reason": choice.finish_reason or "stop",
            }
        )
    payload["usage"] = convert.usage_dict(result.usage)
    payload["strata"] = _strata_field(result)
    return JSONResponse(payload)


def _strata_field(result: TurnResult) -> dict[str, Any]:
    """Timings, what the request cost (every generation it caused), and each layer's report."""
    cost = round(sum(g.cost for g in result.generations), 10)
    return {
        **convert.strata_field(result.served_by, result.timings),
        "cost_usd": cost,
        **result.report,
    }


async def _events(turn: Turn, stream: TurnStream, include_usage: bool) -> AsyncIterator[bytes]:
    """OpenAI's chunk events for each choice in turn, then usage and ``[DONE]``."""
    rid, logprobs, result = turn.response_id, turn.gen.params.logprobs, stream.result
    current = -1
    usages = []

    def payload(index: int, delta: dict[str, Any], finish: str | None, chunk: Any) -> bytes:
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish}
        if chunk is not None and logprobs:
            choice["logprobs"] = convert.chat_logprobs(chunk.logprobs or [])
        model = result.served_by
        return sse(convert.envelope("chat.completion.chunk", rid, model, [choice]))

    try:
        async for index, chunk in stream:
            if index != current:
                current = index
                yield payload(index, {"role": "assistant", "content": ""}, None, None)
            if chunk.usage:
                usages.append(chunk.usage)
            delta: dict[str, Any] = {}
            if chunk.text:
                delta["content"] = chunk.text
            if chunk.extra and chunk.extra.get("tool_calls"):
                delta["tool_calls"] = chunk.extra["tool_calls"]
            if delta or chunk.finish_reason or chunk.logprobs:
                yield payload(index, delta, chunk.finish_reason, chunk)
    except StrataError as exc:
        yield sse(error_body(exc.message, exc.error_type, exc.param, exc.code))
    finally:
        await stream.aclose()  # a client gone mid-stream frees the model now, not at GC
    if include_usage:
        tail = convert.envelope("chat.completion.chunk", rid, result.served_by, [])
        tail["usage"] = convert.usage_dict(convert.sum_usage(usages))
        tail["strata"] = _strata_field(result)
        yield sse(tail)
    yield sse("[DONE]")
