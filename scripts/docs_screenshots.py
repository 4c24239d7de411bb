"""Take the README's screenshots (docs/screenshots/*.png): one per page of the web app, on a
server with scripted fake models, a small knowledge base, a session and a day of ledger rows.

Run ``.venv/bin/python scripts/docs_screenshots.py`` after changing the web app, look at the
pictures, and commit them. Needs Debian's chromium and chromium-driver
(``scripts/install-system-deps.sh``).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import SCORES, Stack, browser_settings, find, wait_for  # noqa: E402
from tests.conftest import LiveServer  # noqa: E402

from strata.edges.http.app import create_app  # noqa: E402
from strata.features.routing.feature import Routing  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
DOCS = {
    "kettle.md": "# Aurora kettle\n\nThe Aurora kettle warranty covers the heating element for "
    "three years from purchase. The lid and filter are covered for one year.",
    "returns.md": "# Returns\n\nUnused items can be returned within 30 days for a full refund.",
    "shipping.md": "# Shipping\n\nOrders over 40 euros ship free within the EU in 2-4 days.",
}


def seed_ledger(app: object, tenant: str = "default") -> None:
    """A day of traffic, as the ledger records it: routed requests kept small or escalated,
    and requests that named a model."""
    ledger = app.state.kernel.feature("routing", Routing).ledger  # type: ignore[attr-defined]
    rng = random.Random(7)
    now = time.time()
    for i in range(160):
        ts = now - 86400 + i * 540 + rng.uniform(0, 400)
        kind = rng.random()
        prompt, completion = rng.randint(40, 400), rng.randint(20, 220)
        small = (prompt * 100 + completion * 200) / 1e6
        big = (prompt * 1000 + completion * 2000) / 1e6
        if kind < 0.62:
            row = ("auto", "auto", "small", ["small"], small, big, rng.uniform(0.62, 0.98))
        elif kind < 0.84:
            row = ("auto", "auto", "big", ["small", "big"], small + big, big, None)
        else:
            row = ("big", None, "big", ["big"], big, big, None)
        model, route, answered, tiers, cost, baseline, confidence = row
        ledger.record(
            {
                "ts": ts,
                "tenant": tenant,
                "model": model,
                "route": route,
                "answered_by": answered,
                "tiers": json.dumps(tiers),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "latency_s": rng.uniform(0.3, 4.0),
                "confidence": confidence,
                "cost_usd": cost,
                "baseline_usd": baseline,
                "degraded": 0,
            }
        )


def main() -> None:
    import pytest
    from tests.browser import conftest

    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="strata-shots-"))
    app = create_app(browser_settings(home))
    seed_ledger(app)
    driver_gen = conftest.driver.__wrapped__()  # type: ignore[attr-defined]
    browser = next(driver_gen)
    browser.set_window_size(1200, 820)
    try:
        with LiveServer(app) as live, httpx.Client(base_url=live.root, timeout=30) as api:
            stack = Stack(live, app)
            api.post("/v1/collections", json={"name": "handbook"})
            docs = [{"id": n, "text": t, "title": n} for n, t in DOCS.items()]
            api.post("/v1/collections/handbook/documents", json={"documents": docs})
            api.post("/v1/voices", json={"id": "friendly", "name": "Friendly", "tone": "warm"})

            browser.get(live.root)
            Select(find(browser, "select[name=knowledge]")).select_by_value("handbook")
            SCORES.extend([0.91, 0.3])
            stack.fake("small").enqueue("The heating element is covered for three years [1].")
            find(browser, "textarea[name=message]").send_keys(
                "How long is the kettle warranty?", Keys.ENTER
            )
            find(browser, ".citations .cite", 20)
            Select(find(browser, "select[name=knowledge]")).select_by_value("")
            stack.fake("small").enqueue("Maybe.")
            stack.fake("big").enqueue(
                "Dear customer, thank you for writing. Your kettle is still under warranty, "
                "so we will replace the heating element free of charge."
            )
            find(browser, "textarea[name=message]").send_keys(
                "Draft a short reply to a customer whose kettle stopped heating.", Keys.ENTER
            )
            wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "dl.facts")) == 2, 30)
            browser.save_screenshot(str(OUT / "chat.png"))

            browser.get(live.root + "/#/knowledge")
            find(browser, "input[name=query]").send_keys("kettle warranty", Keys.ENTER)
            find(browser, ".hit mark")
            browser.save_screenshot(str(OUT / "knowledge.png"))

            browser.get(live.root + "/#/templates/product-description")
            find(browser, "[data-input=product]").send_keys("Insulated steel bottle, 750 ml")
            find(browser, "[data-input=features]").send_keys("cold 24 h\nleak-proof lid")
            stack.fake("small").enqueue(
                "Keep drinks ice-cold for 24 hours with this insulated steel bottle. The "
                "leak-proof lid means it can ride in any bag, and at 750 ml it lasts the day."
            )
            find(browser, ".template-form button[type=submit]").click()
            find(browser, ".output .result", 20)
            browser.save_screenshot(str(OUT / "templates.png"))

            browser.get(live.root + "/#/usage")
            find(browser, "svg.line path.spent")
            browser.save_screenshot(str(OUT / "usage.png"))

            browser.get(live.root + "/#/models")
            find(browser, "[data-route=auto]")
            browser.save_screenshot(str(OUT / "models.png"))

            browser.set_window_size(390, 844)
            browser.get(live.root + "/#/chat")
            find(browser, ".msg.assistant dl.facts")
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(str(OUT / "chat-phone.png"))
    except pytest.skip.Exception as exc:
        raise SystemExit(str(exc)) from exc
    finally:
        next(driver_gen, None)
    print("\n".join(str(p.relative_to(ROOT)) for p in sorted(OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
