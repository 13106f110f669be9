"""The link handlers of forwarded replica writes (``KIND_CC``, ``KIND_CC_BATCH``), direct.

A swarm member takes every write of its swarm forwarded by the member a client wrote to (11
a message in a swarm of 12). Run as a task each, a write cost its member a task, its steps and
two futures (the store's, the link's) on top of its own work. Here a single forwarded write is
handled as it arrives (:attr:`session.node.links.NodeLinks.direct`): parsed, re-validated,
committed on the loop's thread when the store can do that at once
(:meth:`session.storage.base.MessageStore.store_now`), signed and answered
(:meth:`Answer.result`), with no task or future. Anything else goes on as before, as a
coroutine (:meth:`Answer.run`): a store while the writer thread is busy or has writes queued,
a subaccount's revocation lookup, another method, a batch, a refusal.

Order per account is kept: while any forwarded write handed to a coroutine has not finished,
later ones are handed to coroutines too (in arrival order, as before), so a direct write never
overtakes an earlier one that is still on its way to the store. That count is taken back by
the task's done callback, which runs however the task ends (a task cancelled before its first
step, as closing links does, never runs its coroutine's ``finally``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from session.node.links import Answer, Handler
from session.node.replication import batch_handler
from session.node.rpc import RpcHandler


class ForwardedWrites:
    """The direct link handlers of forwarded writes for one node's :class:`RpcHandler`."""

    def __init__(self, rpc: RpcHandler) -> None:
        self.rpc = rpc
        self._batch: Handler = batch_handler(self.serve)
        #: forwarded requests handed to coroutines that have not finished
        self._behind = 0
        #: single forwarded writes answered as they arrived / handed to a coroutine
        self.answered_now = 0
        self.handed_on = 0

    async def serve(self, peer: str, body: Any) -> Any:
        """A forwarded request as a coroutine (the ordinary link handler of ``KIND_CC``)."""
        if not isinstance(body, dict):
            raise ValueError("forwarded request must be a map")
        return await self.rpc.handle_forwarded(body)

    def serve_now(self, peer: str, body: Any, answer: Answer) -> None:
        """Direct handler of ``KIND_CC``: answered now when it can be (module docstring)."""
        if self._behind or not isinstance(body, dict):
            self._hand_on(answer, self.serve(peer, body))
            return
        # A refusal (ValueError, TypeError) or a bug raised here is answered by the links'
        # supervisor of direct handlers as the coroutine path answers it (NodeLinks._serve).
        result = self.rpc.handle_forwarded_now(body)
        if isinstance(result, dict):
            self.answered_now += 1
            answer.result(result)
        else:
            self._hand_on(answer, result)

    def serve_batch_now(self, peer: str, body: Any, answer: Answer) -> None:
        """Direct handler of ``KIND_CC_BATCH``: always a coroutine (several writes commit
        together on the writer thread), counted so later single writes wait behind it."""
        self._behind += 1
        answer.run(self._batch(peer, body)).add_done_callback(self._one_done)

    def _hand_on(self, answer: Answer, rest: Awaitable[Any]) -> None:
        self.handed_on += 1
        self._behind += 1
        answer.run(rest).add_done_callback(self._one_done)

    def _one_done(self, task: asyncio.Task[Any]) -> None:
        """A request handed to a coroutine is over (answered, failed or cancelled)."""
        self._behind -= 1
