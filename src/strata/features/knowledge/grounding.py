"""Grounded answers: the chat layer behind ``strata: {"knowledge": "NAME", "top_k": k}``.

Before generation it retrieves passages for the last user message and rewrites that message
into numbered passages, an instruction to answer only from them and cite them as ``[n]``,
and the question. The response's ``strata`` field gets ``citations`` (document id, title,
chunk, score, ...) and, after the answer, ``cited``: the passage numbers the answer used.

When the evidence that the collection answers the question (``evidence.py``: a logistic
model over the keyword and vector rankings' agreement, margins and the best cosine,
calibrated on SciFact by ``bench/retrieval.py``) is under ``min_evidence``, no passage is
shown and the model is told to say it does not
know. Small models do not always obey that (asked for a capital city, the 0.5B model names
it), so the answer is also held back (``turn.buffer_output``) and, unless it already says
it does not know, replaced by the abstention sentence: an ungrounded answer never reaches
the client. The model still runs (with a short budget) because a layer only changes
messages, which is what lets it compose with every other layer and with the router's
dispatcher (a session layer still stores the turn). The abstention is also flagged as
``strata.knowledge.grounded = false`` so a client can tell without parsing the text.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strata.core.errors import InvalidRequest
from strata.core.turn import Turn, TurnResult
from strata.features.knowledge.base import Hit, KnowledgeBase
from strata.features.knowledge.settings import KnowledgeSettings

GROUNDED = """Passages:
{passages}

Using only the passages above, answer the question below in one or two sentences. After \
your answer, put the number of each passage you used in square brackets, like [1]. If the \
passages do not contain the answer, say "I don't know".

Question: {question}"""

ABSTENTION = "I don't know: the documents I have do not cover this."
ABSTAIN_BUDGET = 24  # tokens: enough for the abstention sentence, little to waste on a guess

ABSTAIN = """The knowledge base "{collection}" has no passage about the question below, so \
you cannot answer it from the documents. Reply exactly: "I don't know: the documents I \
have do not cover this." Do not guess and do not answer from memory.

Question: {question}"""

_CITE = re.compile(r"\[(\d{1,2})\]")


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def passages_block(hits: list[Hit]) -> str:
    out = []
    for n, hit in enumerate(hits, start=1):
        where = " — ".join(x for x in (hit.title, hit.heading) if x)
        out.append(f"[{n}] {where}\n{hit.text}" if where else f"[{n}] {hit.text}")
    return "\n\n".join(out)


def citation(n: int, hit: Hit) -> dict[str, Any]:
    return {"n": n, **hit.as_dict()}


class KnowledgeLayer:
    name = "knowledge"
    order = 30

    def __init__(self, knowledge: Callable[[], KnowledgeBase], settings: KnowledgeSettings) -> None:
        self._knowledge = knowledge
        self.settings = settings

    async def before(self, turn: Turn, result: TurnResult) -> None:
        collection = turn.options.get("knowledge")
        if not collection:
            return
        messages = list(turn.gen.messages or [])
        last = next(
            (i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"),
            None,
        )
        question = message_text(messages[last]).strip() if last is not None else ""
        if last is None or not question:
            raise InvalidRequest(
                "grounding with 'knowledge' needs a user message with text", param="messages"
            )
        top_k = int(turn.options.get("top_k") or self.settings.top_k)
        kb = self._knowledge()
        where: dict[str, str | int] = {
            "strata.knowledge.collection": str(collection),
            "strata.knowledge.top_k": top_k,
        }
        with turn.trace.step("retrieval", where) as span:
            hits, signals = await asyncio.to_thread(
                kb.search_with_evidence, turn.caller.tenant, str(collection), question, top_k
            )
            evidence = signals["support"]
            span.set({"strata.knowledge.hits": len(hits), "strata.knowledge.evidence": evidence})
        grounded = bool(hits) and evidence >= self.settings.min_evidence
        if grounded:
            prompt = GROUNDED.format(passages=passages_block(hits), question=question)
            result.report["citations"] = [citation(n, h) for n, h in enumerate(hits, start=1)]
        else:
            prompt = ABSTAIN.format(collection=collection, question=question)
            result.report["citations"] = []
            turn.buffer_output = True
            budget = min(turn.gen.params.max_tokens or ABSTAIN_BUDGET, ABSTAIN_BUDGET)
            turn.gen.params = replace(turn.gen.params, max_tokens=budget)
        messages[last] = {**messages[last], "content": prompt}
        turn.gen.messages = messages
        result.report["knowledge"] = {
            "collection": collection,
            "grounded": grounded,
            "evidence": round(evidence, 4),
            "threshold": self.settings.min_evidence,
            "signals": {k: round(v, 4) for k, v in signals.items() if k != "support"},
        }

    async def after(self, turn: Turn, result: TurnResult) -> None:
        knowledge = result.report.get("knowledge")
        if isinstance(knowledge, dict) and knowledge.get("grounded") is False:
            for choice in result.choices:
                if "don't know" not in choice.text.lower():
                    choice.text = ABSTENTION
            return
        citations = result.report.get("citations")
        if turn.options.get("knowledge") and citations is not None and result.choices:
            valid = {c["n"] for c in citations}
            used = {int(m) for m in _CITE.findall(result.choices[0].text)}
            result.report["cited"] = sorted(used & valid)
