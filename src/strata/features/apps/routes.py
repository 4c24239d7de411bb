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

from strata.core.errors import ConfigError, InvalidInput
from strata.core.events import FeedbackGiven
from strata.core.ids import new_id
from strata.core.kernel import Kernel
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.tenancy import Caller
from strata.core.turn import Turn, TurnResult
from strata.core.web import CallerDep, caller, kernel
from strata.features.apps.feature import Apps
from strata.features.apps.templates import NAME, parse_template
from strata.features.apps.voice import VoiceProfile

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], tags=["apps"])


def _apps(request: Request) -> Apps:
    return kernel(request).feature("apps", Apps)


# ---- templates ----


class TemplateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    voice: str | None = None
    model: str | None = Field(None, description="Model or route (default: the template's)")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)


@router.get("/templates", summary="List the templates you can run")
async def list_templates(request: Request, who: CallerDep) -> dict[str, Any]:
    registry = _apps(request).templates
    found = await asyncio.to_thread(registry.all, who.owner)
    return {"object": "list", "data": [t.summary() for t in found.values()]}


@router.get("/templates/{name}", summary="One template in full")
async def get_template(name: str, request: Request, who: CallerDep) -> Any:
    template = await asyncio.to_thread(_apps(request).templates.get, who.owner, name)
    return {**template.model_dump(), "object": "template"}


@router.post("/templates", summary="Add or replace one of your own templates")
async def put_template(body: dict[str, Any], request: Request, who: CallerDep) -> dict[str, Any]:
    try:
        template = parse_template(body, "(request)")
    except ConfigError as exc:
        match = re.match(r"template \(request\): ([^:]+): ", exc.message)
        raise InvalidInput(exc.message, param=match.group(1) if match else None) from None
    await asyncio.to_thread(
        _apps(request).store.put_template, who.owner, template.name, template.model_dump()
    )
    return template.summary()


@router.delete("/templates/{name}", summary="Delete one of your own templates")
async def delete_template(name: str, request: Request, who: CallerDep) -> dict[str, Any]:
    await asyncio.to_thread(_apps(request).store.delete_template, who.owner, name)
    return {"name": name, "object": "template.deleted", "deleted": True}


async def run_template(
    kernel: Kernel, who: Caller, name: str, body: TemplateRun, response_id: str
) -> TurnResult:
    """Run a template as a chat turn (voice, routes, feedback examples)."""
    apps = kernel.feature("apps", Apps)
    template = await asyncio.to_thread(apps.templates.get, who.owner, name)
    model = body.model or template.route or kernel.settings.default_model
    params = SamplingParams(
        temperature=template.temperature if body.temperature is None else body.temperature,
        max_tokens=body.max_tokens,
    )
    options: dict[str, Any] = {"template": name, "inputs": body.inputs}
    if body.voice:
        options["voice"] = body.voice
    gen = GenerationRequest(kind="chat", params=params, messages=[])
    kernel.service.check_model(model)
    return await kernel.service.run(Turn(model, gen, who, options, response_id))


@router.post("/templates/{name}/run", summary="Run a template")
async def run(name: str, body: TemplateRun, request: Request, who: CallerDep) -> dict[str, Any]:
    rid = new_id("tmpl")
    result = await run_template(kernel(request), who, name, body, rid)
    info = result.report.get("template", {})
    usage = result.usage
    return {
        "id": rid,
        "object": "template.run",
        "template": name,
        "model": result.served_by,
        "output": result.texts[0],
        "data": info.get("data"),
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "strata": {**result.report, "cost_usd": round(sum(g.cost for g in result.generations), 10)},
    }


# ---- voices ----


class VoiceIn(VoiceProfile):
    id: str | None = Field(None, pattern=NAME, description="Your id (default: generated)")


@router.post("/voices", summary="Create a brand voice")
async def create_voice(body: VoiceIn, request: Request, who: CallerDep) -> dict[str, Any]:
    profile = body.model_dump(exclude={"id"})
    store = _apps(request).store
    voice_id = await asyncio.to_thread(store.put_voice, who.owner, body.id, profile, True)
    return {"id": voice_id, "object": "voice", **profile}


@router.get("/voices", summary="List your brand voices")
async def list_voices(request: Request, who: CallerDep) -> dict[str, Any]:
    found = await asyncio.to_thread(_apps(request).store.voices, who.owner)
    return {"object": "list", "data": [{"id": i, "object": "voice", **p} for i, p in found]}


@router.get("/voices/{voice_id}", summary="One brand voice")
async def get_voice(voice_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    profile = await asyncio.to_thread(_apps(request).store.voice, who.owner, voice_id)
    return {"id": voice_id, "object": "voice", **profile}


@router.put("/voices/{voice_id}", summary="Replace a brand voice")
async def put_voice(
    voice_id: str, body: VoiceProfile, request: Request, who: CallerDep
) -> dict[str, Any]:
    profile = body.model_dump()
    store = _apps(request).store
    await asyncio.to_thread(store.put_voice, who.owner, voice_id, profile, False)
    return {"id": voice_id, "object": "voice", **profile}


@router.delete("/voices/{voice_id}", summary="Delete a brand voice")
async def delete_voice(voice_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    await asyncio.to_thread(_apps(request).store.delete_voice, who.owner, voice_id)
    return {"id": voice_id, "object": "voice.deleted", "deleted": True}


# ---- feedback ----


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(..., min_length=1)
    rating: Literal["up", "down"] | None = None
    edited_text: str | None = Field(None, min_length=1, max_length=50_000)
    comment: str | None = Field(None, max_length=2000)


@router.post("/feedback", summary="Rate or correct a response")
async def feedback(body: FeedbackIn, request: Request, who: CallerDep) -> dict[str, Any]:
    if body.rating is None and body.edited_text is None:
        raise InvalidInput("give a rating, an edited_text, or both", param="rating")
    rating = {"up": 1, "down": -1, None: 0}[body.rating]
    apps = _apps(request)
    await apps.response_log.flush()  # the response may have been answered a moment ago
    store = apps.store
    feedback_id = await asyncio.to_thread(
        store.add_feedback, who.owner, body.response_id, rating, body.edited_text, body.comment
    )
    # Other features (distill learns from corrections) hear of it through the core event.
    await kernel(request).events.feedback(
        FeedbackGiven(who, body.response_id, rating, body.edited_text)
    )
    accepted = body.edited_text is not None or rating > 0
    return {
        "id": feedback_id,
        "object": "feedback",
        "response_id": body.response_id,
        "accepted": accepted,
    }
