"""The Ray edge without a Ray cluster: the ``[ray]`` settings, the gateway's share of a
model's replicas, and ``RayBackend``'s retry rules over a scripted deployment handle whose
replica dies mid-answer."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from strata.core.deployment import AutoscalingSpec, DeploymentSpec, RaySettings
from strata.core.engine import Engine, Timings
from strata.core.errors import (
    BackendError,
    BackendUnavailable,
    ModelLoadError,
    QueueFull,
    StrataError,
)
from strata.core.models.base import Capability, Chunk, GenerationRequest, SamplingParams, Usage
from strata.core.models.fake import FakeBackend, fake_tokens
from strata.core.models.ray import RayBackend
from strata.core.settings import ModelSpec, load_settings

ANSWER = "the quick brown fox jumps over the lazy dog"


class Replica:
    """One scripted call: yields the answer's tokens, dying after ``die_after`` of them."""

    def __init__(self, text: str, die_after: int | None) -> None:
        self.tokens = fake_tokens(text)
        self.die_after = die_after
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        for i, token in enumerate(self.tokens):
            if self.die_after is not None and i == self.die_after:
                raise ActorDiedError()
            await asyncio.sleep(0)
            yield Chunk(text=token)
        yield Chunk(finish_reason="stop", usage=Usage(3, len(self.tokens)))


class Handle:
    """A stand-in for a ``DeploymentHandle``: each call takes the next scripted replica."""

    def __init__(self, *calls: tuple[str, int | None] | StrataError) -> None:
        self.calls = list(calls)
        self.made: list[Replica] = []
        self.generate = self

    def options(self, **_: Any) -> Handle:
        return self

    def remote(self, request: GenerationRequest) -> Any:
        call = self.calls.pop(0)
        if isinstance(call, StrataError):
            return ErrorStream(call)
        replica = Replica(*call)
        self.made.append(replica)
        return replica


class ErrorStream:
    """A replica's stream that carries one error (sent as an item, not raised)."""

    def __init__(self, error: StrataError) -> None:
        self.error = error

    def cancel(self) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[Any]:
        yield self.error


def backend(handle: Handle, retries: int = 2) -> RayBackend:
    spec = ModelSpec(backend="fake")
    inner = FakeBackend("m", spec)
    return RayBackend("m", spec, inner=inner, handle=handle, retries=retries)


def request(
    *, stream: bool, temperature: float = 0.0, seed: int | None = None
) -> GenerationRequest:
    return GenerationRequest(
        kind="completion",
        prompt="go",
        params=SamplingParams(temperature=temperature, seed=seed),
        stream=stream,
    )


async def collect(model: RayBackend, req: GenerationRequest) -> tuple[str, list[Chunk]]:
    chunks = [c async for c in model.generate(req)]
    return "".join(c.text for c in chunks), chunks


def test_a_greedy_stream_resumes_on_another_replica_without_repeating_a_word() -> None:
    handle = Handle((ANSWER, 4), (ANSWER, None))
    model = backend(handle)
    text, chunks = asyncio.run(collect(model, request(stream=True)))
    assert text == ANSWER
    assert chunks[-1].usage == Usage(3, len(fake_tokens(ANSWER)))
    assert model.retried == 1


def test_a_seeded_stream_resumes_too() -> None:
    model = backend(Handle((ANSWER, 2), (ANSWER, None)))
    text, _ = asyncio.run(collect(model, request(stream=True, temperature=0.8, seed=7)))
    assert text == ANSWER


def test_a_freely_sampled_stream_that_sent_text_is_not_spliced() -> None:
    model = backend(Handle((ANSWER, 3), (ANSWER, None)))
    with pytest.raises(BackendUnavailable, match="cannot resume"):
        asyncio.run(collect(model, request(stream=True, temperature=0.8)))


def test_a_freely_sampled_stream_that_sent_nothing_is_retried() -> None:
    model = backend(Handle((ANSWER, 0), (ANSWER, None)))
    text, _ = asyncio.run(collect(model, request(stream=True, temperature=0.8)))
    assert text == ANSWER


def test_a_replayed_stream_that_differs_is_an_error() -> None:
    model = backend(Handle((ANSWER, 4), ("the quick red fox", None)))
    with pytest.raises(BackendError, match="did not repeat"):
        asyncio.run(collect(model, request(stream=True)))


