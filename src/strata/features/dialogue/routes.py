"""REST for sessions: create, list, read (with turns), rename, delete, import turns, and drop
the turns from one on (edit-and-resend: the edited message replaces them).

``POST /v1/sessions/{id}/messages`` appends turns without generating, so a session can start
from an existing conversation (weeks of history, each turn with its own time and speaker).
Everything is scoped to the caller's API key: another key's session is a 404.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from strata.core.web import CallerDep, caller, kernel
from strata.features.dialogue.feature import Dialogue
from strata.features.dialogue.store import NewTurn, SessionStore
from strata.features.dialogue.summary import Summariser

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], tags=["sessions"])

SESSION_ID = r"^[A-Za-z0-9_.:@-]{1,128}$"


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(..., min_length=1, max_length=100_000)
    name: str | None = Field(None, max_length=64, description="Who said it (a speaker's name)")
    created: datetime | None = Field(
        None, description="When it was said: ISO 8601 or Unix seconds (default: now; UTC if naive)"
    )

    def new_turn(self) -> NewTurn:
        created = None
        if self.created is not None:
            when = self.created
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            created = when.timestamp()
        return NewTurn(self.role, self.content, self.name, created)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=SESSION_ID, description="Your id (default: generated)")
    system: str = Field("", max_length=20_000, description="System prompt for every turn")
    title: str = Field("", max_length=200)
    messages: list[MessageIn] = Field(default_factory=list, description="History to import")


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=200)
    system: str | None = Field(None, max_length=20_000)


class MessagesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[MessageIn] = Field(..., min_length=1)


def _dialogue(request: Request) -> Dialogue:
    return kernel(request).feature("dialogue", Dialogue)


def _store(request: Request) -> tuple[SessionStore, Summariser]:
    dialogue = _dialogue(request)
    return dialogue.sessions, dialogue.summariser


@router.post("/sessions", summary="Create a session (optionally importing its history)")
async def create_session(body: SessionCreate, request: Request, who: CallerDep) -> dict[str, Any]:
    store, _ = _store(request)
    owner = who.owner
    session = await asyncio.to_thread(store.create, owner, body.id, body.system, body.title)
    if body.messages:
        await asyncio.to_thread(store.append, session, [m.new_turn() for m in body.messages])
        _dialogue(request).stored(session.sid, kernel(request).settings.default_model)
        session = await asyncio.to_thread(store.get, owner, session.id)
    return session.as_dict()


@router.get("/sessions", summary="List your sessions, most recently used first")
async def list_sessions(request: Request, who: CallerDep) -> dict[str, Any]:
    store, _ = _store(request)
    sessions = await asyncio.to_thread(store.all, who.owner)
    return {"object": "list", "data": [s.as_dict() for s in sessions]}


@router.get("/sessions/{session_id}", summary="A session with its turns")
async def get_session(session_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    store, _ = _store(request)
    session = await asyncio.to_thread(store.get, who.owner, session_id)
    turns = await asyncio.to_thread(store.turns, session.sid)
    return {**session.as_dict(), "turns": [t.as_dict() for t in turns]}


@router.patch("/sessions/{session_id}", summary="Rename a session or change its system prompt")
async def update_session(
    session_id: str, body: SessionUpdate, request: Request, who: CallerDep
) -> dict[str, Any]:
    store, _ = _store(request)
    session = await asyncio.to_thread(store.update, who.owner, session_id, body.title, body.system)
    return session.as_dict()


@router.delete("/sessions/{session_id}/turns", summary="Delete the turns from one on")
async def truncate_session(
    session_id: str,
    request: Request,
    who: CallerDep,
    from_seq: int = Query(..., ge=1, description="First turn to delete (its seq)"),
) -> dict[str, Any]:
    store, _ = _store(request)
    deleted = await asyncio.to_thread(store.truncate, who.owner, session_id, from_seq)
    return {"id": session_id, "object": "session.turns.deleted", "deleted": deleted}


@router.delete("/sessions/{session_id}", summary="Delete a session and all its turns")
async def delete_session(session_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    store, _ = _store(request)
    await asyncio.to_thread(store.delete, who.owner, session_id)
    return {"id": session_id, "object": "session.deleted", "deleted": True}


@router.post("/sessions/{session_id}/messages", summary="Append turns without generating")
async def append_messages(
    session_id: str, body: MessagesIn, request: Request, who: CallerDep
) -> dict[str, Any]:
    store, _ = _store(request)
    session = await asyncio.to_thread(store.get, who.owner, session_id)
    turns = await asyncio.to_thread(store.append, session, [m.new_turn() for m in body.messages])
    _dialogue(request).stored(session.sid, kernel(request).settings.default_model)
    return {"object": "list", "data": [t.as_dict() for t in turns]}
