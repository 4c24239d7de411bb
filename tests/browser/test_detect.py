"""The Detect page: a pasted text's verdict, probability and machine-like sentences from
``POST /v1/detections`` (over the scripted word scorer, so the verdict is known), and the
server's 400 for a text past the limit shown at the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from strata.edges.http.app import create_app
from strata.features.detection import Detector
from strata.features.detection.feature import Detections
from tests.browser.conftest import browser_settings, console_errors, find, screenshot
from tests.conftest import LiveServer
from tests.unit.test_detection_detector import WordScorer, calibration

MACHINE = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AGAIN."
HUMAN = "my cat sat on a warm mat and purred at the rain outside."


@pytest.fixture
def detect_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    def detector(self: Detections, method: str | None) -> Detector:
        s = self.settings
        return Detector(WordScorer(), calibration(), max_chars=s.max_chars, max_inputs=s.max_inputs)

    monkeypatch.setattr(Detections, "detector", detector)
    with LiveServer(create_app(browser_settings(tmp_path, detection={"max_chars": 400}))) as live:
        yield live.root


def test_verdict_and_machine_sentences(browser: webdriver.Chrome, detect_server: str) -> None:
    browser.get(f"{detect_server}/#/detect")
    find(browser, "textarea[name=text]").send_keys(f"{MACHINE} {HUMAN}")
    find(browser, ".detect-form button[type=submit]").click()
    verdict = find(browser, ".verdict[data-decision]")
    assert verdict.get_attribute("data-decision") in {"machine", "human"}
    assert find(browser, "[data-fact=probability]").text.endswith("%")
    flagged = [e.text for e in browser.find_elements("css selector", "mark[data-sentence]")]
    assert flagged == [MACHINE]
    screenshot(browser, "detect")
    assert console_errors(browser) == []

    text = find(browser, "textarea[name=text]")
    text.clear()
    text.send_keys("word " * 100)  # 500 characters: past the 400 configured
    find(browser, ".detect-form button[type=submit]").click()
    error = find(browser, ".detect-form .field-error:not(:empty)")
    assert "400 characters" in error.text
    assert text.get_attribute("aria-invalid") == "true"


def test_too_short_is_said_not_guessed(browser: webdriver.Chrome, detect_server: str) -> None:
    browser.get(f"{detect_server}/#/detect")
    find(browser, "textarea[name=text]").send_keys("Too short.")
    find(browser, ".detect-form button[type=submit]").click()
    verdict = find(browser, ".verdict[data-decision=too_short]")
    assert "needs at least" in verdict.text
