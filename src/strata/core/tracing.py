"""Traces without a hard dependency: a tiny span protocol that the chat service, the layers
and the dispatchers call, a no-op implementation (the default), and an OpenTelemetry one
(``strata.core.tracing_otel``, installed with the ``[traces]`` extra) that the kernel picks
when ``traces.enabled`` is set.

A turn carries its request span (``turn.trace``); every step inside it opens a child::

    with turn.trace.step("retrieval", {"strata.knowledge.collection": name}) as span:
        hits = search(...)
        span.set({"strata.knowledge.hits": len(hits)})

Spans are passed explicitly, never through a context variable, because a streamed turn
lives in async generators that are resumed from other contexts than the one they began in.
With tracing off every span is ``NO_SPAN``: ``step`` returns it, ``set`` and ``end`` do
nothing, so the cost is a few attribute lookups per step (``bench/tracing_overhead.py``).

Attribute names follow OpenTelemetry's GenAI semantic conventions (``gen_ai.*``) plus
strata's own (``strata.route``, ``strata.confidence``, ``strata.cost_usd``, ...).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from strata.core.models.base import Chunk

AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue | None]


class Span(Protocol):
    """One timed step. Used as a context manager it ends itself, recording an exception."""

    recording: bool

    def step(self, name: str, attributes: Attributes | None = None) -> Span:
        """A child span, started now."""
        ...

    def set(self, attributes: Attributes) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def end(self) -> None: ...

    def __enter__(self) -> Span: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Tracer(Protocol):
    def start(self, name: str, attributes: Attributes | None = None) -> Span:
        """A root span (one per request)."""
        ...

    def shutdown(self) -> None:
        """Export what is still buffered."""
        ...


class NoSpan:
    """The span of a process that does not trace: every call does nothing."""

    recording = False

    def step(self, name: str, attributes: Attributes | None = None) -> NoSpan:
        return self

    def set(self, attributes: Attributes) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        pass

    def end(self) -> None:
        pass

    def __enter__(self) -> NoSpan:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


NO_SPAN = NoSpan()


class NoTracer:
    def start(self, name: str, attributes: Attributes | None = None) -> NoSpan:
        return NO_SPAN

    def shutdown(self) -> None:
        pass


class TraceSettings(BaseModel):
    """OpenTelemetry traces (``pip install 'strata[traces]'``); off by default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Record an OpenTelemetry span per request and step")
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces "
        "(default: OpenTelemetry's OTEL_EXPORTER_OTLP_* environment variables)",
    )
    service_name: str = Field("strata", description="service.name of the exported spans")


def make_tracer(settings: TraceSettings) -> Tracer:
    """The no-op tracer, or the OpenTelemetry one when traces are on."""
    if not settings.enabled:
        return NoTracer()
    from strata.core.tracing_otel import OtelTracer

    return OtelTracer.from_settings(settings)


async def traced_generation(
    parent: Span, model: str, stream: AsyncGenerator[Chunk, None]
) -> AsyncGenerator[Chunk, None]:
    """``stream`` inside a ``chat {model}`` span with the GenAI usage attributes. Only called
    when ``parent.recording``: with tracing off the stream is not wrapped at all."""
    span = parent.step(
        f"chat {model}", {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
    )
    reasons: list[str] = []
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                span.set(
                    {
                        "gen_ai.usage.input_tokens": chunk.usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": chunk.usage.completion_tokens,
                    }
                )
            if chunk.finish_reason:
                reasons.append(chunk.finish_reason)
            yield chunk
        span.set(
            {"gen_ai.response.model": model, "gen_ai.response.finish_reasons": ",".join(reasons)}
        )
    except BaseException as exc:
        span.fail(exc)
        raise
    finally:
        await stream.aclose()
        span.end()
