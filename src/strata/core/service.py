"""The ``ChatService`` owns a chat turn, the same for every door a request comes in by (HTTP,
the CLI's in-process client, a template run):

    layers' ``before`` (declared order) → gates admit (budgets, rate limits) → dispatch (a
    route's cascade, or one model), n times → layers' ``after`` (reverse order) →
    ``TurnCompleted`` (ledger, response log, transcript) → gates settle

Gates settle however the turn ends (answered, failed, client gone), with what it generated,
so a refused or failed request never keeps what it reserved.

When a layer may rewrite the answer (``turn.buffer_output``), a stream is generated whole and
replayed, since text once sent cannot be unsent. A client that hangs up stops every choice
still generating (``hangup``), so nobody holds a model for an answer no one receives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strata.core.engine import Engine
from strata.core.events import TurnEvents
from strata.core.ids import new_id
from strata.core.models.base import Chunk, GenerationRequest, Usage
from strata.core.tenancy import Caller
from strata.core.tools.parsing import call_deltas
from strata.core.tracing import NoTracer, Tracer, traced_generation
from strata.core.turn import (
    Choice,
    Dispatcher,
    Gate,
    Generation,
    Layer,
    Pass,
    Turn,
    TurnCompleted,
    TurnDispatcher,
    TurnResult,
)

T = TypeVar("T")


class ClientGone(Exception):
    """The client hung up before the answer was ready."""


Hangup = Callable[[], Awaitable[Any]]


async def until_hangup(jobs: Sequence[Awaitable[T]], hangup: Hangup | None) -> list[T]:
    """Run ``jobs`` together. When one fails (a full queue, say) or ``hangup()`` returns
    first, stop the rest rather than let them hold a model; a hang-up raises ``ClientGone``."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    gathered = asyncio.gather(*tasks)
    watcher = asyncio.ensure_future(hangup()) if hangup is not None else None
    try:
        waiting: set[asyncio.Future[Any]] = {gathered}
        if watcher is not None:
            waiting.add(watcher)
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not gathered.done():
            raise ClientGone
        return gathered.result()
    finally:
        rest: list[asyncio.Future[Any]] = list(tasks)
        if watcher is not None:
            watcher.cancel()
            rest.append(watcher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


async def prime(stream: AsyncGenerator[T, None]) -> T:
    """The first item of a stream, so errors before it still become ordinary errors."""
    try:
        return await anext(stream)
    except BaseException:
        with contextlib.suppress(Exception):
            await stream.aclose()
        raise


def turn_attributes(turn: Turn) -> dict[str, Any]:
    """The request span's attributes: OpenTelemetry's GenAI conventions plus the tenant."""
    params = turn.gen.params
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "strata",
        "gen_ai.request.model": turn.model,
        "gen_ai.request.max_tokens": params.max_tokens,
        "gen_ai.request.temperature": params.temperature,
        "gen_ai.request.top_p": params.top_p,
        "gen_ai.response.id": turn.response_id,
        "strata.tenant": turn.caller.tenant,
    }


