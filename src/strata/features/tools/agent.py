"""The agent loop: ``strata: {"agent": {"tools": [...], "max_steps": N}}`` on a chat turn.

strata runs the model with the tools, executes the calls it makes to server tools (built-in,
entry-point, MCP), feeds each result back as a ``role: tool`` message and runs the model
again, until it answers without a call or ``max_steps`` model calls have run. The last step
allowed is run without the tools, so the loop ends with an answer from what the tools
returned rather than with a call nobody will run; so is the step after a model repeats a
call it already has the result of.

Why a ``TurnDispatcher``: the loop is a way of answering a turn, not a model. Every step is
one ``ChatService.dispatch`` of the turn's model (a route's cascade included), so each step
is counted in the turn's generations: the gates settle, and the ledger bills, all of them.

A client's own function tools (the request's ``tools``, or a tool dict in ``agent.tools``)
are offered too; when the model calls one, the loop stops and returns that call to the
client, as OpenAI's Responses API does for function tools. A tool that fails (bad
arguments, an exception, an MCP error) is not a failed request: the error is the tool's
result, so the model can read it and try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from strata.core.errors import InvalidRequest
from strata.core.models.base import Chunk, Usage
from strata.core.service import ChatService
from strata.core.tools.parsing import call_deltas
from strata.core.turn import Choice, Turn, TurnResult
from strata.features.tools.registry import Tool, ToolContext, ToolError, ToolRegistry, definition

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 8000  # a tool result the model reads; the step report keeps it whole
# Appended to a final step's prompt once tools have answered. Without it the bundled 0.5B
# model, its tools gone, still imitates a call's JSON; with it, it writes the answer.
ANSWER_NOW = "Answer my question from the tool results above, in plain words."


def client_tool(spec: dict[str, Any]) -> dict[str, Any]:
    """A client's function tool in chat's shape, from chat's or the Responses API's."""
    if isinstance(spec.get("function"), dict):
        return {"type": "function", "function": dict(spec["function"])}
    function = {k: spec[k] for k in ("name", "description", "parameters", "strict") if k in spec}
    if not isinstance(function.get("name"), str):
        raise InvalidRequest("a function tool needs a name", param="tools")
    return {"type": "function", "function": function}


class Toolset:
    """The tools of one agent request: server tools by name, the client's definitions."""

    def __init__(self, specs: list[Any], passthrough: list[Any], registry: ToolRegistry) -> None:
        self.server: dict[str, Tool] = {}
        self.client: list[dict[str, Any]] = [client_tool(t) for t in passthrough]
        for spec in specs:
            if isinstance(spec, str):
                self._add(registry.get(spec))
            elif isinstance(spec, dict) and spec.get("type") == "function":
                self.client.append(client_tool(spec))
            elif isinstance(spec, dict) and isinstance(spec.get("type"), str):
                self._add(registry.get(spec["type"]))
            else:
                raise InvalidRequest(
                    "agent.tools entries are tool names or tool objects with a type", param="tools"
                )
        names = list(self.server) + [t["function"]["name"] for t in self.client]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidRequest(f"tool names given twice: {', '.join(dupes)}", param="tools")
        if not names:
            raise InvalidRequest("the agent needs at least one tool", param="tools")

    def _add(self, tool: Tool) -> None:
        self.server[tool.name] = tool

    def definitions(self) -> list[dict[str, Any]]:
        return [definition(t) for t in self.server.values()] + self.client


async def run_call(call: dict[str, Any], tool: Tool, context: ToolContext) -> dict[str, Any]:
    """Run one call; the step entry has ``result`` or ``error``, never raises."""
    function = call.get("function") or {}
    entry: dict[str, Any] = {
        "id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments") or "{}",
    }
    started = time.perf_counter()
    try:
        try:
            arguments = json.loads(entry["arguments"])
        except ValueError as exc:
            raise ToolError(f"arguments are not JSON: {exc}") from exc
        if not isinstance(arguments, dict):
            raise ToolError("arguments must be a JSON object")
        entry["result"] = await tool.call(arguments, context)
    except ToolError as exc:
        entry["error"] = str(exc) or type(exc).__name__
    except Exception as exc:
        log.warning("tool %r failed", entry["name"], exc_info=True)
        entry["error"] = f"{type(exc).__name__}: {exc}"
    entry["seconds"] = round(time.perf_counter() - started, 4)
    return entry


def tool_message(entry: dict[str, Any]) -> dict[str, Any]:
    """A step entry as the ``role: tool`` message the model reads next."""
    if "error" in entry:
        content = json.dumps({"error": entry["error"]})
    elif isinstance(entry["result"], str):
        content = entry["result"]
    else:
        content = json.dumps(entry["result"], default=str)
    if len(content) > MAX_RESULT_CHARS:
        content = content[:MAX_RESULT_CHARS] + " …(truncated)"
    return {"role": "tool", "tool_call_id": entry["id"], "name": entry["name"], "content": content}


