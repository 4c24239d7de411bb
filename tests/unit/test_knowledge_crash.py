"""Durability: SIGKILL a process in the middle of a large ingest, restart, and check that
every acknowledged document is found by keyword and by vector search and that no document
is half-written (its row, chunks, FTS rows and vectors all agree)."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from strata.features.knowledge.base import DocumentInput
from tests.unit.knowledge_helpers import make_kb

CHILD = r"""
import sys
from pathlib import Path
from strata.features.knowledge.base import DocumentInput
from tests.unit.knowledge_helpers import make_kb

kb = make_kb(Path(sys.argv[1]), chunk_tokens=24, chunk_overlap=4)
kb.create_collection("t", "big")
print("ready", flush=True)
for batch in range(10_000):
    docs = []
    for i in range(batch * 20, batch * 20 + 20):
        paragraphs = [f"doc{i}marker section {p} " + " ".join(f"w{i}x{p}y{k}" for k in range(12))
                      for p in range(4)]
        docs.append(DocumentInput(f"d{i}", "\n\n".join(paragraphs), title=f"Doc {i}"))
    kb.upsert("t", "big", docs)
    print("ack " + " ".join(d.id for d in docs), flush=True)
"""


def doc_text(i: int) -> str:
    paragraphs = [
        f"doc{i}marker section {p} " + " ".join(f"w{i}x{p}y{k}" for k in range(12))
        for p in range(4)
    ]
    return "\n\n".join(paragraphs)


def test_sigkill_mid_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    acked: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    ) as child:
        assert child.stdout is not None
        _ingest_then_kill(child, acked)
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= 240
    _check(home, acked)


def _ingest_then_kill(child: subprocess.Popen[str], acked: list[str]) -> None:
    assert child.stdout is not None
    try:
        deadline = time.monotonic() + 120
        target = 12  # batches acknowledged before the kill
        batches = 0
        while batches < target:
            assert time.monotonic() < deadline, "the child did not ingest in time"
            ready, _, _ = select.select([child.stdout], [], [], 5)
            if not ready:
                continue
            line = child.stdout.readline()
            assert line, "the child died"
            if line.startswith("ack "):
                acked.extend(line.split()[1:])
                batches += 1
        # Kill while the next batch is being written: no clean shutdown of any kind.
        time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        for line in child.stdout:  # acks printed just before the kill also count
            if line.startswith("ack "):
                acked.extend(line.split()[1:])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _check(home: Path, acked: list[str]) -> None:
    kb = make_kb(home, chunk_tokens=24, chunk_overlap=4)
    for doc_id in acked:
        i = int(doc_id[1:])
        words = kb.search("t", "big", f"doc{i}marker", mode="bm25", top_k=1)
        assert words and words[0].document_id == doc_id, doc_id
        probe = kb.prepare(
            kb.collection("t", "big"), [DocumentInput("probe", doc_text(i), f"Doc {i}")]
        )
        own = probe[0].vectors[0]
        dense = kb.search("t", "big", "x", mode="vector", top_k=1, query_vector=own)
        assert dense and dense[0].document_id == doc_id, doc_id
    kb.close()

    conn = sqlite3.connect(home / "knowledge.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    half = conn.execute(
        "SELECT d.doc_id, d.chunks, COUNT(c.id) FROM documents d"
        " LEFT JOIN chunks c ON c.collection_id = d.collection_id AND c.doc_id = d.doc_id"
        " GROUP BY d.collection_id, d.doc_id HAVING d.chunks != COUNT(c.id) OR d.chunks = 0"
    ).fetchall()
    assert half == []
    orphans = conn.execute(
        "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d"
        " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id WHERE d.doc_id IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    fts, chunks = (
        conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0],
        conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
    )
    assert fts == chunks
    unvectored = conn.execute(
        "SELECT COUNT(*) FROM chunks c LEFT JOIN vectors v ON v.key = c.vector_key"
        " WHERE v.key IS NULL"
    ).fetchone()[0]
    assert unvectored == 0
    stored = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    assert stored in (len(acked), len(acked) + 20)  # the batch in flight: all or nothing
    conn.close()
