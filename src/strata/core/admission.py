"""Admission control: a bounded wait queue per model, fair between API keys.

A local model runs one generation at a time, so under load requests wait. They wait FIFO
within one key and round-robin between keys, so one client sending a burst cannot starve
another. Past ``max_queue`` waiting requests the caller gets ``QueueFull`` (HTTP 429) with a
``retry_after`` estimated from recent service times, instead of an unbounded wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from strata.core.errors import QueueFull


class FairScheduler:
    def __init__(self, concurrency: int, max_queue: int) -> None:
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.active = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._depth = 0
        self._mean_service_s = 1.0

    @property
    def depth(self) -> int:
        """Requests waiting (not running)."""
        return self._depth

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: the queue ahead times the mean service time."""
        return max(1.0, (self._depth + 1) * self._mean_service_s / self.concurrency)

    async def acquire(self, key: str) -> None:
        if self.active < self.concurrency and self._depth == 0:
            self.active += 1
            return
        if self._depth >= self.max_queue:
            raise QueueFull(
                f"model is busy: {self._depth} requests already waiting (limit "
                f"{self.max_queue}); retry after {self.retry_after():.0f}s",
                retry_after=self.retry_after(),
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(future)
        self._depth += 1
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed to us just as we gave up: pass it on
            else:
                self._forget(key, future)
            raise

    def _forget(self, key: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and future in queue:
            queue.remove(future)
            self._depth -= 1
            if not queue:
                del self._waiting[key]

    def release(self) -> None:
        """Hand the slot to the next key in turn, or free it."""
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            self._depth -= 1
            if queue:
                self._waiting.move_to_end(key)
            else:
                del self._waiting[key]
            if not future.done():
                future.set_result(None)
                return
        self.active -= 1

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self._mean_service_s = 0.8 * self._mean_service_s + 0.2 * elapsed
            self.release()
