"""The HTTP application: the kernel, OpenAI's endpoint families, each installed feature's
router, errors, health, metrics and the web app (``strata.edges.web``). Features are mounted
from the registry: a new feature appears here without an edit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from strata import __version__
from strata.core.engine import Engine
from strata.core.feature import installed_features
from strata.core.kernel import Kernel
from strata.core.protocols import KeyRegistry
from strata.core.settings import CoreSettings
from strata.edges.http import chat, completions, embeddings, models, responses
from strata.edges.http.auth import Authenticator
from strata.edges.http.errors import install_error_handlers
from strata.edges.http.metrics import Metrics
from strata.edges.web import app as web


def create_app(settings: CoreSettings, engine: Engine | None = None) -> FastAPI:
    kernel = Kernel(settings, engine)
    engine = kernel.engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await kernel.startup()
        try:
            yield
        finally:
            await kernel.shutdown()

    app = FastAPI(
        title="strata",
        version=__version__,
        description="Models of every size behind one OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.kernel = kernel
    app.state.engine = engine
    registry = kernel.lookup(KeyRegistry)  # type: ignore[type-abstract]
    app.state.authenticate = Authenticator(settings, registry)
    app.state.metrics = Metrics(engine)
    app.state.started = time.time()
    install_error_handlers(app)
    for family in (chat, completions, embeddings, models, responses):
        app.include_router(family.router)
    for feature in installed_features():
        router = feature.router()
        if router is not None:
            app.include_router(router)
    app.include_router(web.router)  # the web app at / and /ui, over the API above
    app.mount("/ui/static", web.static_files(), name="ui-static")

    @app.get("/health", summary="200 when ready, 503 while models load")
    async def health(request: Request) -> JSONResponse:
        models = {
            name: {"loaded": h.backend.loaded, "loading": h.loading, "error": h.load_error}
            for name, h in engine.models.items()
        }
        status = "ok" if engine.ready else "loading"
        return JSONResponse(
            {"status": status, "models": models}, status_code=200 if engine.ready else 503
        )

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        body = app.state.metrics.render()
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    return app
