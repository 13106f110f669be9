"""Delivering the outbox: one ``store`` per queued entry through the swarm RPC, recording the
result (message status, retry backoff, give-up at TTL) and emitting the matching events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from session.client.db import Database, OutboxEntry
from session.client.events import (
    ConnectionChanged,
    EventHub,
    MessageFailed,
    MessageSent,
)
from session.client.network import NetworkClock
from session.client.outbox import Outbox
from session.client.transport import AccountSigner, SwarmRPC
from session.errors import NetworkError, NodeRequestFailed, SessionError
from session.identity import Identity
from session.proto.rpc import Signer

#: Entries tried per flush step.
FLUSH_BATCH = 50


class Connectivity:
    """Whether the network answered last time; emits :class:`ConnectionChanged` on a change."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub
        self.online = False
        self._known = False

    def update(self, online: bool, error: str = "") -> None:
        if self._known and online == self.online:
            return
        was_known, self.online, self._known = self._known, online, True
        if was_known or not online:
            self.hub.emit(ConnectionChanged(online, "" if online else error))


class Sender:
    """Runs outbox entries (see :mod:`session.client.outbox` for the exactly-once rules)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        rpc: SwarmRPC,
        identity: Identity,
        clock: NetworkClock,
        hub: EventHub,
        connectivity: Connectivity,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.rpc = rpc
        self.identity = identity
        self.clock = clock
        self.hub = hub
        self.connectivity = connectivity
        #: Who signs stores to an account's private namespaces: ourselves for our own swarm;
        #: the client sets this to also sign for the groups we are in.
        self.signer_for: Callable[[str], Signer | AccountSigner | None] = lambda _dest: identity
        #: One flush at a time (the outbox loop and a caller's flush would send entries twice).
        self._flushing = asyncio.Lock()

    async def flush(self, *, ignore_backoff: bool) -> int:
        """Try every due entry once (``ignore_backoff``: also those still backing off);
        returns how many were delivered."""
        async with self._flushing:
            now = self.clock.local_ms()
            due = self.outbox.due(now + 10**12 if ignore_backoff else now, FLUSH_BATCH)
            delivered = 0
            for e in due:
                delivered += await self.deliver(e)
            return delivered

    async def deliver(self, e: OutboxEntry) -> int:
        """One attempt at ``e``; returns 1 if the swarm stored it."""
        me = self.identity.session_id
        try:
            h = await self.rpc.store(
                e.dest,
                e.namespace,
                e.data,
                e.expiry_ms,
                identity=self.signer_for(e.dest) if e.namespace % 10 else None,
            )
        except SessionError as err:
            if isinstance(err, NodeRequestFailed):
                self.connectivity.update(True)  # a node answered: the network is there
            elif isinstance(err, NetworkError):
                self.connectivity.update(False, str(err))
            gave_up = not self.outbox.retry_later(e, self.clock.local_ms(), str(err))
            if gave_up and e.kind == "message" and e.message_id:
                m = self.db.message(e.message_id)
                self.db.update_message(e.message_id, status="failed")
                if m:
                    self.hub.emit(MessageFailed(m.conversation, e.message_id, str(err)))
            return 0
        self.connectivity.update(True)
        with self.db.tx():
            self.outbox.done(e.id, h)
            if h and e.dest == me:
                self.db.mark_seen([h])  # our own sync copy: nothing to learn from it
            sent = None
            if e.kind == "message" and e.message_id:
                m = self.db.message(e.message_id)
                if m and m.status == "pending":
                    self.db.update_message(e.message_id, status="sent", hash=h)
                    sent = MessageSent(m.conversation, e.message_id, m.sent_ms, h)
        if sent is not None:
            self.hub.emit(sent)
        return 1
