"""The knowledge REST API and grounded chat over HTTP, on fake models and the hashing
embedder: tenant isolation by API key, 4xx errors, citations, the "don't know" path, and
composition with a dispatcher (the router's seat)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.core.engine import Engine
from strata.core.models.base import Chunk
from strata.core.settings import ModelSpec, Settings
from strata.core.turn import Turn, TurnResult
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake, fake_settings
from tests.unit.conftest import assert_error_body, http_client, sdk
from tests.unit.knowledge_helpers import hash_settings, tiny_pdf

KEYS = ["key-a", "key-b"]


def knowledge_settings(tmp_path: Path, **overrides: Any) -> Settings:
    settings = fake_settings(tmp_path, knowledge=hash_settings(), **overrides)
    settings.models["fake"] = ModelSpec(backend="fake", n_ctx=4096)  # room for passages
    return settings


@pytest.fixture
def ksettings(tmp_path: Path) -> Settings:
    return knowledge_settings(tmp_path, api_keys=KEYS)


@pytest.fixture
def kengine(ksettings: Settings) -> Engine:
    return Engine(ksettings)


@pytest.fixture
def kserver(kengine: Engine, ksettings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(ksettings, kengine)) as server:
        yield server


def client(server: LiveServer, key: str) -> httpx.Client:
    c = http_client(server.root)
    c.headers["Authorization"] = f"Bearer {key}"
    return c


@pytest.fixture
def a(kserver: LiveServer) -> Iterator[httpx.Client]:
    with client(kserver, "key-a") as c:
        yield c


@pytest.fixture
def b(kserver: LiveServer) -> Iterator[httpx.Client]:
    with client(kserver, "key-b") as c:
        yield c


DOCS = [
    {
        "id": "mitochondria",
        "title": "Cells",
        "text": "Mitochondria produce ATP, the energy"
        " currency of the cell, through oxidative phosphorylation.",
        "metadata": {"topic": "bio"},
    },
    {
        "id": "volcano",
        "title": "Geology",
        "text": "Volcanoes erupt when magma pressure rises beneath the crust.",
        "metadata": {"topic": "geo"},
    },
]


def seed(c: httpx.Client, name: str = "science") -> None:
    assert c.post("/v1/collections", json={"name": name}).status_code == 200
    r = c.post(f"/v1/collections/{name}/documents", json={"documents": DOCS})
    assert r.status_code == 200, r.text
    assert [d["status"] for d in r.json()["data"]] == ["new", "new"]


def test_collection_lifecycle(a: httpx.Client) -> None:
    r = a.post("/v1/collections", json={"name": "science"})
    assert r.json() == {"object": "collection", "name": "science", "created": True}
    assert a.post("/v1/collections", json={"name": "science"}).json()["created"] is False
    seed(a)
    listed = a.get("/v1/collections").json()["data"]
    assert [(c["name"], c["documents"]) for c in listed] == [("science", 2)]
    hits = a.post("/v1/collections/science/search", json={"query": "what makes ATP"}).json()
    assert hits["data"][0]["document_id"] == "mitochondria"
    assert hits["data"][0]["title"] == "Cells"
    stats = a.get("/v1/collections/science/stats").json()
    assert (stats["documents"], stats["chunks"], stats["vectors"]) == (2, 2, 2)
    doc = a.get("/v1/collections/science/documents/volcano").json()
    assert doc["metadata"] == {"topic": "geo"} and doc["chunks"][0]["chunk"] == 0
    filtered = a.post(
        "/v1/collections/science/search",
        json={"query": "ATP magma", "filter": {"topic": "geo"}, "mode": "bm25"},
    ).json()["data"]
    assert [h["document_id"] for h in filtered] == ["volcano"]
    assert a.delete("/v1/collections/science/documents/volcano").json()["deleted"] is True
    again = a.post("/v1/collections/science/search", json={"query": "magma volcano"}).json()
    assert "volcano" not in [h["document_id"] for h in again["data"]]
    assert a.delete("/v1/collections/science").status_code == 200
    assert a.get("/v1/collections").json()["data"] == []


def test_file_documents_through_the_api(a: httpx.Client) -> None:
    a.post("/v1/collections", json={"name": "files"})
    pdf = base64.b64encode(tiny_pdf(["Quantum dots emit light."])).decode()
    md = base64.b64encode(b"# Notes\n\n## Sleep\n\nAdults need seven hours.").decode()
    jsonl = base64.b64encode(b'{"id": "r1", "text": "Record one."}\n{"text": "Two."}').decode()
    body = {
        "documents": [
            {"id": "paper", "data": pdf, "filename": "paper.pdf"},
            {"id": "notes", "data": md, "filename": "notes.md", "metadata": {"v": 1}},
            {"id": "recs", "data": jsonl, "filename": "recs.jsonl"},
        ]
    }
    r = a.post("/v1/collections/files/documents", json=body)
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["data"]] == ["paper", "notes", "r1", "recs:2"]
    hit = a.post("/v1/collections/files/search", json={"query": "quantum dots"}).json()["data"][0]
    assert hit["document_id"] == "paper"
    notes = a.get("/v1/collections/files/documents/notes").json()
    assert notes["title"] == "Notes" and notes["chunks"][0]["heading"] == "Notes > Sleep"


def test_a_key_never_sees_another_keys_collections(a: httpx.Client, b: httpx.Client) -> None:
    seed(a)
    assert b.get("/v1/collections").json()["data"] == []
    for method, path, body in [
        ("GET", "/v1/collections/science/stats", None),
        ("POST", "/v1/collections/science/search", {"query": "ATP"}),
        ("POST", "/v1/collections/science/documents", {"documents": DOCS[:1]}),
        ("GET", "/v1/collections/science/documents/volcano", None),
        ("DELETE", "/v1/collections/science/documents/volcano", None),
        ("DELETE", "/v1/collections/science", None),
    ]:
        r = b.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert assert_error_body(r.json())["code"] == "not_found"
    chat = b.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "messages": [{"role": "user", "content": "ATP?"}],
            "strata": {"knowledge": "science"},
        },
    )
    assert chat.status_code == 404
    # b's own collection of the same name is separate
    seed(b)
    b.delete("/v1/collections/science/documents/volcano")
    assert a.get("/v1/collections/science/stats").json()["documents"] == 2
    assert b.get("/v1/collections/science/stats").json()["documents"] == 1


def test_without_a_key_is_401(kserver: LiveServer) -> None:
    with http_client(kserver.root) as anonymous:
        r = anonymous.get("/v1/collections")
        assert r.status_code == 401
        assert_error_body(r.json())


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/v1/collections", {"name": "bad name!"}, "name"),
        ("POST", "/v1/collections", {"name": ""}, "name"),
        ("POST", "/v1/collections", {"nam": "x"}, "name"),
        ("POST", "/v1/collections/science/documents", {"documents": []}, "documents"),
        ("POST", "/v1/collections/science/documents", {"documents": [{"id": "x"}]}, None),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "text": "t", "data": "eA=="}]},
            None,
        ),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "data": "eA=="}]},
            None,
        ),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "data": "***", "filename": "a.txt"}]},
            "data",
        ),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "data": "eA==", "filename": "a.docx"}]},
            None,
        ),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "text": "   "}]},
            "text",
        ),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]},
            "id",
        ),
        (
            "POST",
            "/v1/collections/science/documents",
            {"documents": [{"id": "x", "text": "a", "metadata": {"k": {"nested": 1}}}]},
            None,
        ),
        ("POST", "/v1/collections/science/search", {"query": ""}, "query"),
        ("POST", "/v1/collections/science/search", {"query": "x", "mode": "fuzzy"}, "mode"),
        ("POST", "/v1/collections/science/search", {"query": "x", "top_k": 0}, "top_k"),
        ("POST", "/v1/collections/science/search", {"query": "   "}, "query"),
    ],
)
def test_bad_requests_are_400(
    a: httpx.Client, method: str, path: str, body: dict[str, Any], param: str | None
) -> None:
    a.post("/v1/collections", json={"name": "science"})
    r = a.request(method, path, json=body)
    assert r.status_code == 400, r.text
    error = assert_error_body(r.json())
    if param is not None:
        assert error["param"] is not None and param in error["param"], error


def test_missing_things_are_404(a: httpx.Client) -> None:
    assert a.get("/v1/collections/nope/stats").status_code == 404
    a.post("/v1/collections", json={"name": "science"})
    r = a.get("/v1/collections/science/documents/nope")
    assert r.status_code == 404 and assert_error_body(r.json())["param"] == "document_id"


def test_grounded_chat_cites_passages(
    a: httpx.Client, kserver: LiveServer, kengine: Engine
) -> None:
    seed(a)
    model = fake(kengine)
    model.enqueue("ATP comes from mitochondria [1].")
    with sdk(kserver.url, api_key="key-a") as oai:
        reply = oai.chat.completions.create(
            model="fake",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Which organelle produces ATP?"},
            ],
            extra_body={"strata": {"knowledge": "science", "top_k": 2}},
        )
    assert reply.choices[0].message.content == "ATP comes from mitochondria [1]."
    strata = reply.model_extra["strata"]  # type: ignore[index]
    citations = strata["citations"]
    assert citations[0]["n"] == 1 and citations[0]["document_id"] == "mitochondria"
    assert {"document_id", "title", "chunk", "score", "text"} <= set(citations[0])
    assert strata["cited"] == [1]
    assert strata["knowledge"]["grounded"] is True
    prompt = model.calls[-1].messages
    assert prompt[0] == {"role": "system", "content": "Be brief."}  # other messages untouched
    assert "[1] Cells" in prompt[-1]["content"]
    assert "Mitochondria produce ATP" in prompt[-1]["content"]
    assert "Which organelle produces ATP?" in prompt[-1]["content"]
    assert "square brackets" in prompt[-1]["content"]


def test_weak_evidence_says_it_does_not_know(a: httpx.Client, kengine: Engine) -> None:
    seed(a)
    model = fake(kengine)
    model.enqueue("I don't know: the documents I have do not cover this.")
    r = a.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "messages": [{"role": "user", "content": "Who won football championship 1998?"}],
            "strata": {"knowledge": "science"},
        },
    )
    strata = r.json()["strata"]
    assert strata["citations"] == [] and strata["knowledge"]["grounded"] is False
    assert strata["knowledge"]["evidence"] < strata["knowledge"]["threshold"]
    prompt = model.calls[-1].messages[-1]["content"]
    assert "I don't know" in prompt and "Mitochondria" not in prompt
    assert r.json()["choices"][0]["message"]["content"].startswith("I don't know")


def test_grounded_stream_carries_citations(a: httpx.Client, kengine: Engine) -> None:
    seed(a)
    fake(kengine).enqueue("Magma pressure [2] or [1] and [9].")
    body = {
        "model": "fake",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Why do volcanoes erupt? magma"}],
        "strata": {"knowledge": "science"},
    }
    with a.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: {")]
    import json

    tail = json.loads(lines[-1][6:])
    assert tail["strata"]["citations"][0]["document_id"] == "volcano"
    assert tail["strata"]["cited"] == [1, 2]  # [9] is not a passage


def test_grounding_needs_a_user_message(a: httpx.Client) -> None:
    seed(a)
    r = a.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "messages": [{"role": "system", "content": "hi"}],
            "strata": {"knowledge": "science"},
        },
    )
    assert r.status_code == 400 and assert_error_body(r.json())["param"] == "messages"


class EchoRoute:
    """A dispatcher standing in for the router: answers ``auto`` with whatever it was sent."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    def handles(self, model: str) -> bool:
        return model == "auto"

    def names(self) -> list[str]:
        return ["auto"]

    async def generate(self, turn: Turn, result: TurnResult) -> AsyncGenerator[Chunk, None]:
        self.seen.append(list(turn.gen.messages or []))
        result.answered_by = "fake"
        yield Chunk(text="routed [1]")
        yield Chunk(finish_reason="stop")


