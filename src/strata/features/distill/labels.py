"""Which requests are closed-set, and how to read and write their answers.

A chat request is closed-set when its ``response_format`` is a JSON schema whose answer is one
of a fixed list: a top-level ``{"enum": [...]}`` or an object with one enum property (say
``{"type": "object", "properties": {"label": {"enum": [...]}}}``); a template that declares
its labels writes such a schema. A client may also declare the labels of a plain-text answer
with ``strata: {"labels": [...]}``. The task key (route, labels, field) names the specialist,
so a route that sees two label sets has two specialists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from strata.core.turn import Turn

MAX_LABELS = 1000


@dataclass(frozen=True)
class LabelSet:
    """The labels of a closed-set request; ``field`` is the enum property ("" for a
    top-level enum), ``plain`` a text answer rather than JSON."""

    labels: tuple[str, ...]
    field: str = ""
    plain: bool = False

    @property
    def digest(self) -> str:
        raw = json.dumps([self.field, self.plain, sorted(self.labels)])
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def key(self, route: str) -> str:
        return f"{route}-{self.digest}"

    def render(self, label: str) -> str:
        """The answer a model asked for this format would give."""
        if self.plain:
            return label
        if self.field:
            return json.dumps({self.field: label})
        return json.dumps(label)

    def parse(self, text: str) -> str | None:
        """The label in an answer (or a user's correction), or None when it names none."""
        candidate: Any = text.strip()
        with contextlib.suppress(ValueError):
            candidate = json.loads(candidate)
        if isinstance(candidate, dict):
            values = [v for v in candidate.values() if isinstance(v, str)]
            found = candidate.get(self.field) if self.field else None
            candidate = found if found is not None or len(values) != 1 else values[0]
        if not isinstance(candidate, str):
            return None
        if candidate in self.labels:
            return candidate
        folded = {label.casefold(): label for label in self.labels}
        return folded.get(candidate.strip().strip("\"'.").casefold())


def _enum(schema: Any) -> tuple[str, ...] | None:
    if not isinstance(schema, dict):
        return None
    values = schema.get("enum")
    if (
        isinstance(values, list)
        and 2 <= len(values) <= MAX_LABELS
        and all(isinstance(v, str) for v in values)
    ):
        return tuple(values)
    return None


def label_set(turn: Turn) -> LabelSet | None:
    """The closed set of answers ``turn`` asks for, or None for open-ended requests."""
    if turn.gen.kind != "chat":
        return None
    fmt = turn.gen.params.response_format
    if fmt.type == "json_schema" and fmt.schema:
        schema = fmt.schema
        top = _enum(schema)
        if top is not None:
            return LabelSet(top)
        properties = schema.get("properties")
        if schema.get("type") == "object" and isinstance(properties, dict):
            enums = {k: _enum(v) for k, v in properties.items()}
            found = [(k, v) for k, v in enums.items() if v is not None]
            if len(found) == 1 and len(properties) == 1:
                return LabelSet(found[0][1], field=found[0][0])
        return None
    declared = turn.options.get("labels")
    if fmt.type == "text" and isinstance(declared, list):
        labels = _enum({"enum": declared})
        if labels is not None:
            return LabelSet(labels, plain=True)
    return None


def request_text(turn: Turn) -> str:
    """What a specialist reads: the last user message as the client sent it; for a template
    run, its inputs (the prompt around them is the same every time); else the last user
    message the model saw."""
    sent = _last_user(turn.sent)
    if sent:
        return sent
    inputs = turn.options.get("inputs")
    if isinstance(inputs, dict) and inputs:
        return "\n".join(f"{k}: {v}" for k, v in sorted(inputs.items()))
    return _last_user(list(turn.gen.messages or []))


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
    return ""


def label_name(label: str) -> str:
    """A label read as words (``card_arrival`` → "card arrival", ``ScienceTech`` → "Science
    Tech"): what the label names is the one thing known of it before any traffic."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label)
    return re.sub(r"[_\-.:]+", " ", spaced).strip() or label
