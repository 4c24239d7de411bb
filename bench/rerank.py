"""Does a model's judgement of relevance pay for its time? Reranking and abstention on SciFact.

Issue 15 asks for a reranking stage only if it pays for its time on two CPU cores, and for
abstention from better evidence than retrieval alone, "the model's own judgement of support"
among them. No cross-encoder can be had offline from a package here, so the judge is one of
the bundled Qwen models, asked per passage whether it reports a finding on the claim; its
probability of "Yes" (first token, top logprobs) is the relevance score.

- Reranking: the hybrid top 10 (plain RRF, as the product ranks) reordered by that score;
  nDCG@10 before and after, and the judge's seconds per query beside the search's own time.
- Abstention: the judge's score of the top passage with the question's relevant documents
  kept and removed (as ``bench/retrieval.py`` builds its unanswerable cases), alone and in
  one logistic model with the product's retrieval evidence (leave-one-question-out), against
  the retrieval evidence alone.

Evaluated on the first ``--queries`` of the held-out half of ``bench/retrieval.py``'s split
(seed 13), on the knowledge base that benchmark built (``--home``). Model calls are cached
(``--cache``, committed) so a rerun costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, median, write_json
from _retrieval_tuning import _cases, _fit, _rates
from retrieval import DATA, TENANT, fuse_docs, load_jsonl, load_qrels, ndcg_at, rankings
from strata.core.engine import Engine
from strata.core.errors import StrataError
from strata.core.settings import load_settings
from strata.features.detection.calibration import auroc
from strata.features.knowledge import evidence
from strata.features.knowledge.base import KnowledgeBase
from strata.features.knowledge.settings import KnowledgeSettings
from strata.features.routing.outcomes import Cache, Output
from strata.features.routing.signals.combined import logit

JUDGE = """Passage:
{title}
{text}

Claim: {claim}

