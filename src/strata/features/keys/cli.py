"""``strata keys create | list | revoke``: straight to the store under ``--home`` (no server
needed; a running server notices within ``keys.refresh_s``), or through a running server's
``/v1/keys`` with ``--url`` and an admin ``--key``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from strata.core.cli import call_api, dumps, make_settings, remote_options, settings_options
from strata.core.settings import CoreSettings
from strata.features.keys.records import ADJECTIVE, PERIODS, Period, iso

if TYPE_CHECKING:
    from strata.features.keys.store import KeyStore


def _store(settings: CoreSettings) -> KeyStore:
    from strata.features.keys.store import KeyStore, keys_path

    return KeyStore(keys_path(settings))


@click.group()
def keys() -> None:
    """API keys with budgets and rate limits."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for (unique among live keys)")
@click.option("--budget-usd", type=float, help="USD the key may spend per period")
@click.option("--period", type=click.Choice(PERIODS), help="Budget period, UTC (default month)")
@click.option("--rpm", type=int, help="Requests per minute")
@click.option("--tpm", type=int, help="Tokens per minute (prompt + answer)")
@remote_options
@settings_options
def create(
    name: str,
    budget_usd: float | None,
    period: str | None,
    rpm: int | None,
    tpm: int | None,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Issue a key. It is printed alone on the first line, this once: strata keeps only its
    sha256."""
    settings = make_settings(config_file, api_keys, **flags)
    body = {"name": name, "budget_usd": budget_usd, "period": period, "rpm": rpm, "tpm": tpm}
    if url:
        made = call_api(settings, url, key, "POST", "/v1/keys", body)
    else:
        store = _store(settings)
        try:
            token, record = store.create(
                name, budget_usd=budget_usd, period=cast(Period | None, period), rpm=rpm, tpm=tpm
            )
        finally:
            store.close()
        made = {**record.public(), "key": token}
    click.echo(made["key"])
    click.echo(f"{made['id']}  {made['name']}  tenant {made['tenant']}  {_limits(made)}")
    click.echo("Store the key now: strata keeps only its hash and cannot show it again.")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON")
@remote_options
@settings_options
def list_keys(
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Every issued key (revoked ones too), its limits and this period's spending."""
    settings = make_settings(config_file, api_keys, **flags)
    if url:
        data = call_api(settings, url, key, "GET", "/v1/keys")["data"]
    else:
        store = _store(settings)
        try:
            now = time.time()
            data = [store.describe(r, now) for r in store.all()]
        finally:
            store.close()
    if as_json:
        click.echo(dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "key", "tenant", "limits", "spent", "status")
    for k in data:
        spent = f"${k['spent_usd']:.4f}" if "spent_usd" in k else ""
        status = f"revoked {iso(k['revoked'])}" if k["revoked"] else "live"
        table.add_row(k["id"], k["name"], k["hint"], k["tenant"], _limits(k), spent, status)
    Console().print(table)


@keys.command("revoke")
@click.argument("ref")
@remote_options
@settings_options
def revoke(
    ref: str,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Revoke a key by id or name: from then on it gets 401."""
    settings = make_settings(config_file, api_keys, **flags)
    if url:
        done = call_api(settings, url, key, "DELETE", f"/v1/keys/{ref}")
    else:
        store = _store(settings)
        try:
            done = store.revoke(ref).public()
        finally:
            store.close()
    click.echo(f"revoked {done['id']} ({done['name']})")


def _limits(k: dict[str, Any]) -> str:
    parts = []
    if k.get("budget_usd") is not None:
        parts.append(f"${k['budget_usd']:g} {ADJECTIVE[k['period']]}")
    if k.get("rpm") is not None:
        parts.append(f"{k['rpm']} rpm")
    if k.get("tpm") is not None:
        parts.append(f"{k['tpm']} tpm")
    return ", ".join(parts) or "no limits"
