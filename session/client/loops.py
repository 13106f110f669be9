"""The client's four background loops, each repeating one public step of
:class:`~session.client.Client`:

* the poll loop runs :meth:`Client.poll_once` every ``poll_interval`` (backing off up to 5×
  while offline, refreshing the node list when polls keep failing or too few nodes are usable
  to build a path) and wakes the outbox when the network comes back;
* the outbox loop runs :meth:`Client.flush_outbox` (only entries that are due) whenever
  something is queued, or when the next retry is due;
* the sweep loop runs :meth:`Client.sweep_expired` (disappearing messages);
* the community loop polls every community server we have a room on
  (:meth:`CommunityManager.poll_all`) every ``COMMUNITY_POLL_INTERVAL_S``, as Session's
  community poller does, so new posts and DMs arrive as events without the app polling.

An unexpected error in a step is a bug: it is logged and ends that loop, and the client stays
usable through its steps; expected failures (the network) are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from session.errors import NotEnoughNodes, SessionError

if TYPE_CHECKING:
    from session.client.api import Client

log = logging.getLogger("session.client")

#: Longest wait of the outbox loop between checks (seconds).
OUTBOX_IDLE_S = 1.0
#: Shortest wait of the outbox loop (seconds).
OUTBOX_MIN_WAIT_S = 0.05
#: Seconds between sweeps of expired disappearing messages.
SWEEP_INTERVAL_S = 0.5
#: Poll failures in a row after which the node list is refreshed (every this many).
REFRESH_AFTER_FAILURES = 3
#: Seconds between community polls (Session Desktop's community poller: 4 s).
COMMUNITY_POLL_INTERVAL_S = 4.0
#: Longest poll back-off, in poll intervals.
MAX_POLL_BACKOFF = 5


class BackgroundLoops:
    """Starts and stops the loops of one client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            self._spawn(self.outbox_loop(), "session-outbox"),
            self._spawn(self.poll_loop(), "session-poller"),
            self._spawn(self.sweep_loop(), "session-expiry"),
            self._spawn(self.community_loop(), "session-community"),
        ]

    @staticmethod
    def _spawn(loop: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(loop, name=name)
        task.add_done_callback(_report)
        return task

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def outbox_loop(self) -> None:
        c = self.client
        while True:
            await c.flush_outbox(ignore_backoff=False)
            nxt = c.outbox.next_due_ms()
            now = c.clock.local_ms()
            wait = (
                OUTBOX_IDLE_S
                if nxt is None
                else max(OUTBOX_MIN_WAIT_S, min(OUTBOX_IDLE_S, (nxt - now) / 1000))
            )
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except TimeoutError:
                pass

    async def poll_loop(self) -> None:
        c = self.client
        failures = 0
        while True:
            try:
                if failures >= REFRESH_AFTER_FAILURES and c.directory.stale(c.clock.local_ms()):
                    await c.refresh_nodes()
                await c.poll_once()
                if failures:
                    c.outbox.wake_all()  # we are back online
                    self.wake.set()
                failures = 0
            except SessionError as e:
                failures += 1
                log.debug("poll failed: %s", e)
                # Too few usable nodes for a path: a fresh list (from the nodes, else the
                # bootstrap source) may hold nodes that moved; else every third failure.
                if isinstance(e, NotEnoughNodes) or failures % REFRESH_AFTER_FAILURES == 0:
                    try:
                        await c.refresh_nodes()
                    except SessionError as re:
                        log.debug("node list refresh failed: %s", re)
            c.save_paths()
            await asyncio.sleep(
                c.poll_interval * (1 if not failures else min(MAX_POLL_BACKOFF, failures))
            )

    async def community_loop(self) -> None:
        """Polls the joined communities every interval (joining polls once by itself; each
        server's failure is logged inside poll_all and retried next time)."""
        c = self.client
        while True:
            await asyncio.sleep(c.community_poll_interval)
            if c.communities.rooms():
                await c.communities.poll_all()

    async def sweep_loop(self) -> None:
        while True:
            self.client.sweep_expired()
            await asyncio.sleep(SWEEP_INTERVAL_S)


def _report(task: asyncio.Task[None]) -> None:
    """A loop ended other than by cancellation: that is a bug, say so in the log."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "client loop %s stopped by an unexpected error",
            task.get_name(),
            exc_info=task.exception(),
        )
