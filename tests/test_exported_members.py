"""``strata.__all__`` is exactly the package's public surface."""

from __future__ import annotations

import inspect
import types

import strata
import strata.core.errors


def public_names() -> set[str]:
    """Names a user gets from ``import strata``: no privates, submodules or __future__."""
    return {
        name
        for name, value in vars(strata).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }


def test_all_matches_public_names() -> None:
    assert set(strata.__all__) - {"__version__"} == public_names()


def test_all_is_sorted_and_unique() -> None:
    assert list(strata.__all__) == sorted(strata.__all__)
    assert len(set(strata.__all__)) == len(strata.__all__)


def test_all_resolves() -> None:
    for name in strata.__all__:
        value = getattr(strata, name)
        if name != "__version__":
            assert value.__module__.startswith("strata."), name


def test_star_import() -> None:
    namespace: dict[str, object] = {}
    exec("from strata import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(strata.__all__)


def test_version() -> None:
    assert isinstance(strata.__version__, str)
    assert strata.__version__.count(".") == 2


def test_every_error_is_exported() -> None:
    errors = {
        name
        for name, value in vars(strata.core.errors).items()
        if inspect.isclass(value) and issubclass(value, strata.StrataError)
    }
    assert errors <= set(strata.__all__)
    for name in errors:
        assert getattr(strata, name) is getattr(strata.core.errors, name)


def test_error_statuses() -> None:
    expected = {
        strata.InvalidRequest: 400,
        strata.ContextWindowExceeded: 400,
        strata.AuthenticationFailed: 401,
        strata.ModelNotFound: 404,
        strata.NotFound: 404,
        strata.PermissionDenied: 403,
        strata.QueueFull: 429,
        strata.RateLimited: 429,
        strata.QuotaExceeded: 429,
        strata.ModelLoadError: 500,
        strata.UpstreamError: 502,
        strata.BackendUnavailable: 503,
        strata.Preempted: 503,
        strata.StorageUnavailable: 503,
        strata.BackendTimeout: 504,
    }
    for cls, status in expected.items():
        assert cls.status_code == status, cls
    assert issubclass(strata.ContextWindowExceeded, strata.InvalidRequest)
    assert issubclass(strata.InvalidRequest, strata.RequestError)
    for cls in (strata.ModelLoadError, strata.BackendUnavailable, strata.BackendTimeout):
        assert issubclass(cls, strata.BackendError)
    assert strata.UpstreamError("m", upstream_status=418).status_code == 418
    assert strata.UpstreamError("m", upstream_status=503).status_code == 502
