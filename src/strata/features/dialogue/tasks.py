"""One background task per session: what the turn index and the summariser both keep.

Each runs at most one task per session (a second would read the same pending turns and do
the work twice); tests, benchmarks and shutdown wait for them all (``settle``) or cancel them
(``close``). A finished task leaves the map by itself, so ``sid in tasks`` means "running".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class SessionTasks:
    def __init__(self) -> None:
        self._running: dict[int, asyncio.Task[None]] = {}

    def __contains__(self, sid: object) -> bool:
        return sid in self._running

    def __bool__(self) -> bool:
        return bool(self._running)

    def start(self, sid: int, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as ``sid``'s task; the caller checks none is running (``sid in``)."""
        if sid in self._running:
            work.close()  # never awaited: close it so it does not warn
            raise RuntimeError(f"session {sid} already has a background task")
        task = asyncio.get_running_loop().create_task(work)
        self._running[sid] = task
        task.add_done_callback(lambda _: self._running.pop(sid, None))

    async def settle(self) -> None:
        """Wait until every task has finished, including ones started meanwhile."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        """Cancel every task and wait for each to unwind."""
        for task in list(self._running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
