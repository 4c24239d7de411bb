"""The feature contract and the tenancy rule: a feature registered like a plugin gets its
settings section, layer, subscriber, REST router and CLI command without an edit elsewhere;
with auth off every caller is the one default tenant, with auth on each key its own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from strata.core import feature as registry
from strata.core.engine import Engine
from strata.core.feature import Feature, installed_features, register_feature
from strata.core.kernel import Kernel
from strata.core.settings import ModelSpec, Settings, settings_class
from strata.core.tenancy import DEFAULT_TENANT, Caller, tenant_of
from strata.core.turn import Turn, TurnCompleted, TurnResult
from strata.core.web import CallerDep, kernel
from strata.edges.http.app import create_app
from tests.conftest import LiveServer, fake
from tests.unit.conftest import http_client


class StampSettings(BaseModel):
    word: str = "stamped"


class Stamp:
    """A layer that writes into the report, and a subscriber that counts answered turns."""

    name = "stamp"
    order = 50

    def __init__(self, word: str) -> None:
        self.word = word
        self.completed: list[str] = []

    async def before(self, turn: Turn, result: TurnResult) -> None:
        result.report["stamp"] = self.word

    async def after(self, turn: Turn, result: TurnResult) -> None:
        return None

    async def on_turn(self, event: TurnCompleted) -> None:
        self.completed.append(event.result.texts[0])

    async def shutdown(self) -> None:
        return None


stamp_router = APIRouter(prefix="/v1/stamp")


@stamp_router.get("")
async def stamp_state(request: Request, who: CallerDep) -> dict[str, Any]:
    runtime = kernel(request).feature("stamp", Stamp)
    return {"completed": runtime.completed, "tenant": who.tenant}


@click.command("stamp")
def stamp_command() -> None:
    """Print the stamp."""
    click.echo("stamp!")


class StampFeature(Feature):
    name = "stamp"

    def build(self, kernel: Kernel) -> Stamp:
        runtime = Stamp(kernel.settings.section("stamp", StampSettings).word)
        kernel.service.add_layer(runtime)
        kernel.events.subscribe(runtime.on_turn)
        return runtime

    def settings_sections(self) -> dict[str, tuple[Any, Any]]:
        return {"stamp": (StampSettings, Field(default_factory=StampSettings))}

    def router(self) -> APIRouter:
        return stamp_router

    def commands(self) -> Sequence[click.Command]:
        return [stamp_command]


@pytest.fixture
def stamp() -> Iterator[None]:
    register_feature(StampFeature())
    yield
    registry._extra.pop("stamp", None)
    registry.installed_features.cache_clear()
    from strata.core.settings import forget_settings_class

    forget_settings_class()


def test_the_built_in_features_come_from_entry_points() -> None:
    names = {f.name for f in installed_features()}
    assert {"apps", "dialogue", "knowledge", "routing"} <= names
    fields = settings_class().model_fields
    assert {"knowledge", "routes"} <= set(fields)


def test_a_registered_feature_is_wired_everywhere(tmp_path: Path, stamp: None) -> None:
    settings = settings_class()(
        home=tmp_path / "home",
        bundled_models=False,
        models={"fake": ModelSpec(backend="fake")},
        stamp={"word": "hello"},
    )
    engine = Engine(settings)
    fake(engine).enqueue("an answer")
    with LiveServer(create_app(settings, engine)) as server, http_client(server.root) as http:
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        done = http.post("/v1/chat/completions", json=body).json()
        assert done["strata"]["stamp"] == "hello"
        state = http.get("/v1/stamp").json()
        assert state == {"completed": ["an answer"], "tenant": DEFAULT_TENANT}
    from strata.edges.cli.main import main

    # The CLI is assembled when its module loads; a feature registered later is added the
    # same way the entry-point ones were.
    for command in StampFeature().commands():
        main.add_command(command)
    assert CliRunner().invoke(main, ["stamp"]).output == "stamp!\n"


def test_one_tenancy_rule() -> None:
    a, b = Caller.from_token("a", keyed=False), Caller.from_token("b", keyed=False, host="x")
    assert (a.tenant, a.owner) == (b.tenant, b.owner) == (DEFAULT_TENANT, DEFAULT_TENANT)
    assert Caller.from_token(None, keyed=True).tenant == DEFAULT_TENANT
    keyed = Caller.from_token("secret", keyed=True)
    assert keyed.tenant == keyed.owner == tenant_of("key:secret") != DEFAULT_TENANT
    assert "secret" not in keyed.tenant
    # Fair queues still tell callers apart, whatever the tenancy.
    assert Caller.from_token("a", keyed=False).queue != Caller.from_token("b", keyed=False).queue


def test_sessions_are_shared_with_auth_off(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", bundled_models=False, models={"fake": ModelSpec(backend="fake")}
    )
    with LiveServer(create_app(settings)) as server, http_client(server.root) as http:
        made = http.post("/v1/sessions", json={"id": "team"}, headers={"Authorization": "Bearer a"})
        assert made.status_code == 200
        seen = http.get("/v1/sessions/team", headers={"Authorization": "Bearer b"})
        assert seen.status_code == 200  # another token, the same (default) tenant
        assert http.get("/v1/sessions/team").status_code == 200  # and no token at all
