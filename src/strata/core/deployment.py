"""How strata is laid out on Ray Serve: the ``[ray]`` settings section.

Nothing here imports Ray; the section is part of every strata's settings so one file
configures a single process and a cluster alike. The gateway (the HTTP app, stateless) and
each local model are separate Ray Serve deployments; every deployment is sized by a
``DeploymentSpec``: a fixed ``num_replicas``, or an ``autoscaling`` range that Ray Serve
moves within on the requests each replica has in flight. ``[ray.model]`` sizes every local
model, ``[ray.models.NAME]`` overrides it field by field for one model.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AutoscalingSpec(BaseModel):
    """Ray Serve's autoscaling config, the fields a team tunes (the rest keep Ray's defaults)."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 lets an idle model go)")
    max_replicas: int = Field(2, ge=1, description="Most replicas")
    target_ongoing_requests: float = Field(
        1.0, gt=0, description="Requests in flight per replica that Ray Serve scales towards"
    )
    upscale_delay_s: float = Field(5.0, ge=0, description="Sustained load before adding one")
    downscale_delay_s: float = Field(60.0, ge=0, description="Sustained idleness before removing")

    @model_validator(mode="after")
    def _range(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        return self

    def ray_config(self) -> dict[str, Any]:
        return self.model_dump()


class DeploymentSpec(BaseModel):
    """One deployment's size. ``max_ongoing_requests`` left unset means: for a model, the
    generations one copy of it runs at once (1 for a local model), so Ray Serve sends a
    replica no more than it can run and a dead replica takes no queue with it; for the
    gateway, 256 (it only awaits I/O)."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(1, ge=1, description="Replicas when autoscaling is off")
    max_ongoing_requests: int | None = Field(
        None, ge=1, description="Requests one replica takes at once (Ray Serve queues the rest)"
    )
    num_cpus: float = Field(1.0, ge=0, description="CPUs Ray reserves for each replica")
    autoscaling: AutoscalingSpec | None = Field(
        None, description="Scale between min_replicas and max_replicas on load"
    )

    def most_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.num_replicas

    def ray_options(self, default_ongoing: int) -> dict[str, Any]:
        """The keyword arguments of ``Deployment.options`` this spec stands for."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests or default_ongoing,
            "ray_actor_options": {"num_cpus": self.num_cpus},
        }
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.ray_config()
        else:
            options["num_replicas"] = self.num_replicas
        return options


GATEWAY_ONGOING = 256


class RaySettings(BaseModel):
    """``strata serve --ray``: where the Ray cluster is and how big each deployment is."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="Ray cluster to join ('auto', ray://host:10001); none starts one"
    )
    app_name: str = Field("strata", description="Ray Serve application name")
    gateway: DeploymentSpec = Field(
        default_factory=DeploymentSpec, description="The HTTP gateway (stateless)"
    )
    model: DeploymentSpec = Field(
        default_factory=DeploymentSpec, description="Every local model, unless overridden"
    )
    models: dict[str, DeploymentSpec] = Field(
        default_factory=dict, description="Per-model overrides of [ray.model], field by field"
    )
    retries: int = Field(
        2, ge=0, description="Other replicas a request is tried on when its replica dies"
    )

    def for_model(self, name: str) -> DeploymentSpec:
        """``[ray.model]`` with the fields ``[ray.models.NAME]`` sets laid over it."""
        override = self.models.get(name)
        if override is None:
            return self.model
        return self.model.model_copy(
            update={f: getattr(override, f) for f in override.model_fields_set}
        )

    def gateway_share(self, name: str, per_replica: int) -> int:
        """Generations one gateway replica admits into model ``name`` at once: the model's
        capacity at its most replicas, split between the gateways, so the gateways' fair
        queues (not Ray Serve's FIFO) decide who waits."""
        spec = self.for_model(name)
        capacity = (spec.max_ongoing_requests or per_replica) * spec.most_replicas()
        return max(1, math.ceil(capacity / self.gateway.most_replicas()))
