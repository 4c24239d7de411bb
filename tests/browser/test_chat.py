"""Chat in the browser: a streamed answer with its route, tier, confidence, cost and saving;
a session resumed after a reload; rename, delete, edit-and-resend and feedback."""

from __future__ import annotations

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from strata.core.errors import BackendUnavailable
from tests.browser.conftest import SCORES, Stack, console_errors, find, screenshot, wait_for


def facts(browser: webdriver.Chrome) -> dict[str, str]:
    last = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
    return {
        e.get_attribute("data-fact") or "": e.text
        for e in last.find_elements(By.CSS_SELECTOR, "dd[data-fact]")
    }


def ask(browser: webdriver.Chrome, text: str) -> None:
    box = find(browser, "textarea[name=message]")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def answers(browser: webdriver.Chrome) -> int:
    return len(browser.find_elements(By.CSS_SELECTOR, ".msg.assistant dl.facts"))


def test_chat_streams_and_shows_route_and_cost(browser: webdriver.Chrome, server: Stack) -> None:
    browser.get(server.root)
    nav = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    assert nav == ["Chat", "Knowledge", "Templates", "Usage", "Models", "Detect"]
    find(browser, "#nav a[data-page=chat][aria-current=page]")
    model = find(browser, "select[name=model]")
    wait_for(lambda: model.get_attribute("value") == "auto", what="auto picked by default")

    # Unsure small tier (0.2 < 0.5): the big tier answers, streamed token by token.
    SCORES.append(0.2)
    server.fake("small").enqueue("A guess.")
    answer = "Rivers carve valleys slowly, grain by grain, over many thousands of years."
    server.fake("big").enqueue(answer)
    ask(browser, "How do rivers shape valleys?")
    seen: set[str] = set()

    def grown() -> bool:
        for node in browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .text"):
            seen.add(node.text)
        return answers(browser) == 1

    wait_for(grown, 20, "the streamed answer")
    partial = {t for t in seen if t and t != answer and answer.startswith(t)}
    assert partial, f"the answer never appeared part-way: {seen}"
    assert browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")[-1].text == answer
    shown = facts(browser)
    assert shown["Route"] == "auto"
    assert shown["Tier"] == "big (2 of 2)"
    assert shown["Cost"].startswith("$") and shown["Cost"] != "$0"

    # A confident small tier keeps its answer: cheaper than big, and the saving says so.
    SCORES.append(0.93)
    server.fake("small").enqueue("Mostly by erosion.")
    ask(browser, "In one phrase?")
    wait_for(lambda: answers(browser) == 2, 20, "the second answer")
    shown = facts(browser)
    assert shown["Tier"] == "small (1 of 2)"
    assert shown["Confidence"] == "0.93"
    assert "(90%)" in shown["Saving vs big"]  # big costs 10x small per token here
    with httpx.Client(base_url=server.root) as client:
        rows = client.get("/v1/usage/requests").json()["data"]
    assert [r["answered_by"] for r in rows] == ["small", "big"]
    assert console_errors(browser) == []
    screenshot(browser, "chat")


def test_a_failed_answer_is_a_message(browser: webdriver.Chrome, server: Stack) -> None:
    browser.get(server.root)
    Select(find(browser, "select[name=model]")).select_by_value("big")
    server.fake("big").enqueue(BackendUnavailable("the big model's server is down"))
    ask(browser, "Anyone there?")
    notice = find(browser, "#notice.error")
    assert "the big model's server is down" in notice.text
    bubble = find(browser, ".msg.assistant .error-box")
    assert "the big model's server is down" in bubble.text
    assert find(browser, "textarea[name=message]").is_enabled()  # ready for the next try
    screenshot(browser, "chat-error")


def test_session_resumed_after_reload(browser: webdriver.Chrome, server: Stack) -> None:
    browser.get(server.root + "/ui")
    server.fake("small").enqueue("Paris is the capital of France.")
    find(browser, "select[name=model]")
    SCORES.append(0.9)
    ask(browser, "What is the capital of France?")
    wait_for(lambda: answers(browser) == 1, 20, "the answer")
    title = find(browser, ".sessions li.current .resume").text
    assert title == "What is the capital of France?"

    browser.refresh()
    wait_for(
        lambda: (
            [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg .text")]
            == ["What is the capital of France?", "Paris is the capital of France."]
        ),
        what="the session restored after reload",
    )
    # A new chat, then the old one again from the sidebar.
    find(browser, "button.new").click()
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, ".msg .text"), what="empty chat")
    find(browser, ".sessions .resume").click()
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".msg .text")) == 2, what="resume")

    # Rename through the dialogue API's PATCH, as the sidebar does.
    browser.execute_script("window.prompt = () => 'Geography';")
    find(browser, ".sessions button[aria-label^=Rename]").click()
    wait_for(lambda: find(browser, ".sessions .resume").text == "Geography", what="renamed")

    # Edit and resend the question: the old turns go, the new answer comes.
    server.fake("small").enqueue("Rome is the capital of Italy.")
    SCORES.append(0.9)
    find(browser, ".msg.user button.link").click()
    box = find(browser, ".msg.user textarea")
    box.clear()
    box.send_keys("What is the capital of Italy?")
    find(browser, ".msg.user .editor button[type=submit]").click()
    wait_for(
        lambda: (
            [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg .text")]
            == ["What is the capital of Italy?", "Rome is the capital of Italy."]
        ),
        20,
        "the resent question and its answer",
    )
    with httpx.Client(base_url=server.root) as client:
        session = client.get("/v1/sessions").json()["data"][0]
        turns = client.get(f"/v1/sessions/{session['id']}").json()["turns"]
    assert [t["content"] for t in turns] == [
        "What is the capital of Italy?",
        "Rome is the capital of Italy.",
    ]
    # Thumbs up is stored as feedback on that response.
    find(browser, ".msg.assistant button[aria-label='Good answer']").click()
    wait_for(lambda: "Thanks" in find(browser, ".msg.assistant [role=status]").text)
    screenshot(browser, "session-resumed")

    browser.execute_script("window.confirm = () => true;")
    find(browser, ".sessions button[aria-label^=Delete]").click()
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, ".sessions li"), what="deleted")
