"""The keys feature's settings section, ``[keys]``. Kept free of strata imports other than
pydantic, so assembling ``Settings`` stays cheap."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KeysSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_tokens: int = Field(
        512,
        ge=1,
        description="Tokens a request without max_tokens reserves against a key's tpm and budget",
    )
    refresh_s: float = Field(
        1.0,
        gt=0,
        description="How often a server looks for keys another process created or revoked",
    )
