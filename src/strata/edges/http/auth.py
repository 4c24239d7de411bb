"""Optional API keys, checked once per request at the edge, which turns the bearer token
into the request's ``Caller`` (``strata.core.tenancy`` has the one tenancy rule). With auth
off a client may still send a token to get its own fair queue; without one it queues by host."""

from __future__ import annotations

import hmac

from fastapi import Request

from strata.core.errors import AuthenticationFailed
from strata.core.tenancy import Caller


async def authenticate(request: Request) -> Caller:
    """The caller; raises 401 when keys are required and the token is missing or wrong.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency on a worker thread, and that
    hop cost more than everything else strata does per request."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    accepted: list[str] = request.app.state.kernel.settings.api_keys
    if accepted:
        if not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
            )
        if not any(hmac.compare_digest(token, k) for k in accepted):
            raise AuthenticationFailed("Incorrect API key provided.")
    host = request.client.host if request.client else "unknown"
    return Caller.from_token(token or None, keyed=bool(accepted), host=host)
