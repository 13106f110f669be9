"""Swarm replication over node links: the write fan-out and the data handoff on swarm changes.

* :class:`LinkFanout` implements the RPC handler's ``SwarmFanout``: a write accepted by one
  member is forwarded (the original signed request) to every other member of this node's swarm
  at once; each answers with its own signed result, or ``None`` when it could not be reached in
  time. Members re-validate everything themselves.
* :class:`SwarmHandoff` reacts to node-list changes. It pushes the accounts this node no longer
  owns to every member of their new swarm and drops them locally only once *every* member of
  that swarm has accepted them (so nothing is lost when a push fails, and nothing stays doubled
  once it succeeds: operators' complaint about swarm changes doubling data). New members of our
  own swarm get a copy of everything we own, retried until they acknowledge it (the other
  operators' complaint: new members missing the initial push).

Pushes carry the namespace (Session's ``sn.data`` v1 drops it; we keep it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from session.node.links import KIND_CC, KIND_DATA, LinkError, NodeLinks
from session.node.swarm_view import SwarmChange, SwarmView
from session.proto.snodes import ServiceNode

log = logging.getLogger("session.node.replication")

#: Bytes of message data per bulk push (kept under the link's 10 MiB message cap).
PUSH_BATCH_BYTES = 4 * 1024 * 1024
FORWARD_TIMEOUT = 5.0
PUSH_TIMEOUT = 30.0
RETRY_INTERVAL = 5.0


class LinkFanout:
    """``SwarmFanout`` over node links."""

    def __init__(self, links: NodeLinks, view: SwarmView, *, timeout: float = FORWARD_TIMEOUT,
                 on_result: Callable[[str], None] | None = None) -> None:
        self.links = links
        self.view = view
        self.timeout = timeout
        self.on_result = on_result

    async def forward(self, request_body: dict[str, Any]) -> dict[str, Any]:
        peers = self.view.peers_in_my_swarm()
        if not peers:
            return {}
        results = await asyncio.gather(*(self._one(n, request_body) for n in peers))
        return {n.pubkey_ed25519: r for n, r in zip(peers, results)}

    async def _one(self, node: ServiceNode, body: dict[str, Any]) -> Any:
        try:
            r = await self.links.request(node.pubkey_x25519, node.zmq_address, KIND_CC, body, self.timeout)
        except LinkError as e:
            log.info("replica %s… did not answer: %s", node.pubkey_ed25519[:12], e)
            if self.on_result:
                self.on_result("failed")
            return None
        if self.on_result:
            self.on_result("ok")
        return r


def _records(msgs: Iterable[Any]) -> list[list[Any]]:
    return [[m.owner, m.namespace, m.hash, m.timestamp_ms, m.expiry_ms, bytes(m.data)] for m in msgs]


def _batches(records: Sequence[list[Any]]) -> list[list[list[Any]]]:
    out: list[list[list[Any]]] = []
    cur: list[list[Any]] = []
    size = 0
    for r in records:
        n = len(r[5]) + 200
        if cur and size + n > PUSH_BATCH_BYTES:
            out.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += n
    if cur:
        out.append(cur)
    return out


class SwarmHandoff:
    """Moves data when swarm membership changes (see the module docstring)."""

    def __init__(self, store: Any, links: NodeLinks, view: SwarmView,
                 *, on_moved: Callable[[str, int], None] | None = None,
                 retry_interval: float = RETRY_INTERVAL) -> None:
        self.store = store
        self.links = links
        self.view = view
        self.on_moved = on_moved
        self.retry_interval = retry_interval
        self._lock = asyncio.Lock()
        self._pending_members: dict[str, ServiceNode] = {}  # new members still owed a copy
        self._outgoing_pending = False  # some not-owned accounts could not be handed over yet
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ sending side
    def mine(self, owner: str) -> bool:
        my = self.view.my_swarm_id()
        if my is None:
            return False
        try:
            return self.view.swarm_id_for(owner) == my
        except (LookupError, ValueError):
            return True  # cannot decide: keep it

    async def on_change(self, change: SwarmChange) -> None:
        """``SwarmView.on_change`` callback."""
        for n in change.new_members:
            self._pending_members[n.pubkey_ed25519] = n
        for n in change.departed:
            self._pending_members.pop(n.pubkey_ed25519, None)
            self.links.disconnect(n.pubkey_x25519)
        if change.old is not None:
            self._outgoing_pending = True
        await self.reconcile()

    async def reconcile(self) -> None:
        """One pass: copy our data to new members, hand over and drop what we no longer own."""
        if self.view.map is None or not self.view.map.swarms:
            return
        async with self._lock:
            if self._pending_members:
                await self._feed_new_members()
            if self._outgoing_pending:
                self._outgoing_pending = not await self._hand_over()

    async def _feed_new_members(self) -> None:
        my = self.view.my_swarm_id()
        current = {n.pubkey_ed25519 for n in self.view.members(my)} if my is not None else set()
        for ed, node in list(self._pending_members.items()):
            if ed not in current:
                self._pending_members.pop(ed, None)
                continue
            msgs = await self.store.export(self.mine)
            ok = await self._push(node, _records(msgs))
            if ok is not None:
                self._pending_members.pop(ed, None)
                if self.on_moved:
                    self.on_moved("copied", len(msgs))
                log.info("copied %d messages to new swarm member %s…", len(msgs), ed[:12])

    async def _hand_over(self) -> bool:
        """Push accounts we no longer own to their swarm; drop those every member accepted.
        Returns True when nothing is left to hand over."""
        msgs = await self.store.export(lambda owner: not self.mine(owner))
        if not msgs:
            return True
        by_swarm: dict[int, list[Any]] = {}
        for m in msgs:
            try:
                sid = self.view.swarm_id_for(m.owner)
            except LookupError:
                continue
            by_swarm.setdefault(sid, []).append(m)
        done_owners: set[str] = set()
        failed_owners: set[str] = set()
        for sid, group in by_swarm.items():
            members = [n for n in self.view.members(sid) if n.pubkey_ed25519 != self.view.me]
            owners = {m.owner for m in group}
            if not members:
                failed_owners |= owners
                continue
            records = _records(group)
            results = await asyncio.gather(*(self._push(n, records) for n in members))
            for r in results:
                if r is None:
                    failed_owners |= owners
                else:
                    failed_owners |= set(r.get("rejected_owners", ()))
            done_owners |= owners
        done_owners -= failed_owners
        if done_owners:
            dropped = await self.store.drop_accounts(lambda owner: owner in done_owners and not self.mine(owner))
            if self.on_moved:
                self.on_moved("handed_over", dropped)
            log.info("handed over %d accounts (%d messages) to their new swarms", len(done_owners), dropped)
        return not failed_owners

    async def _push(self, node: ServiceNode, records: list[list[Any]]) -> dict[str, Any] | None:
        """Send every record to ``node`` in batches; the merged reply, or None on failure."""
        total: dict[str, Any] = {"n": 0, "rejected_owners": []}
        for batch in _batches(records) or [[]]:
            try:
                r = await self.links.request(node.pubkey_x25519, node.zmq_address, KIND_DATA,
                                             {"v": self.view.version, "m": batch}, PUSH_TIMEOUT)
            except LinkError as e:
                log.info("push to %s… failed: %s", node.pubkey_ed25519[:12], e)
                return None
            total["n"] += int(r.get("n", 0))
            total["rejected_owners"] += list(r.get("rejected_owners", ()))
        return total

    # ------------------------------------------------------------ receiving side
    async def accept_push(self, peer: str, body: Any) -> dict[str, Any]:
        """Link handler for ``KIND_DATA``: import the records of accounts we own."""
        from session.storage.base import StoredMessage

        if not isinstance(body, dict) or not isinstance(body.get("m"), list):
            raise ValueError("data push must be a map with a list 'm'")
        if body.get("v") and body["v"] != self.view.version:
            await self.view.refresh()  # the sender may know of a change we have not seen
        keep: list[Any] = []
        rejected: set[str] = set()
        for r in body["m"]:
            if not isinstance(r, list) or len(r) != 6:
                raise ValueError("data push record must have 6 fields")
            owner, ns, h, ts, exp, data = r
            m = StoredMessage(owner=owner, namespace=ns, hash=h, data=data, timestamp_ms=ts, expiry_ms=exp).validate()
            if self.mine(owner):
                keep.append(m)
            else:
                rejected.add(owner)
        n = await self.store.import_messages(keep) if keep else 0
        if n and self.on_moved:
            self.on_moved("received", n)
        return {"n": n, "rejected_owners": sorted(rejected)}

    # ------------------------------------------------------------ retries
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._retry_loop())

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            if self._pending_members or self._outgoing_pending:
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("handoff retry failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
