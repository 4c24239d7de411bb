"""API keys, checked once per request at the edge, which turns the bearer token into the
request's ``Caller`` (``strata.core.tenancy`` has the one tenancy rule).

Three kinds of key are accepted: configured ``api_keys``, configured ``admin_keys`` (which may
also manage issued keys) and keys issued at run time by whichever feature provides the
``KeyRegistry`` protocol (the keys feature). Once any of them exists, a request without a
valid key gets 401. With none, auth is off: a client may still send a token to get its own
fair queue; without one it queues by host.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from strata.core.errors import AuthenticationFailed
from strata.core.protocols import KeyRegistry
from strata.core.settings import CoreSettings
from strata.core.tenancy import Caller

MISSING = "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
WRONG = "Incorrect API key provided."


class Authenticator:
    """request → ``Caller``, built once per app from the settings and the registry (if any
    feature provides one). ``async`` on purpose: FastAPI runs a plain ``def`` dependency on
    a worker thread, and that hop cost more than everything else strata does per request."""

    def __init__(self, settings: CoreSettings, registry: KeyRegistry | None) -> None:
        self.api_keys = list(settings.api_keys)
        self.admin_keys = list(settings.admin_keys)
        self.configured = bool(self.api_keys or self.admin_keys)
        self.registry = registry

    async def __call__(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if token:
            if self.admin_keys and _matches(token, self.admin_keys):
                return Caller.from_token(token, keyed=True, admin=True)
            if self.api_keys and _matches(token, self.api_keys):
                return Caller.from_token(token, keyed=True)
            if self.registry is not None:
                issued = await self.registry.identify(token)
                if issued is not None:
                    return issued
        if self.configured or (self.registry is not None and self.registry.active()):
            raise AuthenticationFailed(WRONG if token else MISSING)
        host = request.client.host if request.client else "unknown"
        return Caller.from_token(token or None, keyed=False, host=host)


def _matches(token: str, keys: list[str]) -> bool:
    return any(hmac.compare_digest(token, k) for k in keys)
