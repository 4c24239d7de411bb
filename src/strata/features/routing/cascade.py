"""The cascade router: answer with the smallest tier that is confident enough.

For a route's tiers (small → big) the router asks the first tier, scores its answer with the
route's confidence signal and keeps it when the score reaches the tier's threshold; else it
moves up. The last tier's answer is taken as it comes, so it streams live. A tier before the
last is buffered until it is scored: in a stream, the time to first token is then the whole
small answer plus the scoring (see the README); ``stream = "direct"`` streams the last tier
at once instead.

Degradation: a tier that is down (``BackendError``) or whose queue is full (``QueueFull``)
is skipped, and the answer comes from the best tier that did answer, marked ``degraded``.
If the last tier fails after a lower tier has answered, that answer is returned.

A specialist (``strata.core.protocols.Specialist``, see ``first_tier``) is asked before the
first tier; when it is confident enough it answers and no model runs. Lower tiers may get
worked examples in their prompt, and the last tier's answer a confidence (``few_shot``).

Every decision is reported in ``result.report["route"]`` (typed for the ledger in
``result.route``): each tier's confidence, threshold, cost and outcome, the reason for the
final choice, and the baseline cost of sending the request to the last tier alone
(estimated at its price when it did not run).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from typing import Any

from strata.core.engine import Engine, Timings
from strata.core.errors import BackendError, QueueFull
from strata.core.models.base import Chunk, GenerationRequest, Usage
from strata.core.pricing import CostMeter
from strata.core.turn import Generation, RouteOutcome, Turn, TurnResult
from strata.features.routing.few_shot import ExemplarLookup, FewShot
from strata.features.routing.first_tier import SpecialistLookup, ask_specialist
from strata.features.routing.probe import Answer, NoProbe, TierProbe
from strata.features.routing.settings import RouteSpec
from strata.features.routing.signals import Attempt, ConfidenceSignal, Need, create_signal
from strata.features.routing.tuning import RouteTuning

SCORING_TOP_LOGPROBS = 5


class Router:
    """A ``strata.core.turn.Dispatcher`` for route names (``auto``, ``auto-cheap``, …)."""

    def __init__(
        self,
        engine: Engine,
        routes: dict[str, RouteSpec],
        costs: CostMeter,
        tuning: dict[str, RouteTuning] | None = None,
        specialist: SpecialistLookup | None = None,
        exemplars: ExemplarLookup | None = None,
    ) -> None:
        self.engine = engine
        self.routes = routes
        self.costs = costs
        self.tuning = tuning or {}
        self.specialist = specialist  # looked up per turn: a new one serves without restart
        self.exemplars = exemplars

    def handles(self, model: str) -> bool:
        return model in self.routes

    def names(self) -> list[str]:
        return list(self.routes)

    def signal(self, name: str) -> ConfidenceSignal:
        spec, tuned = self.routes[name], self.tuning.get(name)
        if tuned is not None and tuned.signal:
            return create_signal(tuned.signal, **tuned.signal_options)
        return create_signal(spec.signal, **spec.signal_options)

    def prefilter(self, name: str) -> tuple[ConfidenceSignal | None, float]:
        spec, tuned = self.routes[name], self.tuning.get(name)
        if tuned is not None and tuned.prefilter_options:
            signal = create_signal(tuned.prefilter or "learned", **tuned.prefilter_options)
            return signal, tuned.prefilter_below
        if spec.prefilter:
            return create_signal(spec.prefilter), spec.prefilter_below
        return None, 0.0

    def thresholds(self, name: str, options: dict[str, Any]) -> list[float]:
        """Per-tier thresholds: calibrated ones, or for a requested quality the cheapest
        calibrated operating point that keeps it (without calibration: the quality itself,
        the score being read as the probability that the answer is right)."""
        spec, tuned = self.routes[name], self.tuning.get(name)
        base = [t.threshold for t in spec.tiers]
        if tuned is not None and tuned.thresholds:
            base = list(tuned.thresholds) + base[len(tuned.thresholds) :]
        quality = options.get("quality")
        if quality is not None:
            point = tuned.threshold_for(float(quality)) if tuned is not None else None
            value = point if point is not None else float(quality)
            base = [value] * (len(base) - 1) + base[-1:]
        return base

    def describe(self, name: str) -> dict[str, Any]:
        """What ``strata routes`` and ``GET /v1/routes`` show for a route."""
        spec, tuned = self.routes[name], self.tuning.get(name)
        signal = tuned.signal if tuned is not None and tuned.signal else spec.signal
        thresholds = self.thresholds(name, {})
        prefilter = None
        if tuned is not None and tuned.prefilter_options:
            prefilter = {"signal": tuned.prefilter or "learned", "below": tuned.prefilter_below}
        elif spec.prefilter:
            prefilter = {"signal": spec.prefilter, "below": spec.prefilter_below}
        return {
            "description": spec.description,
            "tiers": [
                {"model": t.model, "threshold": th}
                for t, th in zip(spec.tiers, thresholds, strict=True)
            ],
            "signal": signal,
            "prefilter": prefilter,
            "stream": spec.stream,
            "calibrated": tuned is not None,
            "target": tuned.target if tuned is not None else {},
        }

    async def collect(
        self, model: str, gen: GenerationRequest, turn: Turn, result: TurnResult, timings: Timings
    ) -> Answer:
        answer = Answer()
        stream = self.engine.generate(
            model, gen, key=turn.caller.queue, timings=timings, record=self._bill(result)
        )
        async for chunk in stream:
            answer.chunks.append(chunk)
            if chunk.usage is not None:
                answer.usage = chunk.usage
        return answer

    async def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        name, timings = turn.model, result.timings
        spec = self.routes[name]
        tiers = [t.model for t in spec.tiers]
        thresholds = self.thresholds(name, turn.options)
        max_cost = turn.options.get("max_cost")
        started = time.perf_counter()
        trail: list[dict[str, Any]] = [
            {"model": m, "threshold": th, "ran": False}
            for m, th in zip(tiers, thresholds, strict=True)
        ]
        info: dict[str, Any] = {"name": name, "tiers": trail, "degraded": False}
        result.report["route"] = info
        spent = 0.0
        kept: tuple[int, Answer, float | None] | None = None  # tier, answer, confidence
        first = 0
        reason = ""
        shots = FewShot(self.exemplars, turn)

        special = await ask_specialist(
            self.specialist, self.engine, self.costs, name, tiers[-1], turn, result
        )
        if special is not None:
            info["tiers"] = [special.entry, *trail]
            spent += special.answer.cost
            if special.kept:
                for chunk in special.answer_turn(info, result, started, _outcome):
                    yield chunk
                return

        prefilter, below = self.prefilter(name)
        if prefilter is not None and len(tiers) > 1:
            p = await prefilter.score(Attempt(list(turn.gen.messages or [])), NoProbe())
            trail[0]["prefilter"] = round(p, 4)
            if p < below:
                first = 1
                trail[0]["skipped"] = f"prefilter {p:.3f} < {below}: expected to fail"
        if turn.gen.stream and spec.stream == "direct":
            first = len(tiers) - 1
            trail_note = "stream = direct"
            for entry in trail[:first]:
                entry.setdefault("skipped", trail_note)

        signal = self.signal(name) if first < len(tiers) - 1 else None
        for index in range(first, len(tiers)):
            model, entry = tiers[index], trail[index]
            last = index == len(tiers) - 1
            if (
                max_cost is not None
                and kept is not None
                and spent + self.estimate(model, kept[1], turn) > float(max_cost)
            ):
                entry["skipped"] = "max_cost"
                reason = f"max_cost {max_cost} would be exceeded by {model}"
                break
            tier_timings = Timings()
            if last:
                result.answered_by = model  # before the first chunk: streams name it at once
                try:
                    async for chunk in self._stream_last(
                        turn, result, model, entry, tier_timings, started, shots
                    ):
                        yield chunk
                except (BackendError, QueueFull) as exc:
                    if entry.get("streamed"):
                        raise
                    if kept is None:  # tiers skipped on purpose (prefilter, direct) stand in
                        kept = await self._stand_in(turn, result, tiers[:first], trail)
                        if kept is None:
                            raise
                        spent += trail[kept[0]]["cost"]
                    entry["error"] = exc.message
                    info["degraded"] = True
                    reason = f"{model} unavailable; answered by {tiers[kept[0]]}"
                    break
                spent += entry["cost"]
                info.update(
                    answered_by=model,
                    confidence=None,
                    reason=reason or self._why_last(index, first, trail),
                    cost=round(spent, 10),
                    baseline_cost=entry["cost"],
                )
                result.answered_by = model
                result.route = _outcome(info)
                return
            gen = self._scoring_request(
                await shots.request(self.engine, model, turn.gen, entry), signal
            )
            span = turn.trace.step(f"chat {model}", _tier_attributes(name, index, model))
            try:
                answer = await self.collect(model, gen, turn, result, tier_timings)
            except (BackendError, QueueFull) as exc:
                entry["error"] = exc.message
                entry["skipped"] = "queue full" if isinstance(exc, QueueFull) else "down"
                info["degraded"] = True
                span.fail(exc)
                span.end()
                continue
            entry["ran"] = True
            cost = self.costs.cost(model, answer.usage)
            assert signal is not None
            probe = TierProbe(self, turn, result, model, answer)
            attempt = Attempt(
                list(turn.gen.messages or []), answer.text, answer.logprobs, answer.finish_reason
            )
            try:
                confidence = await signal.score(attempt, probe)
            except (BackendError, QueueFull) as exc:  # the check failed: trust the answer less
                entry["error"] = exc.message
                confidence = 0.0
            cost += probe.cost
            spent += cost
            entry.update(confidence=round(confidence, 4), cost=round(cost, 10))
            if span.recording:
                usage = answer.usage or Usage(0, 0)
                span.set(
                    {
                        "gen_ai.response.model": model,
                        "gen_ai.usage.input_tokens": usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": usage.completion_tokens,
                        "strata.confidence": confidence,
                        "strata.threshold": thresholds[index],
                        "strata.cost_usd": cost,
                        "strata.tier.kept": confidence >= thresholds[index],
                    }
                )
            span.end()
            kept = (index, answer, confidence)  # the biggest tier that answered so far
            if confidence >= thresholds[index]:
                reason = f"confidence {confidence:.3f} >= threshold {thresholds[index]}"
                break
        if kept is None:
            raise BackendError(f"route '{name}': no tier could answer")
        index, answer, kept_confidence = kept
        if not reason:
            reason = f"higher tiers unavailable; best answer from {tiers[index]}"
        info.update(
            answered_by=tiers[index],
            confidence=None if kept_confidence is None else round(kept_confidence, 4),
            reason=reason,
            cost=round(spent, 10),
            baseline_cost=round(self.estimate(tiers[-1], answer, turn), 10),
        )
        result.answered_by = tiers[index]
        result.route = _outcome(info)
        timings.ttft_s = time.perf_counter() - started
        for chunk in answer.chunks:
            yield chunk if turn.gen.params.logprobs else replace(chunk, logprobs=None)
        timings.total_s = time.perf_counter() - started

    async def _stand_in(
        self, turn: Turn, result: TurnResult, tiers: list[str], trail: list[dict[str, Any]]
    ) -> tuple[int, Answer, float | None] | None:
        """When the last tier fails, a tier skipped on purpose answers after all (unscored)."""
        for index in reversed(range(len(tiers))):
            gen = replace(turn.gen, stream=False)
            try:
                answer = await self.collect(tiers[index], gen, turn, result, Timings())
            except (BackendError, QueueFull) as exc:
                trail[index]["error"] = exc.message
                continue
            trail[index].update(
                ran=True, cost=round(self.costs.cost(tiers[index], answer.usage), 10)
            )
            return index, answer, None
        return None

    def _why_last(self, index: int, first: int, trail: list[dict[str, Any]]) -> str:
        if index == first and index > 0:
            return str(trail[0].get("skipped") or "first tiers unavailable")
        lower = [t for t in trail[:index] if t.get("ran")]
        if lower:
            t = lower[-1]
            return f"confidence {t['confidence']:.3f} < threshold {t['threshold']} at {t['model']}"
        return "lower tiers unavailable"

    async def _stream_last(
        self,
        turn: Turn,
        result: TurnResult,
        model: str,
        entry: dict[str, Any],
        tier_timings: Timings,
        started: float,
        shots: FewShot,
    ) -> AsyncGenerator[Chunk, None]:
        usage: Usage | None = None
        timings = result.timings
        index = len(self.routes[turn.model].tiers) - 1
        scored = shots.scored_answer()
        gen = scored.request if scored is not None else turn.gen
        with turn.trace.step(f"chat {model}", _tier_attributes(turn.model, index, model)) as span:
            async for chunk in self.engine.generate(
                model, gen, key=turn.caller.queue, timings=tier_timings, record=self._bill(result)
            ):
                if timings.ttft_s is None or not entry.get("streamed"):
                    timings.ttft_s = time.perf_counter() - started
                entry["streamed"] = True
                if chunk.usage is not None:
                    usage = chunk.usage
                yield scored.see(chunk) if scored is not None else chunk
            entry.update(ran=True, cost=round(self.costs.cost(model, usage), 10))
            if scored is not None:
                await scored.report(entry)
            if span.recording and usage is not None:
                span.set(
                    {
                        "gen_ai.response.model": model,
                        "gen_ai.usage.input_tokens": usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": usage.completion_tokens,
                        "strata.cost_usd": entry["cost"],
                        "strata.tier.kept": True,
                    }
                )
        timings.total_s = time.perf_counter() - started
        timings.queued_s = tier_timings.queued_s
        timings.prompt_tokens_per_s = tier_timings.prompt_tokens_per_s
        timings.tokens_per_s = tier_timings.tokens_per_s

    def _bill(self, result: TurnResult) -> Callable[[str, Usage], None]:
        """The engine's ``record`` hook: every generation a route causes is billed to its turn."""

        def record(model: str, usage: Usage) -> None:
            result.generations.append(Generation(model, usage, self.costs.cost(model, usage)))

        return record

    def _scoring_request(
        self, gen: GenerationRequest, signal: ConfidenceSignal | None
    ) -> GenerationRequest:
        """The lower tier's request: not streamed, and with logprobs when the signal reads them."""
        params = gen.params
        if signal is not None and Need.LOGPROBS in signal.needs and not params.logprobs:
            params = replace(params, logprobs=True, top_logprobs=SCORING_TOP_LOGPROBS)
        return replace(gen, params=params, stream=False)

    def estimate(self, model: str, answer: Answer, turn: Turn) -> float:
        """What ``model`` would cost for this request: the prompt the lower tier read and an
        answer as long as the lower tier's (the models' tokenizers are taken as alike)."""
        usage = answer.usage or Usage(0, 0)
        return self.costs.price(model).cost(usage)


def _tier_attributes(route: str, index: int, model: str) -> dict[str, str | int]:
    """A tier's span: the GenAI request plus which route and tier it is."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "strata.route": route,
        "strata.tier": index,
    }


def _outcome(info: dict[str, Any]) -> RouteOutcome:
    return RouteOutcome(
        name=info["name"],
        tiers_ran=[t["model"] for t in info["tiers"] if t.get("ran")],
        baseline_cost=float(info["baseline_cost"]),
        confidence=info.get("confidence"),
        degraded=bool(info.get("degraded")),
    )
