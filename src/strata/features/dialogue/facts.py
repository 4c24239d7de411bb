"""Facts the rolling summary keeps word for word.

A small model summarising paraphrases: "bluefern42" becomes "a wifi password", "14 March"
becomes "soon". So the summary has two parts: the model's prose, and a list of the summarised
turns' sentences that carry a name, a number, a code, a date or a preference, copied
verbatim (relative dates pinned to the day said), each with its date and speaker. The list is
extracted here, deterministically, never rewritten by the model; when it outgrows its budget
the oldest facts go first (retrieval still finds their turns).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date

from strata.features.dialogue.dates import WEEKDAYS, day_of, resolve, spoken
from strata.features.dialogue.render import speaker
from strata.features.dialogue.store import Turn

HEADING = "Facts, as they were said:"
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_MONTHS = [date(2000, m, 1).strftime("%B").lower() for m in range(1, 13)]
_DATED = re.compile(r"\b(?:" + "|".join(_MONTHS + WEEKDAYS) + r")\b", re.I)
_DIGIT = re.compile(r"\d")
# What someone likes or cannot have is asked back for as often as a name ("which tea do I
# like?"), and carries no capital or digit to find it by.
_PREFERENCE = re.compile(r"\b(?:favou?rite|prefer|prefers|preferred|allergic)\b", re.I)
_NOT_NAMES = frozenset({"I", "I'm", "I've", "I'll", "I'd", "OK", "Ok"})


def _names(sentence: str) -> bool:
    """A capitalised word past the first: a name, a place, a title."""
    words = sentence.split()[1:]
    return any(w[:1].isupper() and w.strip(",;:'\"()") not in _NOT_NAMES for w in words)


def is_fact(sentence: str) -> bool:
    if len(sentence.split()) < 4:
        return False  # "Thanks, Mel!"
    return bool(
        _DIGIT.search(sentence)
        or _DATED.search(sentence)
        or _PREFERENCE.search(sentence)
        or _names(sentence)
    )


def extract(turns: Sequence[Turn]) -> list[str]:
    """One line per fact-bearing sentence: ``7 May 2023, Caroline: …``. The assistant's own
    turns are skipped: what matters is what the people in the conversation said."""
    found: list[str] = []
    for turn in turns:
        if turn.role != "user":
            continue
        when = spoken(day_of(turn.created))
        for match in _SENTENCE.finditer(turn.content):
            sentence = match.group().strip()
            if is_fact(sentence):
                found.append(f"{when}, {speaker(turn)}: {resolve(sentence, turn.created)}")
    return found


def merge(
    old: Sequence[str], new: Sequence[str], budget: int, count: Callable[[str], int]
) -> list[str]:
    """``old`` then ``new``, without repeats, the newest that fit ``budget`` tokens."""
    ordered = list(dict.fromkeys([*old, *new]))
    kept: list[str] = []
    used = 0
    for line in reversed(ordered):
        cost = count(line) + 2
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return kept[::-1]


def split(summary: str) -> tuple[str, list[str]]:
    """A stored summary's prose and its facts."""
    prose, _, facts = summary.partition(HEADING)
    lines = [line[2:] for line in facts.splitlines() if line.startswith("- ")]
    return prose.strip(), lines


def join(prose: str, facts: Sequence[str]) -> str:
    if not facts:
        return prose
    listed = "\n".join(f"- {line}" for line in facts)
    return f"{prose}\n\n{HEADING}\n{listed}".strip()
