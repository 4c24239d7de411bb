"""REST for templates, brand voices and feedback; everything scoped to the caller's key.

GET  /v1/templates                  built-in, folder and your custom templates
GET  /v1/templates/{name}           one template in full (inputs, examples, ...)
POST /v1/templates                  add or replace a custom template (yours only)
DELETE /v1/templates/{name}         delete one of your custom templates
POST /v1/templates/{name}/run       run it: inputs (422 naming a bad field), voice, model
POST /v1/voices  GET/PUT/DELETE /v1/voices/{id}  GET /v1/voices
POST /v1/feedback                   thumbs up/down and/or an edit, by response id
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from strata.apps.templates import NAME, parse_template
from strata.apps.voice import VoiceProfile
from strata.dialogue.owner import owner_of
from strata.engine import Timings
from strata.errors import ConfigError, InvalidInput
from strata.models.base import Chunk, GenerationRequest, SamplingParams, Usage
from strata.pipeline import ChatTurn
from strata.serve.auth import client_key
from strata.serve.convert import new_id
from strata.stack import Stack

router = APIRouter(prefix="/v1", dependencies=[Depends(client_key)], tags=["apps"])


def _stack(request: Request) -> Stack:
    stack: Stack = request.app.state.stack
    return stack


# ---- templates ----


class TemplateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    voice: str | None = None
    model: str | None = Field(None, description="Model or route (default: the template's)")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)


@router.get("/templates", summary="List the templates you can run")
async def list_templates(request: Request, key: str = Depends(client_key)) -> dict[str, Any]:
    registry = _stack(request).templates
    found = await asyncio.to_thread(registry.all, owner_of(key))
    return {"object": "list", "data": [t.summary() for t in found.values()]}


@router.get("/templates/{name}", summary="One template in full")
async def get_template(name: str, request: Request, key: str = Depends(client_key)) -> Any:
    template = await asyncio.to_thread(_stack(request).templates.get, owner_of(key), name)
    return {**template.model_dump(), "object": "template"}


@router.post("/templates", summary="Add or replace one of your own templates")
async def put_template(
    body: dict[str, Any], request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    try:
        template = parse_template(body, "(request)")
    except ConfigError as exc:
        match = re.match(r"template \(request\): ([^:]+): ", exc.message)
        raise InvalidInput(exc.message, param=match.group(1) if match else None) from None
    stack = _stack(request)
    await asyncio.to_thread(
        stack.apps.put_template, owner_of(key), template.name, template.model_dump()
    )
    return template.summary()


@router.delete("/templates/{name}", summary="Delete one of your own templates")
async def delete_template(
    name: str, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    await asyncio.to_thread(_stack(request).apps.delete_template, owner_of(key), name)
    return {"name": name, "object": "template.deleted", "deleted": True}


async def run_template(
    stack: Stack, key: str, name: str, body: TemplateRun, response_id: str
) -> tuple[str, Usage, ChatTurn]:
    """Run a template through the whole pipeline (voice, routes, feedback examples)."""
    template = await asyncio.to_thread(stack.templates.get, owner_of(key), name)
    model = body.model or template.route or stack.settings.default_model
    params = SamplingParams(
        temperature=template.temperature if body.temperature is None else body.temperature,
        max_tokens=body.max_tokens,
    )
    options: dict[str, Any] = {"template": name, "inputs": body.inputs}
    if body.voice:
        options["voice"] = body.voice
    gen = GenerationRequest(kind="chat", params=params, messages=[])
    turn = ChatTurn(model, gen, key, options, response_id)
    pipeline = stack.pipeline
    if not pipeline.handles(model):
        stack.engine.get(model)  # raises the usual 404 naming the models
    await pipeline.before(turn)
    parts: list[str] = []
    usage = Usage(0, 0)
    chunk: Chunk
    async for chunk in pipeline.generate(turn, Timings()):
        parts.append(chunk.text)
        usage = chunk.usage or usage
    [text] = await pipeline.after(turn, ["".join(parts)])
    return text, usage, turn


@router.post("/templates/{name}/run", summary="Run a template")
async def run(
    name: str, body: TemplateRun, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    rid = new_id("tmpl")
    text, usage, turn = await run_template(_stack(request), key, name, body, rid)
    info = turn.info.get("template", {})
    return {
        "id": rid,
        "object": "template.run",
        "template": name,
        "model": turn.answered_by or turn.model,
        "output": text,
        "data": info.get("data"),
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "strata": turn.info,
    }


# ---- voices ----


class VoiceIn(VoiceProfile):
    id: str | None = Field(None, pattern=NAME, description="Your id (default: generated)")


@router.post("/voices", summary="Create a brand voice")
async def create_voice(
    body: VoiceIn, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    profile = body.model_dump(exclude={"id"})
    store = _stack(request).apps
    voice_id = await asyncio.to_thread(store.put_voice, owner_of(key), body.id, profile, True)
    return {"id": voice_id, "object": "voice", **profile}


@router.get("/voices", summary="List your brand voices")
async def list_voices(request: Request, key: str = Depends(client_key)) -> dict[str, Any]:
    found = await asyncio.to_thread(_stack(request).apps.voices, owner_of(key))
    return {"object": "list", "data": [{"id": i, "object": "voice", **p} for i, p in found]}


@router.get("/voices/{voice_id}", summary="One brand voice")
async def get_voice(
    voice_id: str, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    profile = await asyncio.to_thread(_stack(request).apps.voice, owner_of(key), voice_id)
    return {"id": voice_id, "object": "voice", **profile}


@router.put("/voices/{voice_id}", summary="Replace a brand voice")
async def put_voice(
    voice_id: str, body: VoiceProfile, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    profile = body.model_dump()
    store = _stack(request).apps
    await asyncio.to_thread(store.put_voice, owner_of(key), voice_id, profile, False)
    return {"id": voice_id, "object": "voice", **profile}


@router.delete("/voices/{voice_id}", summary="Delete a brand voice")
async def delete_voice(
    voice_id: str, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    await asyncio.to_thread(_stack(request).apps.delete_voice, owner_of(key), voice_id)
    return {"id": voice_id, "object": "voice.deleted", "deleted": True}


# ---- feedback ----


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(..., min_length=1)
    rating: Literal["up", "down"] | None = None
    edited_text: str | None = Field(None, min_length=1, max_length=50_000)
    comment: str | None = Field(None, max_length=2000)


@router.post("/feedback", summary="Rate or correct a response")
async def feedback(
    body: FeedbackIn, request: Request, key: str = Depends(client_key)
) -> dict[str, Any]:
    if body.rating is None and body.edited_text is None:
        raise InvalidInput("give a rating, an edited_text, or both", param="rating")
    rating = {"up": 1, "down": -1, None: 0}[body.rating]
    stack = _stack(request)
    await stack.response_log.flush()  # the response may have been answered a moment ago
    store = stack.apps
    feedback_id = await asyncio.to_thread(
        store.add_feedback, owner_of(key), body.response_id, rating, body.edited_text, body.comment
    )
    accepted = body.edited_text is not None or rating > 0
    return {
        "id": feedback_id,
        "object": "feedback",
        "response_id": body.response_id,
        "accepted": accepted,
    }
