"""strata: models of every size behind one OpenAI-compatible API."""

from __future__ import annotations

__version__ = "0.1.0"

from strata.core.engine import Engine, Timings
from strata.core.errors import (
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    CatalogError,
    ConfigError,
    ContextWindowExceeded,
    InvalidInput,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    Preempted,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RequestError,
    StrataError,
    UpstreamError,
)
from strata.core.models.base import (
    Backend,
    Capability,
    Chunk,
    GenerationRequest,
    Price,
    ResponseFormat,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from strata.core.models.registry import register_backend
from strata.core.settings import ModelSpec, Settings, load_settings

__all__ = [
    "AuthenticationFailed",
    "Backend",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "Capability",
    "CatalogError",
    "Chunk",
    "ConfigError",
    "ContextWindowExceeded",
    "Engine",
    "GenerationRequest",
    "InvalidInput",
    "InvalidRequest",
    "ModelLoadError",
    "ModelNotFound",
    "ModelSpec",
    "NotFound",
    "PermissionDenied",
    "Preempted",
    "Price",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "RequestError",
    "ResponseFormat",
    "SamplingParams",
    "Settings",
    "StrataError",
    "Timings",
    "TokenLogprob",
    "TopLogprob",
    "UpstreamError",
    "Usage",
    "__version__",
    "load_settings",
    "register_backend",
]
