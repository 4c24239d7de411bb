"""What a feature's REST router needs from the HTTP edge, without importing it: the kernel
and the authenticated ``Caller`` (``Depends(caller)``). The edge puts both on the app's state
(``kernel``, and ``authenticate``: request → Caller, raising 401 on a bad key)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from strata.core.kernel import Kernel
from strata.core.tenancy import Caller

Authenticate = Callable[[Request], Awaitable[Caller]]


def kernel(request: Request) -> Kernel:
    found: Kernel = request.app.state.kernel
    return found


async def caller(request: Request) -> Caller:
    """The request's caller, authenticated once per request (FastAPI caches dependencies)."""
    authenticate: Authenticate = request.app.state.authenticate
    return await authenticate(request)


CallerDep = Annotated[Caller, Depends(caller)]
"""A route's parameter for the authenticated caller: ``who: CallerDep``."""
