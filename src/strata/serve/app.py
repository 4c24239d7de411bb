"""The HTTP application: builds the engine, wires routes, errors, health and metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from strata import __version__
from strata.apps.routes import router as apps_router
from strata.config import Settings
from strata.dialogue.routes import router as sessions_router
from strata.engine import Engine
from strata.knowledge.routes import router as knowledge_router
from strata.routing.api import router as routing_router
from strata.serve.errors import install_error_handlers
from strata.serve.metrics import Metrics
from strata.serve.openai_routes import router
from strata.stack import Stack


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    stack = Stack(settings, engine)
    engine = stack.engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await stack.startup()
        try:
            yield
        finally:
            await stack.shutdown()

    app = FastAPI(
        title="strata",
        version=__version__,
        description="Models of every size behind one OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stack = stack
    app.state.engine = engine
    app.state.metrics = Metrics(engine)
    app.state.started = time.time()
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(sessions_router)
    app.include_router(apps_router)
    app.include_router(routing_router)
    app.include_router(knowledge_router)

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
