"""The knowledge feature's settings section (``[knowledge]`` in the TOML file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from strata.core.settings import MINILM_REPO

# Fitted by bench/retrieval.py (README, Benchmarks) on the 404-question tuning half of
# SciFact's train split, each question once with its relevant abstracts and once without.
EVIDENCE_WEIGHTS = {
    "cosine": 0.8444,
    "cosine_lead": 1.4515,
    "keyword_coverage": 3.3495,
    "keyword_lead": 2.7374,
    "agree": 0.4465,
}
EVIDENCE_BIAS = -2.9872


class KnowledgeSettings(BaseModel):
    """The knowledge base (``strata.features.knowledge``): chunking, embedding, search and
    grounding."""

    model_config = ConfigDict(extra="forbid")

    embedder: str = Field(
        "minilm", description="Embedder kind: minilm (sentence-transformers) or hash (tests)"
    )
    embedding_model: str = Field(
        MINILM_REPO, description="Model for the minilm embedder: a path or a Hugging Face repo id"
    )
    embed_batch: int = Field(
        16,
        ge=1,
        description="Texts per embedding batch, sorted by length: on CPU 16 embedded SciFact"
        " chunks 1.2x faster than 64 (less padding, attention that fits the cache)",
    )
    embed_max_tokens: int | None = Field(
        None,
        ge=16,
        description="Embed only a chunk's first N tokens (default: the model's window); the"
        " keyword index still covers all of it. Trades vector recall for ingest speed on CPU",
    )
    chunk_tokens: int = Field(200, ge=16, le=512, description="Token budget of one chunk")
    chunk_overlap: int = Field(32, ge=0, description="Tokens carried over between chunks")
    title_weight: float = Field(1.0, ge=0, description="BM25 weight of the title field")
    fusion: Literal["rrf", "convex"] = Field(
        "rrf",
        description="How keyword and vector fuse (chosen on SciFact by cross-validation: plain"
        " RRF; tuned convex weights gained less than the noise)",
    )
    vector_weight: float = Field(
        0.5, ge=0, le=1, description="Share of the vector ranking in fusion (keyword: the rest)"
    )
    rrf_k: float = Field(60.0, gt=0, description="Reciprocal rank fusion constant")
    candidates: int = Field(100, ge=1, description="Hits taken from each ranking before fusion")
    keyword_max_df: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Drop query words found in more than this share of chunks (speed at scale)",
    )
    top_k: int = Field(4, ge=1, le=50, description="Passages put in a grounded prompt")
    min_evidence: float = Field(
        0.564,
        ge=0,
        le=1,
        description="Evidence (the calibrated probability that the collection answers the"
        " question, see evidence_weights) below which a grounded answer abstains",
    )
    evidence_weights: dict[str, float] = Field(
        default_factory=lambda: dict(EVIDENCE_WEIGHTS),
        description="Logistic weights of the evidence signals (knowledge/evidence.py), fitted"
        " on SciFact questions with and without their documents by bench/retrieval.py",
    )
    evidence_bias: float = Field(EVIDENCE_BIAS, description="Intercept of the evidence model")
    ingest_batch: int = Field(32, ge=1, description="Documents per acknowledged ingest commit")
