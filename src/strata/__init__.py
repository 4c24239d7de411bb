"""strata: models of every size behind one OpenAI-compatible API."""

from __future__ import annotations

__version__ = "0.1.0"

from strata.config import ModelSpec, Settings, load_settings
from strata.engine import Engine, Timings
from strata.errors import (
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    CatalogError,
    ConfigError,
    ContextWindowExceeded,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    QueueFull,
    RequestError,
    StrataError,
    UpstreamError,
)
from strata.models.base import (
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
from strata.models.registry import register_backend

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
    "InvalidRequest",
    "ModelLoadError",
    "ModelNotFound",
    "ModelSpec",
    "NotFound",
    "Price",
    "QueueFull",
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
