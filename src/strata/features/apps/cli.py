"""``strata template list | show | run NAME --field value``, ``strata voice learn FILES |
list | show | delete`` and ``strata feedback RESPONSE_ID``: the REST API from a terminal,
in-process by default or against a running server with ``--url``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from strata.core.cli import call_api, dumps, make_settings, remote_options, settings_options
from strata.core.errors import InvalidRequest


@click.group()
def template() -> None:
    """Templates: fill in fields instead of writing prompts."""


@template.command("list")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@settings_options
def template_list(
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """List the templates you can run."""
    settings = make_settings(config_file, api_keys, **flags)
    data = call_api(settings, url, key, "GET", "/v1/templates")
    if as_json:
        click.echo(dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("template", "output", "category", "description")
    for t in data["data"]:
        table.add_row(t["name"], t["output"], t["category"], t["description"])
    Console().print(table)


@template.command("show")
@click.argument("name")
@remote_options
@settings_options
def template_show(
    name: str,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Show a template's inputs and prompt."""
    settings = make_settings(config_file, api_keys, **flags)
    data = call_api(settings, url, key, "GET", f"/v1/templates/{name}")
    click.secho(f"{data['name']}: {data['title']}", bold=True)
    if data["description"]:
        click.echo(data["description"])
    click.echo(f"output: {data['output']}")
    click.echo("inputs:")
    for field, spec in data["inputs"].items():
        bits = [spec["type"], "required" if spec["required"] else "optional"]
        if spec["max_length"]:
            bits.append(f"max {spec['max_length']}")
        if spec["enum"]:
            bits.append("one of " + "|".join(spec["enum"]))
        if spec["default"] not in (None, ""):
            bits.append(f"default {spec['default']}")
        click.echo(f"  --{field.replace('_', '-')}  ({', '.join(bits)}) {spec['description']}")
    click.echo("prompt:")
    click.echo("  " + data["prompt"].replace("\n", "\n  "))


def _field_values(args: list[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs after the template's name."""
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise InvalidRequest(f"unexpected argument '{arg}' (inputs are --field value)")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise InvalidRequest(f"--{name} needs a value")
            i += 1
            value = args[i]
        values[name.replace("-", "_")] = value
        i += 1
    return values


@template.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("name")
@click.option("--voice", help="Brand voice id to apply")
@click.option("--model", "-m", "model", help="Model or route (default: the template's)")
@click.option("--inputs-json", help="All inputs as one JSON object")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON")
@remote_options
@settings_options
@click.pass_context
def template_run(
    ctx: click.Context,
    /,
    name: str,
    voice: str | None,
    model: str | None,
    inputs_json: str | None,
    as_json: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Run template NAME with its inputs as --field value (lists: 'a; b; c')."""
    settings = make_settings(config_file, api_keys, **flags)
    inputs: dict[str, Any] = json.loads(inputs_json) if inputs_json else {}
    inputs.update(_field_values(list(ctx.args)))
    body: dict[str, Any] = {"inputs": inputs, "voice": voice, "model": model}
    data = call_api(settings, url, key, "POST", f"/v1/templates/{name}/run", body)
    if as_json:
        click.echo(dumps(data))
        return
    click.echo(data["output"])
    click.secho(f"(response id {data['id']}: rate it with `strata feedback`)", dim=True, err=True)


@click.group()
def voice() -> None:
    """Brand voices: learn one from samples, list, show, delete."""


@voice.command("learn")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--id", "voice_id", required=True, help="Id to save the voice under")
@click.option("--name", default="", help="Brand name")
@click.option("--model", "-m", help="Model that extracts the rules (default: default_model)")
@click.option("--yes", is_flag=True, help="Save without opening an editor")
@remote_options
@settings_options
def voice_learn(
    files: tuple[Path, ...],
    voice_id: str,
    name: str,
    model: str | None,
    yes: bool,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Learn a voice from sample FILES, edit the draft, then save it."""
    from strata.core.kernel import Kernel
    from strata.features.apps.learn import learn_voice
    from strata.features.apps.voice import VoiceProfile

    settings = make_settings(config_file, api_keys, **flags)
    texts = [f.read_text(encoding="utf-8") for f in files]

    async def learn() -> VoiceProfile:
        kernel = Kernel(settings)
        try:
            return await learn_voice(kernel.service, model or settings.default_model, texts, name)
        finally:
            await kernel.shutdown()

    profile = asyncio.run(learn())
    draft = dumps(profile.model_dump())
    if not yes:
        edited = click.edit(draft, extension=".json")
        draft = edited if edited is not None else draft
    try:
        final = VoiceProfile.model_validate_json(draft).model_dump()
    except ValueError as exc:
        raise InvalidRequest(f"the edited voice is not valid: {exc}") from None
    click.echo(dumps(final))
    call_api(settings, url, key, "POST", "/v1/voices", {"id": voice_id, **final})
    click.echo(f"saved voice {voice_id}", err=True)


@voice.command("list")
@remote_options
@settings_options
def voice_list(
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """List your brand voices."""
    settings = make_settings(config_file, api_keys, **flags)
    for v in call_api(settings, url, key, "GET", "/v1/voices")["data"]:
        click.echo(f"{v['id']}\t{v['name']}\t{v['tone']}")


@voice.command("show")
@click.argument("voice_id")
@remote_options
@settings_options
def voice_show(
    voice_id: str,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Print a voice as JSON."""
    settings = make_settings(config_file, api_keys, **flags)
    click.echo(dumps(call_api(settings, url, key, "GET", f"/v1/voices/{voice_id}")))


@voice.command("delete")
@click.argument("voice_id")
@remote_options
@settings_options
def voice_delete(
    voice_id: str,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Delete a brand voice."""
    settings = make_settings(config_file, api_keys, **flags)
    call_api(settings, url, key, "DELETE", f"/v1/voices/{voice_id}")
    click.echo(f"deleted {voice_id}")


@click.command()
@click.argument("response_id")
@click.option("--up", "rating", flag_value="up", help="Thumbs up")
@click.option("--down", "rating", flag_value="down", help="Thumbs down")
@click.option("--edit", "edited", help="Your corrected text (becomes a few-shot example)")
@click.option("--edit-file", type=click.Path(exists=True, path_type=Path))
@remote_options
@settings_options
def feedback(
    response_id: str,
    rating: str | None,
    edited: str | None,
    edit_file: Path | None,
    url: str | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Rate or correct a response by its id."""
    settings = make_settings(config_file, api_keys, **flags)
    if edit_file is not None:
        edited = edit_file.read_text(encoding="utf-8")
    body = {"response_id": response_id, "rating": rating, "edited_text": edited}
    data = call_api(settings, url, key, "POST", "/v1/feedback", body)
    click.echo("accepted as an example" if data["accepted"] else "recorded")
