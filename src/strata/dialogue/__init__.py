"""Dialogue that outlives the context window: sessions stored in SQLite, a rolling summary,
retrieval over earlier turns, and a prompt fitted exactly to the model's window.

Names load on first use (PEP 562), so ``strata --help``, which imports this package's CLI
module, does not pay for the memory builder and its imports."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.dialogue.memory import SessionMemory, SessionRecorder
    from strata.dialogue.owner import ANONYMOUS, owner_of
    from strata.dialogue.store import NewTurn, Session, SessionStore, Turn
    from strata.dialogue.summary import Summariser

_WHERE = {
    "SessionMemory": "memory",
    "SessionRecorder": "memory",
    "ANONYMOUS": "owner",
    "owner_of": "owner",
    "NewTurn": "store",
    "Session": "store",
    "SessionStore": "store",
    "Turn": "store",
    "Summariser": "summary",
}

__all__ = [
    "ANONYMOUS",
    "NewTurn",
    "Session",
    "SessionMemory",
    "SessionRecorder",
    "SessionStore",
    "Summariser",
    "Turn",
    "owner_of",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'strata.dialogue' has no attribute {name!r}")
    return getattr(importlib.import_module(f"strata.dialogue.{_WHERE[name]}"), name)
