"""strata's one exception tree.

Every layer raises these and only these; lower-layer errors (httpx, llama.cpp, OS) are
translated at the boundary with ``raise X from exc``. The HTTP layer maps the tree to
OpenAI's error body in one place (``strata.edges.http.errors``), keyed on type, never on text.

    StrataError
    ├── ConfigError                 bad settings file or model spec
    ├── CatalogError                a bundled model cannot be assembled or fails its sha256
    ├── RequestError                the caller's fault (HTTP 4xx)
    │   ├── InvalidRequest          400: bad value, empty messages, unsupported option
    │   │   └── ContextWindowExceeded   400: prompt + max_tokens > the model's window
    │   ├── AuthenticationFailed    401: missing, wrong or revoked API key
    │   ├── PermissionDenied        403: a valid key that may not do this (admin only)
    │   ├── ModelNotFound           404: no such model
    │   ├── NotFound                404: no such session, voice, template, response, collection
    │   │                               or document (or one that belongs to another API key)
    │   ├── InvalidInput            422: a template's input breaks its declared type or limits
    │   ├── QueueFull               429: the model's wait queue is at its bound
    │   ├── RateLimited             429: the key's requests or tokens per minute are used up
    │   └── QuotaExceeded           429: the key's budget for this period is spent
    ├── Preempted                   503: background work stopped so a user's request runs
    │                                   (only background callers see it; they retry later)
    ├── StorageUnavailable          503: the database (PostgreSQL) cannot be reached
    └── BackendError                the model's fault (HTTP 5xx)
        ├── ModelLoadError          500: weights missing, corrupt, or out of memory
        ├── BackendUnavailable      503: remote unreachable after retries, or still loading
        ├── BackendTimeout          504: remote did not answer in time
        └── UpstreamError           502: remote answered with an error (keeps its status)
"""

from __future__ import annotations

from typing import Any


class StrataError(Exception):
    """Base of everything strata raises on purpose."""

    status_code = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with every field (``retry_after``, ``param``, …), not only the message:
        an error raised in a Ray Serve replica reaches the gateway whole."""
        return (_restore, (type(self), self.message, dict(self.__dict__)))


def _restore(cls: type[StrataError], message: str, state: dict[str, Any]) -> StrataError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(StrataError):
    code = "config_error"


class CatalogError(StrataError):
    code = "catalog_error"


class RequestError(StrataError):
    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequest(RequestError):
    pass


class ContextWindowExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(RequestError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(RequestError):
    """A valid key asking for something only an admin key may do (``/v1/keys``)."""

    status_code = 403
    error_type = "permission_error"
    code = "permission_denied"


class ModelNotFound(RequestError):
    status_code = 404
    code = "model_not_found"


class NotFound(RequestError):
    """A named resource (session, voice, template, collection, document, ...) that does not
    exist for this caller; also what another API key's resource looks like."""

    status_code = 404
    code = "not_found"


class InvalidInput(RequestError):
    """A value that parsed but breaks a declared rule (a template input); ``param`` names it."""

    status_code = 422
    code = "invalid_input"


class QueueFull(RequestError):
    """Raised instead of queueing past the bound; ``retry_after`` is the expected wait."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RequestError):
    """A key past its requests (``kind="requests"``) or tokens (``"tokens"``) per minute.
    ``retry_after`` is when enough of the minute's window has passed; OpenAI's ``type`` names
    the limit, its ``code`` is ``rate_limit_exceeded``, as clients expect."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, kind: str = "requests") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.error_type = kind


class QuotaExceeded(RequestError):
    """A key whose budget cannot cover the request: retrying before ``resets_at`` (Unix
    seconds) cannot help, which is what OpenAI's ``insufficient_quota`` tells a client."""

    status_code = 429
    error_type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str, *, resets_at: float | None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class Preempted(StrataError):
    """A background generation gave its slot to a user's request (see ``core.admission``);
    what it produced so far is discarded and the work is retried when the model is idle."""

    status_code = 503
    code = "preempted"


class StorageUnavailable(StrataError):
    """The shared database did not answer (a PostgreSQL server down or out of connections):
    the request is refused rather than answered without its state being recorded."""

    status_code = 503
    code = "storage_unavailable"


class BackendError(StrataError):
    pass


class ModelLoadError(BackendError):
    code = "model_load_error"


class BackendUnavailable(BackendError):
    status_code = 503
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    status_code = 504
    code = "backend_timeout"


class UpstreamError(BackendError):
    """The remote server answered with an error; its status is kept for the caller."""

    status_code = 502
    code = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.upstream_status = upstream_status
        # A remote 4xx is the caller's fault, so pass it through rather than blame the remote.
        if 400 <= upstream_status < 500:
            self.status_code = upstream_status
            self.error_type = "invalid_request_error"
