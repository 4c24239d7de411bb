"""``strata tools run python FILE``: one sandboxed run, exactly one JSON object on stdout.

An operator's command: it runs whatever the server's ``tools.sandbox`` setting says, with
the default limits, so an operator can check the sandbox on a host before enabling it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

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


def commands() -> list[click.Command]:
    return [tools]
