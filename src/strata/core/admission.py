"""Admission control: a bounded wait queue per model, fair between API keys, users first.

A local model runs a few generations at a time (one, or its ``batch_slots``), so under load
requests wait. They wait FIFO within one key and round-robin between keys, so one client
sending a burst cannot starve another. Past ``max_queue`` waiting requests the caller gets
``QueueFull`` (HTTP 429) with a ``retry_after`` estimated from recent service times, instead
of an unbounded wait.

Background work (a session's rolling summary, later distillation and re-indexing) asks for a
slot with ``background=True``. It is served only when no interactive request waits, and while
it holds a slot an interactive arrival asks it to yield: its ``Lease.preempted`` turns true,
and the engine stops that generation (``Preempted``), so a user waits for at most one step of
background work, never for a whole summary. Background waiters are not counted against
``max_queue``: they are bounded by the work that scheduled them (one summary task per
session), and must never cost a user a 429.

On a local model (``yield_on_admit``) a user need not wait for that: the model's slots share
one CPU, so a background sequence decoded beside a user's in the same batch slows every step
of the user's answer. There a user's admission asks every background holder to yield, and
background work is admitted only while no user holds a slot; it retries once they are gone.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from strata.core.errors import QueueFull

Waiters = OrderedDict[str, deque[asyncio.Future[None]]]


@dataclass
class Lease:
    """One held slot; ``preempted`` is set when a user needs a background holder's slot or
    its share of the model (interactive leases are never preempted); ``yielded`` is set with
    it, for a holder waiting on something other than its next token."""

    background: bool = False
    preempted: bool = False
    yielded: asyncio.Event = field(default_factory=asyncio.Event)

    def preempt(self) -> None:
        self.preempted = True
        self.yielded.set()


class FairScheduler:
    def __init__(self, concurrency: int, max_queue: int, *, yield_on_admit: bool = False) -> None:
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.yield_on_admit = yield_on_admit
        self.active = 0
        self._background_active = 0  # of ``active``, the slots background work holds
        self._waiting: Waiters = OrderedDict()  # interactive, served first
        self._background: Waiters = OrderedDict()
        self._depth = 0
        self._background_depth = 0
        self._running_background: list[Lease] = []
        self._mean_service_s = 1.0

    @property
    def depth(self) -> int:
        """Requests waiting (not running), interactive and background."""
        return self._depth + self._background_depth

    @property
    def interactive_depth(self) -> int:
        """Interactive requests waiting: what ``max_queue`` bounds."""
        return self._depth

    @property
    def serving_users(self) -> bool:
        """Whether an interactive request holds a slot or waits for one: background work done
        outside the slots (embedding a session's turns) waits for this to clear."""
        return self._depth > 0 or self.active > len(self._running_background)

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: the queue ahead times the mean service time."""
        return max(1.0, (self._depth + 1) * self._mean_service_s / self.concurrency)

    def _background_may_run(self) -> bool:
        """No user waits, and on a ``yield_on_admit`` model none holds a slot either."""
        users_running = self.active - self._background_active
        return self._depth == 0 and not (self.yield_on_admit and users_running > 0)

    async def acquire(self, key: str, *, background: bool = False) -> None:
        # Background work may be waiting beside free slots (for users to leave): a user
        # passes it; background work passes nobody.
        ahead = self.depth if background else self._depth
        free = self.active < self.concurrency and ahead == 0
        if free and (not background or self._background_may_run()):
            self._grant(background)
            return
        if not background and self._depth >= self.max_queue:
            raise QueueFull(
                f"model is busy: {self._depth} requests already waiting (limit "
                f"{self.max_queue}); retry after {self.retry_after():.0f}s",
                retry_after=self.retry_after(),
            )
        waiters = self._background if background else self._waiting
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.setdefault(key, deque()).append(future)
        self._count(background, +1)
        if not background:
            self._ask_background_to_yield()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # the slot was handed to us just as we gave up: pass it on
                self.release(background=background)
            else:
                self._forget(waiters, key, future, background)
            raise

    def _grant(self, background: bool) -> None:
        self.active += 1
        if background:
            self._background_active += 1
        elif self.yield_on_admit:
            for lease in self._running_background:  # a user is in: all background steps aside
                lease.preempt()

    def _count(self, background: bool, step: int) -> None:
        if background:
            self._background_depth += step
        else:
            self._depth += step

    def _ask_background_to_yield(self) -> None:
        """A user waits: the oldest background holder not yet asked stops at its next token."""
        for lease in self._running_background:
            if not lease.preempted:
                lease.preempt()
                return

    def _forget(
        self, waiters: Waiters, key: str, future: asyncio.Future[None], background: bool
    ) -> None:
        queue = waiters.get(key)
        if queue is not None and future in queue:
            queue.remove(future)
            self._count(background, -1)
            if not queue:
                del waiters[key]

    def release(self, *, background: bool = False) -> None:
        """Free a slot (``background``: one background work held) and hand free slots to
        the next interactive keys in turn, else to background work when it may run."""
        self.active -= 1
        if background:
            self._background_active -= 1
        while self.active < self.concurrency:
            if self._waiting:
                waiters, is_background = self._waiting, False
            elif self._background and self._background_may_run():
                waiters, is_background = self._background, True
            else:
                return
            key, queue = next(iter(waiters.items()))
            future = queue.popleft()
            self._count(is_background, -1)
            if queue:
                waiters.move_to_end(key)
            else:
                del waiters[key]
            if not future.done():  # else cancelled while queued: skip it
                self._grant(is_background)
                future.set_result(None)

    @asynccontextmanager
    async def slot(self, key: str, *, background: bool = False) -> AsyncIterator[Lease]:
        await self.acquire(key, background=background)
        lease = Lease(background=background)
        if background:
            self._running_background.append(lease)
            # Users that queued (or, on a yield_on_admit model, were admitted) while this
            # waited for the slot still come first.
            if not self._background_may_run():
                lease.preempt()
        started = time.perf_counter()
        try:
            yield lease
        finally:
            if background:
                self._running_background.remove(lease)
            elapsed = time.perf_counter() - started
            self._mean_service_s = 0.8 * self._mean_service_s + 0.2 * elapsed
            self.release(background=background)