def test_a_greedy_request_not_streamed_passes_chunks_on_as_they_come() -> None:
    """So the engine can stop background work (greedy summaries) between tokens."""
    model = backend(Handle((ANSWER, 4), (ANSWER, None)))
    text, chunks = asyncio.run(collect(model, request(stream=False)))
    assert text == ANSWER
    assert len(chunks) > 2
    assert model.retried == 1


def test_a_freely_sampled_request_not_streamed_restarts_from_scratch() -> None:
    model = backend(Handle((ANSWER, 5), ("another answer entirely", None)))
    text, chunks = asyncio.run(collect(model, request(stream=False, temperature=1.0)))
    assert text == "another answer entirely"
    # One chunk, as a non-streamed remote answer: no token rate is read from a replay.
    assert len(chunks) == 1
    assert chunks[0].usage == Usage(3, 3)


def test_retries_are_bounded() -> None:
    model = backend(Handle((ANSWER, 0), (ANSWER, 0)), retries=1)
    with pytest.raises(BackendUnavailable, match="2 tries"):
        asyncio.run(collect(model, request(stream=True)))


def test_a_replicas_own_error_arrives_as_itself_and_is_not_retried() -> None:
    handle = Handle(QueueFull("busy", retry_after=2.0), (ANSWER, None))
    with pytest.raises(QueueFull) as caught:
        asyncio.run(collect(backend(handle), request(stream=True)))
    assert caught.value.retry_after == 2.0
    assert len(handle.calls) == 1


def test_a_consumer_that_stops_early_cancels_the_replicas_stream() -> None:
    handle = Handle((ANSWER, None))
    model = backend(handle)

    async def first() -> None:
        stream = model.generate(request(stream=True))
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(first())
    assert handle.made[0].cancelled


def test_the_engine_admits_and_bills_a_ray_model_as_any_other(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, bundled_models=False)
    spec = ModelSpec(backend="fake", max_concurrency=1, max_queue=0)
    model = RayBackend(
        "m", spec, inner=FakeBackend("m", spec), handle=Handle((ANSWER, 2), (ANSWER, None))
    )
    engine = Engine(settings, {"m": model})
    billed: list[Usage] = []

    async def run() -> str:
        stream = engine.generate(
            "m", request(stream=True), timings=Timings(), record=lambda _, u: billed.append(u)
        )
        text = await anext(stream)
        with pytest.raises(QueueFull):  # one slot, no queue: the second caller is refused
            async for _ in engine.generate("m", request(stream=True), timings=Timings()):
                pass
        return text.text + "".join([c.text async for c in stream])

    assert asyncio.run(run()) == ANSWER
    assert billed == [Usage(3, len(fake_tokens(ANSWER)))]


def test_errors_cross_a_process_boundary_with_their_fields() -> None:
    error = pickle.loads(pickle.dumps(QueueFull("busy", retry_after=3.0)))
    assert isinstance(error, QueueFull)
    assert (error.message, error.retry_after, str(error)) == ("busy", 3.0, "busy")


def test_a_models_override_lays_only_its_own_fields_over_the_default() -> None:
    ray = RaySettings.model_validate(
        {
            "model": {"num_replicas": 2, "num_cpus": 2, "max_ongoing_requests": 1},
            "models": {"big": {"num_replicas": 4}},
        }
    )
    big = ray.for_model("big")
    assert (big.num_replicas, big.num_cpus, big.max_ongoing_requests) == (4, 2.0, 1)
    assert ray.for_model("small").num_replicas == 2


def test_ray_options_carry_replicas_or_autoscaling() -> None:
    fixed = DeploymentSpec(num_replicas=3, num_cpus=0.5).ray_options(default_ongoing=1)
    assert fixed == {
        "max_ongoing_requests": 1,
        "ray_actor_options": {"num_cpus": 0.5},
        "num_replicas": 3,
    }
    scaled = DeploymentSpec(
        max_ongoing_requests=2, autoscaling=AutoscalingSpec(min_replicas=0, max_replicas=5)
    ).ray_options(default_ongoing=1)
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"]["max_replicas"] == 5
    assert scaled["max_ongoing_requests"] == 2


