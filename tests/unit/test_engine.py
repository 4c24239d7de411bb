"""Engine.generate: capability checks, accounting, error translation, idle unloading."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from strata.core.engine import Engine, Timings
from strata.core.errors import (
    BackendError,
    ContextWindowExceeded,
    InvalidRequest,
    ModelNotFound,
    Preempted,
)
from strata.core.models.base import Chunk, GenerationRequest, ResponseFormat, SamplingParams, Usage
from strata.core.settings import ModelSpec, Settings
from strata.edges.cli.client import LocalClient
from tests.conftest import fake, fake_settings


def chat(**params: Any) -> GenerationRequest:
    return GenerationRequest(
        kind="chat", params=SamplingParams(**params), messages=[{"role": "user", "content": "hi"}]
    )


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=5))


async def drain(engine: Engine, name: str, request: GenerationRequest, **kw: Any) -> list[Chunk]:
    return [c async for c in engine.generate(name, request, timings=Timings(), **kw)]


def test_unknown_model(engine: Engine) -> None:
    with pytest.raises(ModelNotFound) as info:
        engine.get("nope")
    assert info.value.param == "model"
    assert "Available: fake, slow, base" in info.value.message


@pytest.mark.parametrize(
    ("capabilities", "request_", "param"),
    [
        (["completion"], chat(), "model"),
        (["chat"], chat(logprobs=True), "logprobs"),
        (["chat"], chat(response_format=ResponseFormat(type="json_object")), "response_format"),
        (["chat"], None, "tools"),
    ],
)
def test_check_refuses_what_the_model_cannot_do(
    capabilities: list[str], request_: GenerationRequest | None, param: str
) -> None:
    spec = ModelSpec(backend="fake", capabilities=capabilities)
    engine = Engine(Settings(bundled_models=False, models={"m": spec}))
    if request_ is None:
        request_ = chat()
        request_.passthrough["tools"] = [{"type": "function"}]
    with pytest.raises(InvalidRequest) as info:
        engine.check(engine.get("m"), request_)
    assert info.value.param == param
    assert "'m'" in info.value.message


def test_generate_accounts_usage_and_timings(engine: Engine) -> None:
    seen: list[tuple[str, Usage | None, Timings, BaseException | None]] = []
    engine.observers.append(lambda *args: seen.append(args))
    fake(engine, "slow").enqueue("a b c")

    async def go() -> None:
        timings = Timings()
        chunks = [c async for c in engine.generate("slow", chat(), timings=timings)]
        assert "".join(c.text for c in chunks) == "a b c"
        assert timings.ttft_s is not None and timings.ttft_s > 0
        assert timings.total_s >= timings.ttft_s
        assert timings.tokens_per_s is not None and timings.tokens_per_s > 0
        assert timings.prompt_tokens_per_s is not None

    run(go)
    ((name, usage, timings, error),) = seen
    assert (name, usage, error) == ("slow", Usage(2, 3), None)
    assert timings.as_dict()["total_s"] is not None


def test_backend_bug_becomes_backend_error(engine: Engine) -> None:
    errors: list[BaseException | None] = []
    engine.observers.append(lambda _n, _u, _t, e: errors.append(e))
    fake(engine).enqueue(KeyError("oops"))

    async def go() -> None:
        with pytest.raises(BackendError, match="model 'fake' failed"):
            await drain(engine, "fake", chat())
        assert engine.get("fake").scheduler.active == 0

    run(go)
    assert isinstance(errors[0], BackendError)


def test_strata_errors_pass_through(engine: Engine) -> None:
    async def go() -> None:
        with pytest.raises(ContextWindowExceeded):
            await drain(engine, "fake", chat(max_tokens=1000))

    run(go)


def test_closing_the_stream_frees_the_slot(engine: Engine) -> None:
    slow = fake(engine, "slow")
    slow.enqueue(" ".join(["w"] * 50))

    async def go() -> None:
        stream = engine.generate("slow", chat(), timings=Timings())
        await anext(stream)
        assert engine.get("slow").scheduler.active == 1
        await stream.aclose()  # type: ignore[attr-defined]
        assert engine.get("slow").scheduler.active == 0
        assert slow.cancelled == 1

    run(go)


def test_idle_model_is_unloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(backend="fake", idle_unload_s=0.01)
    engine = Engine(
        Settings(bundled_models=False, models={"m": spec, "keep": ModelSpec(backend="fake")})
    )
    real_sleep = asyncio.sleep

    async def quick_sleep(delay: float, *args: Any) -> Any:
        return await real_sleep(min(delay, 0.01), *args)

    monkeypatch.setattr(asyncio, "sleep", quick_sleep)

    async def go() -> None:
        await engine.startup()
        await drain(engine, "m", chat())
        await drain(engine, "keep", chat())
        m, keep = engine.get("m").backend, engine.get("keep").backend
        assert m.loaded and keep.loaded
        while m.loaded:
            await real_sleep(0.01)
        assert keep.loaded  # no idle_unload_s: kept
        await engine.shutdown()

    run(go)


def test_no_reaper_without_idle_unload(engine: Engine) -> None:
    async def go() -> None:
        await engine.startup()
        assert not engine._tasks
        assert engine.ready
        await engine.shutdown()

    run(go)


def test_local_client(settings: Settings) -> None:
    async def go() -> None:
        client = LocalClient(settings)
        fake(client.engine).enqueue("x y")
        chunks = [c async for c in client.stream("fake", chat())]
        assert "".join(c.text for c in chunks) == "x y"
        assert client.timings.ttft_s is not None
        cards = await client.models()
        assert [c["id"] for c in cards] == ["fake", "slow", "base"]
        assert cards[0]["backend"] == "fake"
        await client.close()

    run(go)


def test_background_generation_yields_to_a_user(tmp_path: Path) -> None:
    """A long background generation on a one-slot model stops at its next token when a user
    asks, the user is answered after one token's wait, and the background caller is told."""
    settings = fake_settings(tmp_path)

    async def go() -> None:
        engine = Engine(settings)
        slow = fake(engine, "slow")
        slow.enqueue(" ".join(["word"] * 200), "answer")
        background_timings, user_timings = Timings(), Timings()

        async def background() -> None:
            async for _ in engine.generate(
                "slow", chat(), key="bg", timings=background_timings, background=True
            ):
                pass

        task = asyncio.create_task(background())
        await asyncio.sleep(0.12)  # a couple of tokens in
        stream = engine.generate("slow", chat(), timings=user_timings)
        text = "".join([c.text async for c in stream])
        assert text == "answer"
        assert user_timings.queued_s < 0.05 * 3  # one token of the background work, not 200
        with pytest.raises(Preempted):
            await task
        assert slow.cancelled == 1

    asyncio.run(go())


