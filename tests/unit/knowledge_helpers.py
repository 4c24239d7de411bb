"""Helpers for the knowledge tests: a knowledge base on the hashing embedder, a tiny PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strata.features.knowledge.base import KnowledgeBase
from strata.features.knowledge.settings import KnowledgeSettings


def hash_settings(**overrides: Any) -> KnowledgeSettings:
    values: dict[str, Any] = {"embedder": "hash", "min_evidence": 0.1, **overrides}
    return KnowledgeSettings(**values)


def make_kb(home: Path, database: Path | str | None = None, **overrides: Any) -> KnowledgeBase:
    """A base in ``home``; on PostgreSQL when ``database`` is a URL (the ``database``
    fixture's postgres param)."""
    url = database if isinstance(database, str) else None
    return KnowledgeBase(home, hash_settings(**overrides), database=url)


def tiny_pdf(lines: list[str], title: str = "") -> bytes:
    """A valid one-page PDF showing ``lines`` in Helvetica (no PDF writer needed)."""
    text = (
        "BT /F1 12 Tf 72 720 Td 14 TL "
        + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
            for line in lines
        )
        + " ET"
    )
    stream = text.encode()
    info = f"<< /Title ({title}) >>" if title else "<< >>"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        " /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        info,
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return out
