"""What an answer *says*, so two answers can be compared and graded.

Self-consistency counts how many samples agree, and the benchmark grades answers; both need
the same reading of free text: a choice letter for multiple choice, the final number for a
worked problem (after ``Answer:`` when the model wrote one, else the last number), otherwise
the whitespace- and case-normalised text.
"""

from __future__ import annotations

import re

_ANSWER_LINE = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")
_LETTER = re.compile(r"^\(?([A-Za-z])\)?(?:[.):\s]|$)")


def choice_letter(text: str, letters: str = "ABCD") -> str | None:
    """The choice letter a short answer starts with (``"B"``, ``"(B)"``, ``"B. Paris"``)."""
    head = text.strip()
    tail = _ANSWER_LINE.search(head)
    for candidate in (head, tail.group(1).strip() if tail else ""):
        match = _LETTER.match(candidate)
        if match and match.group(1).upper() in letters:
            return match.group(1).upper()
    return None


def final_number(text: str) -> str | None:
    """The final numeric answer of a worked solution, normalised (``"1,200.00"`` → ``"1200"``):
    the first number after the last ``Answer:``, else in the last ``\\boxed{}``, else the
    last number."""
    tails = _ANSWER_LINE.findall(text) or _BOXED.findall(text)
    for scope in [*([tails[-1]] if tails else []), text]:
        numbers = _NUMBER.findall(scope)
        if numbers:
            raw = numbers[0] if scope is not text else numbers[-1]
            return _normalise_number(raw)
    return None


def _normalise_number(raw: str) -> str:
    value = raw.replace(",", "").replace("$", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value or "0"


def canonical(text: str) -> str:
    """One comparable form of any answer: a letter, a number, or normalised text."""
    letter = choice_letter(text) if len(text.strip()) <= 40 else None
    if letter is not None:
        return letter
    number = final_number(text)
    if number is not None:
        return number
    return " ".join(text.lower().split())
