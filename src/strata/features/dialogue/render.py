"""How stored turns look to a model: one line each, with the date they were said (UTC) written
as people write it, relative dates pinned to that day, and the speaker's name when there is
one, so "when did I say…" and "when did she go…" have an answer in the line itself."""

from __future__ import annotations

import time

from strata.features.dialogue.dates import day_of, resolve, spoken
from strata.features.dialogue.store import Turn


def stamp(created: float) -> str:
    return time.strftime("%a %Y-%m-%d %H:%M", time.gmtime(created))


def speaker(turn: Turn) -> str:
    if turn.name:
        return turn.name
    return f"the {turn.role}"


def render_turn(turn: Turn) -> str:
    """``[9 September 2026] the user: …``: the date written as answers expect it, first, so
    a small model that copies the line's head into an answer to "when…" copies the date (a
    sentence form, "On … at 09:00 the user said:", was copied whole, time and all); short,
    so more turns fit the memory's budget."""
    said = spoken(day_of(turn.created))
    return f"[{said}] {speaker(turn)}: {resolve(turn.content, turn.created)}"


def recent_content(turn: Turn) -> str:
    """A recent turn as a chat message's content: user turns carry their time and speaker;
    the assistant's own turns stay verbatim, so a draft can be revised as it was written."""
    if turn.role != "user":
        return turn.content
    who = f" {turn.name}:" if turn.name else ""
    return f"[{spoken(day_of(turn.created))}]{who} {resolve(turn.content, turn.created)}"
