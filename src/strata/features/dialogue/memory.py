"""Sessions that outlive the context window: a layer and a transcript recorder.

``SessionMemory`` (the last layer, so the system prompt, brand voice and any grounding are
already in the messages) checks the session is the caller's, stores the new message(s) as the
caller sent them (``turn.sent``) once every layer has accepted the request, just before
generation starts, and builds the prompt:

    system prompt + voice + rolling summary of older turns (prose + facts kept verbatim)
    most recent turns, verbatim (the last draft is always among them: "make it shorter")
    the new message, headed by the earlier turns relevant to it, each with its date, the
        best match last: hybrid recall, keywords (FTS5 BM25) and meaning (embeddings,
        ``TurnIndex``) fused, plus names, cut at a share of the best match's score

and fits it exactly into the model's window, counted with the model's own tokenizer
(``Backend.count_messages``), leaving ``max_tokens`` for the answer. The memory (summary,
retrieved and recent turns) has a budget of its own, ``memory_tokens``: a wide window is not
filled with old chat just because it has room. Parts are added in
priority order (last exchange, summary, retrieved turns, older recent turns) on estimates,
then the whole prompt is counted exactly and the least important part dropped until it fits.

With a session, a request's non-system messages are the *new* turn(s); earlier turns come
from the store, so a client sends only what is new. ``SessionRecorder`` subscribes to
``TurnCompleted`` and stores the final answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strata.core.engine import Engine
from strata.core.errors import ContextWindowExceeded, InvalidRequest
from strata.core.models.base import Backend, Capability
from strata.core.settings import DialogueSettings
from strata.core.turn import Turn as ChatTurn
from strata.core.turn import TurnCompleted, TurnResult
from strata.features.dialogue.index import TurnIndex
from strata.features.dialogue.render import recent_content, render_turn, stamp
from strata.features.dialogue.store import ROLES, NewTurn, Session, SessionStore, Turn

_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_ENTITY = re.compile(r"\b(?:[A-Z][\w-]+|\w*\d[\w-]*)\b")
_STOP = """a an and are as at be but by can could did do does for from had has have how i i'm if
    in is it it's me my of on or our so that the their them then there these they this to
    us was we were what when where which who why will with would you your yours tell said say
    about again please know remember"""
STOPWORDS = frozenset(_STOP.split())
RECALLED = "Earlier in this conversation (each line with the date it was said):"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if p.get("type") == "text")
    return str(content or "")


class SessionRecorder:
    """Keeps the answer in the session's transcript: a ``TurnCompleted`` subscriber, so it
    stores the final text, once every layer (a brand voice's repair) has had its say, then
    lets the summariser catch up in the background."""

    def __init__(self, store: SessionStore, stored: Callable[[int, str], None]) -> None:
        self.store = store
        self.stored = stored  # (sid, chat model): index the new turns, roll the summary

    async def __call__(self, event: TurnCompleted) -> None:
        turn, result = event.turn, event.result
        info = result.report.get("session")
        if info is None or not result.choices:
            return
        session = await asyncio.to_thread(self.store.find, turn.caller.owner, info["id"])
        if session is None:  # deleted while the answer was generated
            return
        stored = await asyncio.to_thread(
            self.store.append, session, [NewTurn("assistant", result.choices[0].text)]
        )
        info["reply_turn"] = stored[0].seq
        self.stored(session.sid, turn.model)


def new_turns(turn: ChatTurn) -> list[NewTurn]:
    """The request's new turns, as the caller sent them (a template may rewrite them)."""
    new = [
        NewTurn(m["role"], _text(m), m.get("name"))
        for m in turn.sent
        if m.get("role") not in {"system", "developer"}
    ]
    if not new:
        raise InvalidRequest("a session turn needs a new message", param="messages")
    for message in new:
        if message.role not in ROLES:
            raise InvalidRequest(
                f"a session keeps user and assistant messages, not '{message.role}'",
                param="messages",
            )
    return new


@dataclass
class _Part:
    kind: str  # "recent" | "summary" | "retrieved"
    turn: Turn | None
    cost: int
    rank: int = 0  # a retrieved turn's place in the recall ranking (0: the best match)


class SessionMemory:
    name = "session-memory"
    order = 90  # last: it fits what every other layer added into the window

    def __init__(
        self,
        store: SessionStore,
        engine: Engine,
        settings: DialogueSettings,
        index: TurnIndex,
        stored: Callable[[int, str], None],
    ) -> None:
        self.store = store
        self.engine = engine
        self.settings = settings
        self.index = index
        self.stored = stored
        self.clock: Callable[[], float] = time.time  # "the current time" (a benchmark sets it)

    def counter(self, model: str) -> tuple[str | None, int]:
        """The model whose tokenizer counts the prompt, and the window to fit.

        A plain model counts for itself. A route (``auto``) may answer with any chat model, so
        the prompt must fit the smallest of their windows; it is counted with the default
        model's tokenizer (the bundled models share one)."""
        handle = self.engine.models.get(model)
        if handle is not None:
            return model, handle.backend.context_window or self.settings.default_window
        chat = {
            name: h.backend
            for name, h in self.engine.models.items()
            if h.backend.supports(Capability.CHAT)
        }
        if not chat:
            return None, self.settings.default_window
        default = self.engine.settings.default_model
        name = default if default in self.engine.models else next(iter(chat))
        window = min(b.context_window or self.settings.default_window for b in chat.values())
        return name, window

    async def before(self, turn: ChatTurn, result: TurnResult) -> None:
        session_id = turn.options.get("session")
        if not session_id:
            return
        session = await asyncio.to_thread(self.store.get, turn.caller.owner, session_id)
        new = new_turns(turn)
        info: dict[str, Any] = {"id": session.id}
        result.report["session"] = info
        name, window = self.counter(turn.model)
        # The exact tokenizer comes with the weights: the pool loads them if need be.
        backend = await self.engine.tokenizer(name) if name is not None else None
        params = turn.gen.params
        reserve = params.max_tokens or min(self.settings.answer_tokens, window // 4)
        if params.max_tokens is None:
            turn.gen.params = dataclasses.replace(params, max_tokens=reserve)
        messages, stats = await asyncio.to_thread(
            self.build,
            session,
            turn.gen.messages or [],
            session.last_seq + 1,
            backend,
            window - reserve,
        )
        # Stored before generation starts, durably: a message the server accepted is kept
        # even if the model then fails.
        stored = await asyncio.to_thread(self.store.append, session, new)
        self.index.schedule(session.sid)
        turn.gen.messages = messages
        info.update(turn=stored[0].seq, **stats)

    async def after(self, turn: ChatTurn, result: TurnResult) -> None:
        return None

    # ---- the prompt ----

    def build(
        self,
        session: Session,
        request: list[dict[str, Any]],
        first_new: int,
        backend: Backend | None,
        budget: int,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        count_text = backend.count_tokens if backend else _estimate_text
        count = backend.count_messages if backend else _estimate_messages
        systems = [_text(m) for m in request if m.get("role") in {"system", "developer"}]
        new = [m for m in request if m.get("role") not in {"system", "developer"}]
        system = "\n\n".join(s for s in [session.system, *systems] if s.strip())
        recent = self.store.recent(session.sid, self.settings.recent_turns, before=first_new)
        start = recent[0].seq if recent else first_new
        query = " ".join(_text(m) for m in new if m.get("role") == "user")
        retrieved = self.retrieve(session.sid, query, before=start)

        # Priority order: the last exchange, the summary, retrieved turns, older recent turns.
        parts: list[_Part] = []
        for t in reversed(recent[-2:]):
            parts.append(_Part("recent", t, count_text(recent_content(t)) + 4))
        if session.summary:
            parts.append(_Part("summary", None, count_text(session.summary) + 12))
        share = int(min(budget, self.settings.memory_tokens) * self.settings.retrieval_share)
        spent = 0
        for rank, t in enumerate(retrieved):
            cost = count_text(render_turn(t)) + 1
            if spent + cost <= share:
                parts.append(_Part("retrieved", t, cost, rank))
                spent += cost
        for t in reversed(recent[:-2]):
            parts.append(_Part("recent", t, count_text(recent_content(t)) + 4))

        base = self._assemble(system, session, new, [])
        used = count(base)
        if used > budget:
            raise ContextWindowExceeded(
                f"The new message and system prompt take {used} tokens; the window leaves "
                f"{budget} for the prompt after the answer's max_tokens.",
                param="messages",
            )
        window_budget, budget = budget, min(budget, used + self.settings.memory_tokens)
        # Greedy on estimates, then exact: trim what ran over, then try what was left out
        # (the estimates lean high). Recent turns stay contiguous: once one is out, so are
        # all older ones.
        chosen: list[_Part] = []
        rest: list[_Part] = []
        for part in parts:
            if used + part.cost <= budget and not (part.kind == "recent" and _gap(rest)):
                chosen.append(part)
                used += part.cost
            else:
                rest.append(part)
        messages = self._assemble(system, session, new, chosen)
        exact = count(messages)
        while exact > budget and chosen:
            rest.insert(0, chosen.pop())
            messages = self._assemble(system, session, new, chosen)
            exact = count(messages)
        skipped: list[_Part] = []
        for part in rest:
            if part.kind == "recent" and _gap(skipped):
                continue
            trial = self._assemble(system, session, new, [*chosen, part])
            size = count(trial)
            if size <= budget:
                chosen.append(part)
                messages, exact = trial, size
            else:
                skipped.append(part)
        stats = {
            "prompt_tokens": exact,
            "budget": window_budget,
            "memory_budget": budget,
            "recent_turns": sum(p.kind == "recent" for p in chosen),
            "retrieved_turns": [p.turn.seq for p in chosen if p.kind == "retrieved" and p.turn],
            "summary": any(p.kind == "summary" for p in chosen),
        }
        return messages, stats

    def _assemble(
        self, system: str, session: Session, new: list[dict[str, Any]], parts: list[_Part]
    ) -> list[dict[str, Any]]:
        sections = [system] if system.strip() else []
        if any(p.kind == "summary" for p in parts):
            sections.append("Summary of the earlier conversation:\n" + session.summary)
        sections.append(f"The current time is {stamp(self.clock())} UTC.")
        recent = sorted((p.turn for p in parts if p.kind == "recent" and p.turn), key=_seq)
        messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(sections)}]
        for t in recent:
            message: dict[str, Any] = {"role": t.role, "content": recent_content(t)}
            messages.append(message)
        asked = [{k: v for k, v in m.items() if k != "name"} for m in new]
        # Recalled turns go into the new message itself, the best match last, next to the
        # question: a 0.5B model answers from what is nearest the question, and a block
        # behind the summary and a dozen recent turns lost to the summary's other facts.
        # (In the message, not a system message of its own: some chat templates allow a
        # system message only first.)
        recalled = sorted((p for p in parts if p.kind == "retrieved"), key=lambda p: -p.rank)
        found = [p.turn for p in recalled if p.turn]
        if found and asked and asked[-1].get("role") == "user":
            lines = "\n".join(render_turn(t) for t in found)
            asked[-1] = _prefixed(asked[-1], f"{RECALLED}\n{lines}\n\n")
        return messages + asked

    def retrieve(self, sid: int, query: str, before: int) -> list[Turn]:
        """Earlier turns relevant to ``query``, hybrid like the knowledge base: BM25 over the
        turns' words and cosine over their embeddings, each min-max normalised and mixed by
        ``vector_weight``, plus the overlap of names and numbers (what people ask back for)
        and a little recency. A paraphrase that shares no word still meets its turn."""
        limit = self.settings.retrieved_turns
        if limit == 0 or before <= 1 or not query.strip():
            return []
        words = [w.lower() for w in _WORD.findall(query)]
        terms = list(dict.fromkeys(w for w in words if w not in STOPWORDS and len(w) > 1))
        pool = max(50, limit * 5)
        keyword = self.store.search(sid, terms, before=before, limit=pool) if terms else []
        vector = self.index.search(sid, query, before=before, limit=pool)
        if not keyword and not vector:
            return []
        weight = self.settings.vector_weight if keyword and vector else float(bool(vector))
        found = {t.seq: t for t, _ in [*keyword, *vector]}
        fused = {seq: 0.0 for seq in found}
        for ranking, share in ((keyword, 1.0 - weight), (vector, weight)):
            for seq, value in _normalised(ranking).items():
                fused[seq] += share * value
        entities = {e.lower() for e in _ENTITY.findall(query)}

        def score(seq: int) -> float:
            turn = found[seq]
            overlap = 0.0
            if entities:
                said = {e.lower() for e in _ENTITY.findall(f"{turn.name or ''} {turn.content}")}
                overlap = len(entities & said) / len(entities)
            return fused[seq] + 0.3 * overlap + 0.05 * seq / before

        scores = {seq: score(seq) for seq in found}
        ranked = sorted(found, key=scores.__getitem__, reverse=True)[:limit]
        # A relevance cut, not a quota: filling the quota with turns that merely share a
        # word or a topic hands a small model stray facts to answer with.
        floor = self.settings.recall_cut * scores[ranked[0]]
        return [found[seq] for seq in ranked if scores[seq] >= floor]


def _prefixed(message: dict[str, Any], text: str) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        return {**message, "content": [{"type": "text", "text": text}, *content]}
    return {**message, "content": text + str(content or "")}


def _normalised(ranking: list[tuple[Turn, float]]) -> dict[int, float]:
    """Scores scaled to 0..1 within one ranking (its best hit 1, its last 0)."""
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    low, high = min(scores), max(scores)
    span = high - low
    return {t.seq: (s - low) / span if span > 0 else 1.0 for t, s in ranking}


def _gap(left_out: list[_Part]) -> bool:
    return any(p.kind == "recent" for p in left_out)


def _seq(turn: Turn) -> int:
    return turn.seq


def _estimate_text(text: str) -> int:
    return -(-len(text.encode()) // 3)  # as Backend.count_tokens: leans high


def _estimate_messages(messages: list[dict[str, Any]]) -> int:
    return 3 + sum(4 + _estimate_text(_text(m)) for m in messages)