class ChatService:
    def __init__(
        self,
        engine: Engine,
        events: TurnEvents | None = None,
        price: Callable[[str, Usage], float] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.engine = engine
        self.events = events or TurnEvents()
        self.price = price
        self.tracer: Tracer = tracer or NoTracer()
        self.layers: list[Layer] = []
        self.dispatchers: list[Dispatcher] = []
        self.turn_dispatchers: list[TurnDispatcher] = []
        self.gates: list[Gate] = []

    def add_layer(self, layer: Layer) -> None:
        self.layers.append(layer)
        self.layers.sort(key=lambda layer: layer.order)

    def add_dispatcher(self, dispatcher: Dispatcher) -> None:
        self.dispatchers.append(dispatcher)

    def add_turn_dispatcher(self, dispatcher: TurnDispatcher) -> None:
        self.turn_dispatchers.append(dispatcher)

    def add_gate(self, gate: Gate) -> None:
        self.gates.append(gate)

    async def admit(
        self, caller: Caller, model: str, gens: Sequence[GenerationRequest]
    ) -> Admission:
        """Ask every gate whether ``caller`` may run ``gens`` on ``model``; raises the first
        refusal (releasing what the gates before it granted). Any request that generates
        outside a turn (``/v1/completions``) calls this too, and settles the result."""
        passes: list[Pass] = []
        try:
            for gate in self.gates:
                granted = gate.admit(caller, model, gens)
                if granted is not None:
                    passes.append(granted)
        except BaseException:
            await Admission(passes).settle(())
            raise
        return Admission(passes)

    def handles(self, model: str) -> bool:
        """Whether ``model`` names something servable (a model or a dispatcher's name)."""
        return model in self.engine.models or any(d.handles(model) for d in self.dispatchers)

    def check_model(self, model: str) -> None:
        """Raise the usual 404 naming the models when ``model`` is not servable."""
        if not self.handles(model):
            self.engine.get(model)

    def dispatched_names(self) -> list[str]:
        return [name for d in self.dispatchers for name in d.names()]

    # ---- the turn ----

    def start(self, turn: Turn) -> TurnResult:
        """A result for ``turn``, and the turn's way to generate once more, billed to it."""
        if not turn.response_id:
            turn.response_id = new_id("chatcmpl")
        result = TurnResult(turn.model)
        turn.trace = self.tracer.start("strata.turn", turn_attributes(turn))

        async def complete(gen: GenerationRequest) -> str:
            again = Turn(turn.model, gen, turn.caller, turn.options, turn.response_id)
            again.trace = turn.trace
            # Its own report (a route's decision for the retry is not the answer's), one bill.
            return await self.complete(
                again, TurnResult(turn.model, generations=result.generations)
            )

        turn.complete = complete
        return result

    async def before(self, turn: Turn, result: TurnResult) -> None:
        for layer in self.layers:
            with turn.trace.step(f"layer {layer.name} before", {"strata.layer": layer.name}):
                await layer.before(turn, result)

    async def after(self, turn: Turn, result: TurnResult) -> None:
        for layer in reversed(self.layers):
            with turn.trace.step(f"layer {layer.name} after", {"strata.layer": layer.name}):
                await layer.after(turn, result)
        if turn.trace.recording:
            _describe(turn, result)
        await self.events.publish(TurnCompleted(turn, result))

    def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        """One choice's stream: from a turn dispatcher that takes the turn (the agent loop),
        else as ``dispatch`` gives it."""
        for taker in self.turn_dispatchers:
            if taker.takes(turn):
                return taker.generate(turn, result)
        return self.dispatch(turn, result)

    def dispatch(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        """One generation for ``turn`` from a dispatcher of its model name (a route) or the
        named model, billed to ``result``; what a turn dispatcher calls for each step."""
        for dispatcher in self.dispatchers:
            if dispatcher.handles(turn.model):
                return dispatcher.generate(turn, result)
        result.answered_by = turn.model
        stream = self.engine.generate(
            turn.model,
            turn.gen,
            key=turn.caller.queue,
            background=turn.background,
            timings=result.timings,
            record=lambda model, usage: result.generations.append(
                Generation(model, usage, self.price(model, usage) if self.price else 0.0)
            ),
        )
        if turn.trace.recording:
            return traced_generation(turn.trace, turn.model, stream)
        return stream

    async def _choice(self, turn: Turn, result: TurnResult) -> Choice:
        choice = Choice()
        parts: list[str] = []
        async for chunk in self.generate(turn, result):
            parts.append(chunk.text)
            choice.logprobs.extend(chunk.logprobs or [])
            choice.finish_reason = chunk.finish_reason or choice.finish_reason
            choice.usage = chunk.usage or choice.usage
            choice.add_tool_calls(chunk)
        choice.text = "".join(parts)
        return choice

    async def run(self, turn: Turn, n: int = 1, *, hangup: Hangup | None = None) -> TurnResult:
        """The whole turn, answered at once (``n`` choices generated together)."""
        result = self.start(turn)
        try:
            await self.before(turn, result)
            admission = await self.admit(turn.caller, turn.model, [turn.gen] * n)
            try:
                return await self._finish(turn, result, n, hangup)
            finally:
                await admission.settle(result.generations)
        except BaseException as exc:
            turn.trace.fail(exc)
            raise
        finally:
            turn.trace.end()

    async def _finish(
        self, turn: Turn, result: TurnResult, n: int, hangup: Hangup | None
    ) -> TurnResult:
        jobs = [self._choice(turn, result) for _ in range(n)]
        result.choices = await until_hangup(jobs, hangup)
        await self.after(turn, result)
        return result

    async def stream(self, turn: Turn, n: int = 1, *, hangup: Hangup | None = None) -> TurnStream:
        """The turn as a stream of ``(choice index, chunk)``; the layers' ``before`` and the
        first chunk are awaited here, so errors up to the first token raise at once. A stream
        a layer may rewrite is generated whole first (``hangup`` stops it), then replayed."""
        result = self.start(turn)
        try:
            await self.before(turn, result)
            admission = await self.admit(turn.caller, turn.model, [turn.gen] * n)
            try:
                if turn.buffer_output:
                    try:
                        finished = await self._finish(turn, result, n, hangup)
                    finally:
                        await admission.settle(result.generations)
                    turn.trace.end()
                    return TurnStream(self._replay(finished), result)
                stream = self._live(turn, result, n, admission)
                first = await prime(stream)
            except BaseException:
                await admission.settle(result.generations)  # once: a second call does nothing
                raise
        except BaseException as exc:
            turn.trace.fail(exc)
            turn.trace.end()
            raise
        return TurnStream(_prepend(first, stream), result)

    async def _live(
        self, turn: Turn, result: TurnResult, n: int, admission: Admission
    ) -> AsyncGenerator[tuple[int, Chunk], None]:
        try:
            for index in range(n):
                choice = Choice()
                result.choices.append(choice)
                parts: list[str] = []
                stream = self.generate(turn, result)
                try:
                    async for chunk in stream:
                        parts.append(chunk.text)
                        choice.finish_reason = chunk.finish_reason or choice.finish_reason
                        choice.usage = chunk.usage or choice.usage
                        choice.add_tool_calls(chunk)
                        yield index, chunk
                finally:
                    await stream.aclose()  # a client gone mid-stream frees the model now
                choice.text = "".join(parts)
            await self.after(turn, result)
        except Exception as exc:
            turn.trace.fail(exc)
            raise
        finally:
            await admission.settle(result.generations)
            turn.trace.end()

    async def _replay(self, result: TurnResult) -> AsyncGenerator[tuple[int, Chunk], None]:
        for index, choice in enumerate(result.choices):
            calls = {"tool_calls": call_deltas(choice.tool_calls)} if choice.tool_calls else None
            yield index, Chunk(text=choice.text, usage=choice.usage, extra=calls)
            yield (
                index,
                Chunk(finish_reason=choice.finish_reason or "stop", logprobs=choice.logprobs),
            )

    async def complete(self, turn: Turn, result: TurnResult | None = None) -> str:
        """One answer to ``turn.gen`` as it stands, without the layers (what a layer calls to
        regenerate or a summariser to summarise); billed to ``result`` when given."""
        result = result or TurnResult(turn.model)
        return (await self._choice(turn, result)).text


class Admission:
    """What the gates granted one request; ``settle`` tells each how it ended, once."""

    def __init__(self, passes: Sequence[Pass]) -> None:
        self.passes = list(passes)
        self.settled = not self.passes

    async def settle(self, generations: Sequence[Generation]) -> None:
        if self.settled:
            return
        self.settled = True
        for granted in self.passes:
            await granted.settle(generations)


class TurnStream:
    """``(choice index, chunk)`` pairs; ``result`` is complete once they are exhausted."""

    def __init__(self, chunks: AsyncGenerator[tuple[int, Chunk], None], result: TurnResult):
        self.chunks = chunks
        self.result = result

    def __aiter__(self) -> AsyncIterator[tuple[int, Chunk]]:
        return self.chunks

    async def aclose(self) -> None:
        await self.chunks.aclose()


async def _prepend(
    first: tuple[int, Chunk], rest: AsyncGenerator[tuple[int, Chunk], None]
) -> AsyncGenerator[tuple[int, Chunk], None]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


def _describe(turn: Turn, result: TurnResult) -> None:
    """The request span's outcome: GenAI usage and strata's route, confidence and cost."""
    usage = result.usage
    route = result.route
    turn.trace.set(
        {
            "gen_ai.response.model": result.served_by,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.response.finish_reasons": ",".join(
                c.finish_reason or "stop" for c in result.choices
            ),
            "strata.cost_usd": sum(g.cost for g in result.generations),
            "strata.generations": len(result.generations),
            "strata.route": route.name if route is not None else None,
            "strata.confidence": route.confidence if route is not None else None,
            "strata.baseline_cost_usd": route.baseline_cost if route is not None else None,
            "strata.degraded": route.degraded if route is not None else None,
        }
    )
