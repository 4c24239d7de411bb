"""The OpenTelemetry implementation of ``strata.core.tracing`` (the ``[traces]`` extra).

Imported only when ``traces.enabled`` is set, so strata runs without the SDK installed.
Spans are parented explicitly (``set_span_in_context``), never made current, which keeps
them right across the async generators of a streamed answer. Exported in batches over
OTLP/HTTP; tests hand in an exporter (the SDK's ``InMemorySpanExporter``) instead.
"""

from __future__ import annotations

from types import TracebackType

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from strata.core.tracing import Attributes, TraceSettings


def _clean(attributes: Attributes | None) -> dict[str, str | bool | int | float]:
    """OpenTelemetry refuses None values: they are left out."""
    if not attributes:
        return {}
    return {k: v for k, v in attributes.items() if v is not None}


class OtelSpan:
    recording = True

    def __init__(self, tracer: trace.Tracer, span: trace.Span) -> None:
        self._tracer = tracer
        self.span = span
        self._ended = False

    def step(self, name: str, attributes: Attributes | None = None) -> OtelSpan:
        context = trace.set_span_in_context(self.span)
        child = self._tracer.start_span(name, context=context, attributes=_clean(attributes))
        return OtelSpan(self._tracer, child)

    def set(self, attributes: Attributes) -> None:
        self.span.set_attributes(_clean(attributes))

    def fail(self, error: BaseException) -> None:
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.span.set_attribute("error.type", type(error).__name__)

    def end(self) -> None:
        if not self._ended:  # a failed stream may be ended by its error path and its finally
            self._ended = True
            self.span.end()

    def __enter__(self) -> OtelSpan:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None:
            self.fail(error)
        self.end()


class OtelTracer:
    """Its own ``TracerProvider`` (not the global one), so two servers in one process, or a
    test, never share spans."""

    def __init__(self, exporter: SpanExporter, *, batch: bool = True, service: str = "strata"):
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("strata")

    @classmethod
    def from_settings(cls, settings: TraceSettings) -> OtelTracer:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = (
            OTLPSpanExporter(endpoint=settings.otlp_endpoint)
            if settings.otlp_endpoint
            else OTLPSpanExporter()
        )
        return cls(exporter, service=settings.service_name)

    def start(self, name: str, attributes: Attributes | None = None) -> OtelSpan:
        return OtelSpan(self.tracer, self.tracer.start_span(name, attributes=_clean(attributes)))

    def shutdown(self) -> None:
        self.provider.shutdown()
