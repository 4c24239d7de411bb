"""Backend kinds by name. Built-ins register through the ``strata.backends`` entry-point
group in ``pyproject.toml``, exactly as an outside plugin would; nothing is imported until a
kind is used, so ``strata --help`` never pays for llama.cpp."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from strata.core.errors import ConfigError
from strata.core.models.base import Backend
from strata.core.settings import ModelSpec

_registered: dict[str, type[Backend]] = {}


def register_backend(kind: str, cls: type[Backend]) -> None:
    """Register (or replace) a backend kind; for plugins that are not installed packages."""
    _registered[kind] = cls


def backend_class(kind: str) -> type[Backend]:
    if kind in _registered:
        return _registered[kind]
    for ep in entry_points(group="strata.backends"):
        if ep.name == kind:
            try:
                cls = ep.load()
            except ImportError as exc:
                raise ConfigError(
                    f"backend '{kind}' needs a package that is not installed: {exc.name}"
                ) from exc
            _registered[kind] = cls
            return cls  # type: ignore[no-any-return]
    known = sorted({*_registered, *(ep.name for ep in entry_points(group="strata.backends"))})
    raise ConfigError(f"unknown backend '{kind}' (known: {', '.join(known)})")


def create_backend(name: str, spec: ModelSpec, home: Path | None = None) -> Backend:
    return backend_class(spec.backend)(name, spec, home)
