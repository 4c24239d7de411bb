"""The REST API as the CLI's management commands see it: a running server (``--url``), or the
same FastAPI app in this process through httpx's ASGI transport. One code path for both, so
``strata sessions list`` and ``strata sessions list --url …`` cannot drift apart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from strata.config import Settings
from strata.errors import BackendUnavailable, UpstreamError

if TYPE_CHECKING:  # httpx is imported when a command runs, so `strata --help` stays fast
    import httpx

F = TypeVar("F", bound=Callable[..., Any])


class API:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            response = await self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise UpstreamError(message, upstream_status=response.status_code)
        return response.json()


@contextlib.asynccontextmanager
async def api(settings: Settings, url: str | None, key: str | None) -> AsyncIterator[API]:
    import httpx

    if url:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        base = url.rstrip("/").removesuffix("/v1")
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as http:
            yield API(http)
        return
    from strata.serve.app import create_app

    settings = settings.model_copy(update={"api_keys": []})  # in-process: you are the owner
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://strata", timeout=600
        ) as http:
            yield API(http)
    finally:
        await app.state.stack.shutdown()


def remote_options(func: F) -> F:
    """``--url`` and ``--key``: use a running server instead of this process."""
    func = click.option("--url", envvar="STRATA_URL", help="Use a running server (…/v1)")(func)
    return click.option("--key", envvar="STRATA_API_KEY", help="API key for --url")(func)


def call_api(
    settings: Settings, url: str | None, key: str | None, method: str, path: str, body: Any = None
) -> Any:
    """One REST call from a synchronous command."""

    async def go() -> Any:
        async with api(settings, url, key) as client:
            return await client.call(method, path, body)

    return asyncio.run(go())


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
