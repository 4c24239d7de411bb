"""Model output → OpenAI ``tool_calls``.

Qwen2.5 writes calls as ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``
blocks (several for parallel calls). Without a grammar, the Coder models often answer with a
fenced ```` ```json ```` block instead, holding one call, a list of calls, or OpenAI's own
``{"function": {...}}`` shape; sometimes with the bare JSON and no fence. All of these
become calls here, so the client sees the same ``tool_calls`` whatever the model wrote.

Why the tool names matter: a Coder model asked about JSON answers with JSON. A fenced or
bare object counts as a call only when its name is one of the request's tools; the native
tags are unambiguous and count whenever they parse.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from strata.core.tools.grammar import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

Source = Literal["none", "native", "fenced", "bare"]

_NATIVE = re.compile(
    re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(TOOL_CALL_CLOSE) + r"|\Z)",
    re.DOTALL,
)
_FENCE = re.compile(
    r"```[ \t]*(?:json|JSON|tool_call|tool_code)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL
)
_ID_CHARS = string.ascii_letters + string.digits


def new_call_id() -> str:
    """An id in OpenAI's shape (``call_`` + 24 characters)."""
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(24))


@dataclass(frozen=True)
class ParsedOutput:
    """``content`` is the text around the calls (None when there is none, as OpenAI
    returns with tool calls); ``source`` says which form the calls came in (for metrics:
    how often a model falls back to fenced JSON)."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    source: Source = "none"


def _loads(text: str) -> Any:
    try:
        return json.loads(text, strict=False)  # raw newlines inside strings happen
    except ValueError:
        return None


def _call_objects(value: Any) -> Iterator[tuple[str, Any]]:
    """(name, arguments) for each call-shaped object in ``value``; nothing for others.

    Shapes: ``{"name", "arguments"|"parameters"}``, ``{"function": {...}}``,
    ``{"type": "function", "function": {...}}``, ``{"function": "name", "arguments"}``,
    ``{"tool_calls": [...]}``, and lists of any of these."""
    if isinstance(value, list):
        for item in value:
            yield from _call_objects(item)
        return
    if not isinstance(value, Mapping):
        return
    if isinstance(value.get("tool_calls"), list):
        yield from _call_objects(value["tool_calls"])
        return
    function = value.get("function")
    if isinstance(function, Mapping):
        yield from _call_objects(function)
        return
    name = value.get("name", function)
    if not isinstance(name, str) or not name:
        return
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        decoded = _loads(arguments)
        arguments = decoded if isinstance(decoded, Mapping) else arguments
    yield name, arguments if arguments is not None else {}


def _as_calls(
    value: Any, known: Collection[str] | None, new_id: Callable[[], str]
) -> list[dict[str, Any]] | None:
    calls = []
    for name, arguments in _call_objects(value):
        if known is not None and name not in known:
            return None
        text = (
            arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        )
        calls.append(
            {"id": new_id(), "type": "function", "function": {"name": name, "arguments": text}}
        )
    return calls or None


def _remove(text: str, spans: list[tuple[int, int]]) -> str | None:
    kept, last = [], 0
    for start, end in spans:
        kept.append(text[last:start])
        last = end
    kept.append(text[last:])
    content = re.sub(r"\n{3,}", "\n\n", "".join(kept)).strip()
    return content or None


def parse_tool_calls(
    text: str,
    tool_names: Collection[str] | None = None,
    *,
    new_id: Callable[[], str] = new_call_id,
) -> ParsedOutput:
    """Split ``text`` into content and OpenAI tool calls.

    ``tool_names``: the request's tools; fenced or bare JSON counts only when every call in
    it names one of them. None: only the native tags are read (any name)."""
    calls: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for match in _NATIVE.finditer(text):
        found = _as_calls(_loads(match.group(1)), None, new_id)
        if found:
            calls += found
            spans.append(match.span())
    if calls:
        return ParsedOutput(_remove(text, spans), calls, "native")
    if tool_names is None:
        return ParsedOutput(text.strip() or None)
    for match in _FENCE.finditer(text):
        found = _as_calls(_loads(match.group(1).strip()), tool_names, new_id)
        if found:
            calls += found
            spans.append(match.span())
    if calls:
        return ParsedOutput(_remove(text, spans), calls, "fenced")
    stripped = text.strip()
    if stripped[:1] in "{[":
        found = _as_calls(_loads(stripped), tool_names, new_id)
        if found:
            return ParsedOutput(None, found, "bare")
    return ParsedOutput(stripped or None)


def arguments_object(arguments: Any) -> Any:
    """A history message's ``arguments`` (OpenAI sends a JSON string) as the object chat
    templates expect: Qwen's writes ``arguments | tojson``, which would quote a string."""
    if isinstance(arguments, str):
        decoded = _loads(arguments)
        return decoded if decoded is not None else arguments
    return arguments


def call_deltas(calls: Sequence[Mapping[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """Complete calls as streamed deltas (OpenAI's chunk shape: each with its ``index``)."""
    return [{"index": start + i, **call} for i, call in enumerate(calls)]


def merge_call_deltas(
    calls: list[dict[str, Any]], deltas: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Fold streamed ``tool_calls`` deltas into complete calls, as OpenAI's SDK does: a delta
    with a new ``index`` starts a call, later ones append to its ``arguments``. A delta
    without an index (a non-streamed message's call) is a complete call of its own."""
    by_index = {i: call for i, call in enumerate(calls)}
    for delta in deltas:
        index = delta.get("index")
        if not isinstance(index, int):
            calls.append({k: v for k, v in delta.items() if k != "index"})
            continue
        call = by_index.get(index)
        function = delta.get("function") or {}
        if call is None:
            call = {
                "id": delta.get("id") or new_call_id(),
                "type": delta.get("type") or "function",
                "function": {"name": "", "arguments": ""},
            }
            by_index[index] = call
            calls.append(call)
        elif delta.get("id"):
            call["id"] = delta["id"]
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""
    return calls
