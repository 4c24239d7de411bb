"""Dialogue that outlives the context window: sessions stored in SQLite, a rolling summary,
retrieval over earlier turns, and a prompt fitted exactly to the model's window."""

from __future__ import annotations

from strata.dialogue.memory import SessionMemory, SessionRecorder
from strata.dialogue.owner import ANONYMOUS, owner_of
from strata.dialogue.store import NewTurn, Session, SessionStore, Turn
from strata.dialogue.summary import Summariser

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
