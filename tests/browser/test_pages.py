"""Knowledge, templates, usage, models and auth in the browser: a file uploaded and then cited
in an answer, a template run refused at its field and then run, the usage charts drawn from
the ledger's rows, the models page, and a wrong API key."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from strata.edges.http.app import create_app
from tests.browser.conftest import (
    SCORES,
    Stack,
    browser_settings,
    console_errors,
    find,
    screenshot,
    wait_for,
)
from tests.conftest import LiveServer

WARRANTY = "The Aurora kettle warranty covers the heating element for three years from purchase."

DROP_FILE = """
const [name, text] = arguments;
const transfer = new DataTransfer();
transfer.items.add(new File([text], name, {type: "text/plain"}));
document.querySelector(".dropzone").dispatchEvent(
  new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def test_file_uploaded_then_cited(browser: webdriver.Chrome, server: Stack, tmp_path: Path) -> None:
    browser.get(server.root + "/#/knowledge")
    find(browser, "input[name=collection]").send_keys("handbook", Keys.ENTER)
    find(browser, ".collection-detail h2")
    wait_for(lambda: find(browser, ".collection-detail h2").text == "handbook", what="selected")

    # One file dropped on the drop zone, one picked with the file chooser.
    browser.execute_script(DROP_FILE, "kettle.txt", WARRANTY)
    other = tmp_path / "returns.md"
    other.write_text("# Returns\n\nUnused items can be returned within 30 days for a refund.\n")
    browser.find_element(By.ID, "files").send_keys(str(other))
    wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, ".progress-list li.done")) == 2,
        what="both uploads done: "
        + str([e.text for e in browser.find_elements(By.CSS_SELECTOR, ".progress-list li")]),
    )
    bars = browser.find_elements(By.CSS_SELECTOR, ".progress-list progress")
    assert [b.get_attribute("value") for b in bars] == ["1", "1"]

    # Search highlights the query's words in the hits.
    find(browser, "input[name=query]").send_keys("kettle warranty", Keys.ENTER)
    hit = find(browser, ".hit")
    assert "kettle.txt" in hit.text
    marks = {m.text.lower() for m in hit.find_elements(By.TAG_NAME, "mark")}
    assert {"kettle", "warranty"} <= marks
    screenshot(browser, "knowledge")

    # Grounded in the collection, the answer cites the passage, which opens on a click.
    browser.get(server.root + "/#/chat")
    Select(find(browser, "select[name=knowledge]")).select_by_value("handbook")
    SCORES.append(0.9)
    server.fake("small").enqueue("The heating element is covered for three years [1].")
    box = find(browser, "textarea[name=message]")
    box.send_keys("How long is the Aurora kettle warranty?", Keys.ENTER)
    cite = find(browser, ".citations .cite", 20)
    assert cite.text.startswith("[1] kettle.txt")
    cite.click()
    passage = find(browser, "dialog.passage[open] blockquote")
    assert passage.text == WARRANTY
    prompt = server.fake("small").calls[-1].messages or []
    assert WARRANTY in str(prompt[-1]["content"])
    screenshot(browser, "chat-citation")


def test_template_validation_error_then_good_run(browser: webdriver.Chrome, server: Stack) -> None:
    with httpx.Client(base_url=server.root) as client:
        voice = {"id": "friendly", "name": "Friendly", "tone": "warm, plain-spoken"}
        assert client.post("/v1/voices", json=voice).status_code == 200
    browser.get(server.root + "/#/templates")
    find(browser, "[data-template=product-description]").click()
    generate = find(browser, ".template-form button[type=submit]")

    # Nothing filled in: the server's 422 is shown at the field it names.
    generate.click()
    error = find(browser, ".field-error:not(:empty)")
    product = browser.find_element(By.CSS_SELECTOR, "[data-input=product]")
    assert error.get_attribute("id") == f"{product.get_attribute('id')}-error"
    assert "product" in error.text
    assert product.get_attribute("aria-invalid") == "true"
    assert not server.fake("small").calls  # refused before any model ran
    screenshot(browser, "template-error")

    product.send_keys("Insulated steel water bottle, 750 ml")
    find(browser, "[data-input=features]").send_keys("keeps drinks cold 24 h\nleak-proof lid")
    Select(find(browser, "select[name=voice]")).select_by_value("friendly")
    server.fake("small").enqueue("Cold for a day, never leaks: your new favourite bottle.")
    generate.click()
    result = find(browser, ".output .result", 20)
    assert result.text == "Cold for a day, never leaks: your new favourite bottle."
    assert not browser.find_elements(By.CSS_SELECTOR, ".field-error:not(:empty)")
    sent = str(server.fake("small").calls[-1].messages)
    assert "leak-proof lid" in sent and "warm, plain-spoken" in sent  # inputs and voice used

    server.fake("small").enqueue("A bottle that keeps up with you.")
    find(browser, ".output button", 5)
    next(
        b
        for b in browser.find_elements(By.CSS_SELECTOR, ".output button")
        if b.text == "Regenerate"
    ).click()
    wait_for(lambda: find(browser, ".output .result").text == "A bottle that keeps up with you.")
    find(browser, ".output button[aria-label='Good result']").click()
    wait_for(lambda: "Thanks" in find(browser, ".output [role=status]").text)
    screenshot(browser, "templates")


