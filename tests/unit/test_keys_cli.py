"""``strata keys create | list | revoke`` straight to the store (no server), and the same
commands against a running server with ``--url`` and an admin key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from strata.core.cli import make_settings
from strata.core.engine import Engine
from strata.core.settings import Settings
from strata.edges.cli.main import main
from strata.edges.http.app import create_app
from strata.features.keys.store import KeyStore
from tests.conftest import LiveServer, fake_settings


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_create_prints_the_key_alone_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = invoke(
        "keys", "create", "--name", "alice", "--budget-usd", "2.5", "--period", "day",
        "--rpm", "30", "--tpm", "5000", "--home", str(home),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    lines = made.stdout.splitlines()
    key = lines[0]
    assert key.startswith("sk-strata-") and " " not in key and len(key) > 40
    assert key not in "\n".join(lines[1:])
    assert "$2.5 daily, 30 rpm, 5000 tpm" in lines[1]
    for db in home.glob("keys.db*"):
        assert key.encode() not in db.read_bytes()
    store = KeyStore(home / "keys.db")
    try:
        (record,) = store.all()
    finally:
        store.close()
    assert (record.name, record.budget_usd, record.period, record.rpm, record.tpm) == (
        "alice", 2.5, "day", 30, 5000,
    )  # fmt: skip

    listed = json.loads(invoke("keys", "list", "--json", "--home", str(home)).stdout)
    assert [(k["name"], k["revoked"], k["spent_usd"]) for k in listed] == [("alice", None, 0.0)]
    assert listed[0]["hint"].endswith(key[-4:]) and key not in json.dumps(listed)
    table = invoke("keys", "list", "--home", str(home)).stdout
    assert "alice" in table and "live" in table

    duplicate = CliRunner().invoke(main, ["keys", "create", "--name", "alice", "--home", str(home)])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr

    revoked = invoke("keys", "revoke", "alice", "--home", str(home))
    assert revoked.exit_code == 0 and record.id in revoked.stdout
    listed = json.loads(invoke("keys", "list", "--json", "--home", str(home)).stdout)
    assert listed[0]["revoked"] is not None
    missing = CliRunner().invoke(main, ["keys", "revoke", "nobody", "--home", str(home)])
    assert missing.exit_code == 1 and "no API key 'nobody'" in missing.stderr


def test_a_period_needs_a_budget(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["keys", "create", "--name", "x", "--period", "day", "--home", str(tmp_path)]
    )
    assert result.exit_code == 1 and "needs a budget" in result.stderr


def eventually(check: Callable[[], bool], within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_keys_changed_by_the_cli_reach_a_running_server(tmp_path: Path) -> None:
    settings: Settings = fake_settings(tmp_path, keys={"refresh_s": 0.1})
    with (
        LiveServer(create_app(settings, Engine(settings))) as server,
        httpx.Client(base_url=server.root, timeout=30) as http,
    ):
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}

        def status(token: str | None) -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.post("/v1/chat/completions", json=body, headers=headers).status_code

        assert status(None) == 200  # no keys anywhere: auth is off
        key = invoke("keys", "create", "--name", "bob", "--home", str(settings.home))
        token = key.stdout.splitlines()[0]
        assert eventually(lambda: status(None) == 401)  # auth is on
        assert status(token) == 200
        home = ["--home", str(settings.home)]
        (listed,) = json.loads(invoke("keys", "list", "--json", *home).stdout)
        usage = json.loads(invoke("usage", "--tenant", listed["tenant"], "--json", *home).stdout)
        assert usage["requests"] == 1  # the request made with the key, billed to its tenant
        invoke("keys", "revoke", "bob", "--home", str(settings.home))
        assert eventually(lambda: status(token) == 401)
        refused = http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert "revoked" in refused.json()["error"]["message"]


def test_the_commands_against_a_server_need_an_admin_key(tmp_path: Path) -> None:
    settings: Settings = fake_settings(tmp_path, admin_keys=["root"], api_keys=["user"])
    with LiveServer(create_app(settings, Engine(settings))) as server:
        url = ["--url", server.url]
        made = invoke("keys", "create", "--name", "carol", "--rpm", "5", *url, "--key", "root")
        assert made.exit_code == 0, made.output
        assert made.stdout.splitlines()[0].startswith("sk-strata-")
        listed = json.loads(invoke("keys", "list", "--json", *url, "--key", "root").stdout)
        assert [k["name"] for k in listed] == ["carol"]
        denied = CliRunner().invoke(main, ["keys", "list", *url, "--key", "user"])
        assert denied.exit_code == 1 and "admin key" in denied.stderr
        assert invoke("keys", "revoke", "carol", *url, "--key", "root").exit_code == 0


def test_in_process_commands_still_work_once_keys_exist(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert invoke("keys", "create", "--name", "dora", "--home", home).exit_code == 0
    listed = invoke("template", "list", "--json", "--home", home)  # the app, in-process
    assert listed.exit_code == 0 and json.loads(listed.stdout)


def test_admin_keys_come_from_a_flag_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "--admin-key" in invoke("serve", "--help").stdout
    assert make_settings(None, (), admin_keys=("a", "b")).admin_keys == ["a", "b"]
    monkeypatch.setenv("STRATA_ADMIN_KEYS", '["env-admin"]')
    assert make_settings(None, ()).admin_keys == ["env-admin"]
