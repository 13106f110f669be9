"""Polling a swarm (our own, or a group's): signed ``retrieve`` per namespace with
``last_hash`` cursors.

The poller sticks to one member of the own swarm (a cursor is only meaningful on the node that
issued it) and moves to another member when that one fails (at once when it is known down). It
returns only messages whose hash was never seen before (dedupe by swarm hash, persisted).
"""

from __future__ import annotations

import random
from typing import Any

from session.client.db import Database
from session.client.transport import SwarmRPC, owner_of
from session.errors import NetworkError
from session.proto.snodes import ServiceNode

#: Retrieve pages per namespace per poll (each up to the node's size limit).
MAX_PAGES = 20


class Poller:
    def __init__(
        self, rpc: SwarmRPC, db: Database, identity: Any, *, rng: random.Random | None = None
    ) -> None:
        self.rpc = rpc
        self.db = db
        #: The signer of the polled account: our identity, a group key or a member subaccount.
        self.identity = identity
        self.owner = owner_of(identity)
        #: A group's cursors are kept apart from ours (same node, same namespace number).
        self._cursor_prefix = self.owner + "@" if self.owner.startswith("03") else ""
        self.node: ServiceNode | None = None
        #: Picks the swarm member to poll (injectable for deterministic tests).
        self.rng = rng or random.SystemRandom()

    def _pick_node(self) -> ServiceNode:
        members = self.rpc.dir.swarm(self.owner)
        if not members:
            raise NetworkError("the swarm to poll is unknown (empty node list?)")
        if self.node is None or self.node.pubkey_ed25519 not in {m.pubkey_ed25519 for m in members}:
            bad = self.rpc.t.paths.bad
            self.node = self.rng.choice(
                [m for m in members if m.pubkey_ed25519 not in bad] or members
            )
        return self.node

    async def poll(self, namespace: int) -> list[tuple[str, str, int]]:
        """New ``(hash, data_b64, expiration_ms)`` rows of ``namespace`` (not yet marked seen).

        When the member polled turns out to be down (a relay named it unreachable), the poll
        moves to another member at once, once, instead of failing until the next poll."""
        node = self._pick_node()
        try:
            return await self._poll_at(node, namespace)
        except NetworkError:
            if node.pubkey_ed25519 not in self.rpc.t.paths.bad:
                raise
            return await self._poll_at(self._pick_node(), namespace)

    async def _poll_at(self, node: ServiceNode, namespace: int) -> list[tuple[str, str, int]]:
        out: list[tuple[str, str, int]] = []
        got: set[str] = set()  # a node may repeat a message across pages
        try:
            for _ in range(MAX_PAGES):
                cursor = self._cursor_prefix + node.pubkey_ed25519
                last = self.db.last_hash(cursor, namespace)
                body = await self.rpc.retrieve(self.identity, namespace, node, last)
                msgs = [m for m in body.get("messages", []) if isinstance(m, dict) and "hash" in m]
                for m in msgs:
                    h = str(m["hash"])
                    if h not in got and not self.db.is_seen(h):
                        got.add(h)
                        out.append((h, str(m.get("data", "")), int(m.get("expiration", 0) or 0)))
                if msgs:
                    self.db.set_last_hash(cursor, namespace, str(msgs[-1]["hash"]))
                if not body.get("more") or not msgs:
                    break
        except NetworkError:
            self.node = None  # try another member next time
            if not out:
                raise
        return out
