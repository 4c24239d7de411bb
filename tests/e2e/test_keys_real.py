"""An issued key's budget on the bundled 0.5B model: local compute is priced (cpu_hour_usd),
counted against the key exactly as the ledger bills it, and a budget smaller than a request's
estimate is refused before the model runs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from strata.core.settings import ModelSpec, Settings
from strata.edges.http.app import create_app
from tests.conftest import LiveServer
from tests.e2e.conftest import bundled_path

pytestmark = pytest.mark.real_model
ADMIN = {"Authorization": "Bearer root"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    small = ModelSpec(path=bundled_path("qwen2.5-coder-0.5b-instruct"), n_ctx=1024)
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        bundled_models=False,
        models={"small": small},
        admin_keys=["root"],
    )
    with LiveServer(create_app(settings)) as live:
        yield live


def test_local_compute_is_spent_from_the_budget(server: LiveServer) -> None:
    with httpx.Client(base_url=server.root, headers=ADMIN, timeout=120) as admin:
        made = admin.post("/v1/keys", json={"name": "local", "budget_usd": 1.0}).json()
        sdk = openai.OpenAI(base_url=server.url, api_key=made["key"], max_retries=0, timeout=120)
        reply = sdk.chat.completions.create(
            model="small", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
        )
        assert reply.choices[0].message.content
        (listed,) = admin.get("/v1/keys").json()["data"]
        usage = admin.get("/v1/usage", params={"tenant": made["tenant"]}).json()
        assert usage["requests"] == 1 and usage["cost_usd"] > 0
        assert listed["spent_usd"] == pytest.approx(usage["cost_usd"])

        poor = admin.post("/v1/keys", json={"name": "poor", "budget_usd": 1e-9}).json()
        sdk = openai.OpenAI(base_url=server.url, api_key=poor["key"], max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(
                model="small", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
            )
        assert caught.value.code == "insufficient_quota"