def test_grounding_composes_with_a_dispatcher(tmp_path: Path) -> None:
    app = create_app(knowledge_settings(tmp_path))
    route = EchoRoute()
    app.state.kernel.service.add_dispatcher(route)
    with LiveServer(app) as server, http_client(server.root) as c:
        seed(c)
        r = c.post(
            "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [{"role": "user", "content": "ATP mitochondria"}],
                "strata": {"knowledge": "science"},
            },
        )
    assert r.status_code == 200, r.text
    assert "Mitochondria produce ATP" in route.seen[0][-1]["content"]
    assert r.json()["strata"]["cited"] == [1]
    assert r.json()["model"] == "fake"


def test_without_auth_everyone_shares_one_knowledge_base(tmp_path: Path) -> None:
    with LiveServer(create_app(knowledge_settings(tmp_path))) as server:
        with http_client(server.root) as anonymous:
            seed(anonymous)
        with client(server, "whatever-the-sdk-sends") as sdk_like:
            names = [c["name"] for c in sdk_like.get("/v1/collections").json()["data"]]
    assert names == ["science"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_guess_without_evidence_never_reaches_the_client(
    a: httpx.Client, kengine: Engine, stream: bool
) -> None:
    seed(a)
    model = fake(kengine)
    model.enqueue("The 1998 World Cup was won by France.")
    r = a.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "messages": [{"role": "user", "content": "Who won football championship 1998?"}],
            "strata": {"knowledge": "science"},
            "max_tokens": 200,
            "stream": stream,
        },
    )
    assert r.status_code == 200
    if stream:
        events = [json.loads(x[6:]) for x in r.text.split("\n\n") if x.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == "I don't know: the documents I have do not cover this."
    assert "France" not in r.text
    assert model.calls[-1].params.max_tokens == 24  # little budget spent on a guess
