"""Session memory by meaning: turns embedded in the background and recalled by a paraphrase,
facts kept verbatim in the summary, relative dates pinned to the day said, and the memory's
own token budget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from strata.core.protocols import Embeddings
from strata.core.tenancy import DEFAULT_TENANT
from strata.features.dialogue import facts
from strata.features.dialogue.dates import resolve
from strata.features.dialogue.feature import Dialogue
from strata.features.dialogue.memory import RECALLED
from strata.features.dialogue.store import NewTurn, SessionStore, Turn
from tests.conftest import fake
from tests.unit.test_sessions import chat_turn, dialogue_settings, filler, run_turn
from tests.unit.turns import Stack

MAY_8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC).timestamp()

# Words that mean the same thing share a dimension: a stand-in for MiniLM that makes a
# paraphrase with no word in common land next to its turn.
CONCEPTS = {
    "car": 0,
    "automobile": 0,
    "parked": 1,
    "left": 1,
    "sister": 2,
    "sibling": 2,
}


class Synonyms:
    name = "synonyms"
    dim = 4

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace("?", " ").replace(".", " ").split():
                out[row, CONCEPTS.get(word, 3)] += 1.0 if word in CONCEPTS else 0.05
        return np.asarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def test_relative_dates_are_pinned_to_the_day_said() -> None:
    said = resolve("I went to a support group yesterday and painted last Saturday.", MAY_8)
    assert said == (
        "I went to a support group yesterday (7 May 2023) and painted last Saturday"
        " (the Saturday before 8 May 2023)."
    )
    assert resolve("two weeks ago, last year, next month", MAY_8) == (
        "two weeks ago (24 April 2023), last year (2022), next month (June 2023)"
    )
    assert resolve("nothing relative here", MAY_8) == "nothing relative here"


def test_facts_are_extracted_verbatim_and_the_newest_kept() -> None:
    turns = [
        Turn(1, "user", "Hi there. The wifi password is bluefern42. Nice weather.", None, MAY_8),
        Turn(2, "assistant", "Noted, the code is 1234 now.", None, MAY_8),
        Turn(3, "user", "I saw Priya at the market yesterday, lovely.", "Caroline", MAY_8),
    ]
    found = facts.extract(turns)
    assert found == [
        "8 May 2023, the user: The wifi password is bluefern42.",
        "8 May 2023, Caroline: I saw Priya at the market yesterday (7 May 2023), lovely.",
    ]
    summary = facts.join("They talked.", facts.merge(["old fact 1"], found, 1000, len))
    assert facts.split(summary) == ("They talked.", ["old fact 1", *found])
    # over budget: the oldest go first, repeats count once
    assert facts.merge(found, found, len(found[1]) + 2, len) == [found[1]]


def test_store_keeps_vectors_with_their_turns(database: Path | str) -> None:
    """On both engines: vectors are stored per embedder, replaced, and deleted with their
    turns."""
    store = SessionStore(database)
    session = store.create("alice", "s1")
    store.append(session, [NewTurn("user", f"turn {i}") for i in range(1, 4)])
    assert [t.seq for t in store.unembedded(session.sid, "e", 10)] == [1, 2, 3]
    store.set_vectors(session.sid, "e", [(1, b"\0" * 4), (2, b"\1" * 4), (9, b"\2" * 4)])
    assert [t.seq for t in store.unembedded(session.sid, "e", 10)] == [3]
    assert [t.seq for t in store.unembedded(session.sid, "other", 10)] == [1, 2, 3]
    store.set_vectors(session.sid, "e", [(2, b"\3" * 4)])  # re-embedded: replaced
    assert [v for _, v in store.vectors(session.sid, "e", before=9)] == [b"\0" * 4, b"\3" * 4]
    assert [(t.seq, v) for t, v in store.vectors(session.sid, "e", before=2)] == [(1, b"\0" * 4)]
    store.truncate("alice", "s1", from_seq=2)
    assert store.db.query("SELECT COUNT(*) FROM turn_vectors")[0][0] == 1
    store.delete("alice", "s1")
    assert store.db.query("SELECT COUNT(*) FROM turn_vectors")[0][0] == 0
    store.close()


def test_paraphrase_recalls_a_turn_that_shares_no_word(tmp_path: Path) -> None:
    """Keywords alone find nothing ("where is my car parked" vs "I left the automobile…");
    the turn's embedding, written in the background after the import, finds it."""
    settings = dialogue_settings(tmp_path, n_ctx=2000, summary=False, recent_turns=4)

    async def go() -> None:
        stack = Stack(settings)
        embedder = Synonyms()
        stack.provide(Embeddings, embedder)  # type: ignore[type-abstract]
        dialogue = stack.feature("dialogue", Dialogue)
        session = stack.sessions.create(DEFAULT_TENANT, "p")
        turns = [NewTurn("user", filler(i)) for i in range(3)]
        turns.append(NewTurn("user", "I left the automobile on level 6, spot C17.", None, MAY_8))
        turns += [NewTurn("user", filler(i)) for i in range(4, 40)]
        stack.sessions.append(session, turns)
        assert dialogue.index.search(session.sid, "car", 99, 5) == []  # not embedded yet
        dialogue.stored(session.sid, "chat")
        await dialogue.index.settle()
        assert stack.sessions.unembedded(session.sid, "synonyms", 99) == []
        assert embedder.calls == 3  # batches of 16, not one call per turn
        keyword = stack.sessions.search(session.sid, ["where", "car", "parked"], 99, 9)
        assert keyword == []
        turn = chat_turn("Where is my car parked?", "p")
        await run_turn(stack, turn)
        assert turn.info["session"]["retrieved_turns"] == [4]  # the fillers fall under the cut
        messages = fake(stack.engine, "chat").calls[-1].messages or []
        # Recalled turns sit in the new message, right above the question, not in the system
        # prompt behind the summary and the recent turns.
        assert messages[-1] == {
            "role": "user",
            "content": f"{RECALLED}\n[8 May 2023] the user: I left the automobile on level 6,"
            " spot C17.\n\nWhere is my car parked?",
        }
        assert "automobile" not in messages[0]["content"]
        await dialogue.index.settle()  # the question and the answer are embedded too
        assert stack.sessions.unembedded(session.sid, "synonyms", 99) == []
        await stack.shutdown()

    asyncio.run(go())


