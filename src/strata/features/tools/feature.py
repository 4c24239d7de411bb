"""Tools as a strata feature: the tool registry (built-ins, ``strata.tools`` entry points, MCP
servers), the agent loop behind ``strata.agent`` and ``/v1/responses``, ``GET /v1/tools``, the
sandboxed Python runner behind a setting (off by default) and the operator's
``strata tools run python FILE`` and ``strata tools list``.

Function calling itself (``tools`` on chat completions) needs no feature: the pure pieces
(grammar, template, parsing) are in ``strata.core.tools`` because the llama backend uses
them. This folder keeps what acts: the sandbox, the built-in tools, the BFCL checker."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.features.tools.settings import ToolsSettings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel
    from strata.features.tools.registry import ToolRegistry
    from strata.features.tools.responses import ResponseStore
    from strata.features.tools.sandbox import Sandbox


def tools_settings(settings: Any) -> ToolsSettings:
    found = getattr(settings, "tools", None)
    return found if isinstance(found, ToolsSettings) else ToolsSettings()


class Tools:
    """The tools feature's runtime: the sandbox when the settings enable it (strata's data
    directory hidden from it), the registry of every tool, the agent loop, the stored
    responses ``previous_response_id`` continues from, and the ``code`` route."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.core.protocols import KnowledgeSearch
        from strata.features.tools.agent import AgentLoop
        from strata.features.tools.builtin_tools import (
            CalculatorTool,
            KnowledgeSearchTool,
            PythonTool,
        )
        from strata.features.tools.mcp_servers import McpServers
        from strata.features.tools.registry import ToolRegistry
        from strata.features.tools.responses import ResponseStore
        from strata.features.tools.sandbox import Sandbox, SandboxConfig

        self.settings = tools_settings(kernel.settings)
        self.sandbox: Sandbox | None = None
        self._registry: ToolRegistry = ToolRegistry()
        self._registry.add(CalculatorTool(), "builtin")
        search = partial(kernel.lookup, KnowledgeSearch)  # type: ignore[type-abstract]
        self._registry.add(KnowledgeSearchTool(search), "builtin")
        if self.settings.sandbox:
            config = SandboxConfig(hidden=(kernel.settings.home,))
            self.sandbox = Sandbox(self.settings.limits, config)
            self._registry.add(PythonTool(self.sandbox), "builtin")
        self._registry.load_entry_points()
        self.mcp = McpServers(self.settings.mcp)
        self.responses: ResponseStore = ResponseStore(kernel.settings.store("responses"))
        kernel.service.add_turn_dispatcher(
            AgentLoop(kernel.service, self.registry, self.settings.max_steps)
        )
        from strata.features.tools.code import CodeRoute

        self.code = CodeRoute(kernel.engine, self.sandbox, self.settings.code, kernel.costs.cost)
        kernel.service.add_dispatcher(self.code)

    async def registry(self) -> ToolRegistry:
        """Every tool, the MCP servers' discovered on first use (they start then)."""
        await self.mcp.discover(self._registry)
        return self._registry

    async def shutdown(self) -> None:
        """Stop the MCP servers and close the response store; each sandbox ends with its run."""
        await self.mcp.close()
        self.responses.close()


class ToolsFeature(Feature):
    name = "tools"

    def build(self, kernel: Kernel) -> Tools:
        return Tools(kernel)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        section: Any = Field(default_factory=ToolsSettings, description="Sandbox and tools")
        return {"tools": (ToolsSettings, section)}

    def router(self) -> APIRouter:
        from strata.features.tools.api import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.tools.cli import commands

        return commands()


feature = ToolsFeature()
