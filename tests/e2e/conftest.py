"""A real strata server on the bundled 0.5B chat model and the 270M base model.

``make test`` assembles both first. Outside CI a missing model skips these tests with the
command to run; in CI (``CI=true``) it fails, so a broken install can never pass quietly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from strata.core import catalog
from strata.core.settings import ModelSpec, Settings, default_home
from strata.edges.http.app import create_app
from tests.conftest import LiveServer

# Read before any test fixture points XDG_DATA_HOME at a temporary directory.
MODELS_HOME = Path(os.environ.get("STRATA_HOME") or default_home())


def bundled_path(name: str) -> Path:
    model = catalog.lookup(name)
    if not catalog.is_ready(model, MODELS_HOME):
        message = f"{name} is not assembled in {MODELS_HOME}: run `make models-test`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return catalog.models_dir(MODELS_HOME) / model.filename


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = {
        "small": ModelSpec(
            path=bundled_path("qwen2.5-coder-0.5b-instruct"),
            n_ctx=2048,
            max_concurrency=1,  # one runs, the rest queue: the queue tests count on it
            max_queue=2,
            load="startup",
        ),
        "base": ModelSpec(
            path=bundled_path("gemma-3-270m"),
            n_ctx=1024,
            capabilities=["completion", "logprobs", "streaming", "json_schema"],
        ),
    }
    settings = Settings(home=tmp_path_factory.mktemp("home"), bundled_models=False, models=models)
    with LiveServer(create_app(settings)) as server:
        deadline = time.monotonic() + 120
        while httpx.get(server.root + "/health").status_code != 200:  # 503 while loading
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.1)
        yield server


@pytest.fixture
def sdk(real_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_server.url, api_key="test", max_retries=0, timeout=120)
