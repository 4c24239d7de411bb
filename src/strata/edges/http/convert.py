"""Between OpenAI's wire shapes and strata's internal types, in both directions.

The hot path builds response dicts directly (no pydantic round-trip), matching the models
in ``schemas.py`` field for field; the SDK tests parse every response with the real client.
"""

from __future__ import annotations

import time
from typing import Any

from strata.core.engine import Timings
from strata.core.errors import InvalidRequest
from strata.core.models.base import (
    Chunk,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from strata.edges.http.schemas import ChatCompletionRequest, CompletionRequest, _Sampling

_CHAT_FIELDS = set(ChatCompletionRequest.model_fields)
_COMPLETION_FIELDS = set(CompletionRequest.model_fields)


def _stop(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _common(body: _Sampling) -> dict[str, Any]:
    return {
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "stop": _stop(body.stop),
        "seed": body.seed,
        "presence_penalty": body.presence_penalty or 0.0,
        "frequency_penalty": body.frequency_penalty or 0.0,
    }


def _passthrough(body: _Sampling, known: set[str]) -> dict[str, Any]:
    extra = dict(body.model_extra or {})
    for name in ("tools", "tool_choice", "parallel_tool_calls", "user"):
        if name in known and getattr(body, name, None) is not None:
            extra[name] = getattr(body, name)
    return extra


def chat_request(body: ChatCompletionRequest) -> GenerationRequest:
    fmt = ResponseFormat()
    if body.response_format is not None:
        spec = body.response_format.json_schema
        fmt = ResponseFormat(
            type=body.response_format.type,
            schema=spec.schema_ if spec else None,
            name=spec.name if spec else None,
            strict=spec.strict if spec else None,
        )
    params = SamplingParams(
        **_common(body),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs or 0,
        response_format=fmt,
    )
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    return GenerationRequest(
        kind="chat",
        params=params,
        messages=messages,
        stream=body.stream,
        passthrough=_passthrough(body, _CHAT_FIELDS),
    )


def completion_requests(body: CompletionRequest) -> list[GenerationRequest]:
    """One request per prompt (OpenAI accepts a list of prompts: n choices for each)."""
    if body.suffix:
        raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    params = SamplingParams(
        **_common(body),
        max_tokens=body.max_tokens,
        logprobs=body.logprobs is not None,
        top_logprobs=body.logprobs or 0,
    )
    return [
        GenerationRequest(
            kind="completion",
            params=params,
            prompt=p,
            stream=body.stream,
            passthrough=_passthrough(body, _COMPLETION_FIELDS),
        )
        for p in prompts
    ]


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def sum_usage(usages: list[Usage]) -> Usage:
    # The prompt is counted once per request as OpenAI does when n > 1.
    prompt = max((u.prompt_tokens for u in usages), default=0)
    return Usage(prompt, sum(u.completion_tokens for u in usages))


def chat_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": t.bytes,
                "top_logprobs": [
                    {"token": a.token, "logprob": a.logprob, "bytes": a.bytes} for a in t.top
                ],
            }
            for t in items
        ]
    }


def completion_logprobs(items: list[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    offsets, pos = [], offset
    for t in items:
        offsets.append(pos)
        pos += len(t.token)
    return {
        "tokens": [t.token for t in items],
        "token_logprobs": [t.logprob for t in items],
        "top_logprobs": [{a.token: a.logprob for a in t.top} for t in items],
        "text_offset": offsets,
    }


def strata_field(model: str, timings: Timings) -> dict[str, Any]:
    return {"model": model, "timings": timings.as_dict()}


class Collected:
    """Accumulates one choice's chunks into its final text, logprobs and usage."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.logprobs: list[TokenLogprob] = []
        self.finish_reason: str | None = None
        self.usage = Usage(0, 0)
        self.extra: dict[str, Any] = {}

    def add(self, chunk: Chunk) -> None:
        self.parts.append(chunk.text)
        if chunk.logprobs:
            self.logprobs.extend(chunk.logprobs)
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.usage:
            self.usage = chunk.usage
        if chunk.extra:
            self.extra.update(chunk.extra)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def envelope(kind: str, rid: str, model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": rid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "strata",
        "choices": choices,
    }
