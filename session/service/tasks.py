"""Background tasks of a service: a failure is logged when it happens, and a stop waits for
tasks without hiding what they raised.

asyncio reports an exception that escaped a task only when the task is garbage-collected,
which for a loop a service keeps in a list is never: a polling or reconciliation loop killed
by a bug would stop without a word. :func:`spawn` logs such an exception, with its traceback,
the moment the task ends (expected failures are caught inside the tasks, where they happen;
what escapes is a bug). :func:`cancel_and_wait` replaces ``gather(..., return_exceptions=True)``
at shutdown, which would retrieve and drop what a task raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def log_failure(logger: logging.Logger, what: str) -> Callable[[asyncio.Task[Any]], None]:
    """A done-callback logging ``"<what> failed"`` with the traceback of an exception that
    ended the task (nothing for a task that returned or was cancelled)."""

    def done(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and (e := task.exception()) is not None:
            logger.error("%s failed", what, exc_info=e)

    return done


def spawn(coro: Awaitable[T], logger: logging.Logger, what: str) -> asyncio.Task[T]:
    """Start ``coro`` as a task whose escaped exception is logged at once (:func:`log_failure`)."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(log_failure(logger, what))
    return task


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel ``tasks`` (or futures; None entries are skipped) and return once every one has
    ended."""
    pending = [t for t in tasks if t is not None]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)


async def on_worker_exclusive(lock: asyncio.Lock, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` on a worker thread while holding ``lock``, one at a time. The lock is
    held until the thread is done even when the caller is cancelled: a thread cannot be
    stopped, and releasing the lock early would let a second thread (or a ``close()`` that
    takes the lock) into a store the first one is still using."""
    await lock.acquire()
    work: asyncio.Future[T] | None = None
    try:
        work = asyncio.ensure_future(asyncio.to_thread(call, *args))
        work.add_done_callback(lambda _: lock.release())
    finally:
        if work is None:  # the thread never started: nothing else will release the lock
            lock.release()
    return await asyncio.shield(work)


__all__ = ["cancel_and_wait", "log_failure", "on_worker_exclusive", "spawn"]
