"""The node's view of the network: the registry's node list, the swarm map, and change events.

Implements the ``SwarmContext`` protocol the RPC handler uses (``my_swarm_id``,
``swarm_id_for``, ``members``, ``is_ready``) and the ``authorize`` callback of the node links
(a node key proven by a link handshake is accepted when it belongs to a listed node; an
unknown key triggers one early refresh, so a node that has just registered can talk to us at
once).

The list comes from the registry (polled). Peers do not hand us lists directly (a peer could
lie); instead a ping carries the sender's list version, and a version we have not seen makes us
refresh from the registry early.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from session.errors import RegistryError
from session.proto.snodes import INVALID_SWARM_ID, ServiceNode, SwarmMap
from session.service.tasks import cancel_and_wait, spawn

log = logging.getLogger("session.node.swarm")

#: How long a node that left the list may still connect (to hand its data over).
DEPARTED_GRACE = 600.0

#: Fetches the node list; raises :class:`RegistryError` when it cannot be had.
FetchNodes = Callable[[], Awaitable[list[ServiceNode]]]


@dataclasses.dataclass(frozen=True)
class SwarmChange:
    """What changed between two node lists, from this node's point of view."""

    old: SwarmMap | None
    new: SwarmMap
    my_old_swarm: int
    my_new_swarm: int
    #: members of my (new) swarm that were not members of it before
    new_members: tuple[ServiceNode, ...]
    #: swarm ids that did not exist before
    new_swarms: frozenset[int]
    #: nodes that left the list
    departed: tuple[ServiceNode, ...]


def list_version(nodes: Sequence[ServiceNode]) -> str:
    """A short digest of a node list (ordering-independent), exchanged in pings."""
    doc = sorted(
        (n.pubkey_ed25519, n.swarm_id, n.public_ip, n.storage_port, n.storage_lmq_port, n.active)
        for n in nodes
    )
    return hashlib.blake2b(json.dumps(doc).encode(), digest_size=8).hexdigest()


