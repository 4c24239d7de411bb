"""The ``[tools]`` settings section: whether the server may run Python in the sandbox, and
the sandbox's limits (the issue's defaults: 10 s wall, 10 s CPU, 512 MiB, 64 processes,
1 MiB of output)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from strata.features.tools.sandbox import SandboxLimits


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