def test_each_gateway_admits_its_share_of_the_models_replicas() -> None:
    ray = RaySettings.model_validate(
        {
            "gateway": {"num_replicas": 2},
            "model": {"num_replicas": 3},
            "models": {"big": {"autoscaling": {"max_replicas": 5}, "max_ongoing_requests": 2}},
        }
    )
    assert ray.gateway_share("small", per_replica=1) == 2  # 3 slots over 2 gateways, rounded up
    assert ray.gateway_share("big", per_replica=1) == 5  # 5 replicas x 2 over 2 gateways


def test_bad_autoscaling_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(StrataError, match="min_replicas"):
        load_settings(home=tmp_path, ray={"model": {"autoscaling": {"min_replicas": 3}}})


def test_the_gateway_calls_local_models_through_ray_and_remote_ones_directly(
    tmp_path: Path,
) -> None:
    from strata.core.models.remote import OpenAIBackend
    from strata.edges.ray.deployments import gateway_backends

    settings = load_settings(
        home=tmp_path,
        bundled_models=False,
        models={
            "local": ModelSpec(backend="fake", max_concurrency=2),
            "remote": ModelSpec(backend="openai", url="http://127.0.0.1:9/v1"),
        },
        ray={"gateway": {"num_replicas": 2}, "model": {"num_replicas": 3}},
    )
    backends = gateway_backends(settings, {"local": Handle()})
    local, remote = backends["local"], backends["remote"]
    assert isinstance(local, RayBackend)
    assert isinstance(local.inner, FakeBackend)
    assert local.spec.max_concurrency == 3  # 3 replicas x 2 at once, over 2 gateways
    assert isinstance(remote, OpenAIBackend)


def test_strata_serve_ray_deploys_the_configured_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import strata.edges.ray.app as ray_app
    from strata.edges.cli.main import main

    config = tmp_path / "strata.toml"
    config.write_text(
        'bundled_models = false\n[models.f]\nbackend = "fake"\n[ray.models.f]\nnum_replicas = 3\n'
    )
    deployed: list[Any] = []
    monkeypatch.setattr(ray_app, "run", deployed.append)
    result = CliRunner().invoke(
        main, ["serve", "--ray", "--config", str(config), "--port", "8123"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (settings,) = deployed
    assert settings.port == 8123
    assert settings.ray.for_model("f").num_replicas == 3
    assert "Ray Serve" in result.stderr


def test_a_local_ray_reserves_what_the_deployments_ask_for(tmp_path: Path) -> None:
    from strata.edges.ray.app import local_models, reserved_cpus

    settings = load_settings(
        home=tmp_path,
        bundled_models=False,
        models={
            "a": ModelSpec(backend="fake"),
            "b": ModelSpec(backend="fake"),
            "remote": ModelSpec(backend="openai", url="http://127.0.0.1:9/v1"),
        },
        ray={
            "gateway": {"num_replicas": 2, "num_cpus": 0.5},
            "model": {"num_cpus": 2},
            "models": {"b": {"autoscaling": {"max_replicas": 3}}},
        },
    )
    assert set(local_models(settings)) == {"a", "b"}
    assert reserved_cpus(settings) == 2 * 0.5 + 2 + 3 * 2


class Unary:
    """A handle method whose calls answer (or raise) the scripted results in turn."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)

    def remote(self, *args: Any) -> Any:
        result = self.results.pop(0)

        async def answer() -> Any:
            if isinstance(result, ActorDiedError):
                raise result
            return result

        return answer()


def test_loading_learns_the_replicas_capabilities_and_survives_a_lost_replica() -> None:
    handle = Handle()
    handle.load = Unary(ActorDiedError(), ["chat", "streaming"])  # type: ignore[attr-defined]
    model = backend(handle)
    asyncio.run(model.load())
    assert model.loaded
    assert model.capabilities == {Capability.CHAT, Capability.STREAMING}


def test_a_replica_that_cannot_load_says_why() -> None:
    handle = Handle()
    handle.load = Unary(ModelLoadError("no GGUF file at /x"))  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError, match="no GGUF"):
        asyncio.run(backend(handle).load())
