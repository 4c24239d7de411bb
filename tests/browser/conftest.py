"""Browser tests: the web app in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``; never a downloaded browser), driven by Selenium, against a live strata
server on scripted fake models. Each test saves a screenshot under ``screenshots/``.

The server's route ``auto`` runs ``small`` then ``big`` with a scripted confidence (``SCORES``),
so which tier answers, and what it costs, is known in advance.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from strata.core.models.fake import FakeBackend, scripted
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from strata.features.knowledge.settings import KnowledgeSettings
from strata.features.routing.settings import RouteSpec, TierSpec
from strata.features.routing.signals import Attempt, ConfidenceSignal, Probe, register_signal
from tests.conftest import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).with_name("screenshots")

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed "
        "(scripts/install-system-deps.sh installs them)",
        allow_module_level=True,
    )

SCORES: deque[float] = deque()


@register_signal
class BrowserScripted(ConfidenceSignal):
    """The small tier's confidence, scripted by each test (0.9 when nothing is queued)."""

    name = "browser_scripted"
    needs = frozenset()

    async def score(self, attempt: Attempt, probe: Probe) -> float:
        return SCORES.popleft() if SCORES else 0.9


def browser_settings(tmp_path: Path, **overrides: Any) -> Settings:
    models = {
        # Priced like a small and a big hosted model, so costs and savings are visible.
        "small": ModelSpec(
            backend="fake", n_ctx=4096, price_input_per_mtok=100, price_output_per_mtok=200
        ),
        "big": ModelSpec(
            backend="fake",
            n_ctx=4096,
            options={"delay_s": 0.12},  # slow enough that a test sees the answer grow
            price_input_per_mtok=1000,
            price_output_per_mtok=2000,
        ),
    }
    route = RouteSpec(
        tiers=[TierSpec(model="small", threshold=0.5), TierSpec(model="big", threshold=0)],
        signal="browser_scripted",
        description="small, escalating to big when unsure",
    )
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "bundled_models": False,
        "default_model": "small",
        "models": models,
        "routes": {"auto": route},
        "knowledge": KnowledgeSettings(embedder="hash", min_evidence=0.1),
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def driver() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="strata-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,860",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as exc:  # installed but unusable: a failure, not a skip
        pytest.fail(f"chromium did not start: {exc.msg}")
    browser.implicitly_wait(0)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(driver: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The session's browser, on a blank page with a laptop-sized window after each test,
    its console log drained first (what a test reads is its own)."""
    console_errors(driver)
    yield driver
    driver.set_window_size(1280, 860)
    driver.get("about:blank")


class Stack:
    """A live server and its app, so a test can script the fake models behind it."""

    def __init__(self, live: LiveServer, app: Any) -> None:
        self.live = live
        self.app = app
        self.root = live.root

    def fake(self, name: str) -> FakeBackend:
        return scripted(self.app.state.engine.get(name).backend)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Stack]:
    SCORES.clear()
    app = create_app(browser_settings(tmp_path))
    with LiveServer(app) as live:
        yield Stack(live, app)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except WebDriverException as exc:
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


def find(browser: webdriver.Chrome, css: str, timeout: float = 10.0) -> WebElement:
    return wait_for(  # type: ignore[no-any-return]
        lambda: next(
            iter(e for e in browser.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None
        ),
        timeout,
        css,
    )


def screenshot(browser: webdriver.Chrome, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def console_errors(browser: webdriver.Chrome) -> list[str]:
    """Errors the page logged (an exception in a module shows here before anywhere else)."""
    try:
        logs = browser.get_log("browser")
    except WebDriverException:
        return []
    return [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]
