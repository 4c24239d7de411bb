"""``POST /v1/completions``: plain text completion on base models, straight to the model
pool (no chat layers); ``n`` choices per prompt, echo and logprobs as OpenAI has them. The
chat service's gates (budgets, rate limits) admit it first and settle it with what each
generation cost, as they do a chat turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from strata.core.engine import Engine, Timings
from strata.core.errors import StrataError
from strata.core.ids import new_id
from strata.core.models.base import Chunk, GenerationRequest, Usage
from strata.core.service import Admission, ClientGone, prime, until_hangup
from strata.core.turn import Generation
from strata.core.web import CallerDep, caller, kernel
from strata.edges.http import convert
from strata.edges.http.errors import ERRORS, error_body, strata_error_response
from strata.edges.http.schemas import Completion, CompletionRequest
from strata.edges.http.sse import (
    CLIENT_CLOSED,
    STREAM_DOC,
    ClosingStreamingResponse,
    disconnected,
    sse,
)

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])


async def _collect(stream: AsyncIterator[Chunk]) -> convert.Collected:
    collected = convert.Collected()
    async for chunk in stream:
        collected.add(chunk)
    return collected


@router.post(
    "/completions",
    response_model=Completion,
    responses={**ERRORS, **STREAM_DOC},
    summary="Create a text completion (base models)",
)
async def completions(body: CompletionRequest, request: Request, who: CallerDep) -> Response:
    the_kernel = kernel(request)
    engine, metrics = the_kernel.engine, request.app.state.metrics
    rid = new_id("cmpl")
    bill = Bill(the_kernel.costs.cost)
    try:
        gens = convert.completion_requests(body)
        admission = await the_kernel.service.admit(
            who, body.model, [g for g in gens for _ in range(body.n)]
        )
        if body.stream:
            try:
                return await _stream_completion(engine, body, gens, who.queue, rid, bill, admission)
            except BaseException:
                await admission.settle(bill.generations)
                raise
        timings = Timings()
        jobs = [
            _collect(
                engine.generate(body.model, g, key=who.queue, timings=timings, record=bill.record)
            )
            for g in gens
            for _ in range(body.n)
        ]
        try:
            results = await until_hangup(jobs, partial(disconnected, request))
        finally:
            await admission.settle(bill.generations)
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


class Bill:
    """Every generation a completion request caused, priced as it ended."""

    def __init__(self, price: Callable[[str, Usage], float]) -> None:
        self.price = price
        self.generations: list[Generation] = []

    def record(self, model: str, usage: Usage) -> None:
        self.generations.append(Generation(model, usage, self.price(model, usage)))


async def _stream_completion(
    engine: Engine,
    body: CompletionRequest,
    gens: list[GenerationRequest],
    key: str,
    rid: str,
    bill: Bill,
    admission: Admission,
) -> Response:
    timings = Timings()
    jobs = [g for g in gens for _ in range(body.n)]
    first_stream = engine.generate(
        body.model, jobs[0], key=key, timings=timings, record=bill.record
    )
    first = await prime(first_stream)
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
                    stream = engine.generate(
                        body.model, gen, key=key, timings=timings, record=bill.record
                    )
                    chunk = await anext(stream)
                choice: dict[str, Any]
                offset = 0  # text_offset counts from the start of the choice's text
                if body.echo:
                    choice = {"index": index, "text": gen.prompt, "finish_reason": None}
                    yield sse(convert.envelope("text_completion", rid, body.model, [choice]))
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
                        yield sse(convert.envelope("text_completion", rid, body.model, [choice]))
                    chunk = await anext(stream, None)
        except StrataError as exc:
            yield sse(error_body(exc.message, exc.error_type, exc.param, exc.code))
        finally:
            await stream.aclose()  # a client gone mid-stream frees the model now, not at GC
            await admission.settle(bill.generations)
        if include_usage:
            tail = convert.envelope("text_completion", rid, body.model, [])
            tail["usage"] = convert.usage_dict(Usage(prompt_tokens, completion_tokens))
            tail["strata"] = convert.strata_field(body.model, timings)
            yield sse(tail)
        yield sse("[DONE]")

    return ClosingStreamingResponse(events())
