"""Dates as people write them, and relative dates pinned to the day a turn was said.

"I went to the support group yesterday", said on 8 May 2023, is remembered as "yesterday
(7 May 2023)": a question asked weeks later ("when did she go?") is answered from the turn
alone, and a small model need not do calendar arithmetic. Only unambiguous phrases are
resolved; the text itself is kept and the resolved date follows it in brackets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7}


def day_of(created: float) -> date:
    return datetime.fromtimestamp(created, UTC).date()


def spoken(day: date) -> str:
    """``7 May 2023``: how dates are written in answers (and in LoCoMo's gold answers)."""
    return f"{day.day} {day:%B %Y}"


def _month(day: date, delta: int) -> str:
    month = day.month - 1 + delta
    return f"{date(day.year + month // 12, month % 12 + 1, 1):%B %Y}"


def _ago(match: re.Match[str], day: date) -> str:
    count = _NUMBERS.get(match["n"].lower()) or int(match["n"])
    return spoken(day - timedelta(days=count * _UNITS[match["unit"].lower()]))


def _last_weekday(match: re.Match[str], day: date) -> str:
    name = match["wd"].lower()
    return f"the {name.capitalize()} before {spoken(day)}"


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str], date], str]]] = [
    (re.compile(r"\byesterday\b", re.I), lambda m, d: spoken(d - timedelta(days=1))),
    (
        re.compile(r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b", re.I),
        lambda m, d: spoken(d),
    ),
    (re.compile(r"\btomorrow\b", re.I), lambda m, d: spoken(d + timedelta(days=1))),
    (
        re.compile(
            r"\b(?P<n>\d{1,2}|an?|one|two|three|four|five|six) (?P<unit>days?|weeks?) ago\b", re.I
        ),
        _ago,
    ),
    (re.compile(r"\blast week\b", re.I), lambda m, d: f"the week before {spoken(d)}"),
    (re.compile(r"\blast weekend\b", re.I), lambda m, d: f"the weekend before {spoken(d)}"),
    (re.compile(r"\bnext week\b", re.I), lambda m, d: f"the week after {spoken(d)}"),
    (re.compile(r"\blast month\b", re.I), lambda m, d: _month(d, -1)),
    (re.compile(r"\bnext month\b", re.I), lambda m, d: _month(d, 1)),
    (re.compile(r"\blast year\b", re.I), lambda m, d: str(d.year - 1)),
    (re.compile(r"\bnext year\b", re.I), lambda m, d: str(d.year + 1)),
    (re.compile(r"\bthis year\b", re.I), lambda m, d: str(d.year)),
    (re.compile(r"\blast (?P<wd>" + "|".join(WEEKDAYS) + r")\b", re.I), _last_weekday),
]


def resolve(text: str, created: float) -> str:
    """``text`` with each relative date followed by the date it meant when said."""
    day = day_of(created)
    spans: list[tuple[int, int, str]] = []
    for pattern, meaning in _RULES:
        for match in pattern.finditer(text):
            if any(start < match.end() and match.start() < end for start, end, _ in spans):
                continue  # "last week" inside a longer phrase already resolved
            spans.append((match.start(), match.end(), meaning(match, day)))
    for _, end, meant in sorted(spans, reverse=True):
        text = f"{text[:end]} ({meant}){text[end:]}"
    return text
