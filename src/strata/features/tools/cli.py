"""``strata tools run python FILE``: one sandboxed run, exactly one JSON object on stdout.

An operator's command: it runs whatever the server's ``tools.sandbox`` setting says, with
the default limits, so an operator can check the sandbox on a host before enabling it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from strata.core.cli import call_api, dumps, make_settings, remote_options, settings_options
from strata.core.errors import StrataError


@click.group()
def tools() -> None:
    """Tools: run code in the sandbox."""


@tools.group()
def run() -> None:
    """Run something in a fresh sandbox."""


@run.command("python")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def run_python(file: Path) -> None:
    """Run FILE with Python in a fresh sandbox (no network, no host files, limits on time,
    memory, processes and output); print {"stdout", "stderr", "exit_code", "timed_out",
    "limit", "duration"} as one JSON object."""
    from strata.features.tools.cli_run import run_file

    try:
        result = run_file(file)
    except (StrataError, OSError) as exc:
        click.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result))


@tools.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print GET /v1/tools's JSON")
@remote_options
@settings_options
def list_tools(
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """List the server-side tools (built-in, entry points, MCP servers): name, source and
    description, as GET /v1/tools gives them."""
    try:
        settings = make_settings(config_file, api_keys, **flags)
        listing = call_api(settings, url, key, "GET", "/v1/tools")["data"]
    except StrataError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(dumps(listing))
        return
    width = max((len(t["name"]) for t in listing), default=4)
    for tool in listing:
        summary = (tool["description"] or "").split(". ")[0].strip()
        click.echo(f"{tool['name']:<{width}}  {tool['source']:<12}  {summary}")


def commands() -> list[click.Command]:
    return [tools]
