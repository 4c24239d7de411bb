"""Parsers (one per format, a registry by extension) and structure-aware chunking."""

from __future__ import annotations

import itertools
import json

import pytest

from strata.core.errors import InvalidRequest
from strata.features.knowledge.chunking import chunk_blocks, word_count
from strata.features.knowledge.parsers import Block, parse, parser_for, register_parser, supported
from tests.unit.knowledge_helpers import tiny_pdf


def test_text_paragraphs_and_title_from_name() -> None:
    [doc] = parse(b"First para\nstill first.\n\n\nSecond para.", "my_notes.txt")
    assert doc.title == "my notes"
    assert [b.text for b in doc.blocks] == ["First para still first.", "Second para."]


def test_markdown_headings_become_paths_and_code_stays_whole() -> None:
    md = b"""# Guide

Intro text.

## Install

Run it.

```sh
pip install x

strata serve
```

### Linux

Use apt.

## Use

Ask away.
"""
    [doc] = parse(md, "guide.md")
    assert doc.title == "Guide"
    pairs = [(b.heading, b.text) for b in doc.blocks]
    assert pairs == [
        ("Guide", "Intro text."),
        ("Guide > Install", "Run it."),
        ("Guide > Install", "pip install x strata serve"),
        ("Guide > Install > Linux", "Use apt."),
        ("Guide > Use", "Ask away."),
    ]


def test_html_skips_scripts_and_keeps_headings() -> None:
    html = b"""<html><head><title>The Page</title><style>p {color: red}</style></head>
    <body><script>var x = 1;</script><h1>Top</h1><p>One &amp; two.</p>
    <h2>Sub</h2><ul><li>item a</li><li>item b</li></ul></body></html>"""
    [doc] = parse(html, "page.html")
    assert doc.title == "The Page"
    assert [(b.heading, b.text) for b in doc.blocks] == [
        ("Top", "One & two."),
        ("Sub", "item a"),
        ("Sub", "item b"),
    ]
    assert "var x" not in doc.text and "color" not in doc.text


def test_pdf_pages() -> None:
    data = tiny_pdf(["Photosynthesis makes sugar.", "Chlorophyll is green."], title="Plants")
    [doc] = parse(data, "plants.pdf")
    assert doc.title == "Plants"
    assert "Photosynthesis makes sugar." in doc.text
    assert "Chlorophyll is green." in doc.text
    assert all(b.heading == "page 1" for b in doc.blocks)


def test_broken_pdf_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="not a readable PDF"):
        parse(b"%PDF-1.4 garbage", "x.pdf")


def test_jsonl_records_keep_ids_and_metadata() -> None:
    lines = [
        {"_id": "d1", "title": "T1", "text": "Body one.", "year": 2020, "metadata": {"lang": "en"}},
        {"id": 7, "content": "Body two."},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n\n"
    first, second = parse(data, "recs.jsonl")
    assert (first.id, first.title, first.text) == ("d1", "T1", "Body one.")
    assert first.metadata == {"lang": "en", "year": 2020}
    assert (second.id, second.text) == ("7", "Body two.")


@pytest.mark.parametrize(
    ("data", "match"),
    [(b"{not json", "not JSON"), (b"[1, 2]", "JSON object"), (b'{"title": "x"}', "text field")],
)
def test_bad_jsonl(data: bytes, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        parse(data, "bad.jsonl")


def test_registry_by_extension_and_plugins() -> None:
    assert supported("A.MD") and supported("x.htm") and not supported("x.docx")
    with pytest.raises(InvalidRequest, match="unknown format"):
        parser_for("x.docx")
    register_parser((".csvtest",), lambda data, name: parse(data, name + ".txt"))
    assert [b.text for b in parse(b"a,b", "t.csvtest")[0].blocks] == ["a,b"]


def test_non_utf8_text_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="UTF-8"):
        parse(b"\xff\xfe\xfa", "x.txt")


def test_chunks_respect_the_budget_and_paragraphs() -> None:
    paragraphs = [" ".join(f"w{p}x{i}" for i in range(20)) for p in range(6)]
    blocks = [Block(p, "H") for p in paragraphs]
    chunks = chunk_blocks(blocks, word_count, budget=60, overlap=0)
    assert all(word_count(c.text) <= 60 + 2 for c in chunks)
    # 20 words = 26 "tokens": two paragraphs fit, never split in the middle
    assert [c.text.count("x0 ") for c in chunks] == [2, 2, 2]
    assert [c.position for c in chunks] == [0, 1, 2]
    assert all(c.heading == "H" for c in chunks)


def test_long_paragraph_splits_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(12)]
    chunks = chunk_blocks([Block(" ".join(sentences))], word_count, budget=30, overlap=10)
    assert len(chunks) > 3
    for a, b in itertools.pairwise(chunks):
        last = a.text.split(". ")[-1].rstrip(".")
        assert b.text.startswith(last), (a.text, b.text)  # the overlap carried a sentence
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)


def test_giant_sentence_is_cut_at_words() -> None:
    text = " ".join(f"word{i}" for i in range(500))
    chunks = chunk_blocks([Block(text)], word_count, budget=50, overlap=0)
    assert len(chunks) >= 10
    assert all(word_count(c.text) <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_new_heading_starts_a_chunk_but_tiny_sections_merge() -> None:
    long_a = " ".join(["alpha"] * 30)
    blocks = [Block(long_a, "A"), Block("beta text", "B"), Block("tiny", "C"), Block("more", "C")]
    chunks = chunk_blocks(blocks, word_count, budget=100, overlap=0)
    assert [c.heading for c in chunks] == ["A", "B"]
    assert chunks[1].text == "beta text tiny more"
