"""Copy-on-write indexes, window-sized chunks, the embedding pipeline and the evidence
signals, on the hashing embedder."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from strata.core.embeddings import HashEmbedder
from strata.features.knowledge import evidence
from strata.features.knowledge.base import DocumentInput, KnowledgeBase
from strata.features.knowledge.ingest import upsert_batches
from strata.features.knowledge.vectors import VectorIndex
from tests.unit.knowledge_helpers import hash_settings, make_kb

T = "tenant"


def test_a_published_vector_view_never_changes() -> None:
    index = VectorIndex(dim=4, capacity=2)
    eye = np.eye(4, dtype=np.float32)
    index.add([1, 2], eye[:2])
    before = index.view
    index.add([3], eye[[2]])  # grows the matrix
    index.remove([1])
    index.add([2], eye[[3]])  # replaces id 2: its old row dies
    assert [i for i, _ in before.search(eye[0], 5)] == [1, 2]
    assert before.vector(2) is not None and before.vector(2) @ eye[1] == pytest.approx(1.0)
    after = index.view
    assert 1 not in after and [i for i, _ in after.search(eye[3], 1)] == [2]
    assert sorted(i for i, _ in after.search(eye[0], 5)) == [2, 3]
    for n in range(10, 2000):  # enough deletions to squeeze the dead rows out
        index.add([n], eye[[n % 4]])
        index.remove([n])
    assert index.view.n < 1500 and index.view.dead <= 1024  # squeezed at least once
    assert len(index) == 2 and sorted(i for i, _ in index.search(eye[2], 5)) == [2, 3]


def test_a_search_reads_one_snapshot_and_a_write_publishes_the_next(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", [DocumentInput("a", "alpha words here")])
    coll = kb.collection(T, "c")
    old = kb._snapshot(coll)
    kb.upsert(T, "c", [DocumentInput("b", "bravo words there")])
    kb.delete_document(T, "c", "a")
    new = kb._snapshot(coll)
    assert len(old.keywords) == 1 and old.vectors.n - old.vectors.dead == 1
    assert len(new.keywords) == 1 and new is not old
    assert [h.document_id for h in kb.search(T, "c", "bravo", mode="bm25")] == ["b"]
    assert kb.search(T, "c", "alpha", mode="bm25") == []


def test_commits_proceed_while_searches_run(tmp_path: Path) -> None:
    """Every acknowledged write is found by the next search, with readers hammering."""
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", [DocumentInput(f"d{i}", f"common text number {i}") for i in range(50)])
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                kb.search(T, "c", "common text", top_k=5)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            kb.upsert(T, "c", [DocumentInput(f"new{i}", f"zebra{i} fresh words")])
            hits = kb.search(T, "c", f"zebra{i}", top_k=1, mode="bm25")
            assert [h.document_id for h in hits] == [f"new{i}"]
            if i % 3 == 0:
                kb.delete_document(T, "c", f"d{i}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors


class WindowEmbedder(HashEmbedder):
    """The hashing embedder with a 24-token window: what a chunk must fit."""

    def __init__(self) -> None:
        super().__init__()
        self.window = 24


def test_chunks_fit_the_embedders_window_with_the_title(tmp_path: Path) -> None:
    embedder = WindowEmbedder()
    kb = KnowledgeBase(tmp_path, hash_settings(chunk_tokens=512, chunk_overlap=0), embedder)
    kb.create_collection(T, "c")
    text = " ".join(f"Sentence {i} has five words." for i in range(40))
    kb.upsert(T, "c", [DocumentInput("long", text, "A title of six words here")])
    chunks = kb.get_document(T, "c", "long")["chunks"]
    assert len(chunks) > 5
    title = embedder.count_tokens("A title of six words here")
    assert all(embedder.count_tokens(c["text"]) + title <= 24 for c in chunks)
    assert " ".join(c["text"] for c in chunks) == text  # all of it, no overlap asked


def test_upsert_batches_embeds_ahead_and_isolates_a_bad_document(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    seen: list[list[str]] = []
    batches = [
        [DocumentInput("a", "first"), DocumentInput("b", "second")],
        [DocumentInput("c", "third"), DocumentInput("bad", "   ")],
        [],
        [DocumentInput("d", "fourth")],
    ]
    report = upsert_batches(
        kb, T, "c", iter(batches), on_commit=lambda rs: seen.append([r.id for r in rs])
    )
    assert seen == [["a", "b"], ["c"], ["d"]]
    assert (report.new, report.failed) == (4, 1) and report.errors[0].startswith("bad:")
    assert {h.document_id for h in kb.search(T, "c", "fourth third", mode="bm25")} == {"c", "d"}


def test_evidence_signals_reward_agreement_and_a_clear_lead() -> None:
    agree = evidence.signals([("x", 9.0), ("y", 3.0)], [("x", 0.8), ("z", 0.5)], 18.0)
    assert agree["agree"] == 1.0 and agree["cosine"] == pytest.approx(0.8)
    assert agree["cosine_lead"] == pytest.approx(0.8 - 0.5 / 9)
    assert agree["keyword_coverage"] == pytest.approx(0.5)
    assert agree["keyword_lead"] == pytest.approx(1 - 3 / 9 / 9)
    split = evidence.signals([("y", 5.0), ("x", 4.9)], [("x", 0.8), ("y", 0.79)], 18.0)
    assert split["agree"] == 0.0
    assert evidence.signals([], [], 0.0) == dict.fromkeys(evidence.SIGNALS, 0.0)
    weights = dict.fromkeys(evidence.SIGNALS, 1.0)
    assert evidence.support(agree, weights, -2.0) > evidence.support(split, weights, -2.0)


def test_the_keyword_ceiling_bounds_every_score(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", [DocumentInput(f"d{i}", f"rare{i} " * (i + 1) + "common") for i in range(9)])
    ceiling = kb.keyword_ceiling(T, "c", "rare3 common")
    best = kb.search(T, "c", "rare3 common", mode="bm25", top_k=1)[0]
    assert best.document_id == "d3" and 0 < best.score < ceiling
    hits, signals = kb.search_with_evidence(T, "c", "rare3 common")
    assert hits[0].document_id == "d3" and 0 < signals["keyword_coverage"] < 1
    assert 0 < signals["support"] < 1
