"""Optional API keys. The key also names the client for fair queueing, so with auth off a
client may still send a bearer token to get its own queue; without one it shares by host."""

from __future__ import annotations

import hmac

from fastapi import Request

from strata.errors import AuthenticationFailed
from strata.tenancy import API_KEY_PREFIX


async def client_key(request: Request) -> str:
    """The caller's identity for admission; raises 401 when keys are required and wrong.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency on a worker thread, and that
    hop cost more than everything else strata does per request."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    accepted: list[str] = request.app.state.settings.api_keys
    if accepted:
        if not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
            )
        if not any(hmac.compare_digest(token, k) for k in accepted):
            raise AuthenticationFailed("Incorrect API key provided.")
    if token:
        return API_KEY_PREFIX + token
    client = request.client
    return "host:" + (client.host if client else "unknown")