class SwarmView:
    """Registry-backed swarm map of one node (``me`` = its Ed25519 hex)."""

    def __init__(
        self,
        me: str,
        fetch: FetchNodes,
        *,
        poll_interval: float = 5.0,
        on_change: Callable[[SwarmChange], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self._fetch = fetch
        self.poll_interval = poll_interval
        self.on_change = on_change
        self.clock = clock
        self.map: SwarmMap | None = None
        #: every node of the last list, active or not (reachability tests cover them all)
        self.listed: tuple[ServiceNode, ...] = ()
        self.version = ""
        self.last_refresh = 0.0
        self.refresh_failures = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._change_tasks: set[asyncio.Task[None]] = set()
        #: X25519 hex -> when it left the list; a departing node may still hand its data over
        self._departed: dict[str, float] = {}

    # ------------------------------------------------------------ SwarmContext
    def my_swarm_id(self) -> int | None:
        """Our swarm, or None while we are in none."""
        sid = self._my_sid()
        return None if sid == INVALID_SWARM_ID else sid

    def _my_sid(self) -> int:
        m = self.map
        if m is None:
            return INVALID_SWARM_ID
        me = m.by_ed25519.get(self.me)
        return me.swarm_id if me is not None else INVALID_SWARM_ID

    def swarm_id_for(self, account_id: str) -> int:
        if self.map is None:
            raise LookupError("no node list yet")
        return self.map.swarm_id_for(account_id)

    def members(self, swarm_id: int) -> Sequence[ServiceNode]:
        if self.map is None:
            return ()
        return self.map.swarms.get(swarm_id, ())

    def is_ready(self) -> bool:
        return self.map is not None and self.my_swarm_id() is not None

    # ------------------------------------------------------------ lookups
    def node_by_ed25519(self, ed_hex: str) -> ServiceNode | None:
        return self.map.by_ed25519.get(ed_hex) if self.map is not None else None

    def node_by_x25519(self, x_hex: str) -> ServiceNode | None:
        return self.map.by_x25519.get(x_hex) if self.map is not None else None

    def peers_in_my_swarm(self) -> list[ServiceNode]:
        sid = self.my_swarm_id()
        if sid is None:
            return []
        return [n for n in self.members(sid) if n.pubkey_ed25519 != self.me]

    # ------------------------------------------------------------ refresh
    async def refresh(self) -> bool:
        """Fetch the list now; returns True when it changed. Concurrent calls coalesce."""
        if self._lock.locked():
            async with self._lock:  # someone is already fetching: wait for their result
                return False
        async with self._lock:
            try:
                nodes = await self._fetch()
            except RegistryError as e:
                self.refresh_failures += 1
                log.warning("node list refresh failed: %s", e)
                return False
            self.last_refresh = self.clock()
            return self.apply(nodes)

    def apply(self, nodes: Sequence[ServiceNode]) -> bool:
        """Use ``nodes`` as the list; returns True (and runs ``on_change``) when it changed."""
        version = list_version(nodes)
        if version == self.version:
            return False
        old, old_swarm = self.map, self._my_sid()
        new = SwarmMap(nodes)
        self.map, self.version, self.listed = new, version, tuple(nodes)
        new_swarm = self._my_sid()
        departed = tuple(
            n for n in (old.nodes if old else ()) if n.pubkey_ed25519 not in new.by_ed25519
        )
        self._note_departed(departed, new)
        change = SwarmChange(
            old=old,
            new=new,
            my_old_swarm=old_swarm,
            my_new_swarm=new_swarm,
            new_members=self._new_members(old, new, old_swarm, new_swarm),
            new_swarms=frozenset(set(new.swarms) - set(old.swarms if old else ())),
            departed=departed,
        )
        log.info(
            "node list changed: %d nodes, %d swarms, my swarm %s -> %s, %d new members",
            len(new.nodes),
            len(new.swarms),
            _sid(old_swarm),
            _sid(new_swarm),
            len(change.new_members),
        )
        if self.on_change is not None:
            t = spawn(self.on_change(change), log, "node-list change handler")
            self._change_tasks.add(t)
            t.add_done_callback(self._change_tasks.discard)
        return True

    def _new_members(
        self, old: SwarmMap | None, new: SwarmMap, old_swarm: int, new_swarm: int
    ) -> tuple[ServiceNode, ...]:
        """Members of our new swarm owed a copy of what we hold."""
        if old is None or old_swarm == INVALID_SWARM_ID or new_swarm == INVALID_SWARM_ID:
            return ()  # first time in a swarm (nothing of ours to hand over), or in none
        others = tuple(n for n in new.swarms.get(new_swarm, ()) if n.pubkey_ed25519 != self.me)
        if old_swarm not in new.swarms:
            return others  # our swarm dissolved: everything we hold goes to every member
        old_members = {n.pubkey_ed25519 for n in old.swarms.get(new_swarm, ())}
        return tuple(n for n in others if n.pubkey_ed25519 not in old_members)

    def _note_departed(self, departed: Sequence[ServiceNode], new: SwarmMap) -> None:
        """Remember nodes that left (they may hand their data over for ``DEPARTED_GRACE``);
        forget those past it or listed again."""
        now = self.clock()
        for n in departed:
            self._departed[n.pubkey_x25519] = now
        self._departed = {
            k: t
            for k, t in self._departed.items()
            if now - t < DEPARTED_GRACE and k not in new.by_x25519
        }

    def poke(self) -> None:
        """Refresh soon (e.g. a peer reported a list version we do not have)."""
        self._wake.set()

    async def authorize(self, x25519_public: bytes) -> bool:
        """Node-link authentication: is this X25519 key (proven by a handshake) a listed node?"""
        h = x25519_public.hex()
        if self.node_by_x25519(h) is not None:
            return True
        left = self._departed.get(h)
        if left is not None and self.clock() - left < DEPARTED_GRACE:
            return True  # it is handing its data over
        # Unknown: it may have registered after our last poll. Refresh (at most twice a second).
        wait = 0.5 - (self.clock() - self.last_refresh)
        if wait > 0:
            await asyncio.sleep(wait)
        if self.node_by_x25519(h) is None:
            try:
                await asyncio.wait_for(self.refresh(), 5.0)
            except TimeoutError:
                return False
        return self.node_by_x25519(h) is not None

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.refresh()

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self.run(), log, "node-list polling")

    async def stop(self) -> None:
        """Stop polling and cancel the change handlers still running; wait until they are done
        (a failed one was logged when it ended)."""
        await cancel_and_wait([self._task, *self._change_tasks])
        self._task = None


def _sid(s: int) -> str:
    return "none" if s == INVALID_SWARM_ID else f"{s:016x}"
