"""Confidence signals by name. Built-ins register here the same way a plugin would, with
``register_signal``; options come from the route's ``signal_options``."""

from __future__ import annotations

from typing import Any

from strata.core.errors import ConfigError
from strata.features.routing.signals.base import Attempt, ConfidenceSignal, Need, Probe

_registered: dict[str, type[ConfidenceSignal]] = {}


def register_signal(cls: type[ConfidenceSignal]) -> type[ConfidenceSignal]:
    """Register (or replace) a signal class under ``cls.name``; usable as a decorator."""
    _registered[cls.name] = cls
    return cls


def signal_names() -> list[str]:
    _builtins()
    return sorted(_registered)


def signal_class(name: str) -> type[ConfidenceSignal]:
    _builtins()
    try:
        return _registered[name]
    except KeyError:
        raise ConfigError(
            f"unknown confidence signal '{name}' (known: {', '.join(sorted(_registered))})"
        ) from None


def create_signal(name: str, **options: Any) -> ConfidenceSignal:
    return signal_class(name)(**options)


def _builtins() -> None:
    """Import the built-in modules once; each registers its classes on import."""
    from strata.features.routing.signals import combined, consistency, learned, logprobs, verify

    del combined, consistency, learned, logprobs, verify


__all__ = [
    "Attempt",
    "ConfidenceSignal",
    "Need",
    "Probe",
    "create_signal",
    "register_signal",
    "signal_class",
    "signal_names",
]
