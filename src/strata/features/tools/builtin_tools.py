"""strata's built-in tools, as ``Tool``s registered exactly as a plugin's are:
``calculator`` (safe AST arithmetic, ``builtin.calculate``), ``knowledge_search`` (the
caller's own knowledge base, through the ``KnowledgeSearch`` protocol another feature
provides) and ``python`` (the bubblewrap sandbox; registered only when the ``tools.sandbox``
setting enables it, so a server that did not opt in never runs model-written code)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from strata.core.errors import StrataError
from strata.core.protocols import KnowledgeSearch
from strata.features.tools.builtin import CALCULATOR_TOOL, CalculatorError, calculate
from strata.features.tools.registry import ToolContext, ToolError
from strata.features.tools.sandbox import Sandbox


class CalculatorTool:
    name = "calculator"
    description: str = CALCULATOR_TOOL["function"]["description"]
    parameters: dict[str, Any] = CALCULATOR_TOOL["function"]["parameters"]

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            raise ToolError("argument 'expression' must be a string")
        try:
            # The bare number: what a small model copies into its answer most reliably.
            return calculate(expression)
        except CalculatorError as exc:
            raise ToolError(str(exc)) from exc


class KnowledgeSearchTool:
    """Searches only the calling tenant's collections: the tenant comes from the request's
    caller, never from the model's arguments, so no prompt can reach another tenant's base."""

    name = "knowledge_search"
    description = (
        "Search a knowledge-base collection for passages relevant to a query; returns the "
        "best passages with their document ids and scores."
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {
            "collection": {"type": "string", "description": "The collection to search"},
            "query": {"type": "string", "description": "What to look for"},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
        },
        "required": ["collection", "query"],
        "additionalProperties": False,
    }

    def __init__(self, search: Callable[[], KnowledgeSearch | None]) -> None:
        self._search = search  # looked up per call: the knowledge feature may build later

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        search = self._search()
        if search is None:
            raise ToolError("the knowledge feature is not installed on this server")
        collection, query = arguments.get("collection"), arguments.get("query")
        if not isinstance(collection, str) or not isinstance(query, str) or not query.strip():
            raise ToolError("'collection' and 'query' must be non-empty strings")
        top_k = arguments.get("top_k", 4)
        if not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise ToolError("'top_k' must be an integer from 1 to 20")
        tenant = context.caller.tenant
        try:
            passages = await asyncio.to_thread(search.search, tenant, collection, query, top_k)
        except StrataError as exc:
            raise ToolError(exc.message) from exc
        return {
            "passages": [
                {
                    "document_id": p.document_id,
                    "title": p.title,
                    "text": p.text,
                    "score": round(p.score, 4),
                }
                for p in passages
            ]
        }


class PythonTool:
    name = "python"
    description = (
        "Run a Python 3 program in a fresh sandbox (no network, no files kept, limits on "
        "time and memory) and return its stdout, stderr and exit code. Print what you need."
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The program to run"}},
        "required": ["code"],
        "additionalProperties": False,
    }

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        code = arguments.get("code")
        if not isinstance(code, str):
            raise ToolError("argument 'code' must be a string")
        result = await self.sandbox.run_python(code)
        return result.to_dict()
