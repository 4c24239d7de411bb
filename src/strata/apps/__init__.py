"""The application layer: templates with typed inputs, brand voices, and feedback that
turns accepted edits into few-shot examples for the next answer."""

from __future__ import annotations

from strata.apps.layers import ResponseLog, TemplateLayer, VoiceLayer
from strata.apps.store import AppStore, Example
from strata.apps.templates import Template, TemplateRegistry, validate_inputs
from strata.apps.voice import Violation, VoiceProfile, check, repair

__all__ = [
    "AppStore",
    "Example",
    "ResponseLog",
    "Template",
    "TemplateLayer",
    "TemplateRegistry",
    "Violation",
    "VoiceLayer",
    "VoiceProfile",
    "check",
    "repair",
    "validate_inputs",
]
