"""Who a request belongs to, as the stores record it.

The serving layer names each caller ``key:TOKEN`` (an API key) or ``host:ADDR``
(``strata.serve.auth``). Stores never keep the token itself, only a digest of it, so a copy
of a database hands out no working credentials; each store keeps its own prefix and length.
"""

from __future__ import annotations

import hashlib

API_KEY_PREFIX = "key:"


def key_digest(key: str) -> str | None:
    """sha256 (hex) of the API key in ``key``, or None when the caller sent no key."""
    if key.startswith(API_KEY_PREFIX):
        return hashlib.sha256(key[len(API_KEY_PREFIX) :].encode()).hexdigest()
    return None
