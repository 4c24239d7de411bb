"""The operator's `strata tools run python FILE`: one sandboxed run, one JSON object out.

An operator's command, so it runs whatever the server's setting for the sandbox says, with
the default limits. It prints nothing but the JSON object (the click command wired later
only does ``click.echo(json.dumps(run_file(path)))``), so scripts can parse its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strata.features.tools.sandbox import Sandbox, SandboxConfig, SandboxLimits


def run_file(
    path: str | Path,
    *,
    limits: SandboxLimits | None = None,
    config: SandboxConfig | None = None,
) -> dict[str, Any]:
    """Run the Python file at ``path`` in a fresh sandbox and return the result as a dict:
    ``{"stdout", "stderr", "exit_code", "timed_out", "limit", "duration"}``.

    Raises ``ConfigError`` when bubblewrap is missing and ``OSError`` when the file cannot
    be read; the CLI maps both to a message on stderr and a non-zero exit."""
    code = Path(path).read_text(encoding="utf-8")
    result = Sandbox(limits, config).run_python_sync(code)
    return result.to_dict()
