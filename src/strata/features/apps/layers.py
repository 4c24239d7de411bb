"""The application layers on the chat service (``strata.core.turn``), and the response log:

- ``ResponseLog`` records every answer (id → template, voice, inputs, output, owner) so
  ``POST /v1/feedback`` can refer to it; a ``TurnCompleted`` subscriber, so it sees the
  final text.
- ``TemplateLayer`` (``strata: {"template": NAME, "inputs": {...}}``) validates the inputs
  (422 naming the field) and writes the messages: system prompt and output format, the
  template's few-shot examples, then the answers users accepted for this template and voice
  (their edits, or thumbs-up), then the filled-in prompt.
- ``VoiceLayer`` (``strata: {"voice": ID}``) adds the voice to the system prompt and holds
  the output to its hard rules: regenerate with the violations named, then repair.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from typing import Any

from strata.core.errors import InvalidInput, StrataError
from strata.core.models.base import GenerationRequest, ResponseFormat
from strata.core.settings import DialogueSettings
from strata.core.turn import Turn, TurnCompleted, TurnResult
from strata.features.apps.store import AppStore, Example
from strata.features.apps.templates import Template, TemplateRegistry, validate_inputs
from strata.features.apps.voice import VoiceProfile, check, repair

BULLETS = "Answer with a bulleted list only: one item per line, each line starting with '- '."
JSON_ONLY = "Answer with one JSON object that follows the schema, and nothing else."
log = logging.getLogger("strata.features.apps")
_BULLET = re.compile(r"^\s*(?:[-*•‣▪]|\d+[.)])\s+")


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


class ResponseLog:
    """Writes happen in the background so no answer waits for a disk sync; ``flush`` waits
    for them, and the feedback endpoint calls it first, so a response can be rated the
    moment it has been received."""

    def __init__(self, store: AppStore) -> None:
        self.store = store
        self.pending: set[asyncio.Task[None]] = set()

    async def __call__(self, event: TurnCompleted) -> None:
        turn, result = event.turn, event.result
        result.report["response_id"] = turn.response_id
        if result.choices:
            template = turn.options.get("template")
            task = asyncio.ensure_future(
                asyncio.to_thread(
                    self.store.record,
                    turn.response_id,
                    turn.caller.owner,
                    result.served_by,
                    template,
                    turn.options.get("voice"),
                    turn.options.get("inputs") if template else None,
                    _last_user(turn.sent),  # the user's message as sent, before any layer
                    result.choices[0].text,
                )
            )
            self.pending.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not record response: %s", task.exception())

    async def flush(self) -> None:
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)


class TemplateLayer:
    name = "template"
    order = 10

    def __init__(
        self, registry: TemplateRegistry, store: AppStore, settings: DialogueSettings
    ) -> None:
        self.registry = registry
        self.store = store
        self.settings = settings

    async def before(self, turn: Turn, result: TurnResult) -> None:
        name = turn.options.get("template")
        if not name:
            return
        owner = turn.caller.owner
        template = await asyncio.to_thread(self.registry.get, owner, name)
        raw = turn.options.get("inputs") or {}
        if not isinstance(raw, dict):
            raise InvalidInput("inputs must be an object of field values", param="inputs")
        values = validate_inputs(template, raw)
        turn.options["inputs"] = values
        accepted = await asyncio.to_thread(
            self.store.examples,
            owner,
            template.name,
            turn.options.get("voice"),
            self.settings.feedback_examples,
        )
        extra = _last_user(turn.gen.messages or [])
        turn.gen.messages = self.messages(template, values, accepted, extra)
        params = turn.gen.params
        changes: dict[str, Any] = {}
        if params.max_tokens is None:
            changes["max_tokens"] = template.max_tokens
        if template.output == "json" and params.response_format.type == "text":
            changes["response_format"] = ResponseFormat(
                "json_schema", template.output_schema, template.name, True
            )
        if changes:
            turn.gen.params = dataclasses.replace(params, **changes)
        if template.quality is not None:
            turn.options.setdefault("quality", template.quality)
        result.report["template"] = {"name": template.name, "output": template.output}
        result.report["feedback_examples"] = len(accepted)

    def messages(
        self, template: Template, values: dict[str, Any], accepted: list[Example], extra: str
    ) -> list[dict[str, Any]]:
        system = template.system
        if template.output == "bullets":
            system = f"{system}\n{BULLETS}".strip()
        elif template.output == "json":
            schema = json.dumps(template.output_schema)
            system = f"{system}\n{JSON_ONLY}\nSchema: {schema}".strip()
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for shot in template.examples:
            messages.append({"role": "user", "content": template.render(shot.inputs)})
            messages.append({"role": "assistant", "content": shot.output})
        for example in reversed(accepted):  # oldest first, the latest closest to the request
            try:
                asked = template.render(validate_inputs(template, example.inputs or {}))
            except InvalidInput:  # the template changed since; its inputs no longer fit
                continue
            messages.append({"role": "user", "content": asked})
            messages.append({"role": "assistant", "content": example.output})
        prompt = template.render(values)
        if extra.strip():
            prompt += f"\n\nAdditional instructions: {extra.strip()}"
        messages.append({"role": "user", "content": prompt})
        return messages

    async def after(self, turn: Turn, result: TurnResult) -> None:
        info = result.report.get("template")
        if not info:
            return
        if info["output"] == "bullets":
            for choice in result.choices:
                choice.text = format_bullets(choice.text)
        elif info["output"] == "json" and result.choices:
            try:
                info["data"] = json.loads(result.choices[0].text)
            except ValueError:
                info["data"] = None


def format_bullets(text: str) -> str:
    """One ``- item`` per line, whatever list style the model chose."""
    items = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    return "\n".join(f"- {item}" for item in items if item)


class VoiceLayer:
    name = "voice"
    order = 20

    def __init__(self, store: AppStore, settings: DialogueSettings) -> None:
        self.store = store
        self.settings = settings

    async def profile(self, turn: Turn) -> VoiceProfile | None:
        voice_id = turn.options.get("voice")
        if not voice_id:
            return None
        data = await asyncio.to_thread(self.store.voice, turn.caller.owner, voice_id)
        return VoiceProfile.model_validate(data)

    async def before(self, turn: Turn, result: TurnResult) -> None:
        profile = await self.profile(turn)
        if profile is None:
            return
        accepted: list[Example] = []
        if not turn.options.get("template"):  # a template brings its own accepted examples
            accepted = await asyncio.to_thread(
                self.store.examples,
                turn.caller.owner,
                None,
                turn.options["voice"],
                self.settings.feedback_examples,
            )
        guide = profile.guide(accepted)
        messages = list(turn.gen.messages or [])
        if messages and messages[0].get("role") == "system":
            messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{guide}"}
        else:
            messages.insert(0, {"role": "system", "content": guide})
        turn.gen.messages = messages
        result.report["voice"] = {"id": turn.options["voice"]}
        if profile.has_hard_rules:
            turn.buffer_output = True  # a stream must be checked (and repaired) before it is sent

    async def after(self, turn: Turn, result: TurnResult) -> None:
        info = result.report.get("voice")
        profile = await self.profile(turn) if info is not None else None
        if profile is None or not profile.has_hard_rules or info is None:
            return
        for choice in result.choices:
            text = choice.text
            found = check(profile, text)
            info["violations"] = [v.as_dict() for v in found]
            info["regenerated"] = 0
            tries = 0
            while found and tries < self.settings.voice_retries:
                tries += 1
                try:
                    text = await self.regenerate(turn, text, [str(v) for v in found])
                except StrataError:
                    break  # e.g. the longer prompt no longer fits: repair instead
                info["regenerated"] = tries
                found = check(profile, text)
            info["repaired"] = bool(found)
            if found:
                text = repair(profile, text)
            info["remaining"] = [v.as_dict() for v in check(profile, text)]
            choice.text = text

    async def regenerate(self, turn: Turn, draft: str, problems: list[str]) -> str:
        fix = (
            "Your answer breaks the brand voice: it "
            + "; it ".join(problems)
            + ". Rewrite it so it follows every rule. Reply with the rewritten text only."
        )
        messages = [
            *(turn.gen.messages or []),
            {"role": "assistant", "content": draft},
            {"role": "user", "content": fix},
        ]
        gen = GenerationRequest(kind="chat", params=turn.gen.params, messages=messages)
        assert turn.complete is not None, "the chat service sets it when the turn starts"
        return (await turn.complete(gen)).strip()
