"""``strata routes``, ``strata calibrate`` and ``strata usage``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from strata.core.cli import make_settings, settings_options
from strata.core.errors import ConfigError, InvalidRequest
from strata.core.settings import CoreSettings
from strata.core.tenancy import API_KEY_PREFIX, tenant_of

if TYPE_CHECKING:
    from strata.core.kernel import Kernel
    from strata.features.routing.feature import Routing


def _kernel(settings: CoreSettings) -> tuple[Kernel, Routing]:
    from strata.core.kernel import Kernel
    from strata.features.routing.feature import Routing

    kernel = Kernel(settings)
    return kernel, kernel.feature("routing", Routing)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the routes as JSON")
@settings_options
def routes(
    config_file: Path | None, api_keys: tuple[str, ...], as_json: bool, **flags: Any
) -> None:
    """Show the routes: tiers, thresholds (calibrated or configured) and signals."""
    settings = make_settings(config_file, api_keys, **flags)
    kernel, routing = _kernel(settings)
    described = {name: routing.router.describe(name) for name in routing.routes}
    asyncio.run(kernel.shutdown())
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("route", "tiers (threshold)", "signal", "calibrated", "description")
    for name, d in described.items():
        tiers = " → ".join(f"{t['model']} ({t['threshold']:.3g})" for t in d["tiers"])
        signal = d["signal"] + (
            f" + prefilter {d['prefilter']['signal']}" if d["prefilter"] else ""
        )
        target = ", ".join(f"{k} {v:.3g}" for k, v in d["target"].items()) if d["target"] else ""
        table.add_row(
            name, tiers, signal, "yes: " + target if d["calibrated"] else "no", d["description"]
        )
    Console().print(table)


@click.command()
@click.option("--route", "route_name", required=True, help="Route to calibrate")
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="Folder of labelled TASK.SPLIT.jsonl files",
)
@click.option(
    "--limit",
    type=int,
    default=120,
    show_default=True,
    help="Items, spread evenly over the task files",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--target-quality",
    type=float,
    help="Keep at least this share of the last tier's accuracy (default 0.95)",
)
@click.option("--max-cost-per-1k", type=float, help="Spend at most this many USD per 1k requests")
@click.option(
    "--signals",
    default=",".join(["answer_prob", "sequence_prob", "min_token_prob", "verify", "learned"]),
    show_default=True,
    help="Signals to combine",
)
@settings_options
def calibrate(
    config_file: Path | None,
    api_keys: tuple[str, ...],
    route_name: str,
    data: Path,
    limit: int,
    seed: int,
    target_quality: float | None,
    max_cost_per_1k: float | None,
    signals: str,
    **flags: Any,
) -> None:
    """Fit a route's threshold on labelled data and save it (shown by `strata routes`).

    Runs the route's first and last tier on the items (each call cached under the data
    directory), combines the signals with a logistic regression, and picks the cheapest
    threshold that meets the target."""
    from strata.features.routing import calibrate as cal
    from strata.features.routing.grading import outcomes
    from strata.features.routing.outcomes import Cache, cache_dir, load_items, run_all
    from strata.features.routing.signals import signal_names
    from strata.features.routing.tuning import save_tuning

    if target_quality is not None and max_cost_per_1k is not None:
        raise InvalidRequest("give --target-quality or --max-cost-per-1k, not both")
    if target_quality is not None and not 0 < target_quality <= 1:
        raise InvalidRequest("--target-quality is a share in (0, 1]")
    parts = [s.strip() for s in signals.split(",") if s.strip()]
    unknown = set(parts) - set(signal_names()) or {"combined"} & set(parts)
    if unknown:
        raise ConfigError(f"cannot combine {', '.join(sorted(unknown))}")
    settings = make_settings(config_file, api_keys, **flags)
    kernel, routing = _kernel(settings)
    if route_name not in routing.routes:
        raise ConfigError(f"no route '{route_name}' (routes: {', '.join(routing.routes)})")
    tiers = [t.model for t in routing.routes[route_name].tiers]
    if len(tiers) < 2:
        raise ConfigError(f"route '{route_name}' has one tier: nothing to calibrate")
    items = load_items(data, limit, seed)

    async def collect() -> list[cal.Outcome]:
        cache = Cache(cache_dir(settings.home), kernel.engine)
        seen = 0

        def progress(item: Any) -> None:
            nonlocal seen
            seen += 1
            if seen % 10 == 0 or seen == len(items):
                click.echo(f"  {seen}/{len(items)} items", err=True)

        try:
            records = await run_all(cache, items, tiers[0], tiers[-1], progress=progress)
        finally:
            await kernel.shutdown()
        return await outcomes(items, records, settings.cpu_hour_usd, seed)

    found = asyncio.run(collect())
    try:
        tuning, _ = cal.calibrate(
            found, parts, target_quality, max_cost_per_1k, part_options={"consistency": {"k": 2}}
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    path = save_tuning(settings.home, route_name, tuning)
    t = tuning.target
    click.echo(
        f"{route_name}: threshold {tuning.thresholds[0]:.4f} on {len(found)} items; expected "
        f"{t['expected_quality']:.1%} of {tiers[-1]}'s accuracy with "
        f"{t['expected_big_share']:.0%} of requests reaching it. Saved to {path}"
    )


@click.command()
@click.option("--key", help="API key to report on (default: every tenant)")
@click.option("--tenant", help="Tenant to report on (an issued key's: `strata keys list`)")
@click.option("--route", help="Route or model name")
@click.option("--since", help="Unix seconds, ISO 8601, or a span back from now (24h, 7d)")
@click.option("--until", help="Unix seconds, ISO 8601, or a span back from now")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
@settings_options
def usage(
    config_file: Path | None,
    api_keys: tuple[str, ...],
    key: str | None,
    tenant: str | None,
    route: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Requests, tokens and cost from the ledger, and the saving against always-big."""
    from strata.features.routing.feature import ledger_path
    from strata.features.routing.ledger import Ledger
    from strata.features.routing.timeparse import parse_time

    settings = make_settings(config_file, api_keys, **flags)
    ledger = Ledger(ledger_path(settings))
    try:
        report = ledger.summary(
            tenant=tenant_of(API_KEY_PREFIX + key) if key else tenant,
            route=route,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
        )
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("route / model", "answered by", "requests", "cost $", "always-big $")
    for row in report["by_route"]:
        table.add_row(
            row["name"],
            row["answered_by"],
            str(row["requests"]),
            f"{row['cost_usd']:.6f}",
            f"{row['baseline_usd']:.6f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"{report['requests']} requests, {report['prompt_tokens']} prompt + "
        f"{report['completion_tokens']} completion tokens, cost ${report['cost_usd']:.6f} vs "
        f"${report['baseline_usd']:.6f} always-big: saved ${report['saving_usd']:.6f} "
        f"({report['saving_share']:.1%}); {report['degraded']} degraded"
    )


def commands() -> list[click.Command]:
    """What the routing feature adds to ``strata``."""
    return [routes, calibrate, usage]
