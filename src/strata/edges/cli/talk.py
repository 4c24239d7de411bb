"""``strata ask``, ``strata complete`` and ``strata chat``: talk to a model in this process,
or to a running server with ``--url``, through the same ``Client`` contract."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from strata.core.cli import make_settings, settings_options
from strata.core.errors import StrataError
from strata.core.models.base import GenerationRequest, SamplingParams, Usage
from strata.core.settings import CoreSettings

F = TypeVar("F", bound=Callable[..., Any])


def open_client(settings: CoreSettings, url: str | None, key: str | None) -> Any:
    from strata.edges.cli.client import HTTPClient, LocalClient

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
    settings: CoreSettings,
    url: str | None,
    key: str | None,
    model: str,
    request: GenerationRequest,
    as_json: bool,
    options: dict[str, Any] | None = None,
) -> None:
    async def go() -> None:
        client = open_client(settings, url, key)
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


@click.command()
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


@click.command()
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


@click.command()
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
        client = open_client(settings, url, key)
        history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        options: dict[str, Any] = {"voice": voice} if voice else {}
        if session:
            from strata.features.dialogue.cli import ensure_session

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
