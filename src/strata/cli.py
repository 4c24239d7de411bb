"""``strata``: serve, chat, ask, complete, models.

Flags for settings are generated from ``strata.config.Settings`` (one definition); errors
print as one line (``error: …``) with exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from strata import __version__
from strata.config import Settings, load_settings
from strata.errors import StrataError
from strata.models.base import GenerationRequest, SamplingParams, Usage

F = TypeVar("F", bound=Callable[..., Any])

# Settings exposed as flags; the flag's type and help come from the field itself.
_FLAGS = ("host", "port", "home", "default_model", "max_queue", "log_level")


def settings_options(func: F) -> F:
    """Add ``--config``, ``--api-key`` and one flag per field in ``_FLAGS``."""
    for name in reversed(_FLAGS):
        field = Settings.model_fields[name]
        kind: Any = {int: int, float: float, Path: click.Path(path_type=Path)}.get(
            field.annotation,  # type: ignore[arg-type]
            str,
        )
        flag = "--" + name.replace("_", "-")
        func = click.option(flag, name, type=kind, default=None, help=field.description)(func)
    func = click.option(
        "--api-key",
        "api_keys",
        multiple=True,
        help=Settings.model_fields["api_keys"].description,
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path),
        envvar="STRATA_CONFIG",
        help="TOML settings file (also STRATA_CONFIG)",
    )(func)


def make_settings(config_file: Path | None, api_keys: tuple[str, ...], **flags: Any) -> Settings:
    overrides = {k: v for k, v in flags.items() if k in _FLAGS}
    if api_keys:
        overrides["api_keys"] = list(api_keys)
    return load_settings(config_file, **overrides)


class StrataGroup(click.Group):
    """Turns strata's errors (and Ctrl-C) into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
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
def serve(
    config_file: Path | None, api_keys: tuple[str, ...], load: str | None, **flags: Any
) -> None:
    """Serve the OpenAI-compatible API."""
    import uvicorn

    from strata.serve.app import create_app

    settings = make_settings(config_file, api_keys, **flags)
    if load is not None:
        settings.models = {
            name: spec.model_copy(update={"load": load})
            for name, spec in settings.all_models().items()
        }
    app = create_app(settings)
    click.echo(
        f"strata {__version__} serving {', '.join(settings.all_models())} "
        f"on http://{settings.host}:{settings.port}/v1",
        err=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)


def _client(settings: Settings, url: str | None, key: str | None) -> Any:
    from strata.client import HTTPClient, LocalClient

    # In a terminal conversation llama.cpp's load-time warnings are noise; errors still show.
    logging.getLogger("strata.llama").setLevel(logging.ERROR)
    return HTTPClient(url, key) if url else LocalClient(settings)


def _client_options(func: F) -> F:
    func = click.option("--url", envvar="STRATA_URL", help="Use a running server (…/v1)")(func)
    func = click.option("--key", envvar="STRATA_API_KEY", help="API key for --url")(func)
    func = click.option("--temperature", type=float, default=0.7, show_default=True)(func)
    func = click.option(
        "--max-tokens", type=int, help="Cap on generated tokens (default: the window)"
    )(func)
    return click.option("--model", "-m", help="Model name (default: settings.default_model)")(func)


async def _answer(
    client: Any,
    model: str,
    request: GenerationRequest,
    echo: bool,
    options: dict[str, Any] | None = None,
) -> tuple[str, Usage]:
    parts: list[str] = []
    usage = Usage(0, 0)
    async for chunk in client.stream(model, request, options):
        if chunk.text:
            parts.append(chunk.text)
            if echo:
                click.echo(chunk.text, nl=False)
        if chunk.usage:
            usage = chunk.usage
    if echo:
        click.echo()
    return "".join(parts), usage


def _run_once(
    settings: Settings,
    url: str | None,
    key: str | None,
    model: str,
    request: GenerationRequest,
    as_json: bool,
    options: dict[str, Any] | None = None,
) -> None:
    async def go() -> None:
        client = _client(settings, url, key)
        try:
            text, usage = await _answer(client, model, request, not as_json, options)
        finally:
            await client.close()
        route = client.info.get("route")
        if not as_json and isinstance(route, dict):
            click.secho(_route_line(route), dim=True, err=True)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "model": model,
                        "content": text,
                        "usage": {
                            "prompt_tokens": usage.prompt_tokens,
                            "completion_tokens": usage.completion_tokens,
                        },
                        "timings": client.timings.as_dict(),
                        "strata": client.info,
                    },
                    indent=2,
                )
            )
        elif client.info.get("citations") is not None:
            _print_citations(client.info)

    asyncio.run(go())


def _route_line(route: dict[str, Any]) -> str:
    """One line on how a route answered (tiers tried, confidence, cost)."""
    steps = []
    for tier in route.get("tiers", []):
        if tier.get("ran") and tier.get("confidence") is not None:
            steps.append(f"{tier['model']} {tier['confidence']:.2f}/{tier['threshold']:.2f}")
        elif tier.get("ran"):
            steps.append(str(tier["model"]))
        elif tier.get("skipped"):
            steps.append(f"{tier['model']} skipped ({tier['skipped']})")
    flag = " [degraded]" if route.get("degraded") else ""
    return (
        f"[{route.get('name')}: {' → '.join(steps)}; answered by {route.get('answered_by')}: "
        f"{route.get('reason')}; ${route.get('cost', 0):.8f}]{flag}"
    )


