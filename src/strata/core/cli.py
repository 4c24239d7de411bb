"""What a feature's CLI commands share, without importing the CLI edge: settings flags
derived from ``CoreSettings`` (one definition), ``--url``/``--key``, and ``call_api``, which
talks to a running server or to the same app in this process. The edge puts its app factory
in the click context (``APP_FACTORY``), so the in-process path needs no import of it here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from strata.core.errors import BackendUnavailable, ConfigError, UpstreamError
from strata.core.settings import CoreSettings, load_settings
from strata.core.tenancy import Caller

if TYPE_CHECKING:  # httpx is imported when a command runs, so `strata --help` stays fast
    import httpx

F = TypeVar("F", bound=Callable[..., Any])
APP_FACTORY = "strata.app_factory"

# CoreSettings exposed as flags; the flag's type and help come from the field itself.
FLAGS = ("host", "port", "home", "database", "default_model", "max_queue", "log_level")


def settings_options(func: F) -> F:
    """Add ``--config``, ``--api-key``, ``--admin-key`` and one flag per field in ``FLAGS``."""
    for name in reversed(FLAGS):
        field = CoreSettings.model_fields[name]
        kind: Any = {int: int, float: float, Path: click.Path(path_type=Path)}.get(
            field.annotation,  # type: ignore[arg-type]
            str,
        )
        flag = "--" + name.replace("_", "-")
        func = click.option(flag, name, type=kind, default=None, help=field.description)(func)
    func = click.option(
        "--admin-key",
        "admin_keys",
        multiple=True,
        help=CoreSettings.model_fields["admin_keys"].description,
    )(func)
    func = click.option(
        "--api-key",
        "api_keys",
        multiple=True,
        help=CoreSettings.model_fields["api_keys"].description,
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path),
        envvar="STRATA_CONFIG",
        help="TOML settings file (also STRATA_CONFIG)",
    )(func)


def make_settings(
    config_file: Path | None, api_keys: tuple[str, ...], **flags: Any
) -> CoreSettings:
    overrides = {k: v for k, v in flags.items() if k in FLAGS}
    if api_keys:
        overrides["api_keys"] = list(api_keys)
    if flags.get("admin_keys"):
        overrides["admin_keys"] = list(flags["admin_keys"])
    return load_settings(config_file, **overrides)


def remote_options(func: F) -> F:
    """``--url`` and ``--key``: use a running server instead of this process."""
    func = click.option("--url", envvar="STRATA_URL", help="Use a running server (…/v1)")(func)
    return click.option("--key", envvar="STRATA_API_KEY", help="API key for --url")(func)


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
async def api(settings: CoreSettings, url: str | None, key: str | None) -> AsyncIterator[API]:
    """The REST API of a running server (``url``), or of the same app in this process through
    httpx's ASGI transport: one code path for both, so the two cannot drift apart."""
    import httpx

    if url:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        base = url.rstrip("/").removesuffix("/v1")
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as http:
            yield API(http)
        return
    context = click.get_current_context(silent=True)
    factory = context.meta.get(APP_FACTORY) if context is not None else None
    if factory is None:
        raise ConfigError("no in-process app: run this through the strata command")
    settings = settings.model_copy(update={"api_keys": [], "admin_keys": []})
    app = factory(settings)
    app.state.authenticate = _owner  # in-process: you are the owner, whatever keys exist
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://strata", timeout=600
        ) as http:
            yield API(http)
    finally:
        await app.state.kernel.shutdown()


async def _owner(request: Any) -> Caller:
    """The caller of the in-process app: the person at the terminal, as with auth off."""
    return Caller(admin=True)


def call_api(
    settings: CoreSettings,
    url: str | None,
    key: str | None,
    method: str,
    path: str,
    body: Any = None,
) -> Any:
    """One REST call from a synchronous command."""

    async def go() -> Any:
        async with api(settings, url, key) as client:
            return await client.call(method, path, body)

    return asyncio.run(go())


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