class AgentLoop:
    """The ``TurnDispatcher`` for turns whose options carry ``agent``."""

    def __init__(
        self,
        service: ChatService,
        registry: Callable[[], Awaitable[ToolRegistry]],
        max_steps: int,
    ) -> None:
        self.service = service
        self.registry = registry
        self.max_steps = max_steps

    def takes(self, turn: Turn) -> bool:
        return isinstance(turn.options.get("agent"), dict)

    async def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        spec: dict[str, Any] = turn.options["agent"]
        max_steps = spec.get("max_steps") or self.max_steps
        if not isinstance(max_steps, int) or not 1 <= max_steps <= 50:
            raise InvalidRequest("agent.max_steps must be from 1 to 50", param="max_steps")
        passthrough = turn.gen.passthrough
        tools = Toolset(
            list(spec.get("tools") or []), passthrough.get("tools") or [], await self.registry()
        )
        context = ToolContext(turn.caller)
        messages = [dict(m) for m in turn.gen.messages or []]
        steps: list[dict[str, Any]] = []
        report: dict[str, Any] = {"steps": steps, "stopped": "answer"}
        result.report["agent"] = report
        total = Usage(0, 0)
        seen: set[tuple[str, str]] = set()
        answer_now = False
        for index in range(max_steps):
            final = answer_now or (index > 0 and index == max_steps - 1)
            billed, started = len(result.generations), time.perf_counter()
            with turn.trace.step(f"agent step {index + 1}", {"strata.agent.step": index + 1}):
                choice, chunks = await self._step(turn, result, messages, tools, index, final)
            text = "".join(c.text for c in chunks)
            if choice.usage:
                total = Usage(
                    total.prompt_tokens + choice.usage.prompt_tokens,
                    total.completion_tokens + choice.usage.completion_tokens,
                )
            calls = choice.tool_calls or []
            step: dict[str, Any] = {"step": index + 1, "model": result.served_by, "text": text}
            steps.append(step)
            mine = [c for c in calls if (c.get("function") or {}).get("name") in tools.server]
            theirs = [c for c in calls if c not in mine]
            if theirs:
                report["stopped"] = "client_tools"
                step["calls"] = [_unrun(c, "returned to the client") for c in theirs]
                step["calls"] += [
                    _unrun(c, "skipped: the client's call ends the loop") for c in mine
                ]
            elif mine and index == max_steps - 1:
                report["stopped"] = "max_steps"
                step["calls"] = [_unrun(c, "skipped: max_steps reached") for c in mine]
            elif mine and all(_key(c) in seen for c in mine):
                # A small model often repeats a call it already has the result of: answer
                # from the results given rather than loop on it.
                step["calls"] = [_unrun(c, "skipped: a repeat of an earlier call") for c in mine]
                answer_now = True
            elif mine:
                seen.update(_key(c) for c in mine)
                entries = await asyncio.gather(
                    *(run_call(c, tools.server[c["function"]["name"]], context) for c in mine)
                )
                step["calls"] = list(entries)
                messages.append({"role": "assistant", "content": text or None, "tool_calls": mine})
                messages.extend(tool_message(e) for e in entries)
            _bill(step, result, billed, started)
            if mine and not theirs and index < max_steps - 1:
                continue  # the next step reads the results (or, after a repeat, answers)
            for chunk in chunks:
                yield chunk
            if theirs:
                yield Chunk(extra={"tool_calls": call_deltas(theirs)})
            finish = "tool_calls" if theirs else (choice.finish_reason or "stop")
            if finish == "tool_calls" and not theirs:
                finish = "stop"
            yield Chunk(finish_reason=finish, usage=total)
            return

    async def _step(
        self,
        turn: Turn,
        result: TurnResult,
        messages: list[dict[str, Any]],
        tools: Toolset,
        index: int,
        final: bool,
    ) -> tuple[Choice, list[Chunk]]:
        """One model call of the loop. The client's ``tool_choice`` applies to the first
        step only (``required`` on every step would never end); a final step is run without
        the tools and with ``ANSWER_NOW`` after the results, so the model answers from them
        (a small model shown its tools keeps writing calls even under ``tool_choice:
        "none"``)."""
        passthrough = {
            k: v
            for k, v in turn.gen.passthrough.items()
            if k not in ("tools", "tool_choice", "parallel_tool_calls")
        }
        if not final:
            passthrough["tools"] = tools.definitions()
            wanted = turn.gen.passthrough.get("tool_choice") if index == 0 else "auto"
            if wanted is not None:
                passthrough["tool_choice"] = wanted
            if "parallel_tool_calls" in turn.gen.passthrough:
                passthrough["parallel_tool_calls"] = turn.gen.passthrough["parallel_tool_calls"]
        prompt = [dict(m) for m in messages]
        if final and any(m.get("role") == "tool" for m in messages):
            prompt.append({"role": "user", "content": ANSWER_NOW})
        gen = replace(turn.gen, messages=prompt, passthrough=passthrough)
        options = {k: v for k, v in turn.options.items() if k != "agent"}
        step_turn = Turn(turn.model, gen, turn.caller, options, turn.response_id)
        step_turn.trace, step_turn.background = turn.trace, turn.background
        choice, chunks = Choice(), []
        async for chunk in self.service.dispatch(step_turn, result):
            choice.add_tool_calls(chunk)
            choice.usage = chunk.usage or choice.usage
            choice.finish_reason = chunk.finish_reason or choice.finish_reason
            if chunk.text or chunk.logprobs:
                chunks.append(Chunk(text=chunk.text, logprobs=chunk.logprobs))
        return choice, chunks


def _key(call: dict[str, Any]) -> tuple[str, str]:
    """A call's identity: its name and its arguments, parsed and re-dumped when they parse."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    with contextlib.suppress(ValueError):
        arguments = json.dumps(json.loads(arguments), sort_keys=True)
    return str(function.get("name")), arguments


def _unrun(call: dict[str, Any], why: str) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments") or "{}",
        "status": why,
    }


def _bill(step: dict[str, Any], result: TurnResult, billed: int, started: float) -> None:
    """The step's time, tokens and cost: the generations it added to the turn's bill."""
    mine = result.generations[billed:]
    step["seconds"] = round(time.perf_counter() - started, 4)
    step["usage"] = {
        "prompt_tokens": sum(g.usage.prompt_tokens for g in mine),
        "completion_tokens": sum(g.usage.completion_tokens for g in mine),
    }
    step["cost_usd"] = round(sum(g.cost for g in mine), 10)
