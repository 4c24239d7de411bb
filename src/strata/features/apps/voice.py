"""Brand voice: a profile that guides generation, and hard rules that outputs are held to.

The soft part (tone, reading level, do/don't, examples) goes into the system prompt. The hard
part is checked on every output: banned words (and terms with a preferred replacement),
required terms, length limits. A broken output is regenerated with the violations named;
if it is still broken, it is repaired deterministically: a banned word becomes its preferred
term or is dropped, an overlong text is cut at the last whole sentence that fits. A missing
required term cannot be invented safely, so it is reported rather than patched in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from strata.features.apps.store import Example


class VoiceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=100)
    description: str = Field("", max_length=2000)
    tone: str = Field("", max_length=300, description="e.g. warm, confident, plain-spoken")
    reading_level: str = Field("", max_length=100, description="e.g. grade 8")
    do: list[str] = Field(default_factory=list, description="Rules to follow")
    dont: list[str] = Field(default_factory=list, description="Things to avoid")
    banned_words: list[str] = Field(default_factory=list, description="Never in an output")
    preferred_terms: dict[str, str] = Field(
        default_factory=dict, description="Say the value instead of the key (enforced)"
    )
    required_terms: list[str] = Field(default_factory=list, description="Must appear")
    max_words: int | None = Field(None, ge=1)
    max_chars: int | None = Field(None, ge=1)
    examples: list[str] = Field(default_factory=list, description="Texts in this voice")

    @property
    def has_hard_rules(self) -> bool:
        return bool(
            self.banned_words
            or self.preferred_terms
            or self.required_terms
            or self.max_words
            or self.max_chars
        )

    def guide(self, accepted: list[Example] | None = None) -> str:
        """The voice as instructions for the system prompt."""
        lines = ["Write in this brand voice."]
        if self.name:
            lines.append(f"Brand: {self.name}.")
        if self.description:
            lines.append(self.description)
        if self.tone:
            lines.append(f"Tone: {self.tone}.")
        if self.reading_level:
            lines.append(f"Reading level: {self.reading_level}.")
        lines += [f"Do: {rule}" for rule in self.do]
        lines += [f"Don't: {rule}" for rule in self.dont]
        if self.banned_words:
            lines.append("Never use these words: " + ", ".join(self.banned_words) + ".")
        for avoid, prefer in self.preferred_terms.items():
            lines.append(f'Say "{prefer}", never "{avoid}".')
        if self.required_terms:
            lines.append("Always mention: " + ", ".join(self.required_terms) + ".")
        if self.max_words:
            lines.append(f"At most {self.max_words} words.")
        if self.max_chars:
            lines.append(f"At most {self.max_chars} characters.")
        samples = self.examples[:3] + [e.output for e in (accepted or [])]
        if samples:
            lines.append("Texts in this voice:")
            lines += [f'"""{s.strip()[:600]}"""' for s in samples]
        return "\n".join(lines)


@dataclass(frozen=True)
class Violation:
    rule: str  # banned_word | preferred_term | required_term | max_words | max_chars
    detail: str

    def __str__(self) -> str:
        return self.detail

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "detail": self.detail}


def _pattern(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)


def check(profile: VoiceProfile, text: str) -> list[Violation]:
    found: list[Violation] = []
    for word in profile.banned_words:
        if _pattern(word).search(text):
            found.append(Violation("banned_word", f'uses the banned word "{word}"'))
    for avoid, prefer in profile.preferred_terms.items():
        if _pattern(avoid).search(text):
            found.append(Violation("preferred_term", f'says "{avoid}" instead of "{prefer}"'))
    for term in profile.required_terms:
        if not _pattern(term).search(text):
            found.append(Violation("required_term", f'does not mention "{term}"'))
    words = len(text.split())
    if profile.max_words and words > profile.max_words:
        found.append(Violation("max_words", f"has {words} words; the most is {profile.max_words}"))
    if profile.max_chars and len(text) > profile.max_chars:
        found.append(
            Violation("max_chars", f"has {len(text)} characters; the most is {profile.max_chars}")
        )
    return found


def _match_case(source: str, target: str) -> str:
    return target[:1].upper() + target[1:] if source[:1].isupper() else target


def repair(profile: VoiceProfile, text: str) -> str:
    """Fix what can be fixed without a model (see the module docstring)."""
    replacements = {w: "" for w in profile.banned_words}
    replacements.update(profile.preferred_terms)
    dropped = False
    for avoid, prefer in replacements.items():

        def swap(match: re.Match[str], prefer: str = prefer) -> str:
            return _match_case(match.group(0), prefer)

        text, hits = _pattern(avoid).subn(swap, text)
        dropped = dropped or (hits > 0 and not prefer)
    if dropped:  # tidy the gap a dropped word leaves, and a sentence it used to start
        text = re.sub(r"[ \t]{2,}", " ", text)
        text = re.sub(r" +([,.;:!?])", r"\1", text).strip()
        text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    if profile.max_words and len(text.split()) > profile.max_words:
        text = _cut(text, lambda t: len(t.split()) <= (profile.max_words or 0))
    if profile.max_chars and len(text) > profile.max_chars:
        text = _cut(text, lambda t: len(t) <= (profile.max_chars or 0))
    return text


def _cut(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix ending a sentence that fits; else the longest whole-word prefix."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    for end in reversed(ends):
        if fits(text[:end]):
            return text[:end].strip()
    words = text.split()
    while words and not fits(" ".join(words)):
        words.pop()
    return " ".join(words)
