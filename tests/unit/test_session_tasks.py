"""SessionTasks: one background task per session, settled or cancelled together."""

from __future__ import annotations

import asyncio

import pytest

from strata.features.dialogue.tasks import SessionTasks


def test_one_task_per_session_and_settle_waits_for_late_starts() -> None:
    async def go() -> list[str]:
        tasks = SessionTasks()
        done: list[str] = []

        async def later(name: str, follow: bool) -> None:
            await asyncio.sleep(0.01)
            done.append(name)
            if follow:  # a task that starts another while settle waits
                tasks.start(2, later("second", False))

        tasks.start(1, later("first", True))
        assert 1 in tasks and 2 not in tasks and tasks
        with pytest.raises(RuntimeError):
            tasks.start(1, later("again", False))
        await tasks.settle()
        assert not tasks and 1 not in tasks
        return done

    assert asyncio.run(go()) == ["first", "second"]


def test_close_cancels_running_tasks() -> None:
    async def go() -> bool:
        tasks = SessionTasks()
        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        tasks.start(7, forever())
        await asyncio.sleep(0)
        await tasks.close()
        await asyncio.sleep(0)  # the done callback runs
        return cancelled.is_set() and not tasks

    assert asyncio.run(go())
