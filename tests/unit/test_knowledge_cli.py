"""``strata ingest`` / ``search`` / ``kb`` and ``ask --kb`` in-process (CliRunner), on the
hashing embedder and a scripted model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from strata.edges.cli.main import main
from tests.unit.knowledge_helpers import tiny_pdf

CONFIG = """
bundled_models = false
default_model = "f"

[models.f]
backend = "fake"
n_ctx = 4096
options = { default_output = "Tea came from China [1]." }

[knowledge]
embedder = "hash"
min_evidence = 0.1
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "strata.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "tea.md").write_text("# Tea\n\nTea originated in China as a medicinal drink.")
    (root / "sub" / "coffee.txt").write_text("Coffee was first brewed in Yemen.")
    (root / "sub" / "page.html").write_text("<h1>Cocoa</h1><p>Cocoa grows in Ghana.</p>")
    (root / "sub" / "paper.pdf").write_bytes(tiny_pdf(["Matcha is powdered green tea."]))
    (root / "recs.jsonl").write_text('{"id": "r1", "text": "Rooibos is from South Africa."}\n')
    (root / "skip.log").write_text("ignored by the exclude glob")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    (root / ".hidden.md").write_text("hidden")
    return root


def run(*args: str, home: Path, config: Path) -> Result:
    result = CliRunner().invoke(
        main, [*args, "--home", str(home), "--config", str(config)], catch_exceptions=False
    )
    return result


def test_ingest_search_and_kb_commands(folder: Path, config: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run(
        "ingest", str(folder), "-c", "drinks", "--exclude", "*.log", home=home, config=config
    )
    assert first.exit_code == 0, first.output
    # files new updated unchanged failed
    assert "│ 6     │ 5   │ 0       │ 0         │ 1 " in first.stdout, first.stdout
    assert "broken.pdf" in first.stderr
    second = run(
        "ingest", str(folder), "-c", "drinks", "--exclude", "*.log", home=home, config=config
    )
    assert "│ 6     │ 0   │ 0       │ 5         │ 1 " in second.stdout, second.stdout
    (folder / "tea.md").write_text("# Tea\n\nTea originated in China. It spread to Japan.")
    third = run(
        "ingest", str(folder), "-c", "drinks", "--include", "*.md", home=home, config=config
    )
    assert "│ 1     │ 0   │ 1       │ 0         │ 0 " in third.stdout, third.stdout

    found = run(
        "search", "where was coffee brewed", "-c", "drinks", "--json", home=home, config=config
    )
    hits = json.loads(found.stdout)
    assert hits[0]["document_id"] == "sub/coffee.txt"
    assert run("search", "matcha", "-c", "drinks", home=home, config=config).exit_code == 0

    listed = run("kb", "list", home=home, config=config)
    assert "drinks" in listed.stdout and "5" in listed.stdout
    stats = json.loads(run("kb", "stats", "drinks", home=home, config=config).stdout)
    assert stats["documents"] == 5
    other = run("kb", "list", "--key", "someone", home=home, config=config)
    assert "drinks" not in other.stdout  # another tenant
    assert run("kb", "delete", "drinks", "--yes", home=home, config=config).exit_code == 0
    missing = CliRunner().invoke(
        main, ["kb", "stats", "drinks", "--home", str(home), "--config", str(config)]
    )
    assert missing.exit_code == 1 and "no collection named 'drinks'" in missing.stderr


def test_ask_with_kb_prints_citations(folder: Path, config: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run("ingest", str(folder), "-c", "drinks", home=home, config=config)
    result = run("ask", "Where did tea originate?", "--kb", "drinks", home=home, config=config)
    assert result.exit_code == 0, result.output
    assert "Tea came from China [1]." in result.stdout
    assert "[1] tea.md #0 Tea" in result.stdout
    as_json = run(
        "ask", "tea China", "--kb", "drinks", "--top-k", "1", "--json", home=home, config=config
    )
    payload = json.loads(as_json.stdout)
    assert len(payload["strata"]["citations"]) == 1
    assert payload["strata"]["cited"] == [1]


def test_ingest_errors_are_one_line(config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        main,
        ["ingest", str(empty), "-c", "x", "--home", str(tmp_path / "h"), "--config", str(config)],
    )
    assert result.exit_code == 1 and "no supported files" in result.stderr
    bad = CliRunner().invoke(
        main,
        [
            "ingest",
            str(empty),
            "-c",
            "bad name",
            "--home",
            str(tmp_path / "h"),
            "--config",
            str(config),
        ],
    )
    assert bad.exit_code == 1 and "collection name" in bad.stderr
