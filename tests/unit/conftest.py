"""Unit-test helpers on top of ``tests/conftest.py``: an ``openai`` SDK client on the live
server, error-body checks, and a poll for state another thread changes."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer

ERROR_KEYS = {"message", "type", "param", "code"}

# Building an SSL context costs ~0.1 s per HTTP client; the servers here are plain HTTP, so
# every client shares this one.
_SSL = ssl.create_default_context()


def sdk(url: str, api_key: str = "x") -> openai.OpenAI:
    """The official SDK on ``url``; no retries, so a 429 or 5xx surfaces at once."""
    return openai.OpenAI(
        base_url=url,
        api_key=api_key,
        max_retries=0,
        timeout=30,
        http_client=openai.DefaultHttpxClient(verify=_SSL),
    )


def http_client(root: str) -> httpx.Client:
    return httpx.Client(base_url=root, timeout=30, verify=_SSL)


@pytest.fixture
def oai(live: LiveServer) -> Iterator[openai.OpenAI]:
    with sdk(live.url) as client:
        yield client


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    """Overrides the top-level ``http`` only to share the SSL context (speed)."""
    with http_client(live.root) as client:
        yield client


def assert_error_body(body: Any) -> dict[str, Any]:
    """The body is exactly OpenAI's ``{"error": {message, type, param, code}}``."""
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    return dict(error)


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0, what: str = "") -> None:
    """Poll ``predicate`` (state changed by the server thread) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.005)
