"""Shared fixtures: settings on ``tmp_path`` with scripted fake models, and a real uvicorn
server in a thread for end-to-end tests through the official ``openai`` SDK."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from strata.core.engine import Engine
from strata.core.models.fake import FakeBackend, scripted
from strata.core.settings import ModelSpec, Settings, load_settings
from strata.edges.http.app import create_app
from tests.postgres import Cluster, start_cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the whole session, started on first use."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """Where a store under test lives, once per engine: a SQLite file in ``tmp_path``, or a
    fresh database in the session's PostgreSQL cluster (``database_url`` then names it).
    A store's contract tests take this fixture, so one test body covers both engines."""
    if request.param == "sqlite":
        yield tmp_path / "store.db"
        return
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    try:
        yield cluster.database_url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the user's data directory or environment settings."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in (
        "STRATA_CONFIG",
        "STRATA_HOME",
        "STRATA_API_KEYS",
        "STRATA_ADMIN_KEYS",
        "STRATA_PORT",
        "STRATA_DATABASE",
        "STRATA_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    # Session turns are embedded with the hashing embedder unless a test asks for MiniLM.
    monkeypatch.setenv("STRATA_DIALOGUE__EMBEDDER", "hash")


def fake_settings(tmp_path: Path, **overrides: Any) -> Settings:
    models = {
        "fake": ModelSpec(backend="fake", n_ctx=64),
        "slow": ModelSpec(backend="fake", n_ctx=256, options={"delay_s": 0.05}, max_queue=2),
        "base": ModelSpec(backend="fake", capabilities=["completion", "logprobs", "streaming"]),
    }
    return Settings(home=tmp_path / "home", bundled_models=False, models=models, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return Engine(settings)


def fake(engine: Engine, name: str = "fake") -> FakeBackend:
    return scripted(engine.get(name).backend)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn in a background thread; ``url`` is the ``/v1`` base for SDK clients."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live(engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, engine)) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.root, timeout=30) as client:
        yield client


@dataclass
class RayServe:
    """A local Ray instance with strata deployed on it (``strata.edges.ray``)."""

    settings: Settings
    root: str


# Scripted models for the Ray tests: ``fake`` on two replicas (two generations each at once),
# ``one`` on one replica that runs one generation and queues one more at the gateway.
RAY_ANSWER = " ".join(f"word{i}" for i in range(20))


@pytest.fixture(scope="session")
def ray_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayServe]:
    """Start a local Ray (two CPUs, no dashboard) and deploy strata on it, once per session;
    tear both down at the end."""
    import ray
    from ray import serve

    from strata.edges.ray.app import deploy

    home = tmp_path_factory.mktemp("ray-home")
    options = {"delay_s": 0.05, "default_output": RAY_ANSWER}
    settings = load_settings(
        home=home,
        host="127.0.0.1",
        port=free_port(),
        bundled_models=False,
        models={
            "fake": ModelSpec(backend="fake", max_concurrency=2, options=options),
            "one": ModelSpec(backend="fake", max_queue=1, options=options),
        },
        ray={
            "gateway": {"num_cpus": 0.1},
            "model": {"num_cpus": 0.1},
            "models": {"fake": {"num_replicas": 2}},
            "retries": 3,
        },
    )
    with pytest.MonkeyPatch.context() as env:
        # Serve kills a proxy not ready within 5 s (health checks: 10 s): on two shared
        # cores busy with other work, starting one can take longer than that
        for name in ("PROXY_READY_CHECK_TIMEOUT_S", "PROXY_HEALTH_CHECK_TIMEOUT_S"):
            env.setenv(f"RAY_SERVE_{name}", "120")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            deploy(settings)
            yield RayServe(settings, f"http://127.0.0.1:{settings.port}")
        finally:
            serve.shutdown()
            ray.shutdown()
