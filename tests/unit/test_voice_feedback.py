"""Brand voices (rules, repair, regenerate, streams buffered) and feedback that changes the
next prompt; ownership of voices and feedback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.kernel import Kernel
from strata.edges.http.app import create_app
from strata.features.apps.learn import learn_voice, reading_grade
from strata.features.apps.voice import VoiceProfile, check, repair
from tests.conftest import LiveServer, fake
from tests.unit.conftest import assert_error_body, http_client
from tests.unit.test_templates import app_settings

VOICE = {
    "id": "acme",
    "name": "Acme",
    "tone": "warm, plain",
    "banned_words": ["cheap"],
    "preferred_terms": {"customers": "members"},
    "required_terms": ["Acme"],
    "max_words": 12,
}


def test_check_and_repair() -> None:
    profile = VoiceProfile(**{k: v for k, v in VOICE.items() if k != "id"})
    text = "Cheap deals for customers. Join today and save. Acme loves you all very much indeed."
    rules = {v.rule for v in check(profile, text)}
    assert rules == {"banned_word", "preferred_term", "max_words"}
    fixed = repair(profile, text)
    assert fixed == "Deals for members. Join today and save."
    assert {v.rule for v in check(profile, fixed)} == {"required_term"}  # reported, not invented
    assert check(profile, "Acme is cheapest") == []  # whole words only
    assert check(profile, "ACME members") == []


def test_guide_lists_rules() -> None:
    guide = VoiceProfile(tone="bold", dont=["jargon"], banned_words=["synergy"]).guide()
    assert "Tone: bold." in guide and "Don't: jargon" in guide and "synergy" in guide


def test_reading_grade_orders_texts() -> None:
    simple = ["The cat sat. The dog ran. We had fun."]
    dense = ["Institutional interoperability necessitates comprehensive standardisation."]
    assert reading_grade(simple) < reading_grade(dense)


def test_learn_voice_extracts_rules_with_a_schema(tmp_path: Path) -> None:
    settings = app_settings(tmp_path)

    async def go() -> None:
        stack = Kernel(settings)
        answer = {
            "tone": "friendly",
            "do": ["short sentences"],
            "dont": ["jargon"],
            "banned_words": ["utilize"],
            "preferred_terms": {"buy": "get"},
        }
        fake(stack.engine, "chat").enqueue(json.dumps(answer))
        profile = await learn_voice(stack.service, "chat", ["We help. You win.", "Get it now."])
        call = fake(stack.engine, "chat").calls[-1]
        assert call.params.response_format.type == "json_schema"
        assert profile.tone == "friendly" and profile.banned_words == ["utilize"]
        assert profile.preferred_terms == {"buy": "get"}
        assert profile.reading_level.startswith("grade ")
        assert profile.examples == ["We help. You win.", "Get it now."]
        await stack.shutdown()

    asyncio.run(go())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, Engine]]:
    settings = app_settings(tmp_path, api_keys=["key-a", "key-b"])
    engine = Engine(settings)
    with LiveServer(create_app(settings, engine)) as live:
        yield live, engine


def client(live: LiveServer, key: str) -> httpx.Client:
    c = http_client(live.root)
    c.headers["Authorization"] = f"Bearer {key}"
    return c


def chat(c: httpx.Client, text: str, stream: bool = False, **strata: str) -> httpx.Response:
    body = {
        "model": "chat",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        "strata": strata,
    }
    return c.post("/v1/chat/completions", json=body)


def test_voice_crud_and_ownership(server: tuple[LiveServer, Engine]) -> None:
    live, _ = server
    with client(live, "key-a") as a, client(live, "key-b") as b:
        made = a.post("/v1/voices", json=VOICE)
        assert made.status_code == 200, made.text
        assert a.get("/v1/voices/acme").json()["tone"] == "warm, plain"
        updated = a.put("/v1/voices/acme", json={**VOICE, "id": None, "tone": "crisp"})
        assert updated.status_code == 400  # id is not part of the profile
        profile = {k: v for k, v in VOICE.items() if k != "id"}
        assert a.put("/v1/voices/acme", json={**profile, "tone": "crisp"}).status_code == 200
        assert a.get("/v1/voices/acme").json()["tone"] == "crisp"
        assert [v["id"] for v in a.get("/v1/voices").json()["data"]] == ["acme"]
        for response in (
            b.get("/v1/voices/acme"),
            b.put("/v1/voices/acme", json=profile),
            b.delete("/v1/voices/acme"),
            chat(b, "hi", voice="acme"),
        ):
            assert response.status_code == 404, response.text
            assert_error_body(response.json())
        assert b.get("/v1/voices").json()["data"] == []
        bad = a.post("/v1/voices", json={"max_words": 0})
        assert bad.status_code == 400
        assert assert_error_body(bad.json())["param"] == "max_words"
        assert a.delete("/v1/voices/acme").status_code == 200
        assert a.get("/v1/voices/acme").status_code == 404


def test_voice_regenerates_then_repairs(server: tuple[LiveServer, Engine]) -> None:
    live, engine = server
    model = fake(engine, "chat")
    with client(live, "key-a") as a:
        a.post("/v1/voices", json=VOICE)
        # regenerated once with the violations named, and the second draft is fine
        model.enqueue("Cheap stuff for customers", "Acme has great deals for members")
        reply = chat(a, "write a line", voice="acme").json()
        assert reply["choices"][0]["message"]["content"] == "Acme has great deals for members"
        info = reply["strata"]["voice"]
        assert info["regenerated"] == 1 and info["repaired"] is False
        fix = (model.calls[-1].messages or [])[-1]["content"]
        assert 'banned word "cheap"' in fix and '"members"' in fix
        assert "Never use these words: cheap." in (model.calls[-1].messages or [])[0]["content"]
        # still broken after the retry: repaired deterministically
        model.enqueue("Cheap Acme deals", "Acme is cheap for customers")
        reply = chat(a, "again", voice="acme").json()
        assert reply["choices"][0]["message"]["content"] == "Acme is for members"
        assert reply["strata"]["voice"]["repaired"] is True
        assert reply["strata"]["voice"]["remaining"] == []


def test_voice_stream_is_buffered_and_repaired(server: tuple[LiveServer, Engine]) -> None:
    live, engine = server
    fake(engine, "chat").enqueue("cheap Acme", "still cheap Acme")
    with client(live, "key-a") as a:
        a.post("/v1/voices", json=VOICE)
        body = {
            "model": "chat",
            "stream": True,
            "messages": [{"role": "user", "content": "go"}],
            "strata": {"voice": "acme"},
        }
        with a.stream("POST", "/v1/chat/completions", json=body) as response:
            events = [
                json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")
            ]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "Still Acme"


def test_feedback_changes_the_next_prompt(server: tuple[LiveServer, Engine]) -> None:
    live, engine = server
    model = fake(engine, "chat")
    inputs = {"text": "pay now", "tone": "formal"}
    with client(live, "key-a") as a, client(live, "key-b") as b:
        a.post("/v1/voices", json={"id": "plain", "tone": "plain"})
        model.enqueue("Kindly remit payment.")
        run = a.post(
            "/v1/templates/rewrite-tone/run", json={"inputs": inputs, "voice": "plain"}
        ).json()
        first = model.calls[-1].messages or []
        assert run["strata"]["feedback_examples"] == 0
        # another key cannot rate it; a rating with nothing in it is refused
        denied = b.post("/v1/feedback", json={"response_id": run["id"], "rating": "up"})
        assert denied.status_code == 404
        empty = a.post("/v1/feedback", json={"response_id": run["id"]})
        assert empty.status_code == 422
        edit = "Please pay the invoice today. Thank you."
        ok = a.post("/v1/feedback", json={"response_id": run["id"], "edited_text": edit})
        assert ok.status_code == 200 and ok.json()["accepted"] is True

        a.post("/v1/templates/rewrite-tone/run", json={"inputs": inputs, "voice": "plain"})
        second = model.calls[-1].messages or []
        assert len(second) == len(first) + 2
        assert second[-2] == {"role": "assistant", "content": edit}
        # the example belongs to this template and voice only, and to this key only
        a.post("/v1/templates/rewrite-tone/run", json={"inputs": inputs})
        assert len(model.calls[-1].messages or []) == len(first)
        b.post("/v1/voices", json={"id": "plain", "tone": "plain"})
        b.post("/v1/templates/rewrite-tone/run", json={"inputs": inputs, "voice": "plain"})
        assert len(model.calls[-1].messages or []) == len(first)
        # a thumbs-down afterwards withdraws it
        a.post("/v1/feedback", json={"response_id": run["id"], "rating": "down"})
        a.post("/v1/templates/rewrite-tone/run", json={"inputs": inputs, "voice": "plain"})
        assert len(model.calls[-1].messages or []) == len(first)


def test_feedback_on_a_voice_chat(server: tuple[LiveServer, Engine]) -> None:
    live, engine = server
    model = fake(engine, "chat")
    with client(live, "key-a") as a:
        a.post("/v1/voices", json={"id": "plain", "tone": "plain"})
        model.enqueue("A long winded reply.")
        reply = chat(a, "describe us", voice="plain").json()
        assert reply["strata"]["response_id"] == reply["id"]
        a.post("/v1/feedback", json={"response_id": reply["id"], "rating": "up"})
        chat(a, "describe us again", voice="plain")
        system = (model.calls[-1].messages or [])[0]["content"]
        assert '"""A long winded reply."""' in system


def test_session_with_voice_stores_the_repaired_answer(server: tuple[LiveServer, Engine]) -> None:
    live, engine = server
    fake(engine, "chat").enqueue("cheap Acme", "cheap again Acme")
    with client(live, "key-a") as a:
        a.post("/v1/voices", json=VOICE)
        a.post("/v1/sessions", json={"id": "s"})
        # a request refused by a later layer (no such voice) leaves no turn behind
        assert chat(a, "hello", session="s", voice="nope").status_code == 404
        assert a.get("/v1/sessions/s").json()["turns"] == []
        reply = chat(a, "hello", session="s", voice="acme").json()
        assert reply["choices"][0]["message"]["content"] == "Again Acme"
        turns = a.get("/v1/sessions/s").json()["turns"]
        assert [(t["role"], t["content"]) for t in turns] == [
            ("user", "hello"),
            ("assistant", "Again Acme"),
        ]
