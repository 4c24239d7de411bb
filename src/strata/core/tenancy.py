"""Who a request belongs to: one rule for every feature, built once at the edge.

A ``Caller`` is made by the HTTP edge from the request's API key (``strata.edges.http.auth``)
or by the CLI for the person at the terminal, and handed to everything below. Features never
look at keys or headers themselves.

The rule:

- **Auth off** (no ``api_keys`` configured; also the in-process CLI): every caller is the one
  ``default`` tenant in every feature: sessions, templates, voices, feedback, knowledge and
  usage are shared. A bearer token a client sends anyway only gives it its own *queue* for
  fair admission; it does not give it private data.
- **Auth on** (any key configured in ``api_keys`` or ``admin_keys``, or ever issued by the
  keys feature): the tenant is the key's: ``k`` + the first 24 hex digits of its sha256.
  Stores keep only that digest, never the key, so a copy of a database hands out no
  credentials. An issued key is its own tenant by the same rule (its record keeps the
  digest, so its tenant is known without the key); an admin key is a tenant too, and may
  also manage issued keys.

``owner`` is who owns an object inside the tenant; today one key is one owner, so it equals
the tenant. ``queue`` names the caller for the fair scheduler only. ``key`` is the id of the
issued key that authenticated the request (its budget and rate limits apply), ``admin``
whether it came with an admin key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_TENANT = "default"
API_KEY_PREFIX = "key:"


def key_digest(token: str) -> str:
    """sha256 (hex) of an API key."""
    return hashlib.sha256(token.encode()).hexdigest()


def tenant_of_digest(digest: str) -> str:
    """The tenant of the key whose sha256 (hex) is ``digest``."""
    return "k" + digest[:24]


def tenant_of(key: str) -> str:
    """The tenant of an admission key (``key:TOKEN``); anything else is the default tenant."""
    if key.startswith(API_KEY_PREFIX) and key != API_KEY_PREFIX:
        return tenant_of_digest(key_digest(key[len(API_KEY_PREFIX) :]))
    return DEFAULT_TENANT


@dataclass(frozen=True)
class Caller:
    tenant: str = DEFAULT_TENANT
    owner: str = DEFAULT_TENANT
    queue: str = "local"
    key: str | None = None
    admin: bool = False

    @classmethod
    def from_token(
        cls, token: str | None, *, keyed: bool, host: str = "local", admin: bool = False
    ) -> Caller:
        """The caller for a bearer ``token``; ``keyed`` says whether the server checks keys."""
        queue = API_KEY_PREFIX + token if token else "host:" + host
        if not (keyed and token):
            return cls(queue=queue)
        tenant = tenant_of(API_KEY_PREFIX + token)
        return cls(tenant=tenant, owner=tenant, queue=queue, admin=admin)

    @classmethod
    def issued(cls, key_id: str, digest: str) -> Caller:
        """The caller of an issued key, from its record: the key's own tenant (the same
        ``k`` + 24 hex digits of its sha256 a configured key gets) and a fair queue per key."""
        tenant = tenant_of_digest(digest)
        return cls(tenant=tenant, owner=tenant, queue="issued:" + key_id, key=key_id)


LOCAL = Caller()
