"""Helpers for the agent-loop tests: Qwen's tool-call tags for the scripted fake model, and
a user tool that an entry point registers."""

from __future__ import annotations

import json
from typing import Any


def call(name: str, **arguments: Any) -> str:
    """The fake model's scripted answer for one call, in Qwen's native format."""
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


def word_count(text: str, unique: bool = False) -> int:
    """Count the words in a text (unique ones only when asked)."""
    words = text.split()
    return len(set(words)) if unique else len(words)


async def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()
