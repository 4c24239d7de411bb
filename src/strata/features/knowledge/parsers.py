"""Turn files into documents: one small contract, one function per format, a registry by
file extension that built-ins join the same way a plugin would (``register_parser``).

A parser takes the raw bytes and the file's name and returns ``ParsedDocument``s (a JSONL
file holds many records; every other format is one document). Documents keep their
structure as ``Block``s (a heading path and one paragraph) so chunking can follow headings
and paragraphs instead of cutting text blindly.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from strata.core.errors import InvalidRequest


@dataclass(frozen=True)
class Block:
    """One paragraph (or list item, table row, page paragraph) under its heading path."""

    text: str
    heading: str = ""


@dataclass
class ParsedDocument:
    """A document before chunking. ``id`` is empty when the caller names it (from the path)."""

    blocks: list[Block]
    title: str = ""
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


Parser = Callable[[bytes, str], list[ParsedDocument]]

_parsers: dict[str, Parser] = {}


def register_parser(extensions: tuple[str, ...], parser: Parser) -> None:
    """Make ``parser`` handle files ending in any of ``extensions`` (``.md``, ...)."""
    for ext in extensions:
        _parsers[ext.lower()] = parser


def parser_for(name: str) -> Parser:
    ext = PurePath(name).suffix.lower()
    try:
        return _parsers[ext]
    except KeyError:
        known = ", ".join(sorted(_parsers))
        raise InvalidRequest(f"cannot parse '{name}': unknown format (known: {known})") from None


def supported(name: str) -> bool:
    return PurePath(name).suffix.lower() in _parsers


def parse(data: bytes, name: str) -> list[ParsedDocument]:
    return parser_for(name)(data, name)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"'{name}' is not UTF-8 text: {exc}") from exc


def paragraphs(text: str) -> list[str]:
    """Split on blank lines; whitespace inside a paragraph collapses to single spaces."""
    out = []
    for part in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        clean = " ".join(part.split())
        if clean:
            out.append(clean)
    return out


def _stem_title(name: str) -> str:
    return PurePath(name).stem.replace("_", " ").replace("-", " ").strip()


def parse_text(data: bytes, name: str) -> list[ParsedDocument]:
    blocks = [Block(p) for p in paragraphs(_decode(data, name))]
    return [ParsedDocument(blocks, title=_stem_title(name))]


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def parse_markdown(data: bytes, name: str) -> list[ParsedDocument]:
    """Headings (``#``…) open sections; the first level-1 heading is the title. Fenced code
    stays one block, whatever blank lines it holds."""
    text = _decode(data, name)
    title = ""
    path: list[str] = []
    blocks: list[Block] = []
    buffer: list[str] = []
    in_fence = False

    def flush() -> None:
        heading = " > ".join(path)
        blocks.extend(Block(p, heading) for p in paragraphs("\n".join(buffer)))
        buffer.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            if not in_fence:  # keep a code block together: one paragraph, no blank lines
                code = " ".join(x.strip() for x in buffer if x.strip())
                buffer.clear()
                if code:
                    blocks.append(Block(code, " > ".join(path)))
            else:
                flush()
            continue
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush()
            level, heading = len(match.group(1)), match.group(2)
            if level == 1 and not title:
                title = heading
            del path[level - 1 :]
            path.extend([""] * (level - 1 - len(path)))
            path.append(heading)
            path[:] = [p for p in path if p]
            continue
        buffer.append(line)
    flush()
    return [ParsedDocument(blocks, title=title or _stem_title(name))]


class _HTMLText(HTMLParser):
    """Collects block-level text with the heading it sits under; skips scripts and styles."""

    BLOCKS = frozenset(
        [
            "p",
            "div",
            "li",
            "td",
            "th",
            "pre",
            "blockquote",
            "section",
            "article",
            "br",
            "tr",
            "dd",
            "dt",
            "figcaption",
        ]
    )
    HEADINGS = frozenset(f"h{i}" for i in range(1, 7))
    SKIP = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.blocks: list[Block] = []
        self.heading = ""
        self._text: list[str] = []
        self._skip = 0
        self._in_title = False
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.HEADINGS:
            self._flush()
            self._in_heading = True
        elif tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self.HEADINGS:
            self.heading = " ".join("".join(self._text).split())
            if tag == "h1" and not self.title:
                self.title = self.heading
            self._text.clear()
            self._in_heading = False
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self._text.append(data)

    def _flush(self) -> None:
        if self._in_heading:
            return
        text = " ".join("".join(self._text).split())
        self._text.clear()
        if text:
            self.blocks.append(Block(text, self.heading))

    def close(self) -> None:
        super().close()
        self._flush()


def parse_html(data: bytes, name: str) -> list[ParsedDocument]:
    parser = _HTMLText()
    parser.feed(_decode(data, name))
    parser.close()
    title = " ".join(parser.title.split()) or _stem_title(name)
    return [ParsedDocument(parser.blocks, title=title)]


def parse_pdf(data: bytes, name: str) -> list[ParsedDocument]:
    """Text of each page through pypdf; the page number is the block's heading."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - the knowledge extra installs it
        raise InvalidRequest("PDF needs pypdf: pip install 'strata[knowledge]'") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"'{name}' is not a readable PDF: {exc}") from exc
    blocks = [
        Block(p, f"page {i}") for i, page in enumerate(pages, start=1) for p in paragraphs(page)
    ]
    return [ParsedDocument(blocks, title=str(meta_title).strip() or _stem_title(name))]


TEXT_KEYS = ("text", "content", "body", "abstract")
ID_KEYS = ("id", "_id", "doc_id")


def record_document(record: dict[str, Any], where: str) -> ParsedDocument:
    """One JSON record → a document: ``id``/``_id``, ``title``, ``text`` (or content, body,
    abstract); ``metadata`` (an object) and any other scalar fields become metadata."""
    text_key = next((k for k in TEXT_KEYS if isinstance(record.get(k), str)), None)
    if text_key is None:
        raise InvalidRequest(f"{where}: a record needs a text field ({', '.join(TEXT_KEYS)})")
    id_key = next((k for k in ID_KEYS if record.get(k) not in (None, "")), None)
    doc_id = str(record[id_key]) if id_key else ""
    metadata: dict[str, Any] = {}
    if isinstance(record.get("metadata"), dict):
        metadata.update(record["metadata"])
    skip = {text_key, "title", "metadata", *(ID_KEYS)}
    for key, value in record.items():
        if key not in skip and isinstance(value, str | int | float | bool):
            metadata[key] = value
    blocks = [Block(p) for p in paragraphs(record[text_key])]
    return ParsedDocument(
        blocks, title=str(record.get("title") or ""), id=doc_id, metadata=metadata
    )


def parse_jsonl(data: bytes, name: str) -> list[ParsedDocument]:
    docs = []
    for n, line in enumerate(_decode(data, name).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{name}:{n}: not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise InvalidRequest(f"{name}:{n}: a record must be a JSON object")
        docs.append(record_document(record, f"{name}:{n}"))
    return docs


register_parser((".txt", ".text", ".rst", ".log"), parse_text)
register_parser((".md", ".markdown"), parse_markdown)
register_parser((".html", ".htm"), parse_html)
register_parser((".pdf",), parse_pdf)
register_parser((".jsonl", ".ndjson"), parse_jsonl)
