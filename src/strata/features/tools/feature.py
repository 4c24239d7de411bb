"""Tools as a strata feature: the sandboxed Python runner behind a setting (off by default)
and the operator's ``strata tools run python FILE``.

Function calling itself (``tools`` on chat completions) needs no feature: the pure pieces
(grammar, template, parsing) are in ``strata.core.tools`` because the llama backend uses
them. This folder keeps what acts: the sandbox, the built-in tools, the BFCL checker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from strata.core.feature import Feature
from strata.features.tools.settings import ToolsSettings

if TYPE_CHECKING:
    import click

    from strata.core.kernel import Kernel
    from strata.features.tools.sandbox import Sandbox


def tools_settings(settings: Any) -> ToolsSettings:
    found = getattr(settings, "tools", None)
    return found if isinstance(found, ToolsSettings) else ToolsSettings()


class Tools:
    """The tools feature's runtime: the sandbox when the settings enable it, with strata's
    data directory hidden from it."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.features.tools.sandbox import Sandbox, SandboxConfig

        self.settings = tools_settings(kernel.settings)
        self.sandbox: Sandbox | None = None
        if self.settings.sandbox:
            config = SandboxConfig(hidden=(kernel.settings.home,))
            self.sandbox = Sandbox(self.settings.limits, config)

    async def shutdown(self) -> None:
        """Nothing to release: each run's sandbox ends with the run."""


class ToolsFeature(Feature):
    name = "tools"

    def build(self, kernel: Kernel) -> Tools:
        return Tools(kernel)

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        section: Any = Field(default_factory=ToolsSettings, description="Sandbox and tools")
        return {"tools": (ToolsSettings, section)}

    def commands(self) -> Sequence[click.Command]:
        from strata.features.tools.cli import commands

        return commands()


feature = ToolsFeature()