def test_background_generation_yields_when_a_user_is_admitted_beside_it(tmp_path: Path) -> None:
    """On a local model with two slots a user's request is admitted at once, beside a
    background generation; the background work stops then, before its next token (here a
    second away), and is not admitted again while the user's answer runs."""
    spec = ModelSpec(backend="fake", n_ctx=256, max_concurrency=2, options={"delay_s": 1.0})
    settings = Settings(home=tmp_path / "home", bundled_models=False, models={"pair": spec})

    async def go() -> None:
        engine = Engine(settings)
        pair = fake(engine, "pair")
        pair.enqueue("one two three", "answer")
        scheduler = engine.get("pair").scheduler

        async def background() -> None:
            await drain(engine, "pair", chat(), key="bg", background=True)

        task = asyncio.create_task(background())
        await asyncio.sleep(0.05)  # running, its first token a second away
        user = asyncio.create_task(drain(engine, "pair", chat()))
        await asyncio.sleep(0.1)
        assert task.done() and not user.done()
        with pytest.raises(Preempted):
            await task
        assert pair.cancelled == 1 and pair.tokens_emitted == 0
        retry = asyncio.create_task(background())
        await asyncio.sleep(0.1)
        assert scheduler.active == 1 and scheduler.depth == 1  # waits for the user, slot free
        assert "".join(c.text for c in await user) == "answer"
        await asyncio.wait_for(retry, 5)  # then runs to the end (the default output)
        assert (scheduler.active, scheduler.depth) == (0, 0)

    asyncio.run(go())
