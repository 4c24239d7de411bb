"""``POST /v1/responses`` (and ``GET /v1/responses/{id}``): OpenAI's Responses API around the
``ChatService``. The conversion and the stored conversations are the tools feature's
(``strata.features.tools.responses``); this module owns the wire: the request body, the
response object and the stream's typed events (``response.created``,
``response.output_text.delta``, ``response.function_call_arguments.delta``,
``response.completed``, ...).

Function tools are the client's: a call comes back as a ``function_call`` output item and
the client sends its ``function_call_output`` with ``previous_response_id``. strata's own
tools (``{"type": "calculator"}``, any name in ``GET /v1/tools``) run on the server, through
the agent loop, whose steps are in the response's ``strata`` field."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from strata.core.errors import StrataError
from strata.core.ids import new_id
from strata.core.models.base import GenerationRequest, SamplingParams, Usage
from strata.core.service import ClientGone, TurnStream
from strata.core.tenancy import Caller
from strata.core.turn import Choice, Turn, TurnResult
from strata.core.web import CallerDep, caller, kernel
from strata.edges.http.errors import ERRORS, strata_error_response
from strata.edges.http.metrics import Metrics
from strata.edges.http.schemas import StrataOptions
from strata.edges.http.sse import (
    CLIENT_CLOSED,
    STREAM_DOC,
    ClosingStreamingResponse,
    disconnected,
)
from strata.features.tools.feature import Tools
from strata.features.tools.responses import (
    answer_messages,
    chat_tool_choice,
    conversation,
    input_messages,
    output_items,
    response_tools,
)

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


class ResponsesRequest(BaseModel):
    """OpenAI's ``responses.create`` body; fields strata does not act on (``include``,
    ``reasoning``, ``truncation``, ...) are accepted and ignored, as OpenAI-compatible
    servers do."""

    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    strata: StrataOptions | None = None


async def _turn(body: ResponsesRequest, tools: Tools, who: Caller) -> tuple[Turn, list[Any]]:
    """The chat turn for a Responses request, and the conversation to store after it."""
    registry = await tools.registry()
    functions, server = response_tools(body.tools or [], {t["name"] for t in registry.listing()})
    previous = (
        await tools.responses.db.run(
            tools.responses.messages, who.tenant, body.previous_response_id
        )
        if body.previous_response_id
        else []
    )
    new = input_messages(body.input)
    params = SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        max_tokens=body.max_output_tokens,
    )
    passthrough: dict[str, Any] = {}
    if functions:
        passthrough["tools"] = functions
    if functions or server:
        choice = chat_tool_choice(body.tool_choice)
        if choice is not None:
            passthrough["tool_choice"] = choice
        if body.parallel_tool_calls is not None:
            passthrough["parallel_tool_calls"] = body.parallel_tool_calls
    messages = conversation(previous, body.instructions, new)
    gen = GenerationRequest(
        kind="chat", params=params, messages=messages, stream=body.stream, passthrough=passthrough
    )
    options = body.strata.model_dump(exclude_none=True) if body.strata else {}
    if server:
        agent = dict(options.get("agent") or {})
        agent["tools"] = [*agent.get("tools", []), *server]
        options["agent"] = agent
    return Turn(body.model, gen, who, options, new_id("resp")), previous + new


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _strata(result: TurnResult) -> dict[str, Any]:
    cost = round(sum(g.cost for g in result.generations), 10)
    return {
        "model": result.served_by,
        "timings": result.timings.as_dict(),
        "cost_usd": cost,
        **result.report,
    }


def _response(
    body: ResponsesRequest, rid: str, model: str, output: list[Any], finish: str | None
) -> dict[str, Any]:
    incomplete = finish == "length"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": body.store is not False,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.tool_choice or "auto",
        "tools": body.tools or [],
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": "disabled",
        "user": None,
        "metadata": body.metadata or {},
    }


async def _store(
    tools: Tools, body: ResponsesRequest, who: Caller, sent: list[Any], choice: Choice, payload: Any
) -> None:
    if body.store is not False:
        messages = sent + answer_messages(choice)
        await tools.responses.db.run(
            tools.responses.save, who.tenant, payload["id"], messages, payload
        )


@router.post("/responses", responses={**ERRORS, **STREAM_DOC}, summary="Create a model response")
async def create_response(body: ResponsesRequest, request: Request, who: CallerDep) -> Response:
    app = kernel(request)
    tools = app.feature("tools", Tools)
    metrics: Metrics = request.app.state.metrics
    hangup = partial(disconnected, request)
    try:
        turn, sent = await _turn(body, tools, who)
        if body.stream:
            stream = await app.service.stream(turn, 1, hangup=hangup)
            metrics.observe_request("responses", body.model, 200)
            events = _Events(body, turn.response_id, stream, tools, who, sent)
            return ClosingStreamingResponse(events.run())
        result = await app.service.run(turn, 1, hangup=hangup)
    except StrataError as exc:
        metrics.observe_request("responses", body.model, exc.status_code)
        return strata_error_response(exc)
    except ClientGone:
        metrics.observe_request("responses", body.model, CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    metrics.observe_request("responses", body.model, 200)
    choice = result.choices[0]
    payload = _response(
        body, turn.response_id, result.served_by, output_items(choice), choice.finish_reason
    )
    payload["usage"] = _usage(result.usage)
    payload["strata"] = _strata(result)
    await _store(tools, body, who, sent, choice, payload)
    return JSONResponse(payload)


@router.get("/responses/{response_id}", responses=ERRORS, summary="Retrieve a stored response")
async def get_response(response_id: str, request: Request, who: CallerDep) -> Response:
    store = kernel(request).feature("tools", Tools).responses
    try:
        return JSONResponse(await store.db.run(store.response, who.tenant, response_id))
    except StrataError as exc:
        return strata_error_response(exc)


def _event(kind: str, sequence: int, data: dict[str, Any]) -> bytes:
    payload = json.dumps({"type": kind, "sequence_number": sequence, **data}, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()


class _Events:
    """One streamed response: the turn's chunks as the Responses API's typed events. Text
    opens a message item; each tool call (by its stream index) a ``function_call`` item."""

    def __init__(
        self,
        body: ResponsesRequest,
        rid: str,
        stream: TurnStream,
        tools: Tools,
        who: Caller,
        sent: list[Any],
    ) -> None:
        self.body, self.rid, self.stream = body, rid, stream
        self.tools, self.who, self.sent = tools, who, sent
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}

    def emit(self, kind: str, **data: Any) -> bytes:
        event = _event(kind, self.sequence, data)
        self.sequence += 1
        return event

    def _close_message(self) -> list[bytes]:
        item, self.message = self.message, None
        if item is None:
            return []
        index, text = self.output.index(item), item["content"][0]["text"]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        item["status"] = "completed"
        return [
            self.emit("response.output_text.done", **where, text=text, logprobs=[]),
            self.emit("response.content_part.done", **where, part=item["content"][0]),
            self.emit("response.output_item.done", output_index=index, item=item),
        ]

    def _text(self, delta: str) -> list[bytes]:
        events: list[bytes] = []
        if self.message is None:
            part = {"type": "output_text", "text": "", "annotations": []}
            self.message = {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self.output.append(self.message)
            index = len(self.output) - 1
            events.append(
                self.emit("response.output_item.added", output_index=index, item=self.message)
            )
            self.message["content"].append(part)
            where = {"item_id": self.message["id"], "output_index": index, "content_index": 0}
            events.append(self.emit("response.content_part.added", **where, part=dict(part)))
        index = self.output.index(self.message)
        self.message["content"][0]["text"] += delta
        where = {"item_id": self.message["id"], "output_index": index, "content_index": 0}
        events.append(self.emit("response.output_text.delta", **where, delta=delta, logprobs=[]))
        return events

    def _call(self, delta: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        position = delta.get("index", len(self.calls))
        function = delta.get("function") or {}
        item = self.calls.get(position)
        if item is None:
            events += self._close_message()
            item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": delta.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            self.calls[position] = item
            self.output.append(item)
            added = dict(item)
            events.append(
                self.emit(
                    "response.output_item.added", output_index=len(self.output) - 1, item=added
                )
            )
        piece = function.get("arguments") or ""
        if piece:
            item["arguments"] += piece
            index = self.output.index(item)
            events.append(
                self.emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            )
        return events

    async def run(self) -> AsyncIterator[bytes]:
        base = _response(self.body, self.rid, self.body.model, [], None) | {
            "status": "in_progress",
            "usage": None,
        }
        yield self.emit("response.created", response=base)
        yield self.emit("response.in_progress", response=base)
        finish: str | None = None
        try:
            async for _, chunk in self.stream:
                finish = chunk.finish_reason or finish
                if chunk.text:
                    for event in self._text(chunk.text):
                        yield event
                for delta in (chunk.extra or {}).get("tool_calls") or []:
                    for event in self._call(delta):
                        yield event
        except StrataError as exc:
            yield self.emit("error", code=exc.code, message=exc.message, param=exc.param)
            return
        finally:
            await self.stream.aclose()
        for event in self._close_message():
            yield event
        for item in self.calls.values():
            index = self.output.index(item)
            item["status"] = "completed"
            yield self.emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
            yield self.emit("response.output_item.done", output_index=index, item=item)
        result = self.stream.result
        payload = _response(self.body, self.rid, result.served_by, self.output, finish)
        payload["usage"] = _usage(result.usage)
        payload["strata"] = _strata(result)
        choice = result.choices[0] if result.choices else Choice()
        await _store(self.tools, self.body, self.who, self.sent, choice, payload)
        kind = "response.incomplete" if payload["status"] == "incomplete" else "response.completed"
        yield self.emit(kind, response=payload)
