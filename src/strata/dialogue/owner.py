"""Who owns a stored object (session, voice, template, feedback): the API key that made it.

The key is stored as a hash, never in the clear, so a copy of the database does not hand out
working credentials. A caller without a key (auth off, or the CLI in-process) is the
anonymous owner ``""``; with auth off a client can still send a bearer token to get a private
space. Lookups always filter on the owner, so another key's object is simply not found (404),
which also hides whether it exists.
"""

from __future__ import annotations

from strata.tenancy import key_digest

ANONYMOUS = ""


def owner_of(key: str) -> str:
    """The owner id for a pipeline/admission key (``key:TOKEN`` or ``host:ADDR``)."""
    digest = key_digest(key)
    return digest[:32] if digest else ANONYMOUS
