"""The detection feature's settings section (``[detection]``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_CHARS = 20_000
"""Longest text accepted (about 5k tokens; roughly a minute on two CPU cores)."""
DEFAULT_MAX_INPUTS = 64


class DetectionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str | None = Field(
        None,
        description="Default method (log-perplexity, binoculars, fast-detectgpt); None: shipped",
    )
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=1, description="Longest text accepted (400)")
    max_inputs: int = Field(DEFAULT_MAX_INPUTS, ge=1, description="Most texts in one request")
