"""Serves the web app: ``/`` and ``/ui`` answer with the page, ``/ui/static/...`` with its
assets. No authentication here: the page holds no data; it asks the API, with the key the
person gives it, for everything it shows."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")

router = APIRouter(include_in_schema=False)

# Revalidate on every load: a browser must not keep running last version's modules.
NO_STALE = {"Cache-Control": "no-cache"}


@router.get("/")
@router.get("/ui")
@router.get("/ui/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=NO_STALE)


def static_files() -> StaticFiles:
    """The assets, mounted by the HTTP app at ``/ui/static``."""
    return StaticFiles(directory=STATIC)
