"""``strata ingest``, ``strata search`` and ``strata kb list|stats|delete``.

They open the knowledge base in-process (the same file the server uses, under
``settings.home``). ``--key`` acts as that API key's tenant, so what the CLI ingests is what
a client holding the key sees; without it, the ``default`` tenant (a server without keys).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from strata.core.cli import make_settings, settings_options
from strata.core.errors import InvalidRequest
from strata.core.settings import CoreSettings
from strata.core.tenancy import API_KEY_PREFIX, tenant_of
from strata.features.knowledge.settings import KnowledgeSettings


def _tenant(key: str | None) -> str:
    return tenant_of(API_KEY_PREFIX + key if key else "")


def _kb(settings: CoreSettings) -> Any:
    from strata.features.knowledge.base import KnowledgeBase

    return KnowledgeBase(
        settings.home,
        settings.section("knowledge", KnowledgeSettings),
        database=settings.database,
    )


_key_option = click.option(
    "--key", envvar="STRATA_API_KEY", help="Act as this API key's tenant (default: no key)"
)


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "-c", required=True, help="Collection (created if missing)")
@click.option("--include", multiple=True, help="Only paths matching this glob (repeatable)")
@click.option("--exclude", multiple=True, help="Skip paths matching this glob (repeatable)")
@click.option("--batch", type=int, help="Documents per acknowledged commit")
@_key_option
@settings_options
def ingest(
    path: Path,
    collection: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    batch: int | None,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Ingest a file or a folder (recursive) into a collection; unchanged files are skipped."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from strata.features.knowledge.ingest import ingest_path, walk

    settings = make_settings(config_file, api_keys, **flags)
    kb = _kb(settings)
    tenant = _tenant(key)
    console = Console(stderr=True)
    try:
        kb.create_collection(tenant, collection)
        total = sum(1 for _ in walk(path, include, exclude))
        if total == 0:
            raise InvalidRequest(f"no supported files under {path}")
        start = time.perf_counter()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"ingesting into {collection}", total=total)
            report = ingest_path(
                kb,
                tenant,
                collection,
                path,
                include,
                exclude,
                batch or kb.settings.ingest_batch,
                on_file=lambda _: progress.advance(task),
            )
        elapsed = time.perf_counter() - start
    finally:
        kb.close()
    docs = report.new + report.updated + report.unchanged
    table = Table("files", "new", "updated", "unchanged", "failed", "chunks", "docs/s")
    table.add_row(
        str(report.files),
        str(report.new),
        str(report.updated),
        str(report.unchanged),
        str(report.failed),
        str(report.chunks),
        f"{docs / elapsed:.1f}" if elapsed > 0 else "-",
    )
    Console().print(table)
    for error in report.errors[:20]:
        console.print(f"[red]failed[/red] {error}")


@click.command()
@click.argument("query")
@click.option("--collection", "-c", required=True)
@click.option("--top-k", "-k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "vector"]), default="hybrid")
@click.option("--filter", "filters", multiple=True, help="Metadata KEY=VALUE (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON")
@_key_option
@settings_options
def search(
    query: str,
    collection: str,
    top_k: int,
    mode: str,
    filters: tuple[str, ...],
    as_json: bool,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Search a collection and print the best passages."""
    from rich.console import Console
    from rich.table import Table

    where: dict[str, Any] = {}
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidRequest(f"--filter takes KEY=VALUE, got '{item}'")
        where[name] = value
    settings = make_settings(config_file, api_keys, **flags)
    kb = _kb(settings)
    try:
        hits = kb.search(_tenant(key), collection, query, top_k, mode, where or None)
    finally:
        kb.close()
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    table = Table("#", "score", "document", "chunk", "passage")
    for n, hit in enumerate(hits, start=1):
        text = hit.text if len(hit.text) <= 160 else hit.text[:157] + "..."
        table.add_row(str(n), f"{hit.score:.4f}", hit.document_id, str(hit.position), text)
    Console().print(table)


@click.group()
def kb() -> None:
    """Manage knowledge collections: list, stats, delete."""


@kb.command("list")
@_key_option
@settings_options
def kb_list(
    key: str | None, config_file: Path | None, api_keys: tuple[str, ...], **flags: Any
) -> None:
    """List the collections."""
    from rich.console import Console
    from rich.table import Table

    base = _kb(make_settings(config_file, api_keys, **flags))
    try:
        rows = base.list_collections(_tenant(key))
    finally:
        base.close()
    table = Table("collection", "documents", "chunks")
    for row in rows:
        table.add_row(row["name"], str(row["documents"]), str(row["chunks"]))
    Console().print(table)


@kb.command("stats")
@click.argument("collection")
@_key_option
@settings_options
def kb_stats(
    collection: str,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Counts and sizes of one collection, as JSON."""
    base = _kb(make_settings(config_file, api_keys, **flags))
    try:
        click.echo(json.dumps(base.stats(_tenant(key), collection), indent=2))
    finally:
        base.close()


@kb.command("delete")
@click.argument("collection")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@_key_option
@settings_options
def kb_delete(
    collection: str,
    yes: bool,
    key: str | None,
    config_file: Path | None,
    api_keys: tuple[str, ...],
    **flags: Any,
) -> None:
    """Delete a collection with all its documents."""
    if not yes:
        click.confirm(f"delete collection '{collection}' and all its documents?", abort=True)
    base = _kb(make_settings(config_file, api_keys, **flags))
    try:
        base.delete_collection(_tenant(key), collection)
    finally:
        base.close()
    click.echo(f"deleted {collection}")


COMMANDS: list[click.Command] = [ingest, search, kb]
"""What the knowledge feature adds to ``strata``."""
