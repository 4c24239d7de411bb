"""The ``[tools]`` settings section: whether the server may run Python in the sandbox, the
sandbox's limits (the issue's defaults: 10 s wall, 10 s CPU, 512 MiB, 64 processes, 1 MiB of
output), the MCP servers whose tools strata offers, and the agent loop's step limit."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from strata.features.tools.sandbox import SandboxLimits


class McpServerSpec(BaseModel):
    """One MCP server over stdio: the command strata starts and talks to."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(..., description="The server's executable, e.g. 'uvx' or a path")
    args: list[str] = Field(default_factory=list, description="Its arguments")
    env: dict[str, str] | None = Field(
        None, description="Its environment (default: the MCP SDK's safe minimum)"
    )
    timeout_s: float = Field(30.0, gt=0, description="Longest wait to start or for one call")


class CodeSettings(BaseModel):
    """The ``code`` route: write a function, run it on the given examples, retry on failure."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("big", description="Model that writes the code unless a request names one")
    max_attempts: int = Field(3, ge=1, le=10, description="Model calls per request at most")


class ToolsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox: bool = Field(
        False,
        description="Let the server run model-written Python in the bubblewrap sandbox "
        "(off by default: enable it only where bubblewrap is installed and wanted)",
    )
    limits: SandboxLimits = Field(
        default_factory=SandboxLimits, description="Limits on each sandboxed run"
    )
    mcp: dict[str, McpServerSpec] = Field(
        default_factory=dict, description="MCP servers (stdio) whose tools strata offers, by name"
    )
    max_steps: int = Field(
        5, ge=1, le=50, description="The agent loop's default limit on model calls per request"
    )
    code: CodeSettings = Field(
        default_factory=CodeSettings, description="The `code` route (needs the sandbox)"
    )
