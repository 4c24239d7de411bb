"""``strata``: serve, models, and the commands the installed features declare.

Flags for settings are generated from ``strata.core.settings`` (one definition, in
``strata.core.cli``); errors print as one line (``error: …``) with exit status 1, never a
traceback.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from strata import __version__
from strata.core.cli import APP_FACTORY, make_settings, settings_options
from strata.core.errors import StrataError
from strata.core.feature import installed_features
from strata.core.settings import CoreSettings
from strata.edges.cli.talk import ask, chat, complete, open_client


def _create_app(settings: CoreSettings) -> Any:
    from strata.edges.http.app import create_app

    return create_app(settings)


class StrataGroup(click.Group):
    """Turns strata's errors (and Ctrl-C) into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[APP_FACTORY] = _create_app  # what feature commands call in-process
        try:
            return super().invoke(ctx)
        except StrataError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)


@click.group(cls=StrataGroup)
@click.version_option(__version__, prog_name="strata")
def main() -> None:
    """strata: models of every size behind one OpenAI-compatible API."""


@main.command()
@settings_options
@click.option("--load", type=click.Choice(["lazy", "startup"]), help="Override when to load")
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="Deploy on Ray Serve: the gateway and each local model as replicated deployments"
    " (settings section [ray])",
)
def serve(
    config_file: Path | None,
    api_keys: tuple[str, ...],
    load: str | None,
    on_ray: bool,
    **flags: Any,
) -> None:
    """Serve the OpenAI-compatible API."""
    import uvicorn

    settings = make_settings(config_file, api_keys, **flags)
    if load is not None:
        settings.models = {
            name: spec.model_copy(update={"load": load})
            for name, spec in settings.all_models().items()
        }
    if on_ray:
        from strata.edges.ray.app import run

        click.echo(
            f"strata {__version__} deploying {', '.join(settings.all_models())} on Ray Serve; "
            f"gateway on http://{settings.host}:{settings.port}/v1",
            err=True,
        )
        run(settings)
        return
    app = _create_app(settings)
    click.echo(
        f"strata {__version__} serving {', '.join(settings.all_models())} "
        f"on http://{settings.host}:{settings.port}/v1; "
        f"web app on http://{settings.host}:{settings.port}/",
        err=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)


@main.group(invoke_without_command=True)
@click.option("--url", envvar="STRATA_URL", help="List a running server's models")
@click.option("--key", envvar="STRATA_API_KEY", help="API key for --url")
@settings_options
@click.pass_context
def models(
    ctx: click.Context,
    /,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """List the configured models (subcommand: assemble)."""
    ctx.obj = make_settings(config_file, api_keys, **flags)
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from strata.core import catalog

    settings: CoreSettings = ctx.obj
    table = Table("model", "backend", "source", "ready", "description")
    if url:

        async def fetch() -> list[dict[str, Any]]:
            client = open_client(settings, url, key)
            try:
                return list(await client.models())
            finally:
                await client.close()

        for card in asyncio.run(fetch()):
            table.add_row(
                card["id"], card.get("owned_by", ""), url, str(card.get("loaded", "")), ""
            )
    else:
        for name, spec in settings.all_models().items():
            source = spec.bundled or str(spec.path or spec.hf_repo or spec.url or "")
            ready = ""
            if spec.bundled:
                ready = (
                    "yes" if catalog.is_ready(catalog.lookup(spec.bundled), settings.home) else "no"
                )
            table.add_row(name, spec.backend, source, ready, spec.description)
    Console().print(table)


@models.command()
@click.argument("names", nargs=-1)
@click.pass_obj
def assemble(settings: CoreSettings, names: tuple[str, ...]) -> None:
    """Assemble bundled models (all configured ones by default), with progress."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from strata.core import catalog

    wanted = names or tuple(
        s.bundled for s in settings.all_models().values() if s.bundled is not None
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    ) as progress:
        for bundled in wanted:
            model = catalog.lookup(bundled)
            if catalog.is_ready(model, settings.home):
                progress.console.print(f"{bundled}: ready")
                continue
            task = progress.add_task(bundled, total=None)

            def phase(label: str, total: int, task: Any = task) -> None:
                progress.reset(task, total=total, description=label)

            def advance(n: int, task: Any = task) -> None:
                progress.advance(task, n)

            path = catalog.assemble(model, settings.home, progress=advance, on_phase=phase)
            progress.console.print(f"{bundled}: {path}")


for _command in (ask, complete, chat):
    main.add_command(_command)
for _feature in installed_features():
    for _command in _feature.commands():
        main.add_command(_command)
