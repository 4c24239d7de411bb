"""Traces: off by default (every span is the no-op one), and when on, one OpenTelemetry span
per request with a child per layer step, per tier tried and for retrieval, carrying the GenAI
semantic-convention attributes and strata's route, confidence and cost. Checked with the
SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from strata.core.errors import BackendUnavailable
from strata.core.kernel import Kernel
from strata.core.models.fake import scripted
from strata.core.tracing import NO_SPAN, NoTracer, TraceSettings, make_tracer
from strata.core.tracing_otel import OtelTracer
from strata.edges.http.app import create_app
from strata.features.knowledge.settings import KnowledgeSettings
from tests.conftest import LiveServer, fake_settings
from tests.unit.routing_helpers import SCORES, SMALL_PRICE, cost, routing_settings


class Traced:
    def __init__(self, app: Any, live: LiveServer, exporter: InMemorySpanExporter) -> None:
        self.app, self.live, self.exporter = app, live, exporter
        self.http = httpx.Client(base_url=live.root, timeout=30)

    def fake(self, name: str) -> Any:
        return scripted(self.app.state.engine.get(name).backend)

    def spans(self) -> dict[str, ReadableSpan]:
        return {s.name: s for s in self.exporter.get_finished_spans()}


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Traced]:
    settings = routing_settings(tmp_path)
    settings.knowledge = KnowledgeSettings(embedder="hash", min_evidence=0.1)  # type: ignore[attr-defined]
    app = create_app(settings)
    exporter = InMemorySpanExporter()
    app.state.kernel.service.tracer = OtelTracer(exporter, batch=False)
    SCORES.clear()
    with LiveServer(app) as live:
        stack = Traced(app, live, exporter)
        try:
            yield stack
        finally:
            stack.http.close()


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    kernel = Kernel(fake_settings(tmp_path))
    assert isinstance(kernel.tracer, NoTracer)
    assert isinstance(kernel.service.tracer, NoTracer)
    assert kernel.tracer.start("x") is NO_SPAN and NO_SPAN.step("y") is NO_SPAN
    asyncio.run(kernel.shutdown())


def test_a_setting_turns_on_the_otlp_exporter() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    tracer = make_tracer(TraceSettings(enabled=True, otlp_endpoint="http://127.0.0.1:9/v1/traces"))
    assert isinstance(tracer, OtelTracer)
    processor = tracer.provider._active_span_processor._span_processors[0]
    exporter = processor._batch_processor._exporter  # type: ignore[attr-defined]
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://127.0.0.1:9/v1/traces"
    tracer.shutdown()  # nothing recorded, so nothing is sent


def test_routed_request_spans(traced: Traced) -> None:
    SCORES.append(0.9)  # the small tier is sure: it answers
    traced.fake("small").enqueue("Paris is the capital.")
    body = {"model": "r", "messages": [{"role": "user", "content": "capital of France?"}]}
    reply = traced.http.post("/v1/chat/completions", json=body).json()
    spans = traced.spans()
    root = spans["strata.turn"]
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "r"
    assert attrs["gen_ai.response.model"] == "small"
    assert attrs["gen_ai.response.id"] == reply["id"]
    assert attrs["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == reply["usage"]["completion_tokens"] == 4
    assert attrs["strata.route"] == "r"
    assert attrs["strata.confidence"] == pytest.approx(0.9)
    expected = cost(SMALL_PRICE, reply["usage"]["prompt_tokens"], 4)
    assert attrs["strata.cost_usd"] == pytest.approx(expected)
    assert reply["strata"]["cost_usd"] == pytest.approx(expected)

    tier = spans["chat small"]
    tier_attrs = dict(tier.attributes or {})
    assert tier_attrs["gen_ai.request.model"] == "small"
    assert tier_attrs["strata.confidence"] == pytest.approx(0.9)
    assert tier_attrs["strata.tier.kept"] is True
    assert "chat big" not in spans  # never tried
    # Every step is a child of the request, in the same trace.
    steps = [s for s in traced.exporter.get_finished_spans() if s is not root]
    assert {s.name for s in steps} >= {
        "chat small",
        "layer session-memory before",
        "layer session-memory after",
        "layer knowledge before",
    }
    assert root.context is not None
    for step in steps:
        assert step.parent is not None and step.parent.span_id == root.context.span_id
        assert step.context is not None and step.context.trace_id == root.context.trace_id


def test_escalated_stream_has_a_span_per_tier(traced: Traced) -> None:
    SCORES.append(0.1)  # unsure: on to the big tier, which streams
    traced.fake("small").enqueue("Maybe Lyon.")
    traced.fake("big").enqueue("Paris.")
    body = {
        "model": "r",
        "stream": True,
        "messages": [{"role": "user", "content": "capital of France?"}],
    }
    text = traced.http.post("/v1/chat/completions", json=body).text
    assert text.rstrip().endswith("[DONE]")
    spans = traced.spans()
    small, big = (
        dict(spans["chat small"].attributes or {}),
        dict(spans["chat big"].attributes or {}),
    )
    assert small["strata.tier.kept"] is False and small["strata.confidence"] == pytest.approx(0.1)
    assert big["strata.tier.kept"] is True and big["gen_ai.usage.output_tokens"] == 1
    root = dict(spans["strata.turn"].attributes or {})
    assert root["gen_ai.response.model"] == "big"
    assert root["strata.generations"] == 2


def test_retrieval_and_model_spans(traced: Traced) -> None:
    traced.http.post("/v1/collections", json={"name": "facts"})
    doc = {"id": "paris", "text": "Paris is the capital of France."}
    traced.http.post("/v1/collections/facts/documents", json={"documents": [doc]})
    traced.fake("small").enqueue("Paris [1].")
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "strata": {"knowledge": "facts"},
    }
    assert traced.http.post("/v1/chat/completions", json=body).status_code == 200
    spans = traced.spans()
    retrieval = dict(spans["retrieval"].attributes or {})
    assert retrieval["strata.knowledge.collection"] == "facts"
    assert retrieval["strata.knowledge.hits"] == 1
    generation = dict(spans["chat small"].attributes or {})  # a named model: one generation
    assert generation["gen_ai.response.model"] == "small"
    assert generation["gen_ai.response.finish_reasons"] == "stop"
    assert "strata.route" not in dict(spans["strata.turn"].attributes or {})


def test_a_failed_request_ends_its_span_with_the_error(traced: Traced) -> None:
    traced.fake("big").enqueue(BackendUnavailable("down"))
    body = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}
    assert traced.http.post("/v1/chat/completions", json=body).status_code == 503
    root = traced.spans()["strata.turn"]
    assert root.status.status_code is StatusCode.ERROR
    assert dict(root.attributes or {})["error.type"] == "BackendUnavailable"


def test_spans_reach_an_otlp_endpoint(tmp_path: Path) -> None:
    """The configured exporter really sends: an OTLP/HTTP receiver gets the turn's spans."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from strata.core.models.base import GenerationRequest, SamplingParams
    from strata.core.turn import Turn

    received: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with HTTPServer(("127.0.0.1", 0), Receiver) as receiver:
        thread = threading.Thread(target=receiver.serve_forever, daemon=True)
        thread.start()
        endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
        settings = fake_settings(
            tmp_path, traces=TraceSettings(enabled=True, otlp_endpoint=endpoint)
        )
        kernel = Kernel(settings)
        gen = GenerationRequest(
            kind="chat",
            messages=[{"role": "user", "content": "hi"}],
            params=SamplingParams(max_tokens=4),
        )

        async def one_turn() -> None:
            try:
                await kernel.service.run(Turn("fake", gen))
            finally:
                await kernel.shutdown()  # shuts the tracer down, which flushes the batch

        asyncio.run(one_turn())
        receiver.shutdown()
        thread.join(timeout=5)
    assert received and all(path == "/v1/traces" for path, _ in received)
    names = set()
    for _, body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "strata"
            for scope in resource.scope_spans:
                names.update(span.name for span in scope.spans)
    assert {"strata.turn", "chat fake", "layer session-memory before"} <= names
