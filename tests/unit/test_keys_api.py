"""Issued keys over HTTP on fake models: ``/v1/keys`` for admins, 401 once any key exists,
budgets (429 ``insufficient_quota``), rpm and tpm (429 ``rate_limit_exceeded`` with
``Retry-After``), a concurrent burst that cannot overspend, revocation, per-key usage, and
the classes the official SDK raises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from strata.core.errors import BackendUnavailable
from strata.core.kernel import Kernel
from strata.core.models.fake import scripted
from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from strata.features.keys.feature import Keys
from tests.conftest import LiveServer, fake_settings

ADMIN = {"Authorization": "Bearer root"}
CENT_PER_TOKEN = 10_000.0  # USD per 1M output tokens: one output token costs $0.01


def priced_settings(tmp_path: Path, **overrides: Any) -> Settings:
    settings = fake_settings(tmp_path, admin_keys=["root"], **overrides)
    settings.models["priced"] = ModelSpec(
        backend="fake",
        n_ctx=512,
        price_output_per_mtok=CENT_PER_TOKEN,
        max_concurrency=32,
        max_queue=64,
        options={"default_output": "a b c d", "delay_s": 0.02},
    )
    return settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = priced_settings(tmp_path)
    with LiveServer(create_app(settings)) as live:
        yield live


def kernel_of(server: LiveServer) -> Kernel:
    app: Any = server.server.config.app
    found: Kernel = app.state.kernel
    return found


def issue(http: httpx.Client, **limits: Any) -> dict[str, Any]:
    response = http.post("/v1/keys", json={"name": "k" + str(time.monotonic_ns()), **limits})
    assert response.status_code == 200, response.text
    made: dict[str, Any] = response.json()
    return made


def chat(
    http: httpx.Client, key: str | None, model: str = "priced", **extra: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}" if key else ""}  # over the client's admin key
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return http.post("/v1/chat/completions", json=body, headers=headers)


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.root, timeout=30, headers=ADMIN) as client:
        yield client


def test_keys_rest_is_for_admins_and_a_key_is_shown_once(server: LiveServer) -> None:
    with httpx.Client(base_url=server.root, timeout=30) as anyone:
        assert anyone.get("/v1/keys").status_code == 401
        assert anyone.get("/v1/keys", headers={"Authorization": "Bearer nope"}).status_code == 401
    with httpx.Client(base_url=server.root, timeout=30, headers=ADMIN) as admin:
        made = issue(admin, budget_usd=1.5, rpm=10)
        assert made["key"].startswith("sk-strata-") and made["period"] == "month"
        assert made["tenant"].startswith("k") and len(made["tenant"]) == 25
        denied = admin.get("/v1/keys", headers={"Authorization": f"Bearer {made['key']}"})
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "permission_denied"
        listed = admin.get("/v1/keys").json()["data"]
        assert [k["id"] for k in listed] == [made["id"]]
        assert "key" not in listed[0] and "digest" not in listed[0]
        assert listed[0]["spent_usd"] == 0.0 and listed[0]["resets_at"] > time.time()
        sdk = openai.OpenAI(base_url=server.url, api_key=made["key"], max_retries=0)
        with pytest.raises(openai.PermissionDeniedError):
            sdk.get("/keys", cast_to=object)
        bad = admin.post("/v1/keys", json={"name": "x", "rpm": 0})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
        assert admin.delete("/v1/keys/nobody").status_code == 404


def test_401_without_a_valid_key_once_one_is_issued_and_after_revoking(
    server: LiveServer, http: httpx.Client
) -> None:
    made = issue(http)
    assert chat(http, made["key"]).status_code == 200
    for key in (None, "sk-strata-wrong"):
        refused = chat(http, key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    revoked = http.delete(f"/v1/keys/{made['name']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is not None
    after = chat(http, made["key"])
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    client = openai.OpenAI(base_url=server.url, api_key=made["key"], max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "x"}])


def test_revoking_the_only_key_keeps_auth_on(tmp_path: Path) -> None:
    settings = priced_settings(tmp_path)
    settings.admin_keys = []
    app = create_app(settings)
    keys = app.state.kernel.feature("keys", Keys)
    token, record = keys.store.create("only")
    keys.store.revoke(record.id)
    keys.cache.reload()
    with LiveServer(app) as live, httpx.Client(base_url=live.root) as http:
        assert chat(http, None).status_code == 401
        assert chat(http, token).status_code == 401


def test_no_keys_anywhere_means_auth_off(tmp_path: Path) -> None:
    settings = priced_settings(tmp_path)
    settings.admin_keys = []
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.root) as http:
        assert chat(http, None).status_code == 200
        assert chat(http, "anything").status_code == 200


def test_budget_exceeded_is_insufficient_quota_naming_the_budget_and_its_reset(
    server: LiveServer, http: httpx.Client
) -> None:
    made = issue(http, budget_usd=0.1, period="day")
    # each answer: 4 tokens at $0.01; the estimate (max_tokens 4) is the same
    for _ in range(2):
        assert chat(http, made["key"], max_tokens=4).status_code == 200
    refused = chat(http, made["key"], max_tokens=4)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    midnight = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert "daily budget of $0.10" in error["message"] and midnight in error["message"]
    assert "$0.0800 spent" in error["message"]
    assert refused.headers["x-should-retry"] == "false"
    listed = http.get("/v1/keys").json()["data"][0]
    assert listed["spent_usd"] == pytest.approx(0.08)
    client = openai.OpenAI(base_url=server.url, api_key=made["key"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert caught.value.code == "insufficient_quota"
    # a smaller request still fits what is left
    assert chat(http, made["key"], max_tokens=1).status_code == 200


def test_rpm_is_rate_limit_exceeded_with_retry_after(
    server: LiveServer, http: httpx.Client
) -> None:
    made = issue(http, rpm=2)
    assert [chat(http, made["key"]).status_code for _ in range(2)] == [200, 200]
    refused = chat(http, made["key"])
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "requests per min (RPM): Limit 2, Used 2" in error["message"]
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    client = openai.OpenAI(base_url=server.url, api_key=made["key"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.completions.create(model="base", prompt="once upon")  # completions too
    assert caught.value.code == "rate_limit_exceeded"
    assert chat(http, issue(http, rpm=2)["key"]).status_code == 200  # per key


def test_tpm_is_rate_limit_exceeded_with_retry_after(
    server: LiveServer, http: httpx.Client
) -> None:
    made = issue(http, tpm=60)
    # estimate: 3 + (4 + 1) prompt tokens + max_tokens 10 = 18; actual: 2 + 4 = 6
    ok = [chat(http, made["key"], max_tokens=10).status_code for _ in range(3)]
    assert ok == [200, 200, 200]
    refused = chat(http, made["key"], max_tokens=50)  # 18 used + 58 asked > 60
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "tokens per min (TPM): Limit 60, Used 18, Requested 58" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    too_big = chat(http, made["key"], max_tokens=100)
    assert too_big.status_code == 429 and "Request too large" in too_big.json()["error"]["message"]


def test_a_burst_cannot_overspend_beyond_requests_in_flight(
    server: LiveServer, http: httpx.Client
) -> None:
    made = issue(http, budget_usd=0.14)  # room for 3 requests of $0.04 each

    async def burst() -> list[int]:
        headers = {"Authorization": f"Bearer {made['key']}"}
        body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(base_url=server.root, headers=headers, timeout=30) as c:
            responses = await asyncio.gather(
                *(c.post("/v1/chat/completions", json={**body, "max_tokens": 4}) for _ in range(12))
            )
        return [r.status_code for r in responses]

    codes = asyncio.run(burst())
    assert sorted(codes) == [200] * 3 + [429] * 9
    spent = http.get("/v1/keys").json()["data"][0]["spent_usd"]
    assert spent == pytest.approx(0.12) and spent <= 0.14
    usage = http.get("/v1/usage", headers={"Authorization": f"Bearer {made['key']}"}).json()
    assert usage["tenant"] == made["tenant"] and usage["requests"] == 3
    assert usage["cost_usd"] == pytest.approx(0.12)
    by_admin = http.get("/v1/usage", params={"tenant": made["tenant"]}).json()
    assert by_admin["requests"] == 3
    other = issue(http)
    nosy = http.get(
        "/v1/usage",
        params={"tenant": made["tenant"]},
        headers={"Authorization": f"Bearer {other['key']}"},
    )
    assert nosy.status_code == 400


def test_a_failed_request_releases_its_reservation(server: LiveServer, http: httpx.Client) -> None:
    made = issue(http, budget_usd=0.05, tpm=40)  # one $0.04 request at a time
    backend = scripted(kernel_of(server).engine.get("priced").backend)
    backend.enqueue(BackendUnavailable("down"))
    assert chat(http, made["key"], max_tokens=4).status_code == 503
    assert chat(http, made["key"], max_tokens=4).status_code == 200
    assert http.get("/v1/keys").json()["data"][0]["spent_usd"] == pytest.approx(0.04)


def test_a_stream_is_settled_before_it_ends(server: LiveServer, http: httpx.Client) -> None:
    made = issue(http, budget_usd=0.05)
    client = openai.OpenAI(base_url=server.url, api_key=made["key"], max_retries=0)
    stream = client.chat.completions.create(
        model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b c d"
    assert http.get("/v1/keys").json()["data"][0]["spent_usd"] == pytest.approx(0.04)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )


def test_spending_survives_a_restart(tmp_path: Path) -> None:
    settings = priced_settings(tmp_path)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.root) as http:
        http.headers.update(ADMIN)
        made = issue(http, budget_usd=0.05)
        assert chat(http, made["key"], max_tokens=4).status_code == 200
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.root) as http:
        refused = chat(http, made["key"], max_tokens=4)
        assert refused.status_code == 429 and "$0.0400 spent" in refused.json()["error"]["message"]
