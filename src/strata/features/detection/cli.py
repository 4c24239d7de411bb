"""``strata detect FILE|-``: a table of verdicts (or ``--json``), one row per file."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from strata.core.cli import make_settings, settings_options


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--model", "-m", help="Method: log-perplexity, binoculars, fast-detectgpt")
@click.option("--sentences", is_flag=True, help="Also score each sentence")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON")
@settings_options
def detect(
    files: tuple[str, ...],
    model: str | None,
    sentences: bool,
    as_json: bool,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Was FILE (or standard input, '-') written by a model? Evidence, not proof."""
    from strata.features.detection.feature import Detections

    settings = make_settings(config_file, api_keys, **flags)
    texts = [
        sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        for name in files
    ]
    runtime = Detections(settings)
    found = asyncio.run(runtime.adetect(texts, model, sentences))
    if as_json:
        rows = [{"file": name, **d.to_json()} for name, d in zip(files, found, strict=True)]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "decision", "probability", "score", "threshold", "tokens", "method")
    for name, d in zip(files, found, strict=True):
        probability = "" if d.probability is None else f"{d.probability:.2f}"
        score = "" if d.score is None else f"{d.score:.4f}"
        table.add_row(
            name, d.decision, probability, score, f"{d.threshold:.4f}", str(d.tokens), d.method
        )
    Console().print(table)
    if any(d.decision == "too_short" for d in found):
        minimum = found[0].min_tokens
        click.secho(f"too_short: fewer than {minimum} tokens, not judged", dim=True, err=True)
