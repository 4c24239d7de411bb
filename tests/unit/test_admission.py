"""FairScheduler on its own: FIFO per key, round-robin across keys, a bounded queue, and no
slot lost or leaked whatever a cancelled waiter was doing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from strata.core.admission import FairScheduler
from strata.core.errors import QueueFull


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=5))


async def waiter(s: FairScheduler, key: str, name: str, served: list[str]) -> None:
    """Wait for the slot, note the turn, give the slot back."""
    await s.acquire(key)
    served.append(name)
    s.release()


def test_free_slot_is_taken_at_once() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=2, max_queue=0)
        await s.acquire("a")
        await s.acquire("b")
        assert (s.active, s.depth) == (2, 0)
        with pytest.raises(QueueFull):
            await s.acquire("c")
        s.release()
        s.release()
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_fifo_within_a_key() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=10)
        await s.acquire("holder")
        served: list[str] = []
        tasks = []
        for name in ("a1", "a2", "a3"):
            tasks.append(asyncio.create_task(waiter(s, "A", name, served)))
            await settle()
        assert s.depth == 3
        s.release()
        await asyncio.gather(*tasks)
        assert served == ["a1", "a2", "a3"]
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_round_robin_between_keys() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=10)
        await s.acquire("holder")
        served: list[str] = []
        tasks = []
        for key, name in (("A", "a1"), ("A", "a2"), ("A", "a3"), ("B", "b1")):
            tasks.append(asyncio.create_task(waiter(s, key, name, served)))
            await settle()
        s.release()
        await asyncio.gather(*tasks)
        assert served == ["a1", "b1", "a2", "a3"]  # B does not wait behind A's burst
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_round_robin_three_keys() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=10)
        await s.acquire("holder")
        served: list[str] = []
        order = [("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2"), ("C", "c1")]
        tasks = []
        for key, name in order:
            tasks.append(asyncio.create_task(waiter(s, key, name, served)))
            await settle()
        s.release()
        await asyncio.gather(*tasks)
        assert served == ["a1", "b1", "c1", "a2", "b2"]

    run(go)


def test_queue_full_past_the_bound() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=2)
        await s.acquire("holder")
        served: list[str] = []
        tasks = [asyncio.create_task(waiter(s, "A", f"w{i}", served)) for i in range(2)]
        await settle()
        assert s.depth == 2
        with pytest.raises(QueueFull) as info:
            await s.acquire("B")
        assert info.value.retry_after >= 1
        assert info.value.status_code == 429
        assert "2 requests already waiting" in info.value.message
        assert "limit 2" in info.value.message
        assert s.depth == 2  # the refused request left no trace
        s.release()
        await asyncio.gather(*tasks)
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_zero_queue_refuses_when_busy() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=0)
        await s.acquire("a")
        with pytest.raises(QueueFull) as info:
            await s.acquire("b")
        assert info.value.retry_after >= 1
        s.release()
        await s.acquire("b")  # free again
        s.release()

    run(go)


def test_retry_after_scales_with_queue_and_service_time() -> None:
    s = FairScheduler(concurrency=2, max_queue=10)
    assert s.retry_after() == 1.0
    s._mean_service_s = 4.0
    assert s.retry_after() == 2.0  # (0 + 1) * 4 / 2
    s._depth = 3
    assert s.retry_after() == 8.0  # (3 + 1) * 4 / 2
    s._mean_service_s = 0.01
    assert s.retry_after() == 1.0  # never below a second


def test_cancelled_waiter_leaves_no_hole() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=3)
        await s.acquire("holder")
        served: list[str] = []
        w1 = asyncio.create_task(waiter(s, "A", "w1", served))
        await settle()
        w2 = asyncio.create_task(waiter(s, "A", "w2", served))
        await settle()
        w3 = asyncio.create_task(waiter(s, "B", "w3", served))
        await settle()
        assert s.depth == 3
        w2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w2
        assert s.depth == 2
        # The freed place in the queue can be taken again.
        w4 = asyncio.create_task(waiter(s, "C", "w4", served))
        await settle()
        assert s.depth == 3
        s.release()
        await asyncio.gather(w1, w3, w4)
        assert served == ["w1", "w3", "w4"]
        assert (s.active, s.depth) == (0, 0)
        assert not s._waiting

    run(go)


def test_cancelled_only_waiter_of_a_key() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=3)
        await s.acquire("holder")
        lone = asyncio.create_task(s.acquire("B"))
        await settle()
        lone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lone
        assert s.depth == 0
        assert "B" not in s._waiting
        s.release()
        assert s.active == 0
        # The slot is not leaked: it can be taken at once.
        await asyncio.wait_for(s.acquire("C"), timeout=1)
        assert s.active == 1

    run(go)


def test_cancel_before_release_runs() -> None:
    """Cancelled, and the slot released before the waiter ran its cleanup: nothing lost."""

    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=3)
        await s.acquire("holder")
        gone = asyncio.create_task(s.acquire("A"))
        await settle()
        gone.cancel()  # its future is cancelled now; its except-clause runs later
        s.release()  # skips the cancelled future
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_cancelled_just_after_being_handed_the_slot_passes_it_on() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=3)
        await s.acquire("holder")
        first = asyncio.create_task(s.acquire("A"))
        await settle()
        second = asyncio.create_task(s.acquire("B"))
        await settle()
        s.release()  # hands the slot to `first` (its future now has a result) ...
        first.cancel()  # ... which is cancelled before it could run
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, timeout=1)  # `first` passed the slot on
        assert (s.active, s.depth) == (1, 0)
        s.release()
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_handed_slot_cancelled_with_nobody_waiting_frees_it() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=3)
        await s.acquire("holder")
        only = asyncio.create_task(s.acquire("A"))
        await settle()
        s.release()
        only.cancel()
        with pytest.raises(asyncio.CancelledError):
            await only
        assert (s.active, s.depth) == (0, 0)

    run(go)


def test_slot_context_releases_on_error_and_tracks_service_time() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=1)
        with pytest.raises(RuntimeError):
            async with s.slot("a"):
                assert s.active == 1
                raise RuntimeError("boom")
        assert s.active == 0
        async with s.slot("a"):
            pass
        assert s._mean_service_s < 1.0  # moved towards the (tiny) measured time

    run(go)


def test_concurrency_is_never_exceeded() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=2, max_queue=50)
        running = peak = 0

        async def job(key: str) -> None:
            nonlocal running, peak
            async with s.slot(key):
                running += 1
                peak = max(peak, running)
                try:
                    await asyncio.sleep(0)
                finally:
                    running -= 1

        tasks = [asyncio.create_task(job(f"k{i % 3}")) for i in range(30)]
        await settle()
        for t in tasks[5:10]:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert peak == 2
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) <= 5
        assert (s.active, s.depth) == (0, 0)
        assert not s._waiting

    run(go)


# ---- background work: behind users, and yields to them ----


def test_background_waits_behind_every_user() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=4)
        await s.acquire("a")
        served: list[str] = []
        tasks = [asyncio.create_task(waiter_bg(s, "bg", "bg1", served))]
        await settle()
        tasks += [asyncio.create_task(waiter(s, k, k, served)) for k in ("u1", "u2")]
        await settle()
        assert s.depth == 3 and s.interactive_depth == 2
        s.release()
        await asyncio.gather(*tasks)
        assert served == ["u1", "u2", "bg1"]
        assert (s.active, s.depth) == (0, 0)

    run(go)


async def waiter_bg(s: FairScheduler, key: str, name: str, served: list[str]) -> None:
    await s.acquire(key, background=True)
    served.append(name)
    s.release(background=True)


def test_background_never_costs_a_user_a_429() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=1)
        await s.acquire("a")
        bg = [asyncio.create_task(s.acquire("bg", background=True)) for _ in range(3)]
        await settle()
        user = asyncio.create_task(s.acquire("u"))
        await settle()
        assert not user.done() and s.interactive_depth == 1
        with pytest.raises(QueueFull):
            await s.acquire("v")
        for _ in range(4):
            s.release()
            await settle()
        await asyncio.gather(user, *bg)
        assert s.active == 1 and s.depth == 0

    run(go)


def test_user_arrival_asks_the_background_holder_to_yield() -> None:
    async def go() -> None:
        s = FairScheduler(concurrency=1, max_queue=4)
        async with s.slot("bg", background=True) as lease:
            assert lease.background and not lease.preempted
            user = asyncio.create_task(s.acquire("u"))
            await settle()
            assert lease.preempted and not user.done()
        await user
        s.release()  # the user's slot
        assert (s.active, s.depth) == (0, 0)
        async with s.slot("u") as lease:
            other = asyncio.create_task(s.acquire("v"))
            await settle()
            assert not lease.preempted  # users never preempt users
        await other
        s.release()

    run(go)


def test_a_user_admitted_beside_background_work_on_a_local_model_makes_it_yield() -> None:
    """With ``yield_on_admit`` (a local model's slots share its CPU) a user admitted to a free
    slot still asks every background holder to step aside; without it (a remote model) the
    two run side by side."""

    async def go() -> None:
        for yield_on_admit in (True, False):
            s = FairScheduler(concurrency=3, max_queue=4, yield_on_admit=yield_on_admit)
            async with (
                s.slot("bg", background=True) as first,
                s.slot("bg", background=True) as second,
            ):
                assert not first.preempted and not first.yielded.is_set()
                async with s.slot("u") as user:
                    assert s.active == 3 and s.depth == 0  # admitted, nobody waited
                    assert first.preempted is yield_on_admit
                    assert second.preempted is yield_on_admit
                    assert first.yielded.is_set() is yield_on_admit
                    assert not user.preempted
            assert (s.active, s.depth) == (0, 0)

    run(go)


def test_background_work_waits_while_users_hold_a_local_model() -> None:
    """Retried background work is not admitted beside a user on a ``yield_on_admit`` model
    (it would only be asked to yield again): it waits for the last user to leave, even with
    slots free, and users arriving meanwhile still go first, fairly between keys."""

    async def go() -> None:
        s = FairScheduler(concurrency=2, max_queue=4, yield_on_admit=True)
        served: list[str] = []
        await s.acquire("u")
        bg = [asyncio.create_task(waiter_bg(s, "bg", f"bg{i}", served)) for i in range(2)]
        await settle()
        assert s.active == 1 and s.depth == 2 and not any(t.done() for t in bg)
        await s.acquire("a")  # a user still takes the free slot at once
        users = [asyncio.create_task(waiter(s, k, k, served)) for k in ("a", "a", "b")]
        await settle()
        s.release()
        await settle()
        assert served == ["a", "b", "a"]  # round-robin between keys, background behind
        s.release()
        await asyncio.gather(*users, *bg)
        assert served[3:] == ["bg0", "bg1"]
        assert (s.active, s.depth) == (0, 0)

        # Both background waiters get a slot once the last user is gone, not one at a time.
        await s.acquire("u")
        held: list[str] = []

        async def hold(name: str) -> None:
            await s.acquire("bg", background=True)
            held.append(name)

        holders = [asyncio.create_task(hold(f"bg{i}")) for i in range(2)]
        await settle()
        assert held == []
        s.release()
        await asyncio.gather(*holders)
        assert sorted(held) == ["bg0", "bg1"] and s.active == 2

    run(go)