def test_usage_charts_from_ledger_rows(browser: webdriver.Chrome, server: Stack) -> None:
    # Real requests write real ledger rows: two kept by small, one escalated, one named model.
    with httpx.Client(base_url=server.root, timeout=30) as client:
        for score in (0.9, 0.8, 0.1):
            SCORES.append(score)
            r = client.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hello there"}]},
            )
            assert r.status_code == 200
        body = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        rows = client.get("/v1/usage/requests").json()["data"]
        summary = client.get("/v1/usage").json()
    assert len(rows) == 4

    browser.get(server.root + "/#/usage")
    table = wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.ledger tbody tr")) == 4,
        what="four ledger rows in the table",
    )
    assert table
    answered = [
        tr.find_elements(By.TAG_NAME, "td")[2].text
        for tr in browser.find_elements(By.CSS_SELECTOR, "table.ledger tbody tr")
    ]
    assert answered == [r["answered_by"] for r in rows] == ["big", "big", "small", "small"]

    # Share bars: per model 2 small / 2 big; per tier: tier 1, tier 2, and the named model.
    bars = {
        (b.get_attribute("data-label"), b.get_attribute("data-value"))
        for b in browser.find_elements(By.CSS_SELECTOR, "svg.bars rect.bar")
    }
    assert {("tier 1: small", "2"), ("tier 2: big", "1"), ("named: big", "1")} <= bars
    assert {("small", "2"), ("big", "2"), ("auto", "3")} <= bars
    # The cost line's points add up to the ledger's total.
    spent = [
        float(p.get_attribute("data-value") or 0)
        for p in browser.find_elements(By.CSS_SELECTOR, "svg.line circle[data-series=spent]")
    ]
    assert spent and abs(sum(spent) - summary["cost_usd"]) < 1e-9
    totals = find(browser, ".totals").text
    assert "Requests\n4" in totals

    # Filter the table to one model.
    Select(find(browser, "select[name=answered_by]")).select_by_value("small")
    wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.ledger tbody tr")) == 2,
        what="the table filtered to small",
    )
    screenshot(browser, "usage")

    browser.get(server.root + "/#/models")
    row = find(browser, "tr[data-model=big]")
    assert row.find_element(By.CSS_SELECTOR, "[data-stat=queue]").text == "0"
    tiers = find(browser, "[data-route=auto] .tiers").text
    assert "small — keeps its answer at confidence ≥ 0.50" in tiers
    screenshot(browser, "models")


def test_every_page_fits_a_phone(browser: webdriver.Chrome, server: Stack) -> None:
    with httpx.Client(base_url=server.root, timeout=30) as client:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        client.post("/v1/collections", json={"name": "handbook"})
    browser.set_window_size(390, 844)
    for page, ready in [
        ("chat", "textarea[name=message]"),
        ("knowledge", ".dropzone"),
        ("templates", "[data-template]"),
        ("usage", "table.ledger tbody tr"),
        ("models", "[data-route=auto]"),
        ("detect", ".detect-form textarea"),
    ]:
        browser.get(f"{server.root}/#/{page}")
        find(browser, ready)
        width = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width[0] <= width[1], f"{page} scrolls sideways at phone width: {width}"
        assert find(browser, f"#nav a[data-page={page}]").is_displayed()
    screenshot(browser, "models-phone")
    assert console_errors(browser) == []


def test_wrong_api_key_is_refused(browser: webdriver.Chrome, tmp_path: Path) -> None:
    app = create_app(browser_settings(tmp_path, api_keys=["s3cret"]))
    with LiveServer(app) as live:
        browser.get(live.root)
        key = find(browser, "#login input[name=key]")
        key.send_keys("wrong-key", Keys.ENTER)
        error = find(browser, "#login .error-box")
        assert "Incorrect API key" in error.text
        assert browser.execute_script("return localStorage.getItem('strata.apiKey')") is None
        screenshot(browser, "wrong-key")

        key = find(browser, "#login input[name=key]")
        key.send_keys("s3cret", Keys.ENTER)
        find(browser, "textarea[name=message]")
        assert browser.execute_script("return localStorage.getItem('strata.apiKey')") == "s3cret"
        browser.refresh()  # kept in the browser: no second prompt
        find(browser, "textarea[name=message]")
        assert not browser.find_elements(By.ID, "login")
        browser.execute_script("localStorage.clear()")
