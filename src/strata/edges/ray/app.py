"""Build and run strata's Ray Serve application from the settings.

Each local model becomes a ``ModelServer`` deployment named ``model-NAME``, sized by
``[ray.model]`` and ``[ray.models.NAME]``; the gateway is the ingress, sized by
``[ray.gateway]``. Remote models get no deployment: the gateway calls them as it always does.

Two ways to start it: ``strata serve --ray`` (``run``) or Ray's own CLI, ``serve run
strata.edges.ray.app:build config=strata.toml`` (``build``).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from strata.core.deployment import GATEWAY_ONGOING
from strata.core.models.registry import backend_class, create_backend
from strata.core.settings import CoreSettings, ModelSpec, load_settings


def local_models(settings: CoreSettings) -> dict[str, ModelSpec]:
    """The models that get a deployment: every one whose backend runs in-process."""
    return {n: s for n, s in settings.all_models().items() if backend_class(s.backend).local}


def reserved_cpus(settings: CoreSettings) -> float:
    """Ray CPUs the deployments reserve at their most replicas."""
    ray = settings.ray
    total = ray.gateway.num_cpus * ray.gateway.most_replicas()
    for name in local_models(settings):
        spec = ray.for_model(name)
        total += spec.num_cpus * spec.most_replicas()
    return total


def build_app(settings: CoreSettings) -> Any:
    """The Ray Serve application (a bound gateway over bound model deployments)."""
    from ray import serve

    from strata.edges.ray.deployments import Gateway, ModelServer

    handles: dict[str, Any] = {}
    for name, spec in local_models(settings).items():
        # an instance, not the class: a llama model's concurrency is its batch_slots
        concurrency = create_backend(name, spec, settings.home).concurrency
        options = settings.ray.for_model(name).ray_options(spec.max_concurrency or concurrency)
        model: Any = serve.deployment(ModelServer)  # Ray's stubs type a class as a function
        deployment = model.options(name=f"model-{name}", **options)
        handles[name] = deployment.bind(name, spec.model_dump(mode="json"), str(settings.home))
    ingress: Any = serve.deployment(Gateway)
    gateway = ingress.options(name="gateway", **settings.ray.gateway.ray_options(GATEWAY_ONGOING))
    return gateway.bind(settings.model_dump(mode="json"), handles)


def build(args: dict[str, str]) -> Any:
    """Application builder for ``serve run strata.edges.ray.app:build [config=FILE]``."""
    return build_app(load_settings(args.get("config")))


def deploy(settings: CoreSettings) -> None:
    """Join (or start) the Ray cluster and deploy strata, the gateway at ``/`` on
    ``settings.host:settings.port``; returns once every replica is up."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        if settings.ray.address is None:
            # A Ray of our own on this machine: declare at least the CPUs the deployments
            # reserve, so the defaults (four bundled models, lazily loaded) deploy on a laptop;
            # the kernel shares the real cores between them as it would in one process.
            cpus = max(os.cpu_count() or 1, math.ceil(reserved_cpus(settings)))
            ray.init(num_cpus=cpus, include_dashboard=False)
        else:
            ray.init(address=settings.ray.address)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_app(settings), name=settings.ray.app_name, route_prefix="/")


def run(settings: CoreSettings) -> None:
    """``strata serve --ray``: deploy, then serve until interrupted, and tear down."""
    from ray import serve

    deploy(settings)
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.delete(settings.ray.app_name)
