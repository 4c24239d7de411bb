"""Dialogue sessions on the fake backend: the store, the prompt the memory builds (fitted
exactly, with summary, retrieval and timestamps), the REST API and ownership."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.errors import ContextWindowExceeded, InvalidRequest, NotFound
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.settings import DialogueSettings, ModelSpec, Settings
from strata.core.tenancy import DEFAULT_TENANT, Caller
from strata.core.turn import Turn
from strata.edges.http.app import create_app
from strata.features.dialogue import facts
from strata.features.dialogue.memory import RECALLED
from strata.features.dialogue.store import NewTurn, SessionStore
from tests.conftest import LiveServer, fake
from tests.unit.conftest import assert_error_body, http_client
from tests.unit.turns import Asked, Stack, send


def dialogue_settings(tmp_path: Path, n_ctx: int = 400, **dialogue: Any) -> Settings:
    models = {
        "chat": ModelSpec(backend="fake", n_ctx=n_ctx),
        "summ": ModelSpec(backend="fake", n_ctx=2048, options={"default_output": "SUMMARY"}),
    }
    options = {"summary_model": "summ", "embedder": "hash", **dialogue}
    return Settings(
        home=tmp_path / "home",
        bundled_models=False,
        models=models,
        default_model="chat",
        dialogue=DialogueSettings(**options),
    )


def chat_turn(text: str, session: str, max_tokens: int = 8) -> Asked:
    gen = GenerationRequest(
        kind="chat",
        messages=[{"role": "user", "content": text}],
        params=SamplingParams(max_tokens=max_tokens),
    )
    return Asked(Turn("chat", gen, Caller(), {"session": session}, "resp-1"))


async def run_turn(stack: Stack, turn: Asked) -> str:
    return await send(stack, turn)


def filler(i: int) -> str:
    topics = ["weather", "football", "recipes", "gardening", "movies", "traffic", "music"]
    return f"Chatting about {topics[i % len(topics)]} number {i} and nothing else of note"


# ---- store ----


def test_store_append_search_and_cascade(database: Path | str) -> None:
    store = SessionStore(database)
    session = store.create("alice", "s1")
    with pytest.raises(InvalidRequest, match="already exists"):
        store.create("alice", "s1")
    store.append(session, [NewTurn("user", "my locker code is 4471"), NewTurn("assistant", "ok")])
    hits = store.search(session.sid, ["locker"], before=10, limit=5)
    assert [t.content for t, _ in hits] == ["my locker code is 4471"]
    with pytest.raises(NotFound):
        store.get("bob", "s1")
    store.delete("alice", "s1")
    assert store.db.query("SELECT COUNT(*) FROM turns")[0][0] == 0
    if store.db.dialect == "sqlite":  # PostgreSQL's index is a column of the deleted rows
        count = "SELECT COUNT(*) FROM turns_fts WHERE turns_fts MATCH 'locker'"
        assert store.db.query(count)[0][0] == 0
    store.close()


def test_store_rename_and_truncate(database: Path | str) -> None:
    """Edit-and-resend drops the turns from one on, from the index too, and a summary that
    covered any of them (it would remember what was taken back)."""
    store = SessionStore(database)
    session = store.create("alice", "s1", system="be brief", title="draft")
    store.append(session, [NewTurn("user", f"turn {i} pelican") for i in range(1, 6)])
    assert store.update("alice", "s1", title="Birds").title == "Birds"
    assert store.get("alice", "s1").system == "be brief"  # untouched when not given
    store.set_summary(session.sid, "talked about pelicans", upto=2)
    assert store.truncate("alice", "s1", from_seq=4) == 2
    kept = store.get("alice", "s1")
    assert kept.summary == "talked about pelicans" and kept.turns == 3  # summary before seq 4
    assert store.truncate("alice", "s1", from_seq=2) == 2
    cleared = store.get("alice", "s1")
    assert cleared.summary == "" and cleared.summary_upto == 0 and cleared.turns == 1
    hits = store.search(session.sid, ["pelican"], before=99, limit=9)
    assert [t.seq for t, _ in hits] == [1]
    with pytest.raises(NotFound):
        store.truncate("bob", "s1", from_seq=1)
    store.close()


# ---- the memory builder ----


def test_turn_three_fact_recalled_at_turn_300(tmp_path: Path) -> None:
    settings = dialogue_settings(tmp_path, summary=False)

    async def go() -> None:
        stack = Stack(settings)
        session = stack.sessions.create(DEFAULT_TENANT, "long")
        turns = [NewTurn("user", filler(i)) for i in range(2)]
        turns.append(NewTurn("user", "By the way my passport number is X9932177", created=1e9))
        turns += [NewTurn("assistant" if i % 2 else "user", filler(i)) for i in range(3, 300)]
        stack.sessions.append(session, turns)
        turn = chat_turn("What is my passport number?", "long")
        await run_turn(stack, turn)
        prompt = fake(stack.engine, "chat").calls[-1].messages or []
        assert turn.info["session"]["retrieved_turns"][0] == 3
        # the recalled turn, with its own date, right above the new message, which is last
        assert prompt[-1]["role"] == "user"
        asked = prompt[-1]["content"]
        assert asked.startswith(RECALLED + "\n")
        assert asked.endswith(
            "[9 September 2001] the user: By the way my passport number is X9932177\n\n"
            "What is my passport number?"
        )
        assert "X9932177" not in prompt[0]["content"]
        # the most recent turns are there verbatim, before it
        assert prompt[-2]["content"] == filler(299)
        await stack.shutdown()

    asyncio.run(go())


def test_prompt_fits_window_exactly(tmp_path: Path) -> None:
    """The builder's count is the model's own count, within the window less max_tokens,
    and it uses the room: one more recent turn would not have fitted."""
    settings = dialogue_settings(tmp_path, n_ctx=200, summary=False, recent_turns=50)

    async def go() -> None:
        stack = Stack(settings)
        session = stack.sessions.create(DEFAULT_TENANT, "fit")
        stack.sessions.append(session, [NewTurn("user", filler(i)) for i in range(60)])
        turn = chat_turn("hello there", "fit", max_tokens=20)
        await run_turn(stack, turn)
        backend = fake(stack.engine, "chat")
        prompt = backend.calls[-1].messages or []
        stats = turn.info["session"]
        assert stats["prompt_tokens"] == backend.count_messages(prompt)
        assert stats["prompt_tokens"] <= 200 - 20 == stats["budget"]
        kept = len(prompt) - 2
        assert 0 < kept < 60
        next_turn = filler(60 - kept - 1)
        assert stats["prompt_tokens"] + backend.count_tokens(next_turn) > stats["budget"]
        await stack.shutdown()

    asyncio.run(go())


def test_new_message_too_big_is_a_400(tmp_path: Path) -> None:
    settings = dialogue_settings(tmp_path, n_ctx=64, summary=False)

    async def go() -> None:
        stack = Stack(settings)
        stack.sessions.create(DEFAULT_TENANT, "s")
        with pytest.raises(ContextWindowExceeded):
            await chat_turn("word " * 80, "s").before(stack)
        assert stack.sessions.get(DEFAULT_TENANT, "s").turns == 0  # refused, so not stored
        await stack.shutdown()

    asyncio.run(go())


def test_summary_rolls_in_background_and_is_used(tmp_path: Path) -> None:
    settings = dialogue_settings(tmp_path, recent_turns=4, summary_batch=6)

    async def go() -> None:
        stack = Stack(settings)
        session = stack.sessions.create(DEFAULT_TENANT, "sum")
        stack.sessions.append(session, [NewTurn("user", filler(i)) for i in range(12)])
        await run_turn(stack, chat_turn("first question", "sum"))
        await stack.summariser.settle()
        summ = fake(stack.engine, "summ")
        assert summ.calls, "the summary model was not asked"
        asked = (summ.calls[0].messages or [])[-1]["content"]
        assert filler(0) in asked and filler(11) not in asked.split("New messages:")[0]
        stored = stack.sessions.get(DEFAULT_TENANT, "sum")
        prose, kept = facts.split(stored.summary)
        assert prose == "SUMMARY"
        # the numbers the model was free to drop are kept, word for word, with their date
        assert kept[0].endswith(f"the user: {filler(0)}") and len(kept) == stored.summary_upto
        assert stored.summary_upto >= 6
        turn = chat_turn("second question", "sum")
        await run_turn(stack, turn)
        system = (fake(stack.engine, "chat").calls[-1].messages or [])[0]["content"]
        assert "Summary of the earlier conversation:\nSUMMARY" in system
        assert turn.info["session"]["summary"] is True
        await stack.shutdown()

    asyncio.run(go())


def test_last_draft_is_in_the_window_for_refinement(tmp_path: Path) -> None:
    settings = dialogue_settings(tmp_path, summary=False)

    async def go() -> None:
        stack = Stack(settings)
        stack.sessions.create(DEFAULT_TENANT, "draft")
        fake(stack.engine, "chat").enqueue("Dear team, the launch moves to Friday.")
        await run_turn(stack, chat_turn("Write a note that the launch moves", "draft"))
        await run_turn(stack, chat_turn("make it shorter", "draft"))
        prompt = fake(stack.engine, "chat").calls[-1].messages or []
        assert prompt[-2] == {
            "role": "assistant",
            "content": "Dear team, the launch moves to Friday.",
        }
        assert prompt[-1]["content"] == "make it shorter"
        turns = stack.sessions.turns(stack.sessions.get(DEFAULT_TENANT, "draft").sid)
        assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
        await stack.shutdown()

    asyncio.run(go())


def test_user_turn_kept_when_generation_fails(tmp_path: Path) -> None:
    settings = dialogue_settings(tmp_path, summary=False)

    async def go() -> None:
        stack = Stack(settings)
        stack.sessions.create(DEFAULT_TENANT, "s")
        fake(stack.engine, "chat").enqueue(RuntimeError("boom"))
        turn = chat_turn("remember the milk", "s")
        await turn.before(stack)
        with pytest.raises(Exception, match="boom"):
            await stack.service.complete(turn.turn)
        turns = stack.sessions.turns(stack.sessions.get(DEFAULT_TENANT, "s").sid)
        assert [t.content for t in turns] == ["remember the milk"]
        await stack.shutdown()

    asyncio.run(go())


# ---- REST ----


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[LiveServer]:
    settings = dialogue_settings(tmp_path, summary=False)
    settings.api_keys = ["key-a", "key-b"]
    with LiveServer(create_app(settings, Engine(settings))) as server:
        yield server


def client(server: LiveServer, key: str) -> httpx.Client:
    c = http_client(server.root)
    c.headers["Authorization"] = f"Bearer {key}"
    return c


def test_sessions_rest_and_ownership(keyed: LiveServer) -> None:
    with client(keyed, "key-a") as a, client(keyed, "key-b") as b:
        made = a.post("/v1/sessions", json={"id": "work", "system": "Be brief."})
        assert made.status_code == 200, made.text
        assert made.json()["id"] == "work"
        history = {
            "messages": [
                {"role": "user", "content": "I moved to Porto", "created": "2026-03-02T10:00:00"},
                {"role": "assistant", "content": "Nice!", "name": "bot"},
            ]
        }
        added = a.post("/v1/sessions/work/messages", json=history)
        assert added.status_code == 200, added.text
        assert [t["seq"] for t in added.json()["data"]] == [1, 2]
        got = a.get("/v1/sessions/work").json()
        assert got["turn_count"] == 2
        assert got["turns"][0]["created"] == 1772445600.0
        assert [s["id"] for s in a.get("/v1/sessions").json()["data"]] == ["work"]

        # another key sees nothing, cannot read, append, chat in or delete it
        assert b.get("/v1/sessions").json()["data"] == []
        for response in (
            b.get("/v1/sessions/work"),
            b.post("/v1/sessions/work/messages", json=history),
            b.delete("/v1/sessions/work"),
            b.post(
                "/v1/chat/completions",
                json={
                    "model": "chat",
                    "messages": [{"role": "user", "content": "hi"}],
                    "strata": {"session": "work"},
                },
            ),
        ):
            assert response.status_code == 404, response.text
            assert assert_error_body(response.json())["code"] == "not_found"
        # ... and may have its own session of the same name
        assert b.post("/v1/sessions", json={"id": "work"}).status_code == 200

        chat = a.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "Where do I live?"}],
                "strata": {"session": "work"},
            },
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["strata"]["session"]["id"] == "work"
        assert a.get("/v1/sessions/work").json()["turn_count"] == 4
        assert a.delete("/v1/sessions/work").json()["deleted"] is True
        assert a.get("/v1/sessions/work").status_code == 404
        assert b.get("/v1/sessions/work").json()["turn_count"] == 0


def test_sessions_rest_errors(keyed: LiveServer) -> None:
    with client(keyed, "key-a") as a:
        assert a.post("/v1/sessions", json={"id": "x"}).status_code == 200
        dup = a.post("/v1/sessions", json={"id": "x"})
        assert dup.status_code == 400 and assert_error_body(dup.json())["param"] == "id"
        bad = a.post("/v1/sessions/x/messages", json={"messages": [{"role": "tool"}]})
        assert bad.status_code == 400
        assert_error_body(bad.json())
        unknown = a.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": "hi"}],
                "strata": {"session": "nope"},
            },
        )
        assert unknown.status_code == 404


def test_session_chat_streams_and_stores(keyed: LiveServer) -> None:
    with client(keyed, "key-a") as a:
        a.post("/v1/sessions", json={"id": "s"})
        body = {
            "model": "chat",
            "stream": True,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hello"}],
            "strata": {"session": "s"},
        }
        with a.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        turns = a.get("/v1/sessions/s").json()["turns"]
        assert [(t["role"], t["content"]) for t in turns] == [
            ("user", "hello"),
            ("assistant", "ok"),
        ]


def test_import_summary_does_not_delay_the_next_answer(tmp_path: Path) -> None:
    """The rolling summary of a long import runs on the chat model's only slot; the first
    question waits for one token of it, not for the summary, and the summary still finishes."""
    # Every answer is 30 tokens at 20 ms: a summary step takes 0.6 s, a question (8 tokens
    # at most) 0.16 s.
    output = " ".join(["summary"] * 30)
    models = {
        "chat": ModelSpec(
            backend="fake", n_ctx=4000, options={"delay_s": 0.02, "default_output": output}
        ),
    }
    settings = Settings(
        home=tmp_path / "home",
        bundled_models=False,
        models=models,
        default_model="chat",
        dialogue=DialogueSettings(
            recent_turns=4,
            summary_batch=6,
            summary_step_tokens=200,
            summary_max_tokens=40,
            embedder="hash",
        ),
    )

    async def go() -> None:
        stack = Stack(settings)
        backend = fake(stack.engine, "chat")
        session = stack.sessions.create(DEFAULT_TENANT, "imp")
        stack.sessions.append(session, [NewTurn("user", filler(i)) for i in range(30)])
        stack.summariser.schedule(session.sid, "chat")
        await asyncio.sleep(0.1)  # the summary holds the slot
        assert backend.calls and stack.summariser.tasks
        turn = chat_turn("first question", "imp")
        assert await run_turn(stack, turn)
        assert turn.result.timings.queued_s < 0.1  # one background token, not a 0.6 s step
        assert stack.summariser.tasks, "the summary is still to finish"
        await stack.summariser.settle()
        stored = stack.sessions.get(DEFAULT_TENANT, "imp")
        assert stored.summary_upto >= 30 - 4 - 6 + 1  # caught up after yielding
        assert backend.cancelled >= 1
        # Each step read at most the step budget: several steps, not one huge prompt.
        summary_calls = [c for c in backend.calls if "New messages:" in str(c.messages)]
        assert len(summary_calls) >= 3, len(summary_calls)
        await stack.shutdown()

    asyncio.run(go())
