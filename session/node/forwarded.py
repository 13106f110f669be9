"""The link handlers of forwarded replica writes (``KIND_CC``, ``KIND_CC_BATCH``), direct.

A swarm member takes every write of its swarm forwarded by the member a client wrote to (11
a message in a swarm of 12). Run as a task each, a write cost its member a task, its steps and
two futures (the store's, the link's) on top of its own work. Here a single forwarded write is
handled as it arrives (:attr:`session.node.links.NodeLinks.direct`): parsed, re-validated,
committed on the loop's thread when the store can do that at once
(:meth:`session.storage.base.MessageStore.store_now`), signed and answered
(:meth:`Answer.result`), with no task or future. Anything else goes on as before, as a
coroutine (:meth:`Answer.run`): a store while the writer thread is busy or has writes queued,
a subaccount's revocation lookup, another method, a refusal.

A batch (``KIND_CC_BATCH``: the writes one member sent us together) is answered the same way,
with one reply for all of them and its stores committed together (one transaction:
:meth:`session.storage.base.MessageStore.store_many_now`); from the first write that needs a
coroutine on (the stores before it committed first), or all of them when the store cannot
commit at once, the rest of the batch goes on as a coroutine (the writes of one account one
after another in the batch's order, as :func:`session.node.replication.batch_handler` runs
them), and is answered when it is over.

Order per account is kept: while any forwarded write handed to a coroutine has not finished,
later ones are handed to coroutines too (in arrival order, as before), so a direct write never
overtakes an earlier one that is still on its way to the store. That count is taken back by
the task's done callback, which runs however the task ends (a task cancelled before its first
step, as closing links does, never runs its coroutine's ``finally``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from session.errors import StorageError
from session.node.links import Answer
from session.node.replication import REFUSED, batch_requests, run_in_chains
from session.node.rpc import RpcHandler
from session.proto import rpc as P
from session.storage.base import StoredMessage

log = logging.getLogger("session.node.forwarded")


class ForwardedWrites:
    """The direct link handlers of forwarded writes for one node's :class:`RpcHandler`."""

    def __init__(self, rpc: RpcHandler) -> None:
        self.rpc = rpc
        #: forwarded requests handed to coroutines that have not finished
        self._behind = 0
        #: forwarded writes answered as they arrived / handed to a coroutine (single ones and
        #: those of batches)
        self.answered_now = 0
        self.handed_on = 0

    async def serve(self, peer: str, body: Any, counted: bool = False) -> Any:
        """A forwarded request as a coroutine (the ordinary link handler of ``KIND_CC``;
        ``counted``: see :meth:`RpcHandler.handle_forwarded`)."""
        if not isinstance(body, dict):
            raise ValueError("forwarded request must be a map")
        return await self.rpc.handle_forwarded(body, counted=counted)

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
        """Direct handler of ``KIND_CC_BATCH``: each write answered now while it can be, one
        reply for the batch (module docstring). A write refused gets None in the reply (the
        sender counts that member failed for it)."""
        reqs = batch_requests(body)
        results: list[Any] = [REFUSED] * len(reqs)
        #: stores checked and ready to commit together: (index, request, message)
        ready: list[tuple[int, P.Store, StoredMessage]] = []
        for i, req in enumerate(reqs):
            if self._behind:
                self._hand_on(answer, self._rest(peer, reqs, results, i, None, i))
                return
            try:
                if not isinstance(req, dict):
                    raise TypeError("forwarded request must be a map")
                result = self.rpc.forwarded_now(req)
            except (ValueError, TypeError, StorageError) as e:
                log.info("refused a forwarded write from %s…: %s", peer[:12], e)
                continue
            if isinstance(result, tuple):
                ready.append((i, *result))
            elif isinstance(result, dict):
                results[i] = result
            elif self._commit(ready, results):  # (the stores before it first: order)
                task = self._hand_on(answer, self._rest(peer, reqs, results, i, result, i + 1))
                # (never awaited when the task is cancelled before its first step)
                task.add_done_callback(functools.partial(_close, result))
                return
            else:
                result.close()
                rest = self._rest(peer, reqs, results, ready[0][0], None, i + 1)
                self._hand_on(answer, rest)
                return
        if not self._commit(ready, results):
            self._hand_on(answer, self._rest(peer, reqs, results, ready[0][0], None, len(reqs)))
            return
        self.answered_now += sum(r is not REFUSED for r in results)
        answer.result({"r": results})

    def _commit(self, ready: list[tuple[int, P.Store, StoredMessage]], results: list[Any]) -> bool:
        """Commit the stores ``ready`` together now and put their results in ``results``;
        False, nothing written, when the store cannot at once (or finds a message invalid:
        the coroutine path then refuses that one alone)."""
        if not ready:
            return True
        try:
            outcomes = self.rpc.store.store_many_now([msg for _, _, msg in ready])
        except ValueError:  # (InvalidInput)
            return False
        if outcomes is None:
            return False
        for (i, req, msg), outcome in zip(ready, outcomes, strict=True):
            results[i] = self.rpc.forwarded_stored(req, msg, outcome)
        ready.clear()
        return True

    async def _rest(
        self,
        peer: str,
        reqs: list[Any],
        results: list[Any],
        start: int,
        first: Coroutine[Any, Any, dict[str, Any]] | None,
        counted: int,
    ) -> dict[str, Any]:
        """A batch from write ``start`` on, as a coroutine (``first``: that write's, when it
        was begun already); the batch's reply. The writes before ``counted`` were parsed and
        counted already (the node's forwarded-request counters count each write once)."""

        async def one(i: int) -> Any:
            if i == start and first is not None:
                return await first
            return await self.serve(peer, reqs[i], i < counted)

        await run_in_chains(peer, reqs, results, one, start)
        return {"r": results}

    def _hand_on(self, answer: Answer, rest: Awaitable[Any]) -> asyncio.Task[Any]:
        self.handed_on += 1
        self._behind += 1
        task = answer.run(rest)
        task.add_done_callback(self._one_done)
        return task

    def _one_done(self, task: asyncio.Task[Any]) -> None:
        """A request handed to a coroutine is over (answered, failed or cancelled)."""
        self._behind -= 1


def _close(coro: Coroutine[Any, Any, Any], _: object) -> None:
    """Close ``coro`` (a no-op once it ran; a coroutine never awaited is closed silently)."""
    coro.close()
