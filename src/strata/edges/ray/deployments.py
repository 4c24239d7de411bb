"""The two Ray Serve deployments strata is made of.

``ModelServer``: one replica of one local model. It owns the weights and runs the model's
own backend; it neither queues nor bills (Ray Serve's ``max_ongoing_requests`` bounds what it
is sent, the gateway does the rest).

``Gateway``: the HTTP app of ``strata.edges.http.app`` in a stateless replica. Its engine
holds a ``RayBackend`` for each local model, calling the ``ModelServer`` replicas through
their deployment handles, and the model's own backend for every remote one, so admission,
fair queues, routing, billing and every feature run here as they do in one process, over the
one database all replicas share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve

from strata.core.engine import Engine
from strata.core.errors import StrataError
from strata.core.models.base import Backend, Chunk, GenerationRequest
from strata.core.models.ray import RayBackend
from strata.core.models.registry import create_backend
from strata.core.settings import CoreSettings, ModelSpec, load_settings


class ModelServer:
    def __init__(self, name: str, spec: dict[str, Any], home: str) -> None:
        self.backend = create_backend(name, ModelSpec.model_validate(spec), Path(home))
        self.generations = 0

    async def load(self) -> list[str] | StrataError:
        """Load the weights; the capabilities the loaded model really has (or why not)."""
        try:
            await self.backend.load()
        except StrataError as exc:
            return exc
        return sorted(self.backend.capabilities)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk | StrataError]:
        """The backend's chunks; a ``StrataError`` is sent as the last item, not raised, so
        it reaches the gateway as itself (see ``strata.core.models.ray``)."""
        self.generations += 1
        try:
            async for chunk in self.backend.generate(request):
                yield chunk
        except StrataError as exc:
            yield exc

    async def stats(self) -> dict[str, Any]:
        """Which replica answered and how many generations it has run (spreading checks)."""
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "generations": self.generations,
        }

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int] | StrataError:
        try:
            return await self.backend.embed(texts)
        except StrataError as exc:
            return exc


def gateway_backends(settings: CoreSettings, handles: dict[str, Any]) -> dict[str, Backend]:
    """The gateway's models: a ``RayBackend`` over each deployed model's handle, admitting
    this gateway's share of the model's replicas; every other model as itself."""
    backends: dict[str, Backend] = {}
    for name, spec in settings.all_models().items():
        inner = create_backend(name, spec, settings.home)
        handle = handles.get(name)
        if handle is None:  # a remote model stays remote: called from the gateway directly
            backends[name] = inner
            continue
        share = settings.ray.gateway_share(name, spec.max_concurrency or inner.concurrency)
        backends[name] = RayBackend(
            name,
            spec.model_copy(update={"max_concurrency": share}),
            settings.home,
            inner=inner,
            handle=handle,
            retries=settings.ray.retries,
        )
    return backends


@serve.ingress()
class Gateway:
    def __init__(self, settings: dict[str, Any], handles: dict[str, Any]) -> None:
        from strata.edges.http.app import create_app

        loaded = load_settings(**settings)
        self.strata = create_app(loaded, Engine(loaded, gateway_backends(loaded, handles)))

    def __serve_build_asgi_app__(self) -> Any:
        return self.strata
