"""The in-memory BM25 index ranks and scores like FTS5's ``bm25()`` and stays exact under
upserts, deletes, re-ingest, repacking and restarts."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from strata.features.knowledge.base import DocumentInput, KnowledgeBase
from strata.features.knowledge.bm25 import KeywordIndex, Tokens
from tests.unit.knowledge_helpers import make_kb

T = "tenant"
WORDS = [
    "cell",
    "cells",
    "protein",
    "proteins",
    "gene",
    "genes",
    "expression",
    "running",
    "runs",
    "ran",
    "mouse",
    "mice",
    "tumour",
    "tumor",
    "cancer",
    "therapy",
    "insulin",
    "glucose",
    "naïve",
    "Café",
    "résumé",
    "IL-6",
    "p53",
    "BRCA1",
    "risk",
    "risks",
    "increased",
    "increase",
    "patients",
    "patient",
    "trial",
    "trials",
    "vaccine",
    "vaccination",
    "immune",
    "immunity",
]
QUERIES = [
    "cells expressing proteins",
    "Does insulin increase glucose?",
    "running mice tumour therapy",
    "naive cafe resume IL-6",
    "p53 BRCA1 cancer risk in patients",
    "vaccination immunity trials",
    "gene",
    "zzz unknownword",
]


def corpus(seed: int, n: int, prefix: str = "d") -> list[DocumentInput]:
    rng = random.Random(seed)
    return [
        DocumentInput(
            f"{prefix}{i}",
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))),
            title=" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4))),
        )
        for i in range(n)
    ]


def fts_ranking(kb: KnowledgeBase, query: str, depth: int = 50) -> list[tuple[int, float]]:
    from strata.features.knowledge import fusion

    coll = kb.collection(T, "c")
    words = fusion.query_terms(query)
    if not words:
        return []
    with kb._reading() as conn:
        return kb._keyword_fts(conn, coll, words, depth, None)


def memory_ranking(kb: KnowledgeBase, query: str, depth: int = 50) -> list[tuple[int, float]]:
    coll = kb.collection(T, "c")
    keywords = kb._snapshot(coll).keywords
    with kb._reading() as conn:
        return kb._keyword(conn, coll, keywords, query, depth, None, None)


def assert_same(kb: KnowledgeBase) -> None:
    for query in QUERIES:
        want = dict(fts_ranking(kb, query, depth=10_000))
        got = dict(memory_ranking(kb, query, depth=10_000))
        assert set(got) == set(want), query
        for chunk_id, score in want.items():
            assert got[chunk_id] == pytest.approx(score, rel=1e-9, abs=1e-9), query
        top = memory_ranking(kb, query, depth=5)
        assert [s for _, s in top] == pytest.approx(sorted(want.values(), reverse=True)[:5])


def test_tokens_are_fts5_porter_unicode61() -> None:
    tokens = Tokens()
    ids = tokens.ids("Running  cells' naïve IL-6 ÉCOLE caresses")
    names = {v: k for k, v in tokens.term_ids.items()}
    got = [names[i] for i in ids]
    assert got == ["run", "cell", "naiv", "il", "6", "ecol", "caress"]
    assert tokens.term("il_6") == (tokens.term_ids["il"], tokens.term_ids["6"])


@pytest.mark.parametrize("title_weight", [2.0, 1.0, 0.0])
def test_in_memory_bm25_matches_fts5(tmp_path: Path, title_weight: float) -> None:
    kb = make_kb(tmp_path, title_weight=title_weight)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", corpus(1, 120))
    assert_same(kb)
    kb.close()


def test_stays_exact_after_upsert_delete_reingest_and_restart(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", corpus(2, 600))  # one commit of 600 chunks: the bulk path
    assert_same(kb)
    kb.upsert(T, "c", corpus(3, 40))  # half the documents replaced
    for i in range(0, 80, 7):
        kb.delete_document(T, "c", f"d{i}")
    kb.upsert(T, "c", corpus(4, 10, prefix="new"))
    assert_same(kb)
    kb.delete_collection(T, "c")
    kb.create_collection(T, "c")
    kb.upsert(T, "c", corpus(5, 30))  # re-ingest into a fresh collection
    assert_same(kb)
    kb.close()
    reopened = make_kb(tmp_path)  # rebuilt from SQLite
    assert_same(reopened)
    reopened.close()


def test_repack_keeps_scores_and_drops_dead_slots() -> None:
    grown, packed = KeywordIndex(), KeywordIndex()
    rng = random.Random(6)
    texts = {i: " ".join(rng.choice(WORDS) for _ in range(12)) for i in range(3000)}
    for i, text in texts.items():
        grown.add([i], ["title"], [text])
    for i in range(0, 3000, 2):
        grown.remove([i])
    grown.add([1], ["other"], ["cells mice"])  # replace in place
    texts[1] = "cells mice"
    grown._repack()
    live = sorted(i for i in texts if i % 2)
    packed.add(live, ["other" if i == 1 else "title" for i in live], [texts[i] for i in live])
    assert len(grown) == len(packed) == 1500 and grown._used == 1500
    tokens = grown.tokens
    for query in QUERIES:
        terms = [t for w in query.lower().split() for t in tokens.term(w)]
        want = dict(packed.search(terms, 5000, 2.0))
        assert dict(grown.search(terms, 5000, 2.0)) == pytest.approx(want)
    mice = tokens.term("mice")[0]
    assert grown.search([mice], 5, 1.0, allowed=[1, 3])[0][0] == 1
    assert grown.search([mice], 5, 1.0, allowed=[]) == []


def test_read_after_write_under_concurrent_searches(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", corpus(7, 50))
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                kb.search(T, "c", "cells proteins therapy", mode="bm25")
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            word = f"fresh{i}unique"
            kb.upsert(T, "c", [DocumentInput(f"w{i}", f"{word} cells")])
            hits = kb.search(T, "c", word, mode="bm25", top_k=1)
            assert [h.document_id for h in hits] == [f"w{i}"]
            kb.delete_document(T, "c", f"w{i}")
            assert kb.search(T, "c", word, mode="bm25") == []
    finally:
        stop.set()
        thread.join()
    assert not errors
    kb.close()
