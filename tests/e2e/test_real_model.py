"""End to end on the real bundled 0.5B model, through the official openai SDK."""

from __future__ import annotations

import itertools
import json
import math
import threading
import time

import httpx
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


def test_non_stream_chat(sdk: openai.OpenAI) -> None:
    r = sdk.chat.completions.create(model="small", messages=HELLO, max_tokens=24, temperature=0)
    assert r.model == "small"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in {"stop", "length"}
    assert r.usage is not None and r.usage.prompt_tokens > 5 and r.usage.completion_tokens > 0
    timings = (r.model_extra or {})["strata"]["timings"]
    assert timings["time_to_first_token_s"] > 0


def test_stream_matches_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="small",
        messages=HELLO,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage, finish = [], None, None
    for event in stream:
        if event.usage:
            usage = event.usage
        for choice in event.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(parts).strip()
    assert finish in {"stop", "length"}
    assert usage is not None and 0 < usage.completion_tokens <= 24


def test_logprobs_are_a_distribution(sdk: openai.OpenAI) -> None:
    r = sdk.chat.completions.create(
        model="small",
        messages=HELLO,
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=5,
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content) == r.usage.completion_tokens  # type: ignore[union-attr]
    for item in content:
        tops = item.top_logprobs
        assert len(tops) == 5
        assert all(a.logprob >= b.logprob for a, b in itertools.pairwise(tops))
        assert sum(math.exp(t.logprob) for t in tops) <= 1.0 + 1e-4
        # Greedy decoding picks the most likely token.
        assert item.logprob == pytest.approx(tops[0].logprob, abs=1e-4)
    assert "".join(i.token for i in content) == r.choices[0].message.content


def test_json_schema_output_parses(sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    r = sdk.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Name a large city and its population."}],
        max_tokens=60,
        temperature=0.8,
        seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    data = json.loads(r.choices[0].message.content or "")
    assert set(data) == {"city", "population"}
    assert isinstance(data["population"], int)


def test_base_model_completion(sdk: openai.OpenAI) -> None:
    r = sdk.completions.create(
        model="base", prompt="One, two, three, four,", max_tokens=6, temperature=0, logprobs=2
    )
    assert r.model == "base"
    assert r.choices[0].text
    assert r.choices[0].logprobs is not None
    assert len(r.choices[0].logprobs.tokens or []) == r.usage.completion_tokens  # type: ignore[union-attr]


def test_error_classes(sdk: openai.OpenAI, real_server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nope", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="messages"):
        sdk.chat.completions.create(model="small", messages=[])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        sdk.chat.completions.create(model="small", messages=HELLO, temperature=5)
    with pytest.raises(openai.BadRequestError) as window:
        sdk.chat.completions.create(model="small", messages=HELLO, max_tokens=4000)
    assert "2048" in window.value.message and "4000" in window.value.message
    assert window.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="base", messages=HELLO)  # a base model cannot chat
    raw = httpx.post(
        real_server.url + "/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert raw.status_code == 400 and set(raw.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }


def _metric(server: LiveServer, name: str, model: str) -> float:
    text = httpx.get(server.root + "/metrics").text
    for line in text.splitlines():
        if line.startswith(f'{name}{{model="{model}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_disconnect_frees_the_model(real_server: LiveServer) -> None:
    body = {
        "model": "small",
        "stream": True,
        "max_tokens": 400,
        "temperature": 0.9,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
    }
    before = _metric(real_server, "strata_completion_tokens_total", "small")
    with httpx.stream("POST", real_server.url + "/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        seen = 0
        for line in lines:
            if line.startswith("data: "):
                seen += 1
            if seen >= 3:
                break
    deadline = time.monotonic() + 5
    while (
        _metric(real_server, "strata_active_generations", "small") and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert _metric(real_server, "strata_active_generations", "small") == 0
    generated = _metric(real_server, "strata_completion_tokens_total", "small") - before
    assert generated < 100, "generation went on after the client left"
    quick = httpx.post(
        real_server.url + "/chat/completions",
        json={"model": "small", "messages": HELLO, "max_tokens": 4},
        timeout=60,
    )
    assert quick.status_code == 200


def test_full_queue_answers_429(real_server: LiveServer) -> None:
    body = {
        "model": "small",
        "max_tokens": 48,
        "temperature": 0.9,
        "messages": [{"role": "user", "content": "Count slowly from one to fifty."}],
    }
    statuses: list[int] = []
    retry_after: list[str] = []

    def send() -> None:
        r = httpx.post(real_server.url + "/chat/completions", json=body, timeout=120)
        statuses.append(r.status_code)
        if r.status_code == 429:
            retry_after.append(r.headers["retry-after"])
            assert r.json()["error"]["type"] == "rate_limit_error"

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    # One runs, two wait (max_queue=2), the rest are turned away at once.
    assert statuses.count(200) == 3
    assert statuses.count(429) == 2
    assert all(int(v) >= 1 for v in retry_after)
