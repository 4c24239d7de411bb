"""The application layer: templates with typed inputs, brand voices, and feedback that
turns accepted edits into few-shot examples for the next answer.

Names load on first use (PEP 562), so ``strata --help``, which imports this package's CLI
module, does not pay for templates, voices and layers it never touches."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.apps.layers import ResponseLog, TemplateLayer, VoiceLayer
    from strata.apps.store import AppStore, Example
    from strata.apps.templates import Template, TemplateRegistry, validate_inputs
    from strata.apps.voice import Violation, VoiceProfile, check, repair

_WHERE = {
    "AppStore": "store",
    "Example": "store",
    "ResponseLog": "layers",
    "TemplateLayer": "layers",
    "VoiceLayer": "layers",
    "Template": "templates",
    "TemplateRegistry": "templates",
    "validate_inputs": "templates",
    "VoiceProfile": "voice",
    "Violation": "voice",
    "check": "voice",
    "repair": "voice",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'strata.apps' has no attribute {name!r}")
    return getattr(importlib.import_module(f"strata.apps.{_WHERE[name]}"), name)