def _print_citations(info: dict[str, Any]) -> None:
    """After a grounded answer: the passages it could cite, or why it abstained."""
    citations = info.get("citations") or []
    if not citations:
        click.secho("(no passage in the knowledge base supports an answer)", dim=True, err=True)
    for c in citations:
        click.secho(
            f"[{c['n']}] {c['document_id']} #{c['chunk']} {c.get('title') or ''}"
            f" (score {c['score']:.4f})",
            dim=True,
        )


@main.command()
@click.argument("question")
@click.option("--system", help="System prompt")
@click.option("--kb", help="Ground the answer in this knowledge collection (cites passages)")
@click.option("--top-k", type=click.IntRange(1, 50), help="Passages to retrieve with --kb")
@click.option("--json", "as_json", is_flag=True, help="Print the answer, usage and timings as JSON")
@click.option("--quality", type=float, help="Routes: keep this share of the big model's quality")
@click.option("--max-cost", type=float, help="Routes: spend at most this many USD")
@_client_options
@settings_options
def ask(
    question: str,
    system: str | None,
    kb: str | None,
    top_k: int | None,
    as_json: bool,
    quality: float | None,
    max_cost: float | None,
    model: str | None,
    url: str | None,
    key: str | None,
    temperature: float,
    max_tokens: int | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Ask one question and print the answer as it streams."""
    settings = make_settings(config_file, api_keys, **flags)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    request = GenerationRequest(
        kind="chat",
        messages=messages,
        stream=True,
        params=SamplingParams(temperature=temperature, max_tokens=max_tokens),
    )
    options: dict[str, Any] = {
        k: v for k, v in (("quality", quality), ("max_cost", max_cost)) if v is not None
    }
    if kb:
        options["knowledge"] = kb
        if top_k:
            options["top_k"] = top_k
    _run_once(settings, url, key, model or settings.default_model, request, as_json, options)


@main.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print the text, usage and timings as JSON")
@_client_options
@settings_options
def complete(
    prompt: str,
    as_json: bool,
    model: str | None,
    url: str | None,
    key: str | None,
    temperature: float,
    max_tokens: int | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Continue PROMPT with a base model (default: base)."""
    settings = make_settings(config_file, api_keys, **flags)
    request = GenerationRequest(
        kind="completion",
        prompt=prompt,
        stream=True,
        params=SamplingParams(temperature=temperature, max_tokens=max_tokens),
    )
    _run_once(settings, url, key, model or "base", request, as_json)


@main.command()
@click.option("--system", help="System prompt")
@click.option("--session", help="Resume (or start) a stored session that remembers")
@click.option("--voice", help="Brand voice id to apply")
@_client_options
@settings_options
def chat(
    system: str | None,
    session: str | None,
    voice: str | None,
    model: str | None,
    url: str | None,
    key: str | None,
    temperature: float,
    max_tokens: int | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Talk with a model, turn by turn (/reset clears, /exit or Ctrl-D quits)."""
    settings = make_settings(config_file, api_keys, **flags)
    name = model or settings.default_model
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens)

    async def go() -> None:
        client = _client(settings, url, key)
        history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        options: dict[str, Any] = {"voice": voice} if voice else {}
        if session:
            from strata.dialogue.cli import ensure_session

            options["session"] = session
            turns = await ensure_session(client, session)
            click.secho(f"session {session}: {turns} earlier turns remembered", dim=True)
        click.secho(f"strata chat with {name} (/reset, /exit)", dim=True)
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input, "> ")
                except EOFError:
                    break
                if line.strip() in {"/exit", "/quit"}:
                    break
                if line.strip() == "/reset":
                    history = history[:1] if system else []
                    continue
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                request = GenerationRequest(
                    kind="chat", messages=list(history), stream=True, params=params
                )
                try:
                    text, _ = await _answer(client, name, request, True, options)
                except StrataError as exc:
                    history.pop()
                    click.secho(f"error: {exc.message}", fg="red", err=True)
                    continue
                if session:  # the server keeps the history; send only what is new
                    history.pop()
                else:
                    history.append({"role": "assistant", "content": text})
        finally:
            await client.close()

    asyncio.run(go())


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

    from strata import catalog

    settings: Settings = ctx.obj
    table = Table("model", "backend", "source", "ready", "description")
    if url:

        async def fetch() -> list[dict[str, Any]]:
            client = _client(settings, url, key)
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
def assemble(settings: Settings, names: tuple[str, ...]) -> None:
    """Assemble bundled models (all configured ones by default), with progress."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from strata import catalog

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


# Feature commands build on the helpers above, so they are imported after them.
main.add_command(importlib.import_module("strata.dialogue.cli").sessions)
main.add_command(importlib.import_module("strata.apps.cli").template)
main.add_command(importlib.import_module("strata.apps.cli").voice)
main.add_command(importlib.import_module("strata.apps.cli").feedback)

from strata.routing import cli as routing_cli  # noqa: E402  (its commands import this module)

for _command in routing_cli.commands():
    main.add_command(_command)

from strata.knowledge import cli as knowledge_cli  # noqa: E402

for _command in knowledge_cli.COMMANDS:
    main.add_command(_command)
