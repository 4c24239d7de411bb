"""Retrieval benchmark on a BEIR-format set (default: SciFact, train queries and qrels).

Quality: nDCG@10 and recall@100 of BM25 alone, vectors alone and hybrid, document-level
(a document ranks by its best chunk). Fusion (method, weight, RRF constant) and the BM25
title weight are chosen on the ``--tune-queries`` (default: SciFact's train split) by 5-fold
cross-validation, preferring plain RRF unless tuning beats it by more than the noise
(``_retrieval_tuning.py``); every query passed with ``--queries`` is evaluated, so pass
held-out queries there (the same file for both measures the tuning set itself). The
abstention model (``evidence_weights``, ``min_evidence``) is fitted on the tuning queries
with and without their relevant documents, and reported on the evaluated ones.

Speed: ingest docs/s (cold: a sample embedded from scratch, beside
``SentenceTransformer.encode`` on the very texts the ingest embedded; cached: the growth
loop below, through the embedding cache and the hash skip), query latency p50/p99 (hybrid,
end to end including embedding the query), freshness (ack → found by keyword and vector
search, 1,000 writes while another thread queries), and query p50 at ≥100k chunks (the
corpus re-inserted under new ids; the content-hash cache means no re-embedding).

The knowledge base lives in ``--home`` (default ``bench/.cache/retrieval``) so reruns reuse
the stored embeddings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, median, percentile, write_json
from _retrieval_tuning import PLAIN_RRF, calibrate_abstention, cross_validate, folds_of
from strata.features.knowledge import fusion
from strata.features.knowledge.base import DocumentInput, KnowledgeBase
from strata.features.knowledge.ingest import upsert_batches
from strata.features.knowledge.settings import KnowledgeSettings

DATA = REPO_ROOT.parent / "shared" / "data" / "retrieval" / "scifact"
TENANT = "bench"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open() as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].isdigit():
                continue
            qid, did, score = parts[0], parts[1], int(parts[2])
            if score > 0:
                qrels.setdefault(qid, {})[did] = score
    return qrels


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def docs_of(corpus: list[dict[str, Any]], suffix: str = "") -> list[DocumentInput]:
    return [
        DocumentInput(id=str(d["_id"]) + suffix, text=d.get("text", ""), title=d.get("title", ""))
        for d in corpus
        if (d.get("text") or "").strip()
    ]


def ingest(kb: KnowledgeBase, name: str, docs: list[DocumentInput], batch: int = 32) -> float:
    """Seconds to ingest ``docs`` as the CLI does: batches, each embedded ahead of the
    previous one's commit (``upsert_batches``)."""
    kb.create_collection(TENANT, name)
    start = time.perf_counter()
    batches = (docs[i : i + batch] for i in range(0, len(docs), batch))
    report = upsert_batches(kb, TENANT, name, batches)
    if report.failed:
        raise RuntimeError(f"ingest failed: {report.errors[:3]}")
    return time.perf_counter() - start


Ranking = list[tuple[str, float]]


def rankings(
    kb: KnowledgeBase, name: str, queries: dict[str, str], mode: str, depth: int = 100
) -> dict[str, Ranking]:
    out = {}
    for qid, text in queries.items():
        hits = kb.search(TENANT, name, text, top_k=depth, mode=mode, per_document=True)
        out[qid] = [(h.document_id, h.score) for h in hits]
    return out


def fuse_docs(method: str, keyword: Ranking, dense: Ranking, weight: float, k: float) -> list[str]:
    ids: dict[str, int] = {}
    for doc, _ in [*dense, *keyword]:
        ids.setdefault(doc, len(ids))
    names = {v: d for d, v in ids.items()}
    fused = fusion.fuse(
        method, [(ids[d], s) for d, s in keyword], [(ids[d], s) for d, s in dense], weight, k
    )
    return [names[i] for i, _ in fused]


