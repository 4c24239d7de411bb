"""The tool contract and the registry the agent loop, ``/v1/responses`` and ``/v1/tools``
share.

A tool is one small protocol: a ``name``, a ``description``, JSON-schema ``parameters`` and
one async ``call(arguments, context)``. Built-ins (``calculator``, ``knowledge_search``,
``python``), a user's Python callables (the ``strata.tools`` entry-point group) and the tools
of MCP servers all register the same way, each under the ``source`` it came from, so the
loop never needs to know which kind it is running.

A tool reports a failure by raising (``ToolError`` for one the model should read and
correct, any other exception for a bug): the loop turns either into the tool's result, so a
failing tool never fails the request.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError, create_model

from strata.core.errors import InvalidRequest
from strata.core.tenancy import LOCAL, Caller

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "strata.tools"


class ToolError(Exception):
    """A tool could not do what it was asked; the message goes back to the model."""


@dataclass(frozen=True)
class ToolContext:
    """Who a call is made for: tools that hold per-tenant data (``knowledge_search``) scope
    to ``caller.tenant``."""

    caller: Caller = LOCAL


class Tool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Run the tool; return anything JSON can encode, or raise."""
        ...


def definition(tool: Tool) -> dict[str, Any]:
    """The tool as OpenAI's chat ``tools`` entry, which is what the model sees."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


class FunctionTool:
    """A plain Python function as a tool: parameters from its signature (pydantic builds the
    JSON schema and validates the model's arguments against it), description from its
    docstring. A synchronous function runs in a worker thread so the server keeps serving."""

    def __init__(self, func: Callable[..., Any], name: str | None = None) -> None:
        self.func = func
        self.name = name or func.__name__
        self.description = inspect.getdoc(func) or self.name
        fields: dict[str, Any] = {}
        for param in inspect.signature(func, eval_str=True).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = Any if param.annotation is param.empty else param.annotation
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        self.model: type[BaseModel] = create_model(
            f"{self.name}_arguments",
            __module__=str(getattr(func, "__module__", __name__)),
            **fields,
        )
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        self.parameters: dict[str, Any] = schema

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        try:
            values = self.model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(f"invalid arguments: {_short(exc)}") from exc
        kwargs = dict(values)
        if inspect.iscoroutinefunction(self.func):
            return await self.func(**kwargs)
        return await asyncio.to_thread(self.func, **kwargs)


def _short(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )


def as_tool(obj: Any, name: str) -> Tool:
    """An entry point's object as a tool: a ``Tool`` as it is, a callable wrapped."""
    if all(hasattr(obj, a) for a in ("name", "description", "parameters", "call")):
        tool: Tool = obj
        return tool
    if callable(obj):
        return FunctionTool(obj, name=name)
    raise TypeError(f"entry point {name!r} is neither a tool nor a callable")


@dataclass(frozen=True)
class Registered:
    tool: Tool
    source: str  # "builtin", "entry-point", "mcp:<server>"


class ToolRegistry:
    """Every tool this server can run, by name. The first registration of a name wins (a
    built-in cannot be shadowed by a plugin); a clash is logged, not fatal."""

    def __init__(self) -> None:
        self._tools: dict[str, Registered] = {}

    def add(self, tool: Tool, source: str) -> None:
        if tool.name in self._tools:
            held = self._tools[tool.name].source
            log.warning("tool %r from %s ignored: %s has that name", tool.name, source, held)
            return
        self._tools[tool.name] = Registered(tool, source)

    def remove_source(self, source: str) -> None:
        self._tools = {n: r for n, r in self._tools.items() if r.source != source}

    def get(self, name: str) -> Tool:
        found = self._tools.get(name)
        if found is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise InvalidRequest(f"unknown tool {name!r} (this server has: {known})", param="tools")
        return found.tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def listing(self) -> list[dict[str, Any]]:
        """What ``GET /v1/tools`` shows, sorted by name."""
        return [
            {
                "name": name,
                "description": r.tool.description,
                "parameters": r.tool.parameters,
                "source": r.source,
            }
            for name, r in sorted(self._tools.items())
        ]

    def load_entry_points(
        self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
    ) -> None:
        """Register the ``strata.tools`` entry points of every installed package; one that
        fails to load is logged and skipped, so a broken plugin never stops the server."""
        found = (
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            if entry_points is None
            else entry_points
        )
        for entry in found:
            try:
                self.add(as_tool(entry.load(), entry.name), "entry-point")
            except Exception:
                log.exception("tool entry point %r failed to load", entry.name)
