"""MCP servers over stdio as tools (the ``mcp`` package, imported only when one is set up).

Each server in the ``tools.mcp`` settings is a child process strata starts on first use: its
tools are discovered with ``list_tools`` and registered as ``mcp:<server>`` tools; a call
goes through ``call_tool``. The session lives in one task that owns it from start to end,
because the SDK's streams belong to the task (anyio cancel scopes) that opened them;
requests reach it through a queue. A server that fails to start is logged and lists no
tools, so one broken server never stops strata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from strata.features.tools.registry import ToolContext, ToolError, ToolRegistry
from strata.features.tools.settings import McpServerSpec

log = logging.getLogger(__name__)

Job = tuple[Callable[[Any], Awaitable[Any]], "asyncio.Future[Any]"]


class McpServer:
    """One stdio MCP server: a child process and the one session to it."""

    def __init__(self, name: str, spec: McpServerSpec) -> None:
        self.name = name
        self.spec = spec
        self._jobs: asyncio.Queue[Job | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[list[Any]] | None = None

    async def tools(self) -> list[Any]:
        """The server's tools (``mcp.types.Tool``), starting it if it is not running."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._jobs = asyncio.Queue()
            self._ready = loop.create_future()
            self._task = loop.create_task(self._own(self._jobs, self._ready))
        assert self._ready is not None
        return await asyncio.wait_for(asyncio.shield(self._ready), self.spec.timeout_s)

    async def _own(self, jobs: asyncio.Queue[Job | None], ready: asyncio.Future[list[Any]]) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=self.spec.command, args=list(self.spec.args), env=self.spec.env or None
        )
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                listed = await s.list_tools()
                ready.set_result(list(listed.tools))
                while (job := await jobs.get()) is not None:
                    work, done = job
                    try:
                        outcome = await work(s)
                    except Exception as exc:
                        if not done.done():
                            done.set_exception(exc)
                    else:
                        if not done.done():
                            done.set_result(outcome)
        except Exception as exc:
            log.warning("MCP server %r failed: %s", self.name, exc)
            if not ready.done():
                ready.set_exception(ToolError(f"MCP server {self.name!r} failed: {exc}"))
        finally:
            while not jobs.empty():
                left = jobs.get_nowait()
                if left is not None and not left[1].done():
                    left[1].set_exception(ToolError(f"MCP server {self.name!r} stopped"))

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        await self.tools()
        assert self._jobs is not None
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def work(session: Any) -> Any:
            return await session.call_tool(tool, arguments)

        await self._jobs.put((work, done))
        result = await asyncio.wait_for(done, self.spec.timeout_s)
        return _result(result)

    async def close(self) -> None:
        if self._task is None or self._jobs is None:
            return
        await self._jobs.put(None)
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._task = None


def _result(result: Any) -> Any:
    """A ``CallToolResult`` as the tool's value: its structured content when it has some,
    else its text parts; an ``is_error`` result is a ``ToolError`` with that text."""
    texts = [getattr(part, "text", "") for part in getattr(result, "content", None) or []]
    text = "\n".join(t for t in texts if t)
    if getattr(result, "is_error", False):
        raise ToolError(text or "the MCP tool failed")
    structured = getattr(result, "structured_content", None)
    return structured if structured is not None else text


class McpTool:
    """One tool of an MCP server, as a strata ``Tool``."""

    def __init__(self, server: McpServer, listed: Any) -> None:
        self.server = server
        self.name: str = listed.name
        self.description: str = listed.description or listed.name
        self.parameters: dict[str, Any] = dict(listed.input_schema or {"type": "object"})

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return await self.server.call(self.name, arguments)


class McpServers:
    """Every configured MCP server; ``discover`` registers their tools once per process."""

    def __init__(self, specs: dict[str, McpServerSpec]) -> None:
        self.servers = {name: McpServer(name, spec) for name, spec in specs.items()}
        self._discovered = False
        self._lock = asyncio.Lock()

    async def discover(self, registry: ToolRegistry) -> None:
        if self._discovered or not self.servers:
            return
        async with self._lock:
            if self._discovered:
                return
            for name, server in self.servers.items():
                try:
                    listed = await server.tools()
                except (ToolError, TimeoutError) as exc:
                    log.warning("MCP server %r lists no tools: %s", name, exc)
                    continue
                for item in listed:
                    registry.add(McpTool(server, item), f"mcp:{name}")
            self._discovered = True

    async def close(self) -> None:
        for server in self.servers.values():
            await server.close()