def quality(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> tuple[float, float]:
    nd = [ndcg_at(runs[q], qrels[q]) for q in runs]
    rc = [recall_at(runs[q], qrels[q]) for q in runs]
    return sum(nd) / len(nd), sum(rc) / len(rc)


def tune(
    kb: KnowledgeBase,
    name: str,
    tune_q: dict[str, str],
    qrels: dict[str, dict[str, int]],
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Grid over keyword pruning × title weight × fusion method × weight × RRF k, scored per
    tuning query. Pruning (``keyword_max_df``) is for speed: the most aggressive setting
    within 0.003 nDCG of the best is kept; the rest is chosen by cross-validation."""
    dense = rankings(kb, name, tune_q, "vector")
    grid: list[dict[str, Any]] = []
    per_query: list[dict[str, float]] = []
    for max_df, title_weight in itertools.product((1.0, 0.05), (1.0, 2.0, 3.0)):
        kb.settings.title_weight = title_weight
        kb.settings.keyword_max_df = max_df
        keyword = rankings(kb, name, tune_q, "bm25")
        for method, ks in (("rrf", (10.0, 30.0, 60.0)), ("convex", (60.0,))):
            for k in ks:
                for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
                    runs = {q: fuse_docs(method, keyword[q], dense[q], weight, k) for q in tune_q}
                    scores = {q: ndcg_at(runs[q], qrels[q]) for q in tune_q}
                    per_query.append(scores)
                    grid.append(
                        {
                            "keyword_max_df": max_df,
                            "title_weight": title_weight,
                            "fusion": method,
                            "rrf_k": k,
                            "vector_weight": weight,
                            "ndcg10": round(sum(scores.values()) / len(scores), 4),
                        }
                    )
    top = max(g["ndcg10"] for g in grid)
    fast = min(g["keyword_max_df"] for g in grid if g["ndcg10"] >= top - 0.003)
    keep = [i for i, g in enumerate(grid) if g["keyword_max_df"] == fast]
    configs = [{k: v for k, v in grid[i].items() if k != "ndcg10"} for i in keep]
    plain_title = max((grid[i] for i in keep), key=lambda g: g["ndcg10"])["title_weight"]
    plain = next(
        n
        for n, c in enumerate(configs)
        if c["title_weight"] == plain_title and all(c[k] == v for k, v in PLAIN_RRF.items())
    )
    cv = cross_validate(
        configs, [per_query[i] for i in keep], plain, folds_of(list(tune_q), 5, seed)
    )
    return dict(cv["chosen"]), cv, grid


def latency(kb: KnowledgeBase, name: str, texts: list[str], n: int = 200) -> list[float]:
    out = []
    for text in (texts * (n // max(len(texts), 1) + 1))[:n]:
        start = time.perf_counter()
        kb.search(TENANT, name, text, top_k=10)
        out.append((time.perf_counter() - start) * 1000)
    return out


def freshness(
    kb: KnowledgeBase, name: str, corpus: list[dict[str, Any]], texts: list[str], writes: int
) -> tuple[list[float], list[float], list[float], int]:
    """ms from a write's acknowledgement until keyword search finds its unique word and vector
    search (with the document's own vector) finds its chunk, while a reader thread queries.
    The notes are deleted afterwards: they copy corpus text, and left in the collection they
    would compete with the real abstracts in the next run's quality figures. Also: this
    thread's CPU time in each window (the work, without waiting for a core) and each commit's
    wall time (a commit that waited for readers shows there), and how many writes the very
    first search pair after the acknowledgement found (all of them, if a write is searchable
    the moment it is acknowledged: the delay is then the two searches' own time)."""
    stop = threading.Event()
    written: list[str] = []

    def reader() -> None:
        i = 0
        while not stop.is_set():
            kb.search(TENANT, name, texts[i % len(texts)], top_k=10)
            i += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    delays: list[float] = []
    cpus: list[float] = []  # this thread's CPU time in the same window: the work, not the wait
    commits: list[float] = []  # kb.commit's wall time: a commit that waited on readers shows
    at_once = 0
    try:
        for i in range(writes):
            source = corpus[i % len(corpus)]
            nonce = f"fresh{i}q{random.randrange(10**9)}"
            # A short note: embedding it is part of the write, not of the freshness delay,
            # but keeps 1,000 writes affordable on a shared CPU.
            words = str(source.get("text", "")).split()[:24]
            doc = DocumentInput(id=f"fresh-{nonce}", text=f"{nonce} {' '.join(words)}")
            prepared = kb.prepare(kb.collection(TENANT, name), [doc])
            own = prepared[0].vectors[0]
            start = time.perf_counter()
            kb.commit(kb.collection(TENANT, name), prepared)
            written.append(doc.id)
            acked, cpu = time.perf_counter(), time.thread_time()
            commits.append((acked - start) * 1000)
            for attempt in itertools.count():
                found = kb.search(TENANT, name, nonce, top_k=1, mode="bm25")
                dense = kb.search(TENANT, name, nonce, top_k=3, mode="vector", query_vector=own)
                if (
                    found
                    and found[0].document_id == doc.id
                    and any(h.document_id == doc.id for h in dense)
                ):
                    at_once += attempt == 0
                    break
            delays.append((time.perf_counter() - acked) * 1000)
            cpus.append((time.thread_time() - cpu) * 1000)
    finally:
        stop.set()
        thread.join()
        for doc_id in written:
            kb.delete_document(TENANT, name, doc_id)
    return delays, cpus, commits, at_once


def embedded_texts(kb: KnowledgeBase) -> list[str]:
    """What the ingest embedded: each chunk's title, heading and text, as ``prepare`` joins
    them."""
    rows = kb.db.query(
        "SELECT d.title, c.heading, c.text FROM chunks c JOIN documents d"
        " ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id ORDER BY c.id"
    )
    return ["\n".join(x for x in row if x) for row in rows]


def encode_baseline(kb: KnowledgeBase, texts: list[str]) -> float | None:
    """Seconds for sentence-transformers' own ``encode`` to embed the texts the cold ingest
    embedded, same cores, same process; None for an embedder that is not
    sentence-transformers."""
    model = getattr(kb.embedder, "model", None)
    if model is None or not hasattr(model, "encode"):
        return None
    start = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - start


def spread(values: list[float]) -> dict[str, float]:
    return {"p50": round(median(values), 3), "p99": round(percentile(values, 99), 3)}


def torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DATA / "corpus.jsonl")
    ap.add_argument(
        "--queries", type=Path, default=DATA / "queries.train.jsonl", help="Queries evaluated"
    )
    ap.add_argument("--qrels", type=Path, default=DATA / "qrels.train.tsv")
    ap.add_argument(
        "--tune-queries",
        type=Path,
        default=DATA / "queries.train.jsonl",
        help="Queries fusion and abstention are chosen on",
    )
    ap.add_argument("--tune-qrels", type=Path, default=DATA / "qrels.train.tsv")
    ap.add_argument("--json", type=Path, help="Write the results here")
    ap.add_argument("--home", type=Path, default=REPO_ROOT / "bench" / ".cache" / "retrieval")
    ap.add_argument("--embedder", default="minilm", help="minilm, or hash (a quick smoke run)")
    ap.add_argument(
        "--chunk-tokens",
        type=int,
        default=512,
        help="Chunk budget: 512 keeps a SciFact abstract whole (one passage per document)",
    )
    ap.add_argument(
        "--embed-tokens",
        type=int,
        default=None,
        help="Embed each chunk's first N tokens (default: the model's whole window, 256 word"
        " pieces for MiniLM; 128 was the old default, for speed)",
    )
    ap.add_argument("--seed", type=int, default=13, help="Seed of the cross-validation folds")
    ap.add_argument("--writes", type=int, default=1000, help="Writes in the freshness run")
    ap.add_argument("--cold-sample", type=int, default=128, help="Docs embedded from scratch")
    ap.add_argument(
        "--ingest-only",
        action="store_true",
        help="Stop after the cold ingest and its sentence-transformers baseline",
    )
    ap.add_argument("--chunks-100k", type=int, default=100_000, help="Chunks for the scale run")
    ap.add_argument(
        "--tuned",
        type=json.loads,
        help="Skip tuning: the fusion settings as JSON (a previous run's 'tuned')",
    )
    ap.add_argument("--skip-100k", action="store_true", help="Skip growing to 100k chunks")
    ap.add_argument(
        "--holdout",
        type=int,
        metavar="SEED",
        help="Halve --queries (seeded): choose on one half, evaluate the other (overrides the"
        " --tune-* files)",
    )
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    corpus = load_jsonl(args.corpus)
    eval_qrels, tune_qrels = load_qrels(args.qrels), load_qrels(args.tune_qrels)
    eval_q = {
        str(q["_id"]): q["text"] for q in load_jsonl(args.queries) if str(q["_id"]) in eval_qrels
    }
    tune_q = {
        str(q["_id"]): q["text"]
        for q in load_jsonl(args.tune_queries)
        if str(q["_id"]) in tune_qrels
    }
    if args.holdout is not None:  # one file, two disjoint halves
        ids = sorted(eval_q)
        random.Random(args.holdout).shuffle(ids)
        tune_q = {q: eval_q[q] for q in ids[: len(ids) // 2]}
        eval_q = {q: eval_q[q] for q in ids[len(ids) // 2 :]}
        tune_qrels = eval_qrels
    # Query ids are only unique within a file: namespace them when the two files differ.
    same = args.holdout is not None or args.tune_queries.resolve() == args.queries.resolve()
    tune_q = tune_q if same else {f"t:{q}": t for q, t in tune_q.items()}
    qrels = {**eval_qrels, **{(q if same else f"t:{q}"): r for q, r in tune_qrels.items()}}
    queries = {**eval_q, **tune_q}

    settings = KnowledgeSettings(
        embedder=args.embedder,
        chunk_tokens=args.chunk_tokens,
        chunk_overlap=0,
        embed_max_tokens=args.embed_tokens,
    )
    kb = KnowledgeBase(args.home, settings)
    docs = docs_of(corpus)
    console.print(f"{len(docs)} documents, {len(tune_q)} tune / {len(eval_q)} eval queries")

    # Load the model first: loading it is the process's start-up, once, not ingest (timed
    # inside the cold ingest it made 32 documents look like 5 docs/s).
    kb.embedder.embed(["warm up", "the embedding model"])
    with tempfile.TemporaryDirectory() as cold_home:  # cold ingest: nothing cached
        cold = KnowledgeBase(Path(cold_home), settings, embedder=kb.embedder)
        sample = docs[: args.cold_sample]
        cold_s = ingest(cold, "cold", sample)
        texts_embedded = embedded_texts(cold)
        cold.close()
    baseline_s = encode_baseline(kb, texts_embedded)
    console.print(
        f"cold ingest {len(sample) / cold_s:.1f} docs/s; sentence-transformers encode alone "
        f"{len(sample) / baseline_s:.1f} docs/s"
        if baseline_s
        else f"cold ingest {len(sample) / cold_s:.1f} docs/s"
    )
    ingest_figures = {
        "ingest_docs_per_s": round(len(sample) / cold_s, 1),
        "st_encode_docs_per_s": round(len(sample) / baseline_s, 1) if baseline_s else None,
        "ingest_vs_st_encode": round(baseline_s / cold_s, 3) if baseline_s else None,
        "cold_sample": len(sample),
        "cold_chunks": len(texts_embedded),
        "torch_threads": torch_threads(),
        "embedder": kb.embedder.name,
        "embed_max_tokens": settings.embed_max_tokens,
        "cpus": os.cpu_count(),
    }
    if args.ingest_only:
        Console().print(json.dumps(ingest_figures))
        if args.json:
            write_json(args.json, ingest_figures)
        kb.close()
        return
    name = "corpus"
    full_s = ingest(kb, name, docs)  # embeds once; later runs hit the cache (hash skip)
    console.print(f"corpus ingest {full_s:.1f}s")

    grid: list[dict[str, Any]] = []
    cv: dict[str, Any] = {}
    if args.tuned:
        best = args.tuned
    else:
        best, cv, grid = tune(kb, name, tune_q, qrels, args.seed)
    console.print(f"tuned on {len(tune_q)} queries: {best}")
    kb.settings.title_weight = best["title_weight"]
    kb.settings.keyword_max_df = best["keyword_max_df"]
    kb.settings.fusion = best["fusion"]
    kb.settings.vector_weight = best["vector_weight"]
    kb.settings.rrf_k = best["rrf_k"]

    results: dict[str, Any] = {"ndcg10": {}, "recall100": {}}
    dense_all = rankings(kb, name, queries, "vector")
    keyword = rankings(kb, name, queries, "bm25")
    # Hybrid through the product's own search on a sample (the same fusion code), and for
    # every eval query from the two rankings already computed (no second query embedding).
    checked = dict(list(eval_q.items())[:50])
    product = rankings(kb, name, checked, "hybrid")
    s = kb.settings
    runs = {
        "bm25": {q: [d for d, _ in keyword[q]] for q in eval_q},
        "vector": {q: [d for d, _ in dense_all[q]] for q in eval_q},
        "hybrid": {
            q: fuse_docs(s.fusion, keyword[q], dense_all[q], s.vector_weight, s.rrf_k)
            for q in eval_q
        },
    }
    agree = sum(runs["hybrid"][q][:10] == [d for d, _ in product[q]][:10] for q in checked)
    results["hybrid_matches_product_search"] = f"{agree}/{len(checked)}"
    for mode, run in runs.items():
        nd, rc = quality(run, qrels)
        results["ndcg10"][mode] = round(nd, 4)
        results["recall100"][mode] = round(rc, 4)
    plain = {q: fuse_docs("rrf", keyword[q], dense_all[q], 0.5, 60.0) for q in eval_q}
    results["ndcg10"]["hybrid_plain_rrf"] = round(quality(plain, qrels)[0], 4)
    ceiling = {q: kb.keyword_ceiling(TENANT, name, t) for q, t in queries.items()}
    evidence = calibrate_abstention(
        ({q: keyword[q] for q in tune_q}, {q: dense_all[q] for q in tune_q}, ceiling),
        ({q: keyword[q] for q in eval_q}, {q: dense_all[q] for q in eval_q}, ceiling),
        qrels,
    )
    results["grounding"] = evidence
    results["tuned"] = best
    results["fusion_cv"] = cv
    console.print(f"eval: {results}")
    if args.json:
        write_json(args.json, results)
    texts = list(eval_q.values())
    lat = latency(kb, name, texts)
    results["query_ms"] = {"p50": round(median(lat), 2), "p99": round(percentile(lat, 99), 2)}
    console.print(f"query ms {results['query_ms']}")
    fresh, fresh_cpu, commit_ms, at_once = freshness(kb, name, corpus, texts, args.writes)
    console.print(f"freshness p50 {median(fresh):.2f} ms p99 {percentile(fresh, 99):.2f} ms")
    results["freshness_ms"] = {
        "p50": round(median(fresh), 3),
        "p99": round(percentile(fresh, 99), 3),
        "writes": len(fresh),
        "found_by_first_search": at_once,
    }
    results["freshness_cpu_ms"] = spread(fresh_cpu)
    results["commit_ms"] = spread(commit_ms)
    if args.json:
        write_json(args.json, results)
    big = "corpus100k"
    kb.create_collection(TENANT, big)
    copy = 0
    grow_start, grown = time.perf_counter(), 0
    while not args.skip_100k and kb.stats(TENANT, big)["chunks"] < args.chunks_100k:
        batch = docs_of(corpus, suffix=f"~{copy}")
        ingest(kb, big, batch, batch=256)
        grown += len(batch)
        copy += 1
    grow_s = time.perf_counter() - grow_start
    big_stats = kb.stats(TENANT, big)
    lat_big = latency(kb, big, texts) if big_stats["chunks"] else [float("nan")]

    results.update(
        {
            "split": {
                "seed": args.seed,
                "tune_queries": len(tune_q),
                "eval_queries": len(eval_q),
                "reported_on": str(args.queries),
                "tuned_on": str(args.tune_queries) if args.holdout is None else "the other half",
                "holdout_seed": args.holdout,
            },
            "tuned": best,
            "query_ms": {"p50": round(median(lat), 2), "p99": round(percentile(lat, 99), 2)},
            "query_ms_100k": {
                "p50": round(median(lat_big), 2),
                "p99": round(percentile(lat_big, 99), 2),
                "chunks": big_stats["chunks"],
            },
            "freshness_ms": {
                "p50": round(median(fresh), 3),
                "p99": round(percentile(fresh, 99), 3),
                "writes": len(fresh),
                "found_by_first_search": at_once,
            },
            "freshness_cpu_ms": spread(fresh_cpu),
            "commit_ms": spread(commit_ms),
            **ingest_figures,
            "ingest_docs_per_s_cached": round(grown / grow_s, 1) if grown else None,
            "grounding": evidence,
            "chunks": kb.stats(TENANT, name)["chunks"],
            "documents": len(docs),
            "chunk_tokens": settings.chunk_tokens,
            "grid": grid,
        }
    )
    table = Table("metric", "bm25", "vector", "hybrid", title="retrieval (eval half)")
    for metric in ("ndcg10", "recall100"):
        row = results[metric]
        table.add_row(metric, *(f"{row[m]:.4f}" for m in ("bm25", "vector", "hybrid")))
    Console().print(table)
    summary = Table("figure", "value")
    summary.add_row("hybrid, plain RRF (untuned)", f"{results['ndcg10']['hybrid_plain_rrf']:.4f}")
    summary.add_row("chosen fusion", json.dumps(best))
    if cv:
        summary.add_row(
            "5-fold CV nDCG@10: selected / plain RRF (mean ± sd over folds)",
            f"{cv['cv_mean_selected']} ± {cv['cv_std_selected']} / "
            f"{cv['cv_mean_plain_rrf']} ± {cv['cv_std_plain_rrf']} ({cv['rule']})",
        )
    summary.add_row(
        "ingest / SentenceTransformer.encode, same texts", str(results["ingest_vs_st_encode"])
    )
    summary.add_row(
        "ingest docs/s (cold / cached / sentence-transformers encode alone)",
        f"{results['ingest_docs_per_s']} / {results['ingest_docs_per_s_cached']} / "
        f"{results['st_encode_docs_per_s']}",
    )
    summary.add_row(
        "query ms p50 / p99", f"{results['query_ms']['p50']} / {results['query_ms']['p99']}"
    )
    summary.add_row(
        f"query ms p50 at {big_stats['chunks']} chunks", f"{results['query_ms_100k']['p50']}"
    )
    summary.add_row(
        "freshness ms p50 / p99",
        f"{results['freshness_ms']['p50']} / {results['freshness_ms']['p99']}",
    )
    summary.add_row("min_evidence (grounding)", json.dumps(evidence))
    Console().print(summary)
    if args.json:
        write_json(args.json, results)
    kb.close()


if __name__ == "__main__":
    main()
