"""The web app on the bundled 0.5B model: an answer streams into the page, with its model
and cost, and the request's OpenTelemetry trace carries the real token counts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from strata.core.settings import ModelSpec, Settings
from strata.core.tracing_otel import OtelTracer
from strata.edges.http.app import create_app
from tests.browser.conftest import find, screenshot, wait_for
from tests.conftest import LiveServer
from tests.e2e.conftest import bundled_path

pytestmark = pytest.mark.real_model


def test_a_real_answer_streams_with_its_cost_and_trace(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    small = ModelSpec(path=bundled_path("qwen2.5-coder-0.5b-instruct"), n_ctx=2048, load="startup")
    settings = Settings(home=tmp_path / "home", bundled_models=False, models={"small": small})
    app = create_app(settings)
    exporter = InMemorySpanExporter()
    app.state.kernel.service.tracer = OtelTracer(exporter, batch=False)
    with LiveServer(app) as live:
        deadline = time.monotonic() + 120
        while httpx.get(live.root + "/health").status_code != 200:  # 503 while loading
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.2)
        browser.get(live.root)
        Select(find(browser, "select[name=model]")).select_by_value("small")
        box = find(browser, "textarea[name=message]")
        box.send_keys("Write one short sentence about rivers.", Keys.ENTER)
        seen: set[str] = set()

        def done() -> bool:
            seen.update(
                e.text for e in browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")
            )
            return bool(browser.find_elements(By.CSS_SELECTOR, ".msg.assistant dl.facts"))

        wait_for(done, 180, "the real model's answer")
        answer = browser.find_element(By.CSS_SELECTOR, ".msg.assistant .text").text
        assert answer.strip()
        assert any(t and t != answer and answer.startswith(t) for t in seen), "no partial text"
        facts = {
            e.get_attribute("data-fact"): e.text
            for e in browser.find_elements(By.CSS_SELECTOR, "dd[data-fact]")
        }
        assert facts["Model"] == "small"
        assert facts["Cost"].startswith("$") and facts["Cost"] != "$0"
        screenshot(browser, "real-model-chat")

    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    generation, turn = spans["chat small"], spans["strata.turn"]
    assert generation["gen_ai.usage.output_tokens"] == turn["gen_ai.usage.output_tokens"] > 1
    assert turn["gen_ai.usage.input_tokens"] > 5
    assert turn["strata.cost_usd"] > 0