Does the passage report a finding that directly supports or contradicts this exact claim? \
Reply with Yes or No only."""
PASSAGE_WORDS = 220  # a SciFact abstract's usual length; keeps each judged prompt near 350 tokens


def p_yes(out: Output) -> float:
    top = out.logprobs[0].top if out.logprobs else []
    yes = sum(math.exp(t.logprob) for t in top if t.token.strip().lower() == "yes")
    no = sum(math.exp(t.logprob) for t in top if t.token.strip().lower() == "no")
    return yes / (yes + no) if yes + no else 0.5


def auc(scores: list[float], labels: list[int]) -> float:
    """P(an answerable case outscores an unanswerable one), ties half."""
    return auroc(
        [s for s, y in zip(scores, labels, strict=True) if not y],
        [s for s, y in zip(scores, labels, strict=True) if y],
    )


def balanced(scores: list[float], labels: list[int], cut: float) -> float:
    return sum(_rates(scores, labels, cut)) / 2


def combined_loqo(features: list[list[float]], labels: list[int]) -> list[float]:
    """Leave-one-question-out probabilities (rows come in pairs: answerable, unanswerable)."""
    out = [0.0] * len(labels)
    for i in range(0, len(labels), 2):
        train = [k for k in range(len(labels)) if k not in (i, i + 1)]
        w, b = _fit([features[k] for k in train], [labels[k] for k in train])
        for k in (i, i + 1):
            z = b + sum(wi * xi for wi, xi in zip(w, features[k], strict=True))
            out[k] = 1 / (1 + math.exp(-z))
    return out


async def judge_all(
    args: argparse.Namespace, corpus: dict[str, dict[str, Any]], work: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[float, float]]:
    """(claim, document id) → (P(yes), the call's wall seconds as first measured)."""
    settings = load_settings(args.config)
    engine = Engine(settings)
    cache = Cache(args.cache, engine)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    try:
        for n, (claim, doc_id) in enumerate(work, start=1):
            doc = corpus[doc_id]
            text = " ".join(str(doc.get("text", "")).split()[:PASSAGE_WORDS])
            prompt = JUDGE.format(title=doc.get("title", ""), text=text, claim=claim)
            call = await cache.call(
                args.model, [{"role": "user", "content": prompt}], max_tokens=1, top_logprobs=20
            )
            assert call is not None
            out[(claim, doc_id)] = (p_yes(call), call.wall_s)
            if n % 20 == 0 or n == len(work):
                print(f"  judged {n}/{len(work)} ({cache.ran} calls run)", file=sys.stderr)
    finally:
        await engine.shutdown()
    return out


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    r, a = results["rerank"], results["abstention"]
    table = Table("measure", "retrieval", f"+ {results['model']} judge", title="judge on SciFact")
    if r:
        table.add_row(
            "nDCG@10 (top 10)", f"{r['ndcg10_hybrid']:.4f}", f"{r['ndcg10_reranked']:.4f}"
        )
        table.add_row(
            "time per query", f"{r['search_ms_p50']:.1f} ms", f"{r['judge_s_per_query_p50']:.1f} s"
        )
    table.add_row(
        "abstention AUC",
        f"{a['auc_retrieval_evidence']:.3f}",
        f"{a['auc_combined_loqo']:.3f} (judge alone {a['auc_judge']:.3f})",
    )
    table.add_row(
        "abstention balanced acc.",
        f"{a['balanced_accuracy_retrieval_at_min_evidence']:.3f}",
        f"{a['balanced_accuracy_combined_at_0.5']:.3f}",
    )
    Console().print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=30, help="Held-out queries judged")
    ap.add_argument("--model", default="small", help="The judging model (small or big)")
    ap.add_argument(
        "--abstention-only",
        action="store_true",
        help="Judge only the top passage with and without the relevant documents (no reranking)",
    )
    ap.add_argument("--config", type=Path, help="strata settings file")
    ap.add_argument("--home", type=Path, default=REPO_ROOT / "bench" / ".cache" / "retrieval")
    ap.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / "caches" / "rerank")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    corpus = {str(d["_id"]): d for d in load_jsonl(DATA / "corpus.jsonl")}
    qrels = load_qrels(DATA / "qrels.train.tsv")
    texts = {
        str(q["_id"]): q["text"]
        for q in load_jsonl(DATA / "queries.train.jsonl")
        if str(q["_id"]) in qrels
    }
    ids = sorted(texts)
    random.Random(13).shuffle(ids)  # bench/retrieval.py --holdout 13: the second half
    held = ids[len(ids) // 2 :][: args.queries]
    queries = {q: texts[q] for q in held}
    kb = KnowledgeBase(args.home, KnowledgeSettings(chunk_tokens=512, chunk_overlap=0))
    try:
        chunks = kb.stats(TENANT, "corpus")["chunks"]
    except StrataError:  # no such collection
        chunks = 0
    if not chunks:
        raise SystemExit("run bench/retrieval.py first: it builds the SciFact collection")
    keyword = rankings(kb, "corpus", queries, "bm25")
    dense = rankings(kb, "corpus", queries, "vector")
    search_ms = []
    for text in queries.values():
        started = time.perf_counter()
        kb.search(TENANT, "corpus", text, top_k=10)
        search_ms.append((time.perf_counter() - started) * 1000)
    ceiling = {q: kb.keyword_ceiling(TENANT, "corpus", t) for q, t in queries.items()}
    kb.close()

    top10, removed_top = {}, {}
    for q in held:
        rel = qrels[q]
        top10[q] = fuse_docs("rrf", keyword[q], dense[q], 0.5, 60.0)[:10]
        removed_top[q] = fuse_docs(
            "rrf",
            [(d, s) for d, s in keyword[q] if d not in rel],
            [(d, s) for d, s in dense[q] if d not in rel],
            0.5,
            60.0,
        )[0]
    work = list(
        dict.fromkeys(
            [(queries[q], d) for q in held for d in top10[q][: 1 if args.abstention_only else 10]]
            + [(queries[q], removed_top[q]) for q in held]
        )
    )
    judged = asyncio.run(judge_all(args, corpus, work))

    rerank: dict[str, Any] = {}
    if not args.abstention_only:
        before = [ndcg_at(top10[q], qrels[q]) for q in held]
        reranked = {
            q: sorted(top10[q], key=lambda d, q=q: -judged[(queries[q], d)][0]) for q in held
        }
        after = [ndcg_at(reranked[q], qrels[q]) for q in held]
        judge_s = [sum(judged[(queries[q], d)][1] for d in top10[q]) for q in held]
        rerank = {
            "ndcg10_hybrid": round(sum(before) / len(before), 4),
            "ndcg10_reranked": round(sum(after) / len(after), 4),
            "judge_s_per_query_p50": round(median(judge_s), 2),
            "search_ms_p50": round(median(search_ms), 2),
            "time_vs_search": round(median(judge_s) * 1000 / median(search_ms), 1),
        }

    rows, labels = _cases((keyword, dense, ceiling), qrels)  # sorted ids, pairs
    knowledge = KnowledgeSettings()
    support = [
        evidence.support(
            dict(zip(evidence.SIGNALS, r, strict=True)),
            knowledge.evidence_weights,
            knowledge.evidence_bias,
        )
        for r in rows
    ]
    judge = [
        judged[(queries[q], doc)][0] for q in sorted(held) for doc in (top10[q][0], removed_top[q])
    ]
    both = combined_loqo(
        [[logit(s), logit(j)] for s, j in zip(support, judge, strict=True)], labels
    )
    results = {
        "model": args.model,
        "queries": len(held),
        "judged_passages": len(work),
        "rerank": rerank,
        "abstention": {
            "cases": len(labels),
            "auc_retrieval_evidence": round(auc(support, labels), 4),
            "auc_judge": round(auc(judge, labels), 4),
            "auc_combined_loqo": round(auc(both, labels), 4),
            "balanced_accuracy_retrieval_at_min_evidence": round(
                balanced(support, labels, knowledge.min_evidence), 4
            ),
            "balanced_accuracy_combined_at_0.5": round(balanced(both, labels, 0.5), 4),
        },
    }
    print_table(results)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
