"""The OpenAI-compatible API through the official ``openai`` SDK, against a live server with
scripted fake models: every response shape a client relies on, and every error it can hit."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from strata.core.engine import Engine
from strata.core.models.fake import scripted
from strata.core.settings import Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake, fake_settings
from tests.unit.conftest import assert_error_body, http_client, sdk, wait_until

USER = [{"role": "user", "content": "hi"}]
LONG = " ".join(["w"] * 40)  # 2 s on the "slow" model


# One server for the whole module (a server per test costs ~0.2 s); every test starts from
# fresh fakes and must leave every model idle, which also checks that no slot leaks.


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return fake_settings(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Engine:
    return Engine(settings)


@pytest.fixture(scope="module")
def live(engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, engine)) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fakes(engine: Engine) -> Iterator[None]:
    for handle in engine.models.values():
        backend = scripted(handle.backend)
        backend.outputs.clear()
        backend.calls.clear()
        backend.tokens_emitted = backend.cancelled = 0
    yield
    wait_until(
        lambda: all(h.scheduler.active == h.scheduler.depth == 0 for h in engine.models.values()),
        what="every model to be idle after the test",
    )


def strata_ext(response: Any) -> dict[str, Any]:
    extra = response.model_extra or {}
    assert "strata" in extra, extra
    info: dict[str, Any] = extra["strata"]
    return info


# ---- chat ----


def test_chat_non_stream(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("hello there")
    r = oai.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == "fake"
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello there"
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert r.usage is not None
    assert r.usage.prompt_tokens == 2  # "hi" + one for the template
    assert r.usage.completion_tokens == 2
    assert r.usage.total_tokens == 4
    info = strata_ext(r)
    assert info["model"] == "fake"
    timings = info["timings"]
    assert set(timings) == {
        "queued_s",
        "time_to_first_token_s",
        "total_s",
        "prompt_tokens_per_s",
        "tokens_per_s",
    }
    assert timings["queued_s"] >= 0
    assert timings["time_to_first_token_s"] is not None
    assert timings["total_s"] >= timings["time_to_first_token_s"]


def test_chat_request_reaches_backend(oai: openai.OpenAI, engine: Engine) -> None:
    oai.chat.completions.create(
        model="fake",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        temperature=0.3,
        top_p=0.9,
        seed=7,
        max_tokens=5,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        user="alice",
    )
    (call,) = fake(engine).calls
    assert call.kind == "chat"
    assert call.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    p = call.params
    assert (p.temperature, p.top_p, p.seed, p.max_tokens) == (0.3, 0.9, 7, 5)
    assert (p.presence_penalty, p.frequency_penalty) == (0.5, -0.5)
    assert call.passthrough["user"] == "alice"
    assert call.stream is False


def test_chat_stream_reassembles(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("one two three four")
    stream = oai.chat.completions.create(
        model="fake",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == "fake" for c in chunks)
    content_chunks = [c for c in chunks if c.choices]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == "one two three four"
    finishes = [c.choices[0].finish_reason for c in content_chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # The usage chunk comes last, with no choices, and carries strata's timings.
    tail = chunks[-1]
    assert tail.choices == []
    assert tail.usage is not None
    assert (tail.usage.prompt_tokens, tail.usage.completion_tokens) == (2, 4)
    assert tail.usage.total_tokens == 6
    assert strata_ext(tail)["model"] == "fake"
    assert all(c.usage is None for c in chunks[:-1])
    assert fake(engine).calls[0].stream is True


def test_chat_stream_without_usage_and_done(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue("a b")
    body = {"model": "fake", "messages": USER, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(e["choices"] for e in events)  # no usage chunk unless asked
    assert all("usage" not in e for e in events)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "a b"


def test_chat_n2(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("first answer", "second")
    r = oai.chat.completions.create(model="fake", messages=USER, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert sorted(c.message.content or "" for c in r.choices) == ["first answer", "second"]
    assert r.usage is not None
    assert r.usage.prompt_tokens == 2  # the prompt counts once
    assert r.usage.completion_tokens == 3
    assert len(fake(engine).calls) == 2


def test_chat_n2_stream(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("a b", "c")
    stream = oai.chat.completions.create(
        model="fake", messages=USER, n=2, stream=True, stream_options={"include_usage": True}
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    usage = None
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
        usage = chunk.usage or usage
    assert texts == {0: "a b", 1: "c"}
    assert finishes == {0: "stop", 1: "stop"}
    assert usage is not None
    assert usage.completion_tokens == 3


def test_chat_logprobs(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("x yz")
    r = oai.chat.completions.create(model="fake", messages=USER, logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert [t.token for t in lp.content] == ["x", " yz"]
    for t in lp.content:
        assert isinstance(t.logprob, float) and t.logprob <= 0
        assert t.bytes == list(t.token.encode())
        assert len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token
        assert all(a.logprob <= 0 for a in t.top_logprobs)
    call = fake(engine).calls[0]
    assert call.params.logprobs is True and call.params.top_logprobs == 3


def test_chat_logprobs_without_top(oai: openai.OpenAI, engine: Engine) -> None:
    r = oai.chat.completions.create(model="fake", messages=USER, logprobs=True)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert lp.content[0].top_logprobs == []


def test_chat_stream_logprobs(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("p q")
    stream = oai.chat.completions.create(
        model="fake", messages=USER, logprobs=True, top_logprobs=2, stream=True
    )
    tokens = []
    for chunk in stream:
        for c in chunk.choices:
            if c.logprobs and c.logprobs.content:
                for t in c.logprobs.content:
                    assert len(t.top_logprobs) == 2
                    tokens.append(t.token)
    assert tokens == ["p", " q"]


def test_chat_json_object(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("not json")
    r = oai.chat.completions.create(
        model="fake", messages=USER, response_format={"type": "json_object"}
    )
    assert json.loads(r.choices[0].message.content or "") == {"text": "not json"}
    assert fake(engine).calls[0].params.response_format.type == "json_object"


def test_chat_json_schema(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue('{"answer": 42}')
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    r = oai.chat.completions.create(
        model="fake",
        messages=USER,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
    )
    assert json.loads(r.choices[0].message.content or "") == {"answer": 42}
    fmt = fake(engine).calls[0].params.response_format
    assert (fmt.type, fmt.name, fmt.schema, fmt.strict) == ("json_schema", "answer", schema, True)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens_length(oai: openai.OpenAI, engine: Engine, field: str) -> None:
    fake(engine).enqueue("a b c d e")
    kwargs: dict[str, Any] = {field: 2}
    r = oai.chat.completions.create(model="fake", messages=USER, **kwargs)
    assert r.choices[0].message.content == "a b"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 2


def test_chat_max_completion_tokens_wins(oai: openai.OpenAI, engine: Engine) -> None:
    oai.chat.completions.create(model="fake", messages=USER, max_tokens=9, max_completion_tokens=3)
    assert fake(engine).calls[0].params.max_tokens == 3


def test_chat_stream_length(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine).enqueue("a b c d e")
    chunks = list(
        oai.chat.completions.create(model="fake", messages=USER, max_tokens=1, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ([" stop"], "hello world"),
        (" stop", "hello world"),
        (["zzz", "wor"], "hello "),
    ],
)
def test_chat_stop(
    oai: openai.OpenAI, engine: Engine, stop: str | list[str], expected: str
) -> None:
    fake(engine).enqueue("hello world stop here")
    r = oai.chat.completions.create(model="fake", messages=USER, stop=stop)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == "stop"


def test_chat_content_parts(oai: openai.OpenAI, engine: Engine) -> None:
    r = oai.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    )
    assert r.choices[0].message.content == "ok"
    assert fake(engine).calls[0].messages == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_unknown_fields_pass_through(oai: openai.OpenAI, engine: Engine) -> None:
    oai.chat.completions.create(
        model="fake", messages=USER, logit_bias={"1": 2}, extra_body={"min_p": 0.1}
    )
    passthrough = fake(engine).calls[0].passthrough
    assert passthrough["logit_bias"] == {"1": 2}
    assert passthrough["min_p"] == 0.1


# ---- completions ----


def test_completion(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine, "base").enqueue(" jumped over")
    r = oai.completions.create(model="base", prompt="The fox")
    assert r.object == "text_completion"
    assert r.id.startswith("cmpl-")
    assert r.model == "base"
    assert r.choices[0].text == " jumped over"
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].logprobs is None
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (3, 2)
    assert strata_ext(r)["model"] == "base"
    (call,) = fake(engine, "base").calls
    assert (call.kind, call.prompt) == ("completion", "The fox")
    assert call.params.max_tokens == 16  # OpenAI's default for completions


def test_completion_echo(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine, "base").enqueue(" b c")
    r = oai.completions.create(model="base", prompt="a", echo=True, logprobs=1)
    choice = r.choices[0]
    assert choice.text == "a b c"
    assert choice.logprobs is not None
    assert choice.logprobs.tokens == [" b", " c"]
    assert choice.logprobs.text_offset == [1, 3]  # offsets count the echoed prompt


def test_completion_logprobs(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine, "base").enqueue("x y z")
    r = oai.completions.create(model="base", prompt="p", logprobs=2, max_tokens=2)
    choice = r.choices[0]
    assert choice.text == "x y"
    assert choice.finish_reason == "length"
    lp = choice.logprobs
    assert lp is not None
    assert lp.tokens == ["x", " y"]
    assert lp.token_logprobs is not None and len(lp.token_logprobs) == 2
    assert lp.top_logprobs is not None
    assert [len(t) for t in lp.top_logprobs] == [2, 2]
    assert lp.text_offset == [0, 1]


def test_completion_multiple_prompts_and_n(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine, "base").enqueue("1", "2", "3", "4")
    r = oai.completions.create(model="base", prompt=["a", "b c"], n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert sorted(c.text for c in r.choices) == ["1", "2", "3", "4"]
    assert r.usage is not None
    assert r.usage.prompt_tokens == 2 + 3  # each prompt once
    assert r.usage.completion_tokens == 4


def test_completion_stream(oai: openai.OpenAI, engine: Engine) -> None:
    fake(engine, "base").enqueue(" b c")
    stream = oai.completions.create(
        model="base",
        prompt="a",
        stream=True,
        echo=True,
        logprobs=1,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].text for c in with_choices) == "a b c"
    assert with_choices[-1].choices[0].finish_reason == "stop"
    logprobs = [c.choices[0].logprobs for c in with_choices if c.choices[0].logprobs]
    assert [t for lp in logprobs for t in lp.tokens or []] == [" b", " c"]
    # Offsets are positions in the choice's whole text, echo included, as without stream.
    assert [o for lp in logprobs for o in lp.text_offset or []] == [1, 3]
    tail = chunks[-1]
    assert tail.choices == []
    assert tail.usage is not None
    assert (tail.usage.prompt_tokens, tail.usage.completion_tokens) == (2, 2)
    assert strata_ext(tail)["model"] == "base"


def test_completion_stream_done(http: httpx.Client) -> None:
    body = {"model": "base", "prompt": "a", "stream": True}
    with http.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_completion_on_chat_model(oai: openai.OpenAI) -> None:
    r = oai.completions.create(model="fake", prompt="x")
    assert r.choices[0].text == "ok"


# ---- models and embeddings ----


def test_models_list(oai: openai.OpenAI) -> None:
    models = {m.id: m for m in oai.models.list()}
    assert set(models) == {"fake", "slow", "base"}
    assert all(m.object == "model" and m.owned_by == "strata" for m in models.values())
    base = models["base"].model_extra or {}
    assert base["capabilities"] == ["completion", "logprobs", "streaming"]
    assert "chat" in (models["fake"].model_extra or {})["capabilities"]


def test_models_retrieve(oai: openai.OpenAI) -> None:
    m = oai.models.retrieve("slow")
    assert (m.id, m.object, m.owned_by) == ("slow", "model", "strata")
    with pytest.raises(openai.NotFoundError) as info:
        oai.models.retrieve("nope")
    assert_error_body(info.value.response.json())


def test_embeddings_float(oai: openai.OpenAI) -> None:
    r = oai.embeddings.create(model="fake", input=["a b", "c"], encoding_format="float")
    assert r.model == "fake"
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert len(d.embedding) == 8
        assert abs(sum(v * v for v in d.embedding) - 1.0) < 1e-6
    assert r.usage.prompt_tokens == 3
    assert r.usage.total_tokens == 3


def test_embeddings_base64(oai: openai.OpenAI) -> None:
    floats = oai.embeddings.create(model="fake", input="hello", encoding_format="float")
    encoded = oai.embeddings.create(model="fake", input="hello", encoding_format="base64")
    raw = encoded.data[0].embedding
    assert isinstance(raw, str)
    decoded = struct.unpack("<8f", base64.b64decode(raw))
    assert decoded == pytest.approx(floats.data[0].embedding, abs=1e-6)
    # The SDK's default asks for base64 and decodes it itself.
    default = oai.embeddings.create(model="fake", input="hello")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_embeddings_dimensions(oai: openai.OpenAI) -> None:
    full = oai.embeddings.create(model="fake", input="x", encoding_format="float")
    cut = oai.embeddings.create(model="fake", input="x", encoding_format="float", dimensions=3)
    assert cut.data[0].embedding == full.data[0].embedding[:3]
    with pytest.raises(openai.BadRequestError) as info:
        oai.embeddings.create(model="fake", input="x", dimensions=9)
    assert info.value.param == "dimensions"


def test_embeddings_unsupported(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.embeddings.create(model="base", input="x")
    error = assert_error_body(info.value.response.json())
    assert error["param"] == "model"
    assert "embeddings" in error["message"]
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="nope", input="x")


# ---- errors through the SDK ----


def test_unknown_model(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="nope", messages=USER)
    error = assert_error_body(info.value.response.json())
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "nope" in error["message"] and "fake" in error["message"]
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nope", messages=USER, stream=True)
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="nope", prompt="x")


def test_malformed_json(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions",
        content=b'{"model": "fake", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    error = assert_error_body(r.json())
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]


def test_malformed_json_via_sdk(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        oai.post(
            "/chat/completions",
            cast_to=object,
            content=b"{nope",
            options={"headers": {"content-type": "application/json"}},
        )


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0"),
        ({"messages": USER, "temperature": 2.5}, "temperature"),
        ({"messages": USER, "temperature": -0.1}, "temperature"),
        ({"messages": USER, "temperature": "hot"}, "temperature"),
        ({"messages": USER, "top_p": 1.5}, "top_p"),
        ({"messages": USER, "n": 0}, "n"),
        ({"messages": USER, "n": 17}, "n"),
        ({"messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"messages": USER, "max_tokens": "many"}, "max_tokens"),
        ({"messages": USER, "top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": USER, "stop": [""]}, "stop"),
        ({"messages": USER, "stop": ""}, "stop"),
        ({"messages": USER, "presence_penalty": 3}, "presence_penalty"),
        ({"messages": USER, "response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": USER, "response_format": {"type": "json_schema"}}, "response_format"),
        ({"messages": USER, "stream": "maybe"}, "stream"),
    ],
)
def test_bad_chat_values(oai: openai.OpenAI, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="fake", **kwargs)
    error = assert_error_body(info.value.response.json())
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == "invalid_value"


def test_top_logprobs_without_logprobs(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="fake", messages=USER, top_logprobs=2)
    error = assert_error_body(info.value.response.json())
    assert "top_logprobs requires logprobs" in error["message"]


def test_missing_field(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.post("/chat/completions", cast_to=object, body={"model": "fake"})
    error = assert_error_body(info.value.response.json())
    assert error["param"] == "messages"
    assert error["code"] == "missing_required_parameter"


def test_context_window_exceeded(oai: openai.OpenAI, engine: Engine) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="fake", messages=USER, max_tokens=100)
    error = assert_error_body(info.value.response.json())
    assert error["code"] == "context_length_exceeded"
    for number in ("64", "2", "100"):
        assert number in error["message"]
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="fake", messages=USER, max_tokens=100, stream=True)
    assert info.value.code == "context_length_exceeded"
    long_prompt = " ".join(["w"] * 80)
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="fake", prompt=long_prompt, max_tokens=1)
    assert "81" in info.value.message
    assert engine.get("fake").scheduler.active == 0


def test_chat_on_completion_only_model(oai: openai.OpenAI, engine: Engine) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            oai.chat.completions.create(model="base", messages=USER, stream=stream)
        error = assert_error_body(info.value.response.json())
        assert error["param"] == "model"
        assert "/v1/chat/completions" in error["message"]
    assert fake(engine, "base").calls == []


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ],
)
def test_unsupported_capability(tmp_path: Path, kwargs: dict[str, Any], param: str) -> None:
    settings = fake_settings(tmp_path)
    settings.models["chatonly"] = settings.models["fake"].model_copy(
        update={"capabilities": ["chat"]}
    )
    with (
        LiveServer(create_app(settings, Engine(settings))) as server,
        sdk(server.url) as client,
    ):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="chatonly", messages=USER, **kwargs)
        error = assert_error_body(info.value.response.json())
        assert error["param"] == param
        assert "chatonly" in error["message"]


def test_completion_bad_values(oai: openai.OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"prompt": []}, "prompt"),
        ({"prompt": "x", "logprobs": 6}, "logprobs"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": "x", "best_of": 2, "n": 0}, "n"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            oai.completions.create(model="base", **kwargs)
        assert assert_error_body(info.value.response.json())["param"] == param, kwargs


@pytest.mark.parametrize("stream", [False, True])
def test_backend_error_is_json(oai: openai.OpenAI, engine: Engine, stream: bool) -> None:
    fake(engine).enqueue(RuntimeError("boom"))
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="fake", messages=USER, stream=stream)
    assert info.value.status_code == 500
    error = assert_error_body(info.value.response.json())
    assert error["type"] == "server_error"
    assert "boom" in error["message"]
    assert "Traceback" not in info.value.response.text
    assert engine.get("fake").scheduler.active == 0
    # The model still serves afterwards.
    r = oai.chat.completions.create(model="fake", messages=USER)
    assert r.choices[0].message.content == "ok"


# ---- auth ----


def test_api_keys(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, api_keys=["sekret", "other"])
    with LiveServer(create_app(settings, Engine(settings))) as server:
        with sdk(server.url, api_key="wrong") as client:
            with pytest.raises(openai.AuthenticationError) as info:
                client.chat.completions.create(model="fake", messages=USER)
            error = assert_error_body(info.value.response.json())
            assert error["type"] == "authentication_error"
            assert error["code"] == "invalid_api_key"
            assert error["message"] == "Incorrect API key provided."
            with pytest.raises(openai.AuthenticationError):
                client.embeddings.create(model="fake", input="x")
        with http_client(server.root) as http:
            r = http.get("/v1/models")
            assert r.status_code == 401
            assert "didn't provide an API key" in assert_error_body(r.json())["message"]
            r = http.get("/v1/models", headers={"Authorization": "Basic sekret"})
            assert r.status_code == 401
            assert http.get("/health").status_code == 200  # probes need no key
        for key in ("sekret", "other"):
            with sdk(server.url, api_key=key) as client:
                r = client.chat.completions.create(model="fake", messages=USER)
                assert r.choices[0].message.content == "ok"


# ---- admission ----


def test_queue_full_rate_limit(http: httpx.Client, oai: openai.OpenAI, engine: Engine) -> None:
    slow = fake(engine, "slow")
    scheduler = engine.get("slow").scheduler
    slow.enqueue(" ".join(["w"] * 100), "a", "b")
    body = {"model": "slow", "messages": USER, "stream": True}
    with (
        http.stream("POST", "/v1/chat/completions", json=body) as holder,
        ThreadPoolExecutor(2) as pool,
    ):
        assert holder.status_code == 200
        assert scheduler.active == 1
        waiting = [
            pool.submit(oai.chat.completions.create, model="slow", messages=USER, user=f"w{i}")
            for i in range(2)
        ]
        wait_until(lambda: scheduler.depth == 2, what="two waiting requests")
        with pytest.raises(openai.RateLimitError) as info:
            oai.chat.completions.create(model="slow", messages=USER)
        response = info.value.response
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        error = assert_error_body(response.json())
        assert error["type"] == "rate_limit_error"
        assert error["code"] == "queue_full"
        holder.close()  # disconnect: the waiting requests get the model
        answers = sorted(f.result(timeout=10).choices[0].message.content or "" for f in waiting)
    assert answers == ["a", "b"]
    wait_until(lambda: scheduler.active == 0 and scheduler.depth == 0, what="idle model")


# ---- no 5xx for any bad input ----

ODD_BODIES: list[tuple[str, Any]] = [
    ("/v1/chat/completions", {}),
    ("/v1/chat/completions", None),
    ("/v1/chat/completions", []),
    ("/v1/chat/completions", "a string"),
    ("/v1/chat/completions", 42),
    ("/v1/chat/completions", {"model": None, "messages": USER}),
    ("/v1/chat/completions", {"model": "", "messages": USER}),
    ("/v1/chat/completions", {"model": 7, "messages": USER}),
    ("/v1/chat/completions", {"model": ["fake"], "messages": USER}),
    ("/v1/chat/completions", {"model": "fake"}),
    ("/v1/chat/completions", {"model": "fake", "messages": None}),
    ("/v1/chat/completions", {"model": "fake", "messages": {"role": "user"}}),
    ("/v1/chat/completions", {"model": "fake", "messages": [None]}),
    ("/v1/chat/completions", {"model": "fake", "messages": [[]]}),
    ("/v1/chat/completions", {"model": "fake", "messages": ["hi"]}),
    ("/v1/chat/completions", {"model": "fake", "messages": [{"content": "x"}]}),
    ("/v1/chat/completions", {"model": "fake", "messages": [{"role": "user", "content": 5}]}),
    (
        "/v1/chat/completions",
        {"model": "fake", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
    ),
    (
        "/v1/chat/completions",
        {"model": "fake", "messages": [{"role": "user", "content": "x", "tool_calls": "y"}]},
    ),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "max_tokens": 10**30}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "max_tokens": -(10**30)}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "max_tokens": 1.5}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "temperature": 1e308}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "n": 10**30}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "top_logprobs": -1}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "logprobs": "yes please"}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "stop": 5}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "stop": [None]}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "stream_options": []}),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "response_format": "json"}),
    (
        "/v1/chat/completions",
        {
            "model": "fake",
            "messages": USER,
            "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "fake",
            "messages": USER,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 1}},
        },
    ),
    ("/v1/chat/completions", {"model": "fake", "messages": USER, "tools": {"a": 1}}),
    ("/v1/chat/completions", {"model": "nope", "messages": USER, "stream": True}),
    ("/v1/chat/completions", {"model": "base", "messages": USER, "n": 3}),
    ("/v1/completions", {}),
    ("/v1/completions", {"model": "base"}),
    ("/v1/completions", {"model": "base", "prompt": None}),
    ("/v1/completions", {"model": "base", "prompt": [1, 2, 3]}),
    ("/v1/completions", {"model": "base", "prompt": [["a"]]}),
    ("/v1/completions", {"model": "base", "prompt": {"text": "a"}}),
    ("/v1/completions", {"model": "base", "prompt": "a", "max_tokens": 10**30}),
    ("/v1/completions", {"model": "base", "prompt": "a", "logprobs": True, "n": 0}),
    ("/v1/completions", {"model": "base", "prompt": "a", "echo": "twice"}),
    ("/v1/completions", {"model": "base", "prompt": "a", "stream": True, "suffix": "z"}),
    ("/v1/embeddings", {}),
    ("/v1/embeddings", {"model": "fake"}),
    ("/v1/embeddings", {"model": "fake", "input": ""}),
    ("/v1/embeddings", {"model": "fake", "input": []}),
    ("/v1/embeddings", {"model": "fake", "input": [1, 2]}),
    ("/v1/embeddings", {"model": "fake", "input": None}),
    ("/v1/embeddings", {"model": "fake", "input": "x", "encoding_format": "hex"}),
    ("/v1/embeddings", {"model": "fake", "input": "x", "dimensions": 0}),
    ("/v1/embeddings", {"model": "fake", "input": "x", "dimensions": 10**30}),
    ("/v1/embeddings", {"model": "nope", "input": "x"}),
]


@pytest.mark.parametrize(("path", "body"), ODD_BODIES, ids=lambda v: json.dumps(v)[:60])
def test_odd_json_bodies(http: httpx.Client, path: str, body: Any) -> None:
    r = http.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert "'None'" not in assert_error_body(r.json())["message"]


RAW_BODIES: list[tuple[bytes, dict[str, str]]] = [
    (b"", {"content-type": "application/json"}),
    (b"", {}),
    (b"model=fake&messages=hi", {"content-type": "application/x-www-form-urlencoded"}),
    (b'{"model": "fake", "messages": []}', {"content-type": "text/plain"}),
    (b"\xff\xfe\x00garbage", {"content-type": "application/json"}),
    (b'{"model": "fake", "messages": [{"role": "user", "content": "\xff"}]}', {}),
    (b"[" * 100_000, {"content-type": "application/json"}),
    (b'{"model": "fake", "messages": [], "temperature": NaN}', {}),
    (b'{"model": "fake", "messages": [{"role":"user","content":"x"}], "top_p": Infinity}', {}),
    (b'{"model": "fake", "model": 1}', {"content-type": "application/json"}),
]


@pytest.mark.parametrize(("content", "headers"), RAW_BODIES, ids=lambda v: repr(v)[:40])
def test_odd_raw_bodies(http: httpx.Client, content: bytes, headers: dict[str, str]) -> None:
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        r = http.post(path, content=content, headers=headers)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        assert "'None'" not in assert_error_body(r.json())["message"]


def test_whole_body_errors_say_so(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=[])
    error = assert_error_body(r.json())
    assert error["message"].startswith("Invalid value for the request body: ")
    assert error["param"] is None
    r = http.post("/v1/chat/completions", headers={"content-type": "application/json"})
    error = assert_error_body(r.json())
    assert error["message"] == "Missing request body."
    assert error["code"] == "missing_required_parameter"


def test_unknown_routes(http: httpx.Client) -> None:
    r = http.get("/v1/nothing")
    assert r.status_code == 404
    assert_error_body(r.json())
    r = http.get("/v1/chat/completions")
    assert r.status_code == 405
    assert_error_body(r.json())


# ---- n > 1 that does not fit ----


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_n_past_the_queue_frees_the_model(
    oai: openai.OpenAI, engine: Engine, endpoint: str
) -> None:
    """n=4 on a model with one slot and two queue places: 429, and the admitted choices stop."""
    slow = fake(engine, "slow")
    scheduler = engine.get("slow").scheduler
    slow.enqueue(*[LONG] * 4)
    with pytest.raises(openai.RateLimitError):
        if endpoint == "chat":
            oai.chat.completions.create(model="slow", messages=USER, n=4)
        else:
            oai.completions.create(model="slow", prompt="go", n=4, max_tokens=100)
    wait_until(lambda: scheduler.active == scheduler.depth == 0, timeout=1.0, what="idle model")
    assert slow.tokens_emitted < 20
