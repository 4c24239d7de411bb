"""Prompt features for the learned router: what the request looks like, never its answer.

Cheap and deterministic: the shape of the task (listed choices, a worked problem, numbers),
its length, and hashed words, so the same request always maps to the same vector without a
vocabulary file or an embedding model.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

HASH_DIM = 32
_WORD = re.compile(r"[a-z]+")
_CHOICE = re.compile(r"^\(?[A-J][.)]\s", re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if p.get("type") == "text")
    return str(content or "")


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(message_text(m) for m in messages if m.get("role") in {"user", "system"})


def prompt_features(messages: list[dict[str, Any]], hash_dim: int = HASH_DIM) -> list[float]:
    text = prompt_text(messages)
    words = _WORD.findall(text.lower())
    choices = len(_CHOICE.findall(text))
    numbers = _NUMBER.findall(text)
    shape = [
        math.log1p(len(text)),
        math.log1p(len(words)),
        float(choices),
        1.0 if choices else 0.0,
        math.log1p(len(numbers)),
        1.0 if "step by step" in text.lower() else 0.0,
        sum(len(w) for w in words) / max(1, len(words)),
        float(text.count("?")),
    ]
    hashed = [0.0] * hash_dim
    for word in words:
        bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
        hashed[bucket % hash_dim] += 1.0
    norm = math.sqrt(sum(v * v for v in hashed)) or 1.0
    return shape + [v / norm for v in hashed]
