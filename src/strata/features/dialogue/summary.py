"""The rolling summary: turns that left the recent window, folded into a few paragraphs.

When it runs: after a turn is stored (an answer, or imported messages), in a background task,
once ``summary_batch`` turns have fallen out of the recent window since the last summary.
It never delays an answer: the reply is already sent, and the prompt builder uses whatever
summary is stored at that moment (turns not yet summarised are still reachable by retrieval).
Summaries are background work (``Turn.background``): they wait behind every user's request on
the model, and a user's request arriving while one runs stops it at its next token
(``Preempted``); the step is retried once the model is free. Each step folds in at most
``summary_step_tokens`` of prompt, so a user waits for at most one bounded prefill, however long
the imported history. One task per session at a time; a failure is logged and retried at the
next trigger.

The summary keeps names, numbers and dates verbatim: beside the model's prose it carries a
list of the summarised turns' fact-bearing sentences, extracted and merged deterministically
(``strata.features.dialogue.facts``); the model only ever rewrites the prose.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from strata.core.errors import Preempted, StrataError
from strata.core.models.base import Backend, GenerationRequest, SamplingParams
from strata.core.service import ChatService
from strata.core.settings import DialogueSettings
from strata.core.tenancy import Caller
from strata.core.turn import Turn as ChatTurn
from strata.features.dialogue import facts
from strata.features.dialogue.render import render_turn
from strata.features.dialogue.store import SessionStore, Turn
from strata.features.dialogue.tasks import SessionTasks

log = logging.getLogger("strata.features.dialogue")

SUMMARY_KEY = "strata:summary"

INSTRUCTIONS = (
    "You keep the running summary of a long conversation between a user and an assistant. "
    "Merge the new messages into the summary. Keep every concrete fact: names, numbers, "
    "codes, dates and times, places, decisions, preferences and open requests. Drop small "
    "talk. Write plain sentences, at most {words} words."
)


class Summariser:
    def __init__(
        self,
        store: SessionStore,
        service: ChatService,
        settings: DialogueSettings,
        model: Callable[[str], str],
    ) -> None:
        self.store = store
        self.service = service
        self.settings = settings
        self.model = model  # chat model name → the model that summarises for it
        self.tasks = SessionTasks()

    def due(self, sid: int) -> bool:
        session = self.store.by_sid(sid)
        if session is None:
            return False
        out_of_window = session.last_seq - self.settings.recent_turns
        return out_of_window - session.summary_upto >= self.settings.summary_batch

    def schedule(self, sid: int, chat_model: str) -> None:
        """Start summarising ``sid`` in the background if it is due and not already running."""
        if not self.settings.summary or sid in self.tasks or not self.due(sid):
            return
        self.tasks.start(sid, self._run(sid, self.model(chat_model)))

    async def settle(self) -> None:
        """Wait for the running summaries (tests, benchmarks, shutdown)."""
        await self.tasks.settle()

    async def close(self) -> None:
        await self.tasks.close()

    async def _run(self, sid: int, model: str) -> None:
        try:
            while True:
                session = await asyncio.to_thread(self.store.by_sid, sid)
                if session is None:
                    return
                upto = session.last_seq - self.settings.recent_turns
                if upto - session.summary_upto < self.settings.summary_batch:
                    return
                pending = await asyncio.to_thread(self.store.turns, sid, session.summary_upto, upto)
                prose, kept = facts.split(session.summary)
                batch = self._batch(model, prose, pending)
                try:
                    text = await self._summarise(model, prose, batch)
                except Preempted:
                    continue  # a user needed the model; this step queues again behind users
                new = facts.extract(batch)
                budget = self.settings.summary_facts_tokens
                merged = facts.merge(kept, new, budget, self._count(model))
                summary = facts.join(text, merged)
                await asyncio.to_thread(self.store.set_summary, sid, summary, batch[-1].seq)
        except StrataError as exc:
            log.warning("session summary failed (retried later): %s", exc.message)

    def _backend(self, model: str) -> Backend | None:
        handle = self.service.engine.models.get(model)
        return handle.backend if handle is not None else None

    def _count(self, model: str) -> Callable[[str], int]:
        backend = self._backend(model)
        return backend.count_tokens if backend else (lambda s: len(s) // 3 + 1)

    def _batch(self, model: str, summary: str, pending: list[Turn]) -> list[Turn]:
        """As many pending turns (at least one) as fit half the summary model's window and
        the step budget (``summary_step_tokens``: the most a user may wait behind)."""
        backend = self._backend(model)
        window = (backend.context_window if backend else None) or self.settings.default_window
        room = (
            min(window // 2, self.settings.summary_step_tokens) - self.settings.summary_max_tokens
        )
        count = self._count(model)
        used = count(summary)
        batch: list[Turn] = []
        for turn in pending:
            used += count(render_turn(turn)) + 1
            if batch and used > room:
                break
            batch.append(turn)
        return batch

    async def _summarise(self, model: str, summary: str, turns: list[Turn]) -> str:
        words = max(30, self.settings.summary_max_tokens * 3 // 4)
        transcript = "\n".join(render_turn(t) for t in turns)
        user = (
            f"Current summary:\n{summary or '(none yet)'}\n\nNew messages:\n{transcript}\n\n"
            "Write the updated summary."
        )
        gen = GenerationRequest(
            kind="chat",
            messages=[
                {"role": "system", "content": INSTRUCTIONS.format(words=words)},
                {"role": "user", "content": user},
            ],
            params=SamplingParams(temperature=0.0, max_tokens=self.settings.summary_max_tokens),
        )
        turn = ChatTurn(model, gen, Caller(queue=SUMMARY_KEY), background=True)
        text = await self.service.complete(turn)
        return text.strip()
