"""Files and folders → documents, in bounded batches, embedded one batch ahead.

A folder is walked lazily (sorted, recursive, include/exclude globs on the path relative to
the folder) and documents are handed out ``batch`` at a time, so ingesting a million files
holds two batches of text and vectors in memory, never the whole set. Each batch is one
acknowledged commit. Embedding (the slow part) runs on a background worker: while batch n
is committed (SQLite, the index swap) and the next files are read and parsed, batch n + 1 is
already being embedded, so the CPU never waits on the disk or the other way round. The
write contract is unchanged: a batch is reported (``on_commit``) only once its commit has
returned, i.e. it is durable and searchable.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.core.errors import StrataError
from strata.features.knowledge.base import DocumentInput, KnowledgeBase, WriteResult
from strata.features.knowledge.documents import Prepared
from strata.features.knowledge.parsers import parse, supported


def documents_from_bytes(
    data: bytes,
    name: str,
    doc_id: str,
    source: str = "",
    metadata: dict[str, Any] | None = None,
) -> list[DocumentInput]:
    """Parse one file's bytes. A JSONL file yields one document per record, named by the
    record's own id (or ``doc_id:line``); other formats yield one document ``doc_id``."""
    parsed = parse(data, name)
    many = len(parsed) > 1 or (parsed and parsed[0].id)
    out = []
    for n, doc in enumerate(parsed, start=1):
        meta = {**(metadata or {}), **doc.metadata}
        ident = (doc.id or f"{doc_id}:{n}") if many else doc_id
        out.append(
            DocumentInput(
                id=ident,
                title=doc.title,
                source=source or name,
                metadata=meta,
                blocks=doc.blocks,
            )
        )
    return out


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Iterator[Path]:
    """Supported files under ``root`` (or ``root`` itself), sorted, filtered by the globs."""
    if root.is_file():
        yield root
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if include and not _matches(rel, include):
            continue
        if exclude and _matches(rel, exclude):
            continue
        if supported(path.name):
            yield path


@dataclass
class IngestReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    files: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, results: Sequence[WriteResult]) -> None:
        for r in results:
            setattr(self, r.status, getattr(self, r.status) + 1)
            if r.status != "unchanged":
                self.chunks += r.chunks


def upsert_batches(
    kb: KnowledgeBase,
    tenant: str,
    collection: str,
    batches: Iterable[list[DocumentInput]],
    report: IngestReport | None = None,
    on_commit: Callable[[Sequence[WriteResult]], None] | None = None,
) -> IngestReport:
    """Commit ``batches`` in order, each embedded on a worker while the previous one commits.
    A batch that fails is retried one document at a time, so one bad document is reported
    as failed without sinking its batch."""
    report = report if report is not None else IngestReport()
    coll = kb.collection(tenant, collection)

    def settle(docs: list[DocumentInput], prepared: Future[list[Prepared]]) -> None:
        try:
            results = kb.commit(coll, prepared.result())
        except StrataError:
            results = []
            for doc in docs:
                try:
                    results.extend(kb.upsert(tenant, collection, [doc]))
                except StrataError as exc:
                    report.failed += 1
                    report.errors.append(f"{doc.id}: {exc.message}")
        report.add(results)
        if on_commit:
            on_commit(results)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-embed") as worker:
        ahead: tuple[list[DocumentInput], Future[list[Prepared]]] | None = None
        for docs in batches:
            if not docs:
                continue
            queued = (docs, worker.submit(kb.prepare, coll, docs))
            if ahead is not None:
                settle(*ahead)
            ahead = queued
        if ahead is not None:
            settle(*ahead)
    return report


def ingest_path(
    kb: KnowledgeBase,
    tenant: str,
    collection: str,
    root: Path,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    batch: int = 32,
    on_file: Callable[[Path], None] | None = None,
    on_commit: Callable[[Sequence[WriteResult]], None] | None = None,
) -> IngestReport:
    """Ingest a file or folder; a file that cannot be read or parsed is counted as failed
    and reported, never aborting the rest. Document ids are paths relative to ``root``."""
    report = IngestReport()
    base = root if root.is_dir() else root.parent

    def batches() -> Iterator[list[DocumentInput]]:
        pending: list[DocumentInput] = []
        for path in walk(root, include, exclude):
            report.files += 1
            rel = path.relative_to(base).as_posix()
            try:
                docs = documents_from_bytes(path.read_bytes(), path.name, rel, source=str(path))
            except (OSError, StrataError) as exc:
                report.failed += 1
                report.errors.append(f"{rel}: {getattr(exc, 'message', exc)}")
                docs = []
            for doc in docs:
                pending.append(doc)
                if len(pending) >= batch:
                    yield pending
                    pending = []
            if on_file:
                on_file(path)
        yield pending

    return upsert_batches(kb, tenant, collection, batches(), report, on_commit)
