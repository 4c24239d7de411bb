"""``strata specialists`` and ``strata distill --route NAME``, over the REST API (a running
server with ``--url``, or this process), so a specialist trained by hand on a running server
starts serving there at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from strata.core.cli import call_api, dumps, make_settings, remote_options, settings_options


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@remote_options
@settings_options
def specialists(
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """List the specialists: accuracy against the big tier and the traffic they answer."""
    settings = make_settings(config_file, api_keys, **flags)
    data = call_api(settings, url, key, "GET", "/v1/specialists")["data"]
    if as_json:
        click.echo(dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "specialist",
        "route",
        "labels",
        "examples",
        "serving",
        "acc vs big",
        "threshold",
        "answers (all)",
        "answers (last 100)",
    )
    for s in data:
        threshold = "not yet" if s["serving"] and s["threshold"] is None else s["threshold"]
        table.add_row(
            s["id"],
            s["route"],
            str(s["labels"]),
            str(s["examples"]),
            f"v{s['version']}" if s["serving"] else "no",
            _pct(s["accuracy_vs_big"]),
            "-" if threshold is None else str(threshold),
            _pct(s["answered_share"]),
            _pct(s["answered_share_recent"]),
        )
    Console().print(table)


@click.command()
@click.option("--route", "route", required=True, help="Route whose specialists to train")
@remote_options
@settings_options
def distill(
    route: str,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Train a route's specialists now; each replaces the serving one only if it does at
    least as well on held-out examples."""
    settings = make_settings(config_file, api_keys, **flags)
    data = call_api(settings, url, key, "POST", "/v1/specialists/distill", {"route": route})
    for report in data["data"]:
        if "reason" in report:
            click.echo(f"{report['id']}: not trained ({report['reason']})")
            continue
        verdict = "replaced" if report["replaced"] else "kept the serving one"
        previous = report["previous_accuracy"]
        click.echo(
            f"{report['id']}: {report['examples']} examples, held-out accuracy"
            f" {_pct(report['accuracy'])} (serving: {_pct(previous)}): {verdict}"
        )


def commands() -> list[click.Command]:
    return [specialists, distill]
