"""The self-verification prompt (AutoMix-style): the small model judges its own answer.

The question goes to the same conversation, right after the answer, so a local model reuses
the prompt it has just processed (llama.cpp keeps the common prefix in its KV cache) and the
check costs only the few new tokens instead of a second full prompt. Kept apart from the
signal so the benchmark's cache keys and the served judge call use the exact same words.
"""

from __future__ import annotations

from typing import Any

JUDGE_QUESTION = "Is that answer correct? Reply with Yes or No only."


def judge_messages(messages: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    """The conversation, the model's ``answer``, and the question whether it is correct."""
    return [
        *messages,
        {"role": "assistant", "content": answer.strip()},
        {"role": "user", "content": JUDGE_QUESTION},
    ]
