"""Response ids in OpenAI's shape (``chatcmpl-…``, ``cmpl-…``)."""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
