"""session/service/tasks.py: a task's escaped exception is logged (with its traceback) when the
task ends, a cancelled or finished one is not, and a stop waits for every task."""

from __future__ import annotations

import asyncio
import logging

import pytest

from session.service.tasks import cancel_and_wait, spawn

log = logging.getLogger("test.tasks")


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "test.tasks"]


async def test_an_escaped_exception_is_logged_when_the_task_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def loop_with_a_bug() -> None:
        await asyncio.sleep(0)
        raise KeyError("a bug")

    with caplog.at_level(logging.ERROR, logger="test.tasks"):
        task = spawn(loop_with_a_bug(), log, "polling loop")
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done-callbacks run in the next loop iteration
    [record] = _failures(caplog)
    assert record.getMessage() == "polling loop failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)


async def test_cancelled_and_finished_tasks_are_not_logged_and_a_stop_waits_for_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def done() -> int:
        return 1

    with caplog.at_level(logging.ERROR, logger="test.tasks"):
        tasks = [spawn(forever(), log, "a"), spawn(done(), log, "b"), None]
        await started.wait()
        await cancel_and_wait(tasks)
        await asyncio.sleep(0)
    assert all(t.done() for t in tasks if t is not None)
    assert _failures(caplog) == []
