"""How stored turns look to a model: one line each, with the time they were said (UTC), so
"when did I say…" questions have an answer, and the speaker's name when there is one."""

from __future__ import annotations

import time

from strata.features.dialogue.store import Turn


def stamp(created: float) -> str:
    return time.strftime("%a %Y-%m-%d %H:%M", time.gmtime(created))


def render_turn(turn: Turn) -> str:
    """As a sentence ("On Wed 2026-09-09 at 09:00 the user said: …"): small models use a
    date written out like this more readily than a bracketed log prefix."""
    who = f"the {turn.role}" if not turn.name else f"the {turn.role} ({turn.name})"
    day, clock = stamp(turn.created).rsplit(" ", 1)
    return f"On {day} at {clock} {who} said: {turn.content}"


def recent_content(turn: Turn) -> str:
    """A recent turn as a chat message's content: user turns carry their time and speaker;
    the assistant's own turns stay verbatim, so a draft can be revised as it was written."""
    if turn.role != "user":
        return turn.content
    who = f" {turn.name}:" if turn.name else ""
    return f"[{stamp(turn.created)}]{who} {turn.content}"
