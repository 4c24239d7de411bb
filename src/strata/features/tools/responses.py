"""OpenAI's Responses API over strata's chat turn: input items to chat messages, a turn's
answer to output items, and the stored conversations ``previous_response_id`` continues.

A response's conversation (the messages the model saw plus its answer, in chat's shape) is
stored per tenant under the response id, so the next request sends only what is new (a
``function_call_output``, a user message) and another tenant's id is simply not found.
The HTTP edge (``strata.edges.http.responses``) owns the wire format and the events.
"""

from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from strata.core.errors import InvalidRequest, NotFound
from strata.core.ids import new_id
from strata.core.storage import Migration, Repository, open_repository
from strata.core.turn import Choice

MIGRATIONS = [
    Migration(
        1,
        """
        CREATE TABLE responses (
            id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            created REAL NOT NULL,
            messages TEXT NOT NULL,
            response TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        """,
    )
]


class ResponseStore:
    """Stored responses, by tenant and id; the file opens on first use."""

    def __init__(self, location: Path | str) -> None:
        self.location = location  # a SQLite file, or the PostgreSQL database's URL

    @cached_property
    def db(self) -> Repository:
        return open_repository(self.location, "responses", MIGRATIONS)

    def save(
        self, tenant: str, rid: str, messages: list[dict[str, Any]], response: dict[str, Any]
    ) -> None:
        self.db.write(
            "INSERT INTO responses VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE"
            " SET messages = excluded.messages, response = excluded.response",
            (rid, tenant, time.time(), json.dumps(messages), json.dumps(response)),
        )

    def _row(self, tenant: str, rid: str) -> Any:
        rows = self.db.query("SELECT * FROM responses WHERE tenant = ? AND id = ?", (tenant, rid))
        if not rows:
            raise NotFound(f"no response with id '{rid}'", param="previous_response_id")
        return rows[0]

    def messages(self, tenant: str, rid: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self._row(tenant, rid)["messages"])
        return found

    def response(self, tenant: str, rid: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self._row(tenant, rid)["response"])
        return found

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
            del self.__dict__["db"]


def _text(content: Any, where: str) -> str:
    """A message's content as text: a string, or the text of its content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") == "refusal":
                parts.append(str(part.get("refusal") or ""))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(
                    f"{where}: content of type {kind!r} is not supported", param="input"
                )
        return "".join(parts)
    raise InvalidRequest(f"{where}: content must be a string or a list of parts", param="input")


def input_messages(items: str | list[Any]) -> list[dict[str, Any]]:
    """Responses ``input`` as chat messages: message items by role, consecutive
    ``function_call`` items as one assistant message's ``tool_calls``, each
    ``function_call_output`` as a ``role: tool`` message."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object", param="input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(f"input[{i}]: unknown role {role!r}", param="input")
            content = _text(item.get("content"), f"input[{i}]")
            messages.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id") or new_id("call"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output, f"input[{i}]")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # a reasoning model's item sent back by a client: nothing to replay
        else:
            raise InvalidRequest(f"input[{i}]: item type {kind!r} is not supported", param="input")
    return messages


def conversation(
    previous: list[dict[str, Any]], instructions: str | None, new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What the model sees: this request's ``instructions`` as the system message (a previous
    response's are not carried over, as OpenAI does: they are never stored), the stored
    turns, the new items."""
    head = [{"role": "system", "content": instructions}] if instructions else []
    return head + previous + new


def output_items(choice: Choice) -> list[dict[str, Any]]:
    """A choice as Responses output items: a message with its text, then its function calls."""
    items: list[dict[str, Any]] = []
    if choice.text or not choice.tool_calls:
        items.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": choice.text, "annotations": []}],
            }
        )
    for call in choice.tool_calls or []:
        function = call.get("function") or {}
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name"),
                "arguments": function.get("arguments") or "{}",
                "status": "completed",
            }
        )
    return items


def answer_messages(choice: Choice) -> list[dict[str, Any]]:
    """The answer as chat messages, for the stored conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": choice.text or None}
    if choice.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in call.items() if k != "index"} for call in choice.tool_calls
        ]
    return [message]


def response_tools(tools: list[Any], known: set[str]) -> tuple[list[Any], list[str]]:
    """Split Responses ``tools`` into the client's function tools (chat's shape) and the
    names of strata's server tools (``{"type": "calculator"}``); unknown types are a 400."""
    functions: list[Any] = []
    server: list[str] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            if not isinstance(tool.get("name"), str):
                raise InvalidRequest(f"tools[{i}]: a function tool needs a name", param="tools")
            spec = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
            spec.setdefault("parameters", {"type": "object", "properties": {}})
            functions.append({"type": "function", "function": spec})
        elif isinstance(kind, str) and kind in known:
            server.append(kind)
        else:
            names = ", ".join(sorted(known))
            raise InvalidRequest(
                f"tools[{i}]: type {kind!r} is not supported (function, or a strata tool: {names})",
                param="tools",
            )
    return functions, server


def chat_tool_choice(choice: Any) -> Any:
    """Responses ``tool_choice`` in chat's shape."""
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "tool_choice must be auto, none, required or a function", param="tool_choice"
    )
