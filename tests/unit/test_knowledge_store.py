"""The knowledge base on the hashing embedder: upsert/delete atomicity, the content-hash
skip, read-after-write, filters, fusion, the vector matrix, tenants."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from strata.core.errors import InvalidRequest, NotFound
from strata.core.tenancy import tenant_of
from strata.features.knowledge import fusion
from strata.features.knowledge.base import DocumentInput, KnowledgeBase
from strata.features.knowledge.vectors import VectorIndex
from tests.unit.knowledge_helpers import make_kb

T = "tenant"


@pytest.fixture
def kb(tmp_path: Path, database: Path | str) -> Iterator[KnowledgeBase]:
    """The store contract: every test on this fixture runs on SQLite and on PostgreSQL."""
    base = make_kb(tmp_path / "home", database)
    base.create_collection(T, "c")
    yield base
    base.close()


def docs() -> list[DocumentInput]:
    return [
        DocumentInput(
            "cats",
            "Cats purr and chase mice around the barn.",
            "Cats",
            "",
            {"kind": "pet", "legs": 4},
        ),
        DocumentInput(
            "dogs",
            "Dogs bark at the mailman every morning.",
            "Dogs",
            "",
            {"kind": "pet", "legs": 4},
        ),
        DocumentInput(
            "birds",
            "Birds migrate south when winter arrives.",
            "Birds",
            "",
            {"kind": "wild", "legs": 2},
        ),
    ]


def ids(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.document_id for h in hits]


def test_statuses_and_hash_skip(kb: KnowledgeBase) -> None:
    assert [r.status for r in kb.upsert(T, "c", docs())] == ["new"] * 3
    calls: list[int] = []
    original = kb.embedder.embed

    def counting(texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        calls.append(len(texts))
        return original(texts)

    kb.embedder.embed = counting  # type: ignore[method-assign]
    again = kb.upsert(T, "c", docs())
    assert [r.status for r in again] == ["unchanged"] * 3
    assert calls == []  # unchanged content: nothing chunked, nothing embedded
    changed = docs()[0]
    changed.text += " They sleep a lot."
    assert [r.status for r in kb.upsert(T, "c", [changed])] == ["updated"]
    assert calls == [1]


def test_embedding_cache_is_shared_by_content(kb: KnowledgeBase) -> None:
    kb.upsert(T, "c", docs())
    kb.create_collection(T, "copy")
    calls: list[int] = []
    original = kb.embedder.embed
    kb.embedder.embed = lambda texts: calls.append(len(texts)) or original(texts)  # type: ignore[method-assign]
    results = kb.upsert(T, "copy", docs())
    assert [r.status for r in results] == ["new"] * 3
    assert calls == []  # same text → same vector key → no re-embedding
    assert ids(kb.search(T, "copy", "barn mice", mode="vector", top_k=1)) == ["cats"]


def test_read_after_write_in_both_indexes(kb: KnowledgeBase) -> None:
    for i in range(30):
        kb.upsert(T, "c", [DocumentInput(f"d{i}", f"unique{i}token appears here {i}")])
        assert ids(kb.search(T, "c", f"unique{i}token", mode="bm25", top_k=1)) == [f"d{i}"]
        assert ids(
            kb.search(T, "c", f"unique{i}token appears here {i}", mode="vector", top_k=1)
        ) == [f"d{i}"]


def test_search_modes_and_scores(kb: KnowledgeBase) -> None:
    kb.upsert(T, "c", docs())
    for mode in ("bm25", "vector", "hybrid"):
        hits = kb.search(T, "c", "why do dogs bark", mode=mode, top_k=3)
        assert hits[0].document_id == "dogs", mode
        assert hits[0].title == "Dogs"
        assert (hits[0].similarity is None) == (mode == "bm25")  # bm25 never embeds
    with pytest.raises(InvalidRequest, match="mode"):
        kb.search(T, "c", "x", mode="fuzzy")
    with pytest.raises(InvalidRequest, match="empty"):
        kb.search(T, "c", "   ")
    assert kb.search(T, "c", "?!", mode="bm25") == []  # no term at all: no keyword hit
    assert ids(kb.search(T, "c", "the", mode="bm25"))  # only stopwords: they are kept


def test_metadata_filters(kb: KnowledgeBase) -> None:
    kb.upsert(T, "c", docs())
    for mode in ("bm25", "vector", "hybrid"):
        hits = kb.search(T, "c", "animals bark purr migrate", mode=mode, filters={"kind": "wild"})
        assert ids(hits) == ["birds"], mode
    both = kb.search(T, "c", "bark purr migrate", filters={"kind": ["pet", "wild"], "legs": 4})
    assert sorted(ids(both)) == ["cats", "dogs"]
    assert kb.search(T, "c", "bark", filters={"kind": []}) == []
    assert kb.search(T, "c", "bark", filters={"missing": "x"}) == []


def test_delete_removes_from_every_index(kb: KnowledgeBase) -> None:
    kb.upsert(T, "c", docs())
    kb.delete_document(T, "c", "dogs")
    assert "dogs" not in ids(kb.search(T, "c", "dogs bark mailman", mode="bm25"))
    assert "dogs" not in ids(kb.search(T, "c", "dogs bark mailman", mode="vector"))
    stats = kb.stats(T, "c")
    assert (stats["documents"], stats["chunks"], stats["vectors"]) == (2, 2, 2)
    with pytest.raises(NotFound):
        kb.delete_document(T, "c", "dogs")
    with pytest.raises(NotFound):
        kb.get_document(T, "c", "dogs")


def test_restart_rebuilds_the_matrix(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", docs())
    kb.delete_document(T, "c", "cats")
    kb.close()
    again = make_kb(tmp_path)
    assert again.stats(T, "c")["vectors"] == 2
    assert ids(again.search(T, "c", "winter migrate", mode="vector", top_k=1)) == ["birds"]


def test_upsert_replaces_chunks_and_readers_never_see_a_mix(tmp_path: Path) -> None:
    kb = make_kb(tmp_path, chunk_tokens=16, chunk_overlap=0)
    kb.create_collection(T, "c")

    def version(word: str) -> DocumentInput:
        paragraphs = [f"{word} paragraph {i} " + " ".join([word] * 8) for i in range(6)]
        return DocumentInput("doc", "\n\n".join(paragraphs))

    kb.upsert(T, "c", [version("alpha")])
    assert kb.stats(T, "c")["chunks"] == 6
    stop = threading.Event()
    seen: list[set[str]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                for mode in ("bm25", "vector", "hybrid"):
                    hits = kb.search(T, "c", "alpha beta paragraph", mode=mode, top_k=50)
                    seen.append({h.text.split()[0] for h in hits})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(40):
        kb.upsert(T, "c", [version("beta" if i % 2 == 0 else "alpha")])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert seen and all(len(words) == 1 for words in seen), [s for s in seen if len(s) != 1][:3]
    assert kb.stats(T, "c")["chunks"] == 6
    assert kb.stats(T, "c")["vectors"] == 6


def test_failed_batch_changes_nothing(kb: KnowledgeBase) -> None:
    with pytest.raises(InvalidRequest, match="twice"):
        kb.upsert(T, "c", [DocumentInput("a", "one"), DocumentInput("a", "two")])
    with pytest.raises(InvalidRequest, match="no text"):
        kb.upsert(T, "c", [DocumentInput("ok", "fine text"), DocumentInput("empty", "  ")])
    with pytest.raises(InvalidRequest, match="id"):
        kb.upsert(T, "c", [DocumentInput("", "text")])
    assert kb.stats(T, "c")["documents"] == 0


def test_collections_are_per_tenant(kb: KnowledgeBase) -> None:
    kb.upsert(T, "c", docs())
    other = tenant_of("key:someone-else")
    assert other != tenant_of("key:x") and tenant_of("host:1.2.3.4") == "default"
    assert kb.list_collections(other) == []
    with pytest.raises(NotFound):
        kb.search(other, "c", "dogs")
    kb.create_collection(other, "c")
    assert kb.search(other, "c", "dogs bark") == []
    _, created = kb.create_collection(T, "c")
    assert created is False
    assert [c["name"] for c in kb.list_collections(T)] == ["c"]
    with pytest.raises(InvalidRequest, match="collection name"):
        kb.create_collection(T, "../etc")
    kb.delete_collection(T, "c")
    with pytest.raises(NotFound):
        kb.stats(T, "c")
    assert kb.list_collections(other)[0]["name"] == "c"


def test_per_document_collapses_chunks(tmp_path: Path) -> None:
    kb = make_kb(tmp_path, chunk_tokens=16, chunk_overlap=0)
    kb.create_collection(T, "c")
    long = "\n\n".join(f"zebra stripes part {i} " + "zebra " * 8 for i in range(5))
    kb.upsert(T, "c", [DocumentInput("long", long), DocumentInput("short", "zebra once")])
    chunks = kb.search(T, "c", "zebra stripes", top_k=10)
    assert ids(chunks).count("long") == 5
    docs_only = kb.search(T, "c", "zebra stripes", top_k=10, per_document=True)
    assert sorted(ids(docs_only)) == ["long", "short"]


def test_get_document_returns_chunks_in_order(kb: KnowledgeBase) -> None:
    kb.upsert(T, "c", [DocumentInput("x", "First.\n\nSecond.", "X", "src.txt", {"a": 1})])
    doc = kb.get_document(T, "c", "x")
    assert doc["title"] == "X" and doc["source"] == "src.txt" and doc["metadata"] == {"a": 1}
    assert [c["text"] for c in doc["chunks"]] == ["First. Second."]


def test_rrf_and_convex_fusion() -> None:
    keyword = [(1, 9.0), (2, 5.0), (3, 1.0)]
    vector = [(3, 0.9), (1, 0.8)]
    assert [i for i, _ in fusion.rrf([keyword, vector], [1.0, 1.0], k=60)] == [1, 3, 2]
    only_vector = fusion.fuse("rrf", keyword, vector, vector_weight=1.0)
    assert [i for i, _ in only_vector][:2] == [3, 1]
    convex = fusion.convex([keyword, vector], [0.5, 0.5])
    assert convex[0] == (1, pytest.approx(0.5 * 1.0 + 0.5 * 0.0))
    assert dict(convex)[3] == pytest.approx(0.5)
    assert fusion.match_query("What is the role of p53?") == '"role" OR "p53"'
    assert fusion.match_query("the of") == '"the" OR "of"'
    assert fusion.match_query("?!") is None


def test_vector_index_swap_remove_and_growth() -> None:
    index = VectorIndex(dim=4, capacity=2)
    eye = np.eye(4, dtype=np.float32)
    index.add([10, 11, 12, 13], eye)
    assert len(index) == 4
    index.remove([10, 99])
    assert len(index) == 3 and 10 not in index
    assert [i for i, _ in index.search(eye[3], 1)] == [13]  # moved into slot 0, still found
    assert index.search(eye[0], 3)[0][1] == pytest.approx(0.0)
    index.add([11], eye[[0]])  # replace in place
    assert index.search(eye[0], 1)[0] == (11, pytest.approx(1.0))
    assert [i for i, _ in index.search(eye[2], 5, allowed=[13, 12])] == [12, 13]
    assert index.search(eye[2], 5, allowed=[]) == []


def test_keyword_prune_drops_common_words_and_stays_exact(tmp_path: Path) -> None:
    kb = make_kb(tmp_path, keyword_max_df=0.5)
    kb.create_collection(T, "c")
    kb.upsert(T, "c", [DocumentInput(f"d{i}", f"shared word plus special{i}") for i in range(6)])
    coll = kb.collection(T, "c")
    assert ids(kb.search(T, "c", "shared special3", mode="bm25", top_k=1)) == ["d3"]
    terms = kb._keywords[coll.id]
    assert terms.prune(["shared", "special1", "special2", "zzz"], max_df=0.5, keep=2) == [
        "special1",
        "special2",
        "zzz",
    ]
    assert terms.prune(["shared", "special1"], max_df=0.1, keep=1) == ["special1"]
    assert terms.prune(["shared", "special1"], max_df=1.0) == ["shared", "special1"]
    assert len(terms) == 6 and terms.word_df("shared") == 6
    kb.upsert(T, "c", [DocumentInput("d3", "replaced text")])
    kb.delete_document(T, "c", "d4")
    assert len(terms) == 6  # a search that started before the writes still reads this one
    terms = kb._keywords[coll.id]
    assert len(terms) == 5 and terms.word_df("shared") == 4 and terms.word_df("special3") == 0
    kb.close()
    fresh = make_kb(tmp_path, keyword_max_df=0.5)
    fresh.search(T, "c", "shared", mode="bm25")
    reloaded = fresh._keywords[coll.id]
    words = ["shared", "special3", "replaced", "word", "special5"]
    assert [reloaded.word_df(w) for w in words] == [terms.word_df(w) for w in words]
    assert len(reloaded) == len(terms)
