"""``strata sessions list | show | delete``; ``strata chat --session NAME`` (the CLI edge)
uses ``ensure_session`` here to resume (or start) the session."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click

from strata.core.cli import call_api, dumps, make_settings, remote_options, settings_options
from strata.core.errors import UpstreamError
from strata.core.tenancy import DEFAULT_TENANT


async def ensure_session(client: Any, name: str) -> int:
    """Create session ``name`` if it does not exist; return how many turns it already has.
    Works with the in-process client (its kernel's store) and with a server (REST)."""
    kernel = getattr(client, "kernel", None)
    if kernel is not None:
        from strata.features.dialogue.feature import Dialogue

        store = kernel.feature("dialogue", Dialogue).sessions
        found = await asyncio.to_thread(store.find, DEFAULT_TENANT, name)
        if found is None:
            found = await asyncio.to_thread(store.create, DEFAULT_TENANT, name)
        return int(found.turns)
    http = client.http
    response = await http.get(f"/sessions/{name}")
    if response.status_code == 404:
        response = await http.post("/sessions", json={"id": name})
    if response.status_code >= 400:
        raise UpstreamError(response.text[:300], upstream_status=response.status_code)
    return int(response.json().get("turn_count", 0))


@click.group()
def sessions() -> None:
    """Stored dialogue sessions (list, show, delete)."""


@sessions.command("list")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@settings_options
def list_(
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """List your sessions, most recently used first."""
    settings = make_settings(config_file, api_keys, **flags)

    data = call_api(settings, url, key, "GET", "/v1/sessions")
    if as_json:
        click.echo(dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("session", "turns", "updated", "title")
    for s in data["data"]:
        updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["updated"]))
        table.add_row(s["id"], str(s["turn_count"]), updated, s["title"])
    Console().print(table)


@sessions.command()
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@settings_options
def show(
    session_id: str,
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Print a session's turns (and its rolling summary)."""
    settings = make_settings(config_file, api_keys, **flags)

    data = call_api(settings, url, key, "GET", f"/v1/sessions/{session_id}")
    if as_json:
        click.echo(dumps(data))
        return
    if data["summary"]:
        click.secho(f"summary (turns 1-{data['summary_upto']}): {data['summary']}", dim=True)
    for t in data["turns"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(t["created"]))
        who = t["role"] + (f" ({t['name']})" if t["name"] else "")
        click.secho(f"[{t['seq']}] {when} {who}", bold=True)
        click.echo(t["content"])


@sessions.command()
@click.argument("session_id")
@remote_options
@settings_options
def delete(
    session_id: str,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Delete a session and all its turns."""
    settings = make_settings(config_file, api_keys, **flags)

    call_api(settings, url, key, "DELETE", f"/v1/sessions/{session_id}")
    click.echo(f"deleted {session_id}")
