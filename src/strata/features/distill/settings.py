"""The distill feature's settings section (``[distill]`` in the TOML file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from strata.core.settings import MINILM_REPO


class DistillSettings(BaseModel):
    """Specialists (``strata.features.distill``): what they learn from, when they retrain,
    and how sure one must be to answer instead of the cascade."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Collect big-tier answers and serve specialists")
    embedder: str = Field(
        "minilm", description="Embedder kind: minilm (sentence-transformers) or hash (tests)"
    )
    embedding_model: str = Field(
        MINILM_REPO, description="Model for the minilm embedder: a path or a Hugging Face repo id"
    )
    embed_batch: int = Field(64, ge=1, description="Texts per embedding batch when training")
    embed_max_tokens: int | None = Field(
        128, ge=16, description="Embed only a request's first N tokens (speed on CPU)"
    )
    retrain_every: int = Field(
        50, ge=1, description="Train in the background once this many new examples arrived"
    )
    retrain_every_feedback: int = Field(
        5, ge=1, description="Or once this many users' labels (feedback) arrived"
    )
    min_examples: int = Field(20, ge=4, description="No specialist from fewer examples")
    holdout_share: float = Field(
        0.2, gt=0, lt=1, description="Share of examples held back to check a new specialist"
    )
    target_agreement: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Answer only above the confidence where held-out answers agree with the"
        " big tier (or the user's correction) at least this often",
    )
    versus_route: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Or answer above the confidence where it matches users' labels at least"
        " this many times as often as the route's models did",
    )
    min_threshold: float = Field(
        0.6, ge=0, le=1, description="Never answer below this calibrated confidence"
    )
    l2: float = Field(1e-3, ge=0, description="L2 penalty of the linear head")

    exemplars: bool = Field(
        False,
        description="Few-shot exemplars for open-ended traffic: kept big-tier answers put in"
        " the small tier's prompt (off until shown to lift the 0.5B on GSM8K: README)",
    )
    exemplars_k: int = Field(3, ge=1, le=16, description="At most this many per request")
    exemplars_min_similarity: float = Field(
        0.5, ge=-1, le=1, description="Only exemplars at least this similar (cosine, MiniLM)"
    )
    exemplars_tokens: int = Field(
        1024, ge=0, description="At most this many prompt tokens of exemplars per request"
    )
    exemplars_keep_confidence: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Keep a big-tier answer as an exemplar when its confidence (the"
        " probability of its answer tokens) is at least this; a thumbs-up keeps any answer",
    )
    exemplars_max: int = Field(
        500, ge=1, description="Exemplars kept per tenant (the oldest go first)"
    )
