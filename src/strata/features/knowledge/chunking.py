"""Structure-aware chunking under a token budget, with overlap.

Why structure: a passage that starts at a heading and ends at a paragraph break reads as a
unit, embeds as one topic and quotes cleanly in a grounded prompt. So chunks are packed from
whole paragraphs under one heading; a paragraph over the budget is split at sentences, and
only a sentence over the budget is cut at words. The budget is counted with the embedder's
own tokenizer (MiniLM's WordPiece in production), so no chunk is silently truncated when it
is embedded. Consecutive chunks share up to ``overlap`` tokens of trailing sentences, so an
answer that straddles a boundary is still found whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from strata.core.embeddings import word_count
from strata.features.knowledge.parsers import Block

__all__ = ["ChunkText", "chunk_blocks", "sentences", "word_count"]

Counter = Callable[[str], int]

_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class ChunkText:
    text: str
    heading: str
    position: int


@dataclass
class _Unit:
    text: str
    tokens: int
    heading: str


def sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE.split(paragraph) if s.strip()]


def _word_windows(sentence: str, tokens: int, budget: int) -> list[str]:
    """Cut an over-long sentence into word windows of about ``budget`` tokens."""
    words = sentence.split()
    per_window = max(1, int(len(words) * budget / max(tokens, 1) * 0.9))
    return [" ".join(words[i : i + per_window]) for i in range(0, len(words), per_window)]


def _units(block: Block, count: Counter, budget: int) -> list[_Unit]:
    tokens = count(block.text)
    if tokens <= budget:
        return [_Unit(block.text, tokens, block.heading)]
    out: list[_Unit] = []
    for sentence in sentences(block.text):
        n = count(sentence)
        if n <= budget:
            out.append(_Unit(sentence, n, block.heading))
            continue
        for piece in _word_windows(sentence, n, budget):
            out.append(_Unit(piece, count(piece), block.heading))
    return out


def chunk_blocks(
    blocks: list[Block], count: Counter, budget: int = 200, overlap: int = 32
) -> list[ChunkText]:
    """Pack ``blocks`` into chunks of at most ``budget`` tokens (as ``count`` measures).

    A new heading starts a new chunk unless the current one is still small (under a third
    of the budget): tiny sections are better merged than embedded alone."""
    if budget < 1:
        raise ValueError("budget must be positive")
    overlap = min(overlap, budget // 2)
    chunks: list[ChunkText] = []
    current: list[_Unit] = []
    used = 0

    def emit() -> None:
        if current:
            text = " ".join(u.text for u in current)
            chunks.append(ChunkText(text, current[0].heading, len(chunks)))

    def carry() -> tuple[list[_Unit], int]:
        kept: list[_Unit] = []
        total = 0
        for unit in reversed(current):
            if total + unit.tokens > overlap:
                break
            kept.insert(0, unit)
            total += unit.tokens
        return kept, total

    for block in blocks:
        units = _units(block, count, budget)
        if current and block.heading != current[-1].heading and used >= budget // 3:
            emit()
            current, used = [], 0
        for unit in units:
            if current and used + unit.tokens > budget:
                emit()
                current, used = carry()
                if current and current[0].heading != unit.heading:
                    current, used = [], 0
                if used + unit.tokens > budget:
                    current, used = [], 0
            current.append(unit)
            used += unit.tokens
    emit()
    return chunks
