"""The feature contract: what a capability (knowledge, routing, sessions, apps, ...) offers
the rest of strata, and how strata finds it.

A feature is a folder under ``strata/features/`` (or a package of a plugin) plus one entry
point in the ``strata.features`` group naming a ``Feature`` instance. The HTTP app, the CLI
and the ``Settings`` class are assembled from what the installed features declare, so adding
one never edits the middle. strata's own features register exactly as a plugin would::

    [project.entry-points."strata.features"]
    knowledge = "strata.features.knowledge.feature:feature"

One method is required, ``build``: it makes the feature's per-process runtime from the
``Kernel`` (stores, layers, dispatchers, event subscriptions) and returns it. The rest are
declarations with empty defaults: settings sections, an HTTP router, CLI commands. A feature
imports only ``strata.core``; it reaches another feature through the protocols in
``strata.core.protocols`` that the kernel hands out (``kernel.provide`` / ``kernel.lookup``).

Keep the module that holds the ``Feature`` light: ``strata --help`` loads it.
"""

from __future__ import annotations

import importlib.metadata
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel

log = logging.getLogger("strata.features")
GROUP = "strata.features"


class Runtime(Protocol):
    """What ``Feature.build`` returns: the feature's state in one process."""

    async def shutdown(self) -> None: ...


class Feature(ABC):
    name: ClassVar[str]

    @abstractmethod
    def build(self, kernel: Kernel) -> Runtime:
        """Make this feature's runtime: open its stores, add its layers and dispatchers to
        ``kernel.service``, subscribe to ``kernel.events``, provide core protocols."""

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        """Settings fields this feature adds: ``{name: (type, pydantic Field)}``."""
        return {}

    def router(self) -> APIRouter | None:
        """REST endpoints, mounted by the HTTP edge with the caller's authentication."""
        return None

    def commands(self) -> Sequence[click.Command]:
        """CLI commands added to ``strata``."""
        return ()


_extra: dict[str, Feature] = {}


def register_feature(feature: Feature) -> None:
    """Add a feature by hand (tests, or a program embedding strata); entry points need none.
    ``Settings`` is assembled anew on next use, with the feature's sections."""
    from strata.core.settings import forget_settings_class

    _extra[feature.name] = feature
    installed_features.cache_clear()
    forget_settings_class()


@cache
def installed_features() -> tuple[Feature, ...]:
    """Every feature from the ``strata.features`` entry points, plus registered ones."""
    found: dict[str, Feature] = {}
    for entry in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            feature = entry.load()
        except Exception as exc:  # a broken plugin must not take strata down with it
            log.error("feature %s failed to load: %s", entry.name, exc)
            continue
        if not isinstance(feature, Feature):
            log.error("entry point %s is not a strata Feature", entry.name)
            continue
        found[feature.name] = feature
    found.update(_extra)
    return tuple(found.values())