def test_memory_has_its_own_token_budget(tmp_path: Path) -> None:
    """A wide window is not filled with old chat: the memory takes ``memory_tokens``."""
    settings = dialogue_settings(
        tmp_path, n_ctx=4000, summary=False, recent_turns=200, memory_tokens=100
    )

    async def go() -> None:
        stack = Stack(settings)
        session = stack.sessions.create(DEFAULT_TENANT, "b")
        stack.sessions.append(session, [NewTurn("user", filler(i)) for i in range(150)])
        turn = chat_turn("hello there", "b")
        await run_turn(stack, turn)
        stats = turn.info["session"]
        prompt = fake(stack.engine, "chat").calls[-1].messages or []
        bare = fake(stack.engine, "chat").count_messages([prompt[0], prompt[-1]])
        assert stats["budget"] == 4000 - 8
        assert stats["memory_budget"] == bare + 100
        assert stats["memory_budget"] - 10 < stats["prompt_tokens"] <= stats["memory_budget"]
        assert 0 < stats["recent_turns"] < 20
        await stack.shutdown()

    asyncio.run(go())


def test_recall_keeps_what_stands_out_and_puts_the_best_match_last(tmp_path: Path) -> None:
    """Two turns about the car; fillers that only share the vector space's background.
    With the relevance cut only the two car turns are recalled, the closer one nearest the
    question; with the cut at 0 the quota is filled with fillers (what the cut removes)."""

    async def recalled(cut: float) -> tuple[list[int], str]:
        settings = dialogue_settings(
            tmp_path / str(cut), n_ctx=2000, summary=False, recent_turns=4, recall_cut=cut
        )
        stack = Stack(settings)
        stack.provide(Embeddings, Synonyms())  # type: ignore[type-abstract]
        dialogue = stack.feature("dialogue", Dialogue)
        session = stack.sessions.create(DEFAULT_TENANT, "c")
        turns = [NewTurn("user", filler(i)) for i in range(3)]
        turns.append(NewTurn("user", "I left the automobile on level 6, spot C17.", None, MAY_8))
        turns += [NewTurn("user", filler(i)) for i in range(4, 20)]
        turns.append(NewTurn("user", "The automobile is blue.", None, MAY_8))
        turns += [NewTurn("user", filler(i)) for i in range(21, 40)]
        stack.sessions.append(session, turns)
        dialogue.stored(session.sid, "chat")
        await dialogue.index.settle()
        turn = chat_turn("Where is my car parked?", "c")
        await run_turn(stack, turn)
        asked = (fake(stack.engine, "chat").calls[-1].messages or [])[-1]["content"]
        await stack.shutdown()
        return turn.info["session"]["retrieved_turns"], asked

    seqs, asked = asyncio.run(recalled(0.5))
    assert seqs == [4, 21]
    assert asked.index("automobile is blue") < asked.index("spot C17") < asked.index("Where is")
    seqs, _ = asyncio.run(recalled(0.0))
    assert seqs[:2] == [4, 21] and len(seqs) == 10  # retrieved_turns' default quota


def test_preferences_are_facts() -> None:
    turns = [
        Turn(1, "user", "My favourite tea is genmaicha. It was a lovely day.", None, MAY_8),
        Turn(2, "user", "I am allergic to peanuts, sadly.", None, MAY_8),
    ]
    assert facts.extract(turns) == [
        "8 May 2023, the user: My favourite tea is genmaicha.",
        "8 May 2023, the user: I am allergic to peanuts, sadly.",
    ]
