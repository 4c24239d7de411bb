"""The issued keys in memory, so authenticating a request costs a sha256 and a dict lookup.

The whole key table is small, so it is held whole (digest → record, id → record, and the
``Caller`` each key stands for, built once). It is reloaded at once after a create or revoke
in this process (``reload``) and, for changes made by another process (``strata keys
create`` or ``revoke`` with no server involved), when the store's change stamp moves:
checked in the background at most every ``refresh_s`` while requests arrive, and awaited
before turning down a token nobody knows (at most every ``MISS_RECHECK_S``, so a flood of
wrong keys costs the store a few small reads a second, not one each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from strata.core.errors import AuthenticationFailed
from strata.core.tenancy import Caller, key_digest
from strata.features.keys.records import KeyRecord
from strata.features.keys.store import KeyStore

MISS_RECHECK_S = 0.2
log = logging.getLogger("strata.keys")


class KeyCache:
    """The keys feature's ``KeyRegistry`` (``strata.core.protocols``)."""

    def __init__(self, store: KeyStore, refresh_s: float = 1.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.by_digest: dict[str, KeyRecord] = {}
        self.by_id: dict[str, KeyRecord] = {}
        self.callers: dict[str, Caller] = {}
        self.version = -1
        self._checked = 0.0
        self._task: asyncio.Task[None] | None = None
        self.reload()

    def reload(self) -> None:
        """Read every key from the store (a thread or a start-up: it queries)."""
        version = self.store.version()
        records = self.store.all()
        self.by_digest = {r.digest: r for r in records}
        self.by_id = {r.id: r for r in records}
        self.callers = {r.digest: Caller.issued(r.id, r.digest) for r in records}
        self.version = version
        self._checked = time.monotonic()

    def refresh(self) -> None:
        """Reload if another process changed the keys since the last look."""
        self._checked = time.monotonic()
        if self.store.version() != self.version:
            self.reload()

    def active(self) -> bool:
        self._poll()
        return bool(self.by_id)

    async def identify(self, token: str) -> Caller | None:
        digest = key_digest(token)
        record = self.by_digest.get(digest)
        if record is None and time.monotonic() - self._checked > MISS_RECHECK_S:
            await self.store.db.run(self.refresh)
            record = self.by_digest.get(digest)
        else:
            self._poll()
        if record is None:
            return None
        if record.revoked is not None:
            raise AuthenticationFailed(f"This API key ('{record.name}') has been revoked.")
        return self.callers[digest]

    def _poll(self) -> None:
        """Start a background look at the store's change stamp when one is due."""
        if self._task is not None or time.monotonic() - self._checked < self.refresh_s:
            return
        self._checked = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            await self.store.db.run(self.refresh)
        except Exception as exc:  # the next poll tries again; requests keep being answered
            log.warning("could not refresh the API keys: %s", exc)
        finally:
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await task
