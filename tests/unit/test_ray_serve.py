"""strata on a local Ray Serve (the session's ``ray_serve`` fixture): the gateway in front of
two replicas of a scripted model, admission at the gateway, and a replica killed mid-run
whose requests finish on the other with nothing lost."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import ray
from ray import serve

from strata.core.engine import Engine, Timings
from strata.core.models.base import GenerationRequest, SamplingParams
from strata.core.models.ray import RayBackend
from strata.edges.ray.deployments import gateway_backends
from tests.conftest import RAY_ANSWER, RayServe


def chat(model: str, *, stream: bool = False) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "count"}],
        "stream": stream,
        "temperature": 0,
    }


async def ask(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, str]:
    if not body["stream"]:
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code != 200:
            return response.status_code, response.json()["error"]["code"]
        return 200, response.json()["choices"][0]["message"]["content"]
    text = ""
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"]
                text += "".join(c["delta"].get("content") or "" for c in delta)
    return response.status_code, text


def test_two_model_replicas_answer_concurrent_requests(ray_serve: RayServe) -> None:
    async def run() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(base_url=ray_serve.root, timeout=60) as client:
            bodies = [chat("fake", stream=i % 2 == 0) for i in range(8)]
            return await asyncio.gather(*(ask(client, b) for b in bodies))

    assert asyncio.run(run()) == [(200, RAY_ANSWER)] * 8
    handle = serve.get_deployment_handle("model-fake", app_name="strata")
    seen: dict[str, int] = {}
    for _ in range(40):
        stats = handle.stats.remote().result(timeout_s=30)
        seen[stats["replica"]] = stats["generations"]
        if len(seen) == 2:
            break
    assert len(seen) == 2
    assert sum(seen.values()) == 8
    assert all(n > 0 for n in seen.values())


def test_the_gateways_admission_queue_works_behind_ray(ray_serve: RayServe) -> None:
    """``one``: one replica running one generation, one waiting at the gateway; a third
    concurrent request gets the usual 429."""

    async def run() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(base_url=ray_serve.root, timeout=60) as client:
            return await asyncio.gather(*(ask(client, chat("one")) for _ in range(3)))

    results = sorted(asyncio.run(run()))
    assert results == [(200, RAY_ANSWER), (200, RAY_ANSWER), (429, "queue_full")]


def test_a_replica_killed_mid_run_loses_no_request(ray_serve: RayServe) -> None:
    """The gateway's own path (``gateway_backends`` → ``RayBackend`` → handle), driven here
    so the test can count retries: twelve requests, four at a time over the two replicas;
    one replica is killed while both are generating."""
    handle = serve.get_deployment_handle("model-fake", app_name="strata")
    backends = gateway_backends(ray_serve.settings, {"fake": handle})
    model = backends["fake"]
    assert isinstance(model, RayBackend)
    engine = Engine(ray_serve.settings, {"fake": model})
    started = 0
    both_busy = asyncio.Event()

    async def one(stream: bool) -> str:
        nonlocal started
        request = GenerationRequest(
            kind="chat",
            params=SamplingParams(temperature=0),
            messages=[{"role": "user", "content": "count"}],
            stream=stream,
        )
        text = ""
        first = True
        async for chunk in engine.generate("fake", request, timings=Timings()):
            text += chunk.text
            if first and chunk.text:
                first = False
                started += 1
                if started == 4:
                    both_busy.set()
        return text

    async def kill_one_replica() -> None:
        await both_busy.wait()
        await asyncio.sleep(0.2)
        replicas = [
            a
            for a in ray.util.list_named_actors(all_namespaces=True)
            if "model-fake" in a["name"] and "REPLICA" in a["name"]
        ]
        assert len(replicas) == 2
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]))

    async def run() -> list[str]:
        killer = asyncio.create_task(kill_one_replica())
        texts = await asyncio.gather(*(one(stream=i % 3 != 0) for i in range(12)))
        await killer
        return list(texts)

    assert asyncio.run(run()) == [RAY_ANSWER] * 12
    assert model.retried >= 1


@pytest.fixture(autouse=True)
def _quiet_ray_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="ray")
