from __future__ import annotations

import httpx

from strata.engine import Engine
from tests.conftest import fake


def test_chat_roundtrip(http: httpx.Client, engine: Engine) -> None:
    fake(engine).enqueue("hello there")
    r = http.post("/v1/chat/completions", json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "hello there"
