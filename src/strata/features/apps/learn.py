"""Learn a brand voice from sample texts: a model extracts the rules (JSON-schema output, so
a small model still returns a valid profile), and what can be measured is measured rather
than guessed: the reading level (Flesch-Kincaid grade) and a length limit from the samples.
The result is a draft for a person to edit (``strata voice learn`` opens it in an editor)."""

from __future__ import annotations

import json
import re
from typing import Any

from strata.core.models.base import GenerationRequest, ResponseFormat, SamplingParams
from strata.core.service import ChatService
from strata.core.turn import Turn
from strata.features.apps.voice import VoiceProfile

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tone": {"type": "string"},
        "do": {"type": "array", "items": {"type": "string"}},
        "dont": {"type": "array", "items": {"type": "string"}},
        "banned_words": {"type": "array", "items": {"type": "string"}},
        "preferred_terms": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["tone", "do", "dont", "banned_words", "preferred_terms"],
}

INSTRUCTIONS = (
    "You are a brand editor. From the sample texts, describe the brand voice as JSON: "
    "'tone' (a few adjectives), 'do' (3-5 short writing rules the samples follow), 'dont' "
    "(3-5 things the samples avoid), 'banned_words' (words this brand would never use; may be "
    "empty) and 'preferred_terms' (word to avoid -> the brand's word; may be empty)."
)


def _syllables(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    count = len(groups) - (1 if word.lower().endswith("e") and len(groups) > 1 else 0)
    return max(1, count)


def reading_grade(texts: list[str]) -> float:
    """Flesch-Kincaid grade level of the samples together."""
    text = " ".join(texts)
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text)))
    words = re.findall(r"[A-Za-z']+", text)
    if not words:
        return 0.0
    syllables = sum(_syllables(w) for w in words)
    return 0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59


async def learn_voice(
    service: ChatService, model: str, texts: list[str], name: str = ""
) -> VoiceProfile:
    samples = "\n\n".join(f"Sample {i + 1}:\n{t.strip()[:1500]}" for i, t in enumerate(texts))
    gen = GenerationRequest(
        kind="chat",
        messages=[
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": samples},
        ],
        params=SamplingParams(
            temperature=0.2,
            max_tokens=400,
            response_format=ResponseFormat("json_schema", SCHEMA, "voice", True),
        ),
    )
    raw = await service.complete(Turn(model, gen))
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}

    def strings(value: Any) -> list[str]:
        return [str(v).strip() for v in value if str(v).strip()] if isinstance(value, list) else []

    terms = data.get("preferred_terms")
    grade = reading_grade(texts)
    longest = max(len(t.split()) for t in texts) if texts else 0
    return VoiceProfile(
        name=name,
        tone=str(data.get("tone") or "").strip()[:300],
        reading_level=f"grade {max(1, round(grade))}",
        do=strings(data.get("do"))[:8],
        dont=strings(data.get("dont"))[:8],
        banned_words=strings(data.get("banned_words"))[:30],
        preferred_terms={str(k): str(v) for k, v in terms.items()}
        if isinstance(terms, dict)
        else {},
        max_words=round(longest * 1.5) if longest else None,
        examples=[t.strip()[:1500] for t in texts[:3]],
    )
