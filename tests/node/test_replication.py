"""Direct tests of session/node/replication.py: the write fan-out (aggregation, down and frozen
members), the reconciliation plan, and whole reconciliation sessions between in-memory stores
over fake links (every body goes through msgpack, as on the real links)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from session.node.links import (
    KIND_CC,
    KIND_CC_BATCH,
    KIND_DATA,
    KIND_PING,
    KIND_SYNC,
    LinkError,
    LinkTimeout,
    LinkUnreachable,
    PeerHealth,
)
from session.node.replication import (
    LinkFanout,
    Reconciler,
    SyncPlan,
    account_digests,
    batch_handler,
    bucket_digests,
    differing,
    plan_sync,
)
from session.node.swarm_view import SwarmView
from session.proto.snodes import INVALID_SWARM_ID, ServiceNode
from session.storage.base import StoredMessage, SyncEntry, Tombstone
from session.storage.memory import MemoryMessageStore
from session.swarm import message_hash
from session.testing.waits import until

SWARM = 0x1000_0000_0000_0000
OTHER = 0x9000_0000_0000_0000
A = "05" + "11" * 32
B = "05" + "aa" * 32


def node(i: int, swarm: int = SWARM) -> ServiceNode:
    return ServiceNode(
        pubkey_ed25519=f"{i:02x}" * 32,
        pubkey_x25519=f"{i + 100:02x}" * 32,
        public_ip="127.0.0.1",
        storage_port=1000 + i,
        storage_lmq_port=2000 + i,
        swarm_id=swarm,
    )


def roundtrip(obj: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(obj, use_bin_type=True), raw=False)


class FakeNet:
    """Routes requests between fake links; members can be dead (unreachable) or frozen (never
    answer until thawed)."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[bytes, Any]] = {}
        self.dead: set[str] = set()
        self.frozen: set[str] = set()
        self.thawed = asyncio.Event()
        self.sent: list[tuple[str, bytes]] = []


class FakeLinks:
    """The part of NodeLinks that replication uses, with the real PeerHealth bookkeeping."""

    def __init__(self, net: FakeNet, me: str) -> None:
        self.net = net
        self.me = me
        self.health: dict[str, PeerHealth] = {}
        self.on_peer_up: Any = None
        self.disconnected: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def is_down(self, x: str) -> bool:
        h = self.health.get(x)
        return h is not None and h.down

    def mark_down(self, x: str) -> None:
        self.health.setdefault(x, PeerHealth()).failed(asyncio.get_running_loop().time())

    def due_for_probe(self) -> list[str]:
        now = asyncio.get_running_loop().time()
        return [x for x, h in self.health.items() if h.down and h.next_probe <= now]

    def disconnect(self, x: str) -> None:
        self.disconnected.append(x)
        self.health.pop(x, None)

    def send_packed(
        self, x: str, address: str, kind: bytes, frames: list[bytes], timeout: Any, on_reply: Any
    ) -> bool:
        """As NodeLinks: taken, and the reply (its packed body) or the LinkError (a dead
        member's: unreachable) goes to ``on_reply`` later, never before this returns."""
        (body,) = frames

        async def run() -> None:
            try:
                reply = await self.request(x, address, kind, msgpack.unpackb(body), timeout)
            except LinkError as e:
                on_reply(e)
            else:
                on_reply((msgpack.packb(reply, use_bin_type=True), []))

        self.tasks.add(t := asyncio.ensure_future(run()))
        t.add_done_callback(self.tasks.discard)
        return True

    async def request(
        self, x: str, address: str, kind: bytes, body: Any, timeout: float | None = None
    ) -> Any:
        self.net.sent.append((x, kind))
        if x in self.net.dead:
            self.mark_down(x)
            raise LinkUnreachable("down")
        if x in self.net.frozen:
            try:
                await asyncio.wait_for(self.net.thawed.wait(), timeout)
            except TimeoutError:
                raise LinkTimeout("no answer") from None  # (down only once the link drops)
        try:
            handler = self.net.handlers[x].get(kind)
            if handler is None:
                raise ValueError("unknown kind")  # (what NodeLinks answers)
            reply = roundtrip(await handler(self.me, roundtrip(body)))
        except ValueError as e:
            raise LinkError(str(e)) from None
        finally:
            h = self.health.setdefault(x, PeerHealth())
            if h.answered() and self.on_peer_up is not None:
                self.on_peer_up(x)
        return reply


class Member:
    """One swarm member: a memory store, a real SwarmView, fake links, a Reconciler."""

    def __init__(self, net: FakeNet, me: ServiceNode, listed: list[ServiceNode]) -> None:
        self.node = me
        self.store = MemoryMessageStore()
        self.view = SwarmView(me.pubkey_ed25519, self._fetch)
        self.view.apply(listed)
        self.links = FakeLinks(net, me.pubkey_x25519)
        self.sync = Reconciler(
            self.store,
            self.links,
            self.view,  # type: ignore[arg-type]
            interval=3600.0,
            catch_up_timeout=0.05,
        )
        self.sync.retry_pause = 0.01
        self.links.on_peer_up = self.sync.peer_up
        self.cc: list[dict[str, Any]] = []
        net.handlers[me.pubkey_x25519] = {
            KIND_SYNC: self.sync.serve,
            KIND_CC: self._cc,
            KIND_CC_BATCH: batch_handler(self._cc),
            KIND_PING: self._ping,
        }

    async def _fetch(self) -> list[ServiceNode]:
        return list(self.view.map.nodes) if self.view.map else []

    async def _cc(self, peer: str, body: Any) -> Any:
        self.cc.append(body)
        return {"hash": "h", "signature": "s"}

    async def _ping(self, peer: str, body: Any) -> Any:
        return {"v": self.view.version}

    async def hashes(self, owner: str = A) -> dict[str, int]:
        """name (see :func:`H`) -> expiry of the owner's messages held here."""
        entries = await self.store.sync_index(lambda o: o == owner, 0)
        return {NAMES[e.hash]: e.expiry_ms for e in entries}


@pytest.fixture
def net() -> FakeNet:
    return FakeNet()


def swarm(net: FakeNet, n: int, extra: list[ServiceNode] | None = None) -> list[Member]:
    nodes = [node(i) for i in range(n)]
    listed = nodes + list(extra or [])
    return [Member(net, x, listed) for x in nodes]


#: real message hash -> the short name a test gave the message
NAMES: dict[str, str] = {}


def H(name: str, owner: str = A, ns: int = 0) -> str:
    """The real hash of the test message called ``name`` (members check hashes on receipt)."""
    h = message_hash(owner, ns, b"data " + name.encode())
    NAMES[h] = name
    return h


def m(name: str, owner: str = A, exp: int = 10**13, upd: int = 1, ns: int = 0) -> StoredMessage:
    return StoredMessage(owner, ns, H(name, owner, ns), b"data " + name.encode(), 1000, exp, upd)


# ---------------------------------------------------------------------------- fan-out


async def test_fanout_collects_every_live_members_result(net):
    members = swarm(net, 4)
    fan = LinkFanout(members[0].links, members[0].view, deadline=5.0)  # type: ignore[arg-type]
    out = await fan.forward({"method": "store", "params": {}})
    assert set(out) == {x.node.pubkey_ed25519 for x in members[1:]}
    assert all(r == {"hash": "h", "signature": "s"} for r in out.values())
    assert all(len(x.cc) == 1 for x in members[1:])


async def test_fanout_reports_a_dead_member_failed_and_then_stops_asking_it(net):
    members = swarm(net, 4)
    dead = members[3].node
    net.dead.add(dead.pubkey_x25519)
    outcomes: list[str] = []
    fan = LinkFanout(
        members[0].links,
        members[0].view,
        deadline=5.0,  # type: ignore[arg-type]
        on_result=outcomes.append,
    )
    out = await fan.forward({"method": "store", "params": {}})
    assert out[dead.pubkey_ed25519] is None
    assert sum(r is not None for r in out.values()) == 2
    assert members[0].links.is_down(dead.pubkey_x25519)
    asked = sum(1 for x, k in net.sent if x == dead.pubkey_x25519)
    for _ in range(5):
        out = await fan.forward({"method": "store", "params": {}})
        assert out[dead.pubkey_ed25519] is None
    # no request went to the dead member again: it waits for a probe instead
    assert sum(1 for x, k in net.sent if x == dead.pubkey_x25519) == asked
    assert outcomes.count("failed") == 6 and outcomes.count("ok") == 12


async def test_fanout_answers_at_the_deadline_without_a_frozen_member(net):
    members = swarm(net, 3)
    frozen = members[2]
    fed = frozen.node.pubkey_ed25519
    net.frozen.add(frozen.node.pubkey_x25519)
    # (a deadline a live member meets even on a loaded machine: its write goes out two loop
    # turns after the fan-out starts, and the frozen one's never comes)
    fan = LinkFanout(members[0].links, members[0].view, deadline=1.0)  # type: ignore[arg-type]
    out = await fan.forward({"method": "store", "params": {}})
    assert out[fed] is None and out[members[1].node.pubkey_ed25519] is not None
    assert fan.slow() == [fed]
    # while its first write is still running, later writes go to it without waiting for it
    fan.deadline = 60.0
    out = await asyncio.wait_for(fan.forward({"method": "store", "params": {}}), 10.0)
    assert out[fed] is None and out[members[1].node.pubkey_ed25519] is not None
    # when it thaws it gets both writes after all, and is waited for again
    net.thawed.set()
    await asyncio.wait_for(asyncio.wait([t for ts in fan._late.values() for t in ts]), 5.0)
    assert len(frozen.cc) == 2 and fan.slow() == []
    out = await fan.forward({"method": "store", "params": {}})
    assert out[fed] == {"hash": "h", "signature": "s"}
    await fan.stop()


async def test_a_member_marked_down_while_its_write_is_late_is_then_skipped(net):
    members = swarm(net, 2)
    frozen = members[1]
    net.frozen.add(frozen.node.pubkey_x25519)
    fan = LinkFanout(
        members[0].links,
        members[0].view,  # type: ignore[arg-type]
        deadline=0.01,
        timeout=0.05,
    )
    out = await fan.forward({"method": "store", "params": {}})
    assert out[frozen.node.pubkey_ed25519] is None
    members[0].links.mark_down(frozen.node.pubkey_x25519)  # its link dropped (heartbeat)
    await asyncio.wait_for(asyncio.wait([t for ts in fan._late.values() for t in ts]), 5.0)
    assert fan.slow() == []
    sent = len(net.sent)
    await fan.forward({"method": "store", "params": {}})
    assert len(net.sent) == sent  # down: skipped without a request


async def test_fanout_without_peers_is_empty(net):
    (alone,) = swarm(net, 1)
    fan = LinkFanout(alone.links, alone.view)  # type: ignore[arg-type]
    assert await fan.forward({"method": "store", "params": {}}) == {}


def test_peer_health_backs_off_and_recovers():
    h = PeerHealth()
    assert not h.down
    h.failed(100.0)
    first = h.next_probe
    h.failed(100.0)
    assert h.down and h.next_probe - 100.0 == 2 * (first - 100.0)
    for _ in range(20):
        h.failed(100.0)
    assert h.next_probe - 100.0 == 30.0  # capped
    assert h.answered() is True and not h.down and h.answered() is False


# ---------------------------------------------------------------------------- the plan


def e(h: str, exp: int = 50, upd: int = 1) -> SyncEntry:
    return SyncEntry(A, 0, h, exp, upd)


def t(h: str) -> Tombstone:
    return Tombstone(A, h, 50, 7)


def test_plan_fetches_pushes_buries_and_keeps_the_newest_expiry():
    mine = [e("both"), e("mine"), e("gone-there"), e("exp-a", 60, upd=5), e("exp-b", 60, upd=1)]
    theirs = [e("both"), e("theirs"), e("gone-here"), e("exp-a", 40, upd=2), e("exp-b", 40, upd=9)]
    plan = plan_sync(mine, [t("gone-here")], theirs, [t("gone-there"), t("old")])
    assert plan.fetch == ["theirs"]  # never "gone-here": we deleted it
    assert plan.push == ["mine"]  # never "gone-there": they deleted it
    assert [x.hash for x in plan.bury_here] == ["gone-there", "old"]
    assert [x.hash for x in plan.bury_there] == ["gone-here"]
    assert [(x.hash, x.expiry_ms) for x in plan.expire_here] == [("exp-b", 40)]
    assert [(x.hash, x.expiry_ms) for x in plan.expire_there] == [("exp-a", 60)]


def test_plan_of_equal_sides_is_empty_and_ties_settle_on_the_later_expiry():
    same = [e("x"), e("y")]
    assert plan_sync(same, [], same, []) == SyncPlan()
    # each member stamps a store with its own clock: equal expiries are left alone
    assert plan_sync([e("x", upd=3)], [], [e("x", upd=9)], []) == SyncPlan()
    tie = plan_sync([e("x", 40, upd=3)], [], [e("x", 60, upd=3)], [])
    assert [x.expiry_ms for x in tie.expire_here] == [60] and not tie.expire_there


def test_digests_change_with_any_difference():
    base = account_digests([e("x"), e("y")])
    assert base == account_digests([e("y"), e("x")])  # order does not matter
    assert base != account_digests([e("x"), e("y", exp=51)])
    assert base != account_digests([e("x")])
    other = {**base, B: b"\0" * 16}
    assert differing(base, other) == [B]
    assert differing(bucket_digests(base), bucket_digests(other)) == [B[2:4]]


# ---------------------------------------------------------------------------- sessions


async def test_session_brings_two_members_level(net):
    a, b, _ = swarm(net, 3)
    for h in ("m1", "m2", "m3", "m4"):
        await a.store.store(m(h))
    await a.store.import_messages([m("only-a-imported")])
    for h in ("m3", "m4", "m5", "m6"):
        await b.store.store(m(h))
    await b.store.store(m("m7", owner=B))
    # b deleted m2 (a missed it); a's expiry of m3 was set after b's
    await b.store.store(m("m2"))
    assert await b.store.delete_by_hash(A, [H("m2")]) == [H("m2")]
    await a.store.apply_sync([], [], [SyncEntry(A, 0, H("m3"), 5 * 10**12, 2**62)])

    res = await a.sync.sync_with(b.node)
    assert res is not None
    assert res.accounts == 2 and res.pulled == 3 and res.pushed == 2
    want = {"m1", "m3", "m4", "m5", "m6", "only-a-imported"}
    assert set(await a.hashes()) == set(await b.hashes()) == want
    assert (await a.hashes())["m3"] == (await b.hashes())["m3"] == 5 * 10**12
    assert set(await a.hashes(B)) == {"m7"}
    # a second session finds nothing to do
    again = await a.sync.sync_with(b.node)
    assert again is not None and again.accounts == 0


async def test_deletion_travels_and_is_not_revived(net):
    a, b, c = swarm(net, 3)
    for x in (a, b, c):
        await x.store.store(m("doomed"))
    await a.store.delete_all(A)
    assert (await a.sync.sync_with(b.node)) is not None
    assert "doomed" not in await b.hashes()
    # c still has it; syncing c with b must delete it on c, not copy it back to b
    assert (await c.sync.sync_with(b.node)) is not None
    assert "doomed" not in await c.hashes() and "doomed" not in await b.hashes()
    # and a handoff push of the old copy is refused by the tombstone
    assert await b.store.import_messages([m("doomed")]) == 0


async def test_many_messages_travel_in_batches(net):
    a, b = swarm(net, 2)
    await a.store.import_messages([m(f"h{i:04d}") for i in range(250)])
    res = await b.sync.sync_with(a.node)
    assert res is not None and res.pulled == 250
    assert len(await b.hashes()) == 250
    fetches = [k for x, k in net.sent if k == KIND_SYNC]
    assert len(fetches) == 3 + 3  # buckets, accounts, entries, then 3 fetch batches


async def test_accounts_of_another_swarm_are_neither_served_nor_taken(net):
    outsider = node(9, OTHER)
    a, b = swarm(net, 2, extra=[outsider])
    foreign = next(
        f"05{i:02x}" + "33" * 31
        for i in range(256)
        if a.view.swarm_id_for(f"05{i:02x}" + "33" * 31) == OTHER
    )
    await b.store.import_messages([m("theirs-foreign", owner=foreign), m("ok")])
    res = await a.sync.sync_with(b.node)
    assert res is not None
    assert set(await a.hashes()) == {"ok"} and not await a.hashes(foreign)
    # a node of another swarm is refused outright
    with pytest.raises(ValueError, match="members of this swarm"):
        await a.sync.serve(outsider.pubkey_x25519, {"op": "buckets", "c": 0})


async def test_bad_sync_requests_are_refused(net):
    a, b = swarm(net, 2)
    peer = b.node.pubkey_x25519
    for body in (
        {"op": "buckets"},
        {"op": "nope", "c": 0},
        {"op": "entries", "c": 0, "o": 5},
        {"op": "apply", "c": 0, "m": [["short"]]},
        "not a map",
    ):
        with pytest.raises((ValueError, TypeError)):
            await a.sync.serve(peer, body)


async def test_a_message_under_a_forged_hash_is_refused(net):
    a, b = swarm(net, 2)
    forged = StoredMessage(A, 0, H("innocent"), b"something else", 1000, 10**13, 1)
    await b.store.import_messages([forged])
    assert await a.sync.sync_with(b.node) is None  # the session stops at the bad record
    assert await a.hashes() == {}
    with pytest.raises(ValueError, match="hash does not match"):
        await a.sync.serve(
            b.node.pubkey_x25519,
            {"op": "apply", "c": 0, "m": [[A, 0, forged.hash, 1000, 10**13, forged.data, 1]]},
        )
    with pytest.raises(ValueError, match="hash does not match"):
        await a.sync.serve(
            b.node.pubkey_x25519,
            {"op": "apply", "c": 0, "m": [[A, 0, "x" * 43, 1000, 10**13, b"data", 1]]},
        )


async def test_a_failed_session_returns_none(net):
    a, b = swarm(net, 2)
    net.dead.add(b.node.pubkey_x25519)
    assert await a.sync.sync_with(b.node) is None
    assert a.links.is_down(b.node.pubkey_x25519)


# ---------------------------------------------------------------------------- catching up


async def test_catching_up_refuses_reads_until_a_session_succeeded(net):
    a, b, c = swarm(net, 3)
    await b.store.import_messages([m("x1"), m("x2")])
    net.dead.add(c.node.pubkey_x25519)  # one member down does not block catching up
    assert a.sync.not_ready_reason() is not None
    await asyncio.wait_for(a.sync.catch_up(), 5.0)
    assert a.sync.not_ready_reason() is None
    assert set(await a.hashes()) == {"x1", "x2"}


async def test_catching_up_gives_up_when_nobody_answers(net):
    a, b = swarm(net, 2)
    net.dead.add(b.node.pubkey_x25519)
    await asyncio.wait_for(a.sync.catch_up(), 5.0)
    assert not a.sync.catching_up


async def test_alone_in_a_swarm_there_is_nothing_to_catch_up(net):
    (a,) = swarm(net, 1)
    await asyncio.wait_for(a.sync.catch_up(), 5.0)
    assert not a.sync.catching_up


async def test_a_member_back_in_its_swarm_refuses_reads_until_caught_up_again(net):
    """Decommissioned while up, a member hands its accounts over and drops them; listed in the
    swarm again it must not answer reads from its empty store before it caught up."""
    a, b = swarm(net, 2)
    await b.store.import_messages([m("x1")])
    await asyncio.wait_for(a.sync.catch_up(), 5.0)
    assert set(await a.hashes()) == {"x1"} and a.sync.not_ready_reason() is None

    async def on_change(change: Any) -> None:
        a.sync.swarm_changed(change)

    a.view.on_change = on_change
    out = [node(0, INVALID_SWARM_ID), b.node]
    a.view.apply(out)  # decommissioned: in no swarm
    await a.store.drop_accounts(lambda owner: True)  # (what the hand-over does)
    await b.store.import_messages([m("x2")])  # stored while it was out
    await asyncio.gather(*a.view._change_tasks)
    assert not a.sync.catching_up  # (in no swarm: the node is not ready for other reasons)
    a.view.apply([a.node, b.node])  # recommissioned
    await asyncio.gather(*a.view._change_tasks)
    assert a.sync.not_ready_reason() is not None  # reads refused, not answered from nothing
    await asyncio.wait_for(asyncio.gather(*a.sync._aside), 5.0)
    assert a.sync.not_ready_reason() is None
    assert set(await a.hashes()) == {"x1", "x2"}
    a.view.apply([a.node, b.node, node(2)])  # a change that leaves its swarm as it was
    await asyncio.gather(*a.view._change_tasks)
    assert not a.sync.catching_up
    # stopping: a change reported after the reconciler stopped starts no catch-up nobody
    # would cancel
    await a.sync.stop()
    a.view.apply(out)
    await asyncio.gather(*a.view._change_tasks)
    a.view.apply([a.node, b.node])
    await asyncio.gather(*a.view._change_tasks)
    assert not a.sync._aside and not a.sync.catching_up


async def test_a_member_answering_again_is_probed_and_synced(net):
    a, b = swarm(net, 2)
    x = b.node.pubkey_x25519
    net.dead.add(x)
    await a.store.store(m("missed"))
    fan = LinkFanout(a.links, a.view, deadline=1.0)  # type: ignore[arg-type]
    assert (await fan.forward({"method": "store", "params": {}}))[b.node.pubkey_ed25519] is None
    net.dead.discard(x)
    a.links.health[x].next_probe = 0.0  # its back-off elapsed
    a.sync._probe()
    await asyncio.wait_for(asyncio.gather(*a.sync._aside), 5.0)
    assert not a.links.is_down(x)
    # the answer started a session that gave b what it missed
    await asyncio.wait_for(asyncio.gather(*a.sync._running.values()), 5.0)
    assert set(await b.hashes()) == {"missed"}


async def test_a_member_that_left_the_list_is_not_probed(net):
    a, _ = swarm(net, 2)
    a.links.mark_down("ff" * 32)
    a.links.health["ff" * 32].next_probe = 0.0
    a.sync._probe()
    assert a.links.disconnected == ["ff" * 32]


# ---------------------------------------------------------------------------- the RPC hook


async def test_a_member_catching_up_refuses_reads_but_takes_writes():
    from rpc_helpers import LocalSwarm, call

    sw = LocalSwarm([MemoryMessageStore() for _ in range(3)])
    reason: list[str | None] = ["still catching up with its swarm; ask another member"]
    sw.node(1).catching_up = lambda: reason[0]
    c = sw.client_in_swarm()
    st, body = await call(sw.node(1), c.store(b"hello"))
    assert st == 200 and len(body["swarm"]) == 3
    st, body = await call(sw.node(1), c.retrieve())
    assert st == 503
    assert body == "Service node is not ready: still catching up with its swarm; ask another member"
    st, body = await call(sw.node(0), c.retrieve())
    assert st == 200 and len(body["messages"]) == 1
    reason[0] = None
    st, body = await call(sw.node(1), c.retrieve())
    assert st == 200 and len(body["messages"]) == 1


async def test_handoff_push_takes_our_accounts_and_checks_hashes(net):
    from session.node.replication import SwarmHandoff

    (a,) = swarm(net, 1)
    hand = SwarmHandoff(a.store, a.links, a.view)  # type: ignore[arg-type]
    good = m("handed")
    rec = [A, 0, good.hash, good.timestamp_ms, good.expiry_ms, good.data]
    assert await hand.accept_push("peer", {"m": [rec]}) == {"n": 1, "rejected_owners": []}
    assert set(await a.hashes()) == {"handed"}
    with pytest.raises(ValueError, match="hash does not match"):
        await hand.accept_push("peer", {"m": [[A, 0, good.hash, 1, 2, b"other data"]]})
    with pytest.raises(TypeError):
        await hand.accept_push("peer", {"m": "nope"})


async def test_real_links_see_a_peer_go_down_and_come_back():
    """NodeLinks: the connection's own events mark a peer down the moment its process closes
    the link, and up (with on_peer_up) when a new one completes its handshake."""
    from session.identity import Identity
    from session.testing.links import open_links as links

    a, b = Identity.generate(), Identity.generate()

    async def ping(peer: str, body: Any) -> Any:
        if body.get("bad"):
            raise ValueError("this request is refused")
        return {"v": 1}

    la, lb = links(a, {}), links(b, {KIND_PING: ping})
    ups: list[str] = []
    la.on_peer_up = ups.append
    await la.start("127.0.0.1", 0)
    port = await lb.start("127.0.0.1", 0)
    bx = bytes(b.x25519_public).hex()
    try:
        assert await la.request(bx, f"tcp://127.0.0.1:{port}", KIND_PING, {}, 5.0) == {"v": 1}
        assert not la.is_down(bx)
        with pytest.raises(LinkError, match="this request is refused"):
            await la.request(bx, f"tcp://127.0.0.1:{port}", KIND_PING, {"bad": 1}, 5.0)
        assert not la.is_down(bx)  # a refusal is an answer
        await lb.close()  # the peer's process goes away
        await until(lambda: la.is_down(bx))
        lb = links(b, {KIND_PING: ping})
        await lb.start("127.0.0.1", port)  # ... and comes back on its port
        await until(lambda: not la.is_down(bx))
        assert ups == [bx]
    finally:
        await la.close()
        await lb.close()


async def test_a_member_owed_a_copy_is_still_owed_after_a_restart(net, tmp_path):
    from session.node.replication import SwarmHandoff
    from session.node.swarm_view import SwarmChange, SwarmMap
    from session.storage import SqliteMessageStore

    me, newcomer = node(0), node(1)
    (b,) = [Member(net, newcomer, [me, newcomer])]
    net.handlers[newcomer.pubkey_x25519][KIND_DATA] = SwarmHandoff(
        b.store,
        b.links,
        b.view,  # type: ignore[arg-type]
    ).accept_push
    links = FakeLinks(net, me.pubkey_x25519)
    view = SwarmView(me.pubkey_ed25519, lambda: None)  # type: ignore[arg-type,return-value]
    view.apply([me, newcomer])
    change = SwarmChange(
        old=SwarmMap([me]),
        new=view.map,
        my_old_swarm=SWARM,
        my_new_swarm=SWARM,
        new_members=(newcomer,),
        new_swarms=frozenset(),
        departed=(),
    )
    store = await SqliteMessageStore.open(tmp_path)
    await store.store(m("owed"))
    net.dead.add(newcomer.pubkey_x25519)  # the newcomer is down when the list changes
    await SwarmHandoff(store, links, view).on_change(change)  # type: ignore[arg-type]
    assert set(await b.hashes()) == set()
    await store.close()  # the node stops before the newcomer came up

    store = await SqliteMessageStore.open(tmp_path)
    again = SwarmHandoff(store, links, view)  # type: ignore[arg-type]
    await again.restore()
    net.dead.clear()
    await again.reconcile()  # the retry loop's pass
    assert set(await b.hashes()) == {"owed"}
    assert await store.handoff_targets() == {}  # settled: nothing retried after this
    await store.close()


async def test_a_session_over_accounts_in_every_bucket_goes_in_parts(net, tmp_path, monkeypatch):
    """A store larger than one bucket (and than one part of a session): accounts in all 256
    buckets, differences on both sides, one member on SQLite; a session compares the buckets
    streamed from each store, then the differing accounts a few buckets and accounts at a time,
    and leaves both level."""
    from session.node import replication
    from session.storage.sqlite import SqliteMessageStore

    monkeypatch.setattr(replication, "SYNC_ACCOUNTS", 50)
    monkeypatch.setattr(replication, "SYNC_BUCKETS", 7)
    a, b = swarm(net, 2)
    a.store = a.sync.store = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    try:
        owners = [f"05{x:02x}" + "33" * 31 for x in range(256)]
        both = [m(f"s{i}", owner=o) for i, o in enumerate(owners)]
        only_a = [m(f"a{i}", owner=o) for i, o in enumerate(owners) if i % 3 == 0]
        only_b = [m(f"b{i}", owner=o) for i, o in enumerate(owners) if i % 5 == 0]
        await a.store.import_messages(both + only_a)
        await b.store.import_messages(both + only_b)
        res = await a.sync.sync_with(b.node)
        assert res is not None
        assert res.pulled == len(only_b) and res.pushed == len(only_a)
        assert res.accounts == len({o for x in only_a + only_b for o in [x.owner]})
        everything = {x.hash for x in both + only_a + only_b}
        for x in (a, b):
            assert {e.hash for e in await x.store.sync_index(lambda o: True, 0)} == everything
        assert await a.store.bucket_digests(a.sync.mine, 0) == await b.store.bucket_digests(
            b.sync.mine, 0
        )
        accounts_asks = [k for _, k in net.sent if k == KIND_SYNC]
        assert len(accounts_asks) > 10  # (several account and entry requests, not one)
        again = await a.sync.sync_with(b.node)
        assert again is not None and again.accounts == 0
    finally:
        await a.store.close()


async def test_a_session_holds_a_bounded_number_of_entries_at_a_time(net, monkeypatch):
    """Accounts with many messages each: a session plans and exchanges them a part at a time,
    bounded by entries (not by accounts), an account larger than a part alone; both end level
    and no part asked for more entries than the bound."""
    from session.node import replication

    monkeypatch.setattr(replication, "SYNC_ENTRIES", 10)
    a, b = swarm(net, 2)
    owners = [f"05{x:02x}" + "44" * 31 for x in range(0, 240, 8)]  # 30 accounts
    sizes = {o: (1 if i % 3 else 25) for i, o in enumerate(owners)}  # some over one part
    both = [m(f"e{o[2:4]}-{k}", owner=o) for o in owners for k in range(sizes[o])]
    only_a = [m(f"x{o[2:4]}", owner=o) for o in owners[::2]]
    only_b = [m(f"y{o[2:4]}", owner=o) for o in owners[1::2]]
    await a.store.import_messages(both + only_a)
    await b.store.import_messages(both + only_b)
    asked: list[int] = []
    serve = b.sync.serve

    async def watch(peer: str, body: Any) -> Any:
        out = await serve(peer, body)
        if body.get("op") == "entries":
            assert body["n"] == 10
            asked.append(len(out["e"]))
        return out

    net.handlers[b.node.pubkey_x25519][KIND_SYNC] = watch
    res = await a.sync.sync_with(b.node)
    assert res is not None and res.accounts == 30
    assert res.pulled == len(only_b) and res.pushed == len(only_a)
    assert len(asked) > 5 and all(n <= 10 or n in (25, 26) for n in asked)  # (one big account)
    everything = {x.hash for x in both + only_a + only_b}
    for x in (a, b):
        assert {e.hash for e in await x.store.sync_index(lambda o: True, 0)} == everything
    again = await a.sync.sync_with(b.node)
    assert again is not None and again.accounts == 0


async def test_a_member_that_lists_every_account_at_once_is_still_synced(net, monkeypatch):
    """A member from before entry-bounded parts ignores "n" and answers every account at
    once (no "upto"): the session takes the answer as covering them all and ends level."""
    from session.node import replication

    monkeypatch.setattr(replication, "SYNC_ENTRIES", 4)
    a, b = swarm(net, 2)
    owners = [f"05{x:02x}" + "55" * 31 for x in range(10, 20)]
    await a.store.import_messages([m(f"p{o[2:4]}-{k}", owner=o) for o in owners for k in range(3)])
    await b.store.import_messages([m(f"q{o[2:4]}", owner=o) for o in owners])
    serve = b.sync.serve

    async def old(peer: str, body: Any) -> Any:
        return await serve(peer, {k: v for k, v in body.items() if k not in ("n", "s", "x")})

    net.handlers[b.node.pubkey_x25519][KIND_SYNC] = old
    res = await a.sync.sync_with(b.node)
    assert res is not None and res.pulled == 10 and res.pushed == 30
    assert await a.store.bucket_digests(a.sync.mine, 0) == await b.store.bucket_digests(
        b.sync.mine, 0
    )


async def test_periodic_sessions_leave_messages_still_travelling_alone(net):
    """A settled (periodic) session compares messages older than SETTLE_MS only: a write that
    reached one member moments ago does not make its account differ; an older difference is
    still found, and a full session (catch-up, a member back) takes the recent one too."""
    from session.node.replication import SETTLE_MS
    from session.storage.base import now_ms

    a, b = swarm(net, 2)
    now = now_ms()
    recent = StoredMessage(A, 0, H("fresh"), b"data fresh", now, now + 10**8)
    await a.store.import_messages([recent, m("old-a", owner=B)])
    await b.store.import_messages([m("old-b", owner=B)])
    res = await a.sync.sync_with(b.node, settled=True)
    assert res is not None and res.accounts == 1 and res.pulled == 1 and res.pushed == 1
    assert "fresh" not in await b.hashes()  # A's account did not differ in a settled session
    # (an entry of a differing account travels whatever its age: B's were compared in full)
    assert now - recent.timestamp_ms < SETTLE_MS
    res = await a.sync.sync_with(b.node)
    assert res is not None and res.accounts == 1 and "fresh" in await b.hashes()


async def test_current_members_compare_running_digests_and_never_read_every_message(
    net, tmp_path, monkeypatch
):
    """Between members that both keep running digests ("x": 1) a session, periodic or full,
    compares those (a row per account) and never computes the sorted-lines digests, which
    read every stored message; differences are still found and levelled."""
    from session.storage.sqlite import SqliteMessageStore

    a, b = swarm(net, 2)
    stores = [await SqliteMessageStore.open(tmp_path / x, max_bytes=None) for x in ("a", "b")]
    a.store = a.sync.store = stores[0]
    b.store = b.sync.store = stores[1]
    try:
        owners = [f"05{x:02x}" + "66" * 31 for x in range(0, 256, 5)]
        both = [m(f"r{i}", owner=o) for i, o in enumerate(owners)]
        await a.store.import_messages([*both, m("only-a", owner=owners[3])])
        await b.store.import_messages([*both, m("only-b", owner=owners[40])])

        async def full_scan(*args: Any, **kw: Any) -> Any:
            raise AssertionError("a session between current members read every message")

        for st in stores:
            monkeypatch.setattr(st, "account_digests", full_scan)
            monkeypatch.setattr(st, "bucket_digests", full_scan)
        seen: list[dict[str, Any]] = []
        serve = b.sync.serve

        async def watch(peer: str, body: Any) -> Any:
            out = await serve(peer, body)
            if body["op"] in ("buckets", "accounts"):
                seen.append(body)
                assert out["x"] == 1
            return out

        net.handlers[b.node.pubkey_x25519][KIND_SYNC] = watch
        res = await a.sync.sync_with(b.node, settled=True)
        assert res is not None and res.accounts == 2 and res.pulled == 1 and res.pushed == 1
        assert seen and all(x.get("x") == 1 for x in seen)
        assert await a.store.bucket_sums(a.sync.mine, 0) == await b.store.bucket_sums(
            b.sync.mine, 0
        )
        again = await a.sync.sync_with(b.node)
        assert again is not None and again.accounts == 0
    finally:
        for st in stores:
            await st.close()


async def test_an_older_member_asking_gets_the_digests_it_knows(net):
    """A request without "x" (a member from before running digests) is answered with the
    sorted-lines digests, exactly as before; with "x": 1, with running digests, marked."""
    a, b = swarm(net, 2)
    await b.store.import_messages([m("k1"), m("k2", owner=B)])
    peer = a.node.pubkey_x25519
    old = await b.sync.serve(peer, {"op": "buckets", "c": 0})
    assert old == {"b": await b.store.bucket_digests(b.sync.mine, 0)} and "x" not in old
    acc = await b.sync.serve(peer, {"op": "accounts", "c": 0, "b": [B[2:4]]})
    assert acc == {"a": await b.store.account_digests(b.sync.mine, 0, [B[2:4]])}
    new = await b.sync.serve(peer, {"op": "buckets", "c": 0, "x": 1})
    assert new == {"b": await b.store.bucket_sums(b.sync.mine, 0), "x": 1}
    assert new["b"] != old["b"]
    # a kind it does not know yet (a later member): the digests every member knows
    assert await b.sync.serve(peer, {"op": "buckets", "c": 0, "x": 7}) == old


async def test_bad_settle_and_limit_fields_are_refused(net):
    a, b = swarm(net, 2)
    for bad in ({"op": "buckets", "c": 0, "s": "x"}, {"op": "accounts", "c": 0, "b": [], "s": 1.5},
                {"op": "entries", "c": 0, "o": [A], "n": 0},
                {"op": "buckets", "c": 0, "x": "1"}, {"op": "accounts", "c": 0, "b": [], "x": True},
                {"op": "entries", "c": 0, "o": [A], "n": True}):  # fmt: skip
        with pytest.raises(TypeError):
            await b.sync.serve(a.node.pubkey_x25519, bad)


# ---------------------------------------------------------------------------- batched fan-out


def storing(member: Member) -> Any:
    """A KIND_CC handler that stores the forwarded message (named by params "n") in
    ``member``'s store and answers its hash and whether it was new."""

    async def cc(peer: str, body: Any) -> Any:
        p = body["params"]
        if p.get("bad"):
            raise ValueError("refused")
        r = await member.store.store(m(p["n"], owner=p["pubkey"]))
        member.cc.append(body)
        return {"hash": H(p["n"], p["pubkey"]), "new": r.new}

    return cc


def body(name: str, owner: str = A, **extra: Any) -> dict[str, Any]:
    return {"method": "store", "params": {"pubkey": owner, "n": name, **extra}}


def wire(member: Member, *, batches: bool = True) -> None:
    handlers = member.links.net.handlers[member.node.pubkey_x25519]
    handlers[KIND_CC] = storing(member)
    if batches:
        handlers[KIND_CC_BATCH] = batch_handler(handlers[KIND_CC])
    else:
        del handlers[KIND_CC_BATCH]


async def test_writes_of_one_loop_iteration_reach_every_member_in_one_batch(net):
    members = swarm(net, 4)
    for x in members[1:]:
        wire(x)
    fan = LinkFanout(members[0].links, members[0].view, deadline=5.0)  # type: ignore[arg-type]
    names = [(f"w{i}", A if i % 2 else B) for i in range(20)]
    outs = await asyncio.gather(*(fan.forward(body(n, o)) for n, o in names))
    assert [k for _, k in net.sent] == [KIND_CC_BATCH] * 3 and fan.link_requests == 3
    for (n, o), out in zip(names, outs, strict=True):
        assert set(out) == {x.node.pubkey_ed25519 for x in members[1:]}
        assert all(r == {"hash": H(n, o), "new": True} for r in out.values())
    for x in members[1:]:
        # every write arrived, each account's in the order they were made
        for owner in (A, B):
            got = [b["params"]["n"] for b in x.cc if b["params"]["pubkey"] == owner]
            assert got == [n for n, o in names if o == owner]
        assert len(await x.store.sync_index(lambda o: True, 0)) == 20


async def test_a_batch_keeps_dedup_by_hash_and_refusals_per_write(net):
    a, b = swarm(net, 2)
    wire(b)
    fan = LinkFanout(a.links, a.view, deadline=5.0)  # type: ignore[arg-type]
    ed = b.node.pubkey_ed25519
    outs = await asyncio.gather(
        fan.forward(body("d1")),
        fan.forward(body("d1")),
        fan.forward(body("d2", bad=True)),
        fan.forward(body("d3")),
    )
    assert [k for _, k in net.sent] == [KIND_CC_BATCH]
    assert [o[ed] for o in outs] == [
        {"hash": H("d1"), "new": True},
        {"hash": H("d1"), "new": False},  # the same message twice: stored once
        None,  # refused by the member: counted failed, the others unaffected
        {"hash": H("d3"), "new": True},
    ]
    assert set(await b.hashes()) == {"d1", "d3"}


async def test_a_failed_batch_loses_nothing_the_member_gets_it_by_reconciliation(net):
    a, b, c = swarm(net, 3)
    for x in (b, c):
        wire(x)
    net.dead.add(c.node.pubkey_x25519)
    fan = LinkFanout(a.links, a.view, deadline=5.0)  # type: ignore[arg-type]
    names = [f"f{i}" for i in range(12)]
    for n in names:
        await a.store.store(m(n))  # (the origin applies each write itself)
    outs = await asyncio.gather(*(fan.forward(body(n)) for n in names))
    assert all(o[c.node.pubkey_ed25519] is None for o in outs)  # the whole batch failed
    assert all(o[b.node.pubkey_ed25519] is not None for o in outs)
    assert a.links.is_down(c.node.pubkey_x25519)
    assert set(await c.hashes()) == set()
    # c answers again: the links see it, the reconciler gives it every write it missed
    net.dead.clear()
    res = await a.sync.sync_with(c.node)
    assert res is not None and res.pushed == len(names)
    assert set(await c.hashes()) == set(names) == set(await b.hashes())


async def test_a_member_without_batches_gets_the_writes_one_by_one_in_order(net):
    a, old, new = swarm(net, 3)
    wire(old, batches=False)  # a node from before batches: "unknown kind"
    wire(new)
    fan = LinkFanout(a.links, a.view, deadline=5.0)  # type: ignore[arg-type]
    names = [f"o{i}" for i in range(5)]
    outs = await asyncio.gather(*(fan.forward(body(n)) for n in names))
    assert all(
        o[old.node.pubkey_ed25519] == {"hash": H(n), "new": True}
        for n, o in zip(names, outs, strict=True)
    )
    assert [b["params"]["n"] for b in old.cc] == names
    assert [b["params"]["n"] for b in new.cc] == names
    to_old = [k for x, k in net.sent if x == old.node.pubkey_x25519]
    assert to_old == [KIND_CC_BATCH] + [KIND_CC] * 5
    # from then on it is not offered batches again
    net.sent.clear()
    await asyncio.gather(*(fan.forward(body(f"p{i}")) for i in range(3)))
    assert [k for x, k in net.sent if x == old.node.pubkey_x25519] == [KIND_CC] * 3


async def test_a_member_without_batches_gets_a_flush_cut_in_parts_in_order(net, monkeypatch):
    """One flush of writes for a member that takes no batches, cut into parts (here of two):
    the parts' writes go one message each, in the flush's order; a later part of one write
    does not overtake the part before it."""
    from session.node import replication

    monkeypatch.setattr(replication, "CC_BATCH_MAX", 2)
    a, old = swarm(net, 2)
    wire(old, batches=False)
    fan = LinkFanout(a.links, a.view, deadline=5.0)  # type: ignore[arg-type]
    fan._singly.add(old.node.pubkey_x25519)  # (it said so before)
    names = [f"w{i}" for i in range(5)]  # parts of 2, 2 and 1
    outs = await asyncio.gather(*(fan.forward(body(n)) for n in names))
    assert all(o[old.node.pubkey_ed25519] is not None for o in outs)
    assert [b["params"]["n"] for b in old.cc] == names
    assert [k for x, k in net.sent if x == old.node.pubkey_x25519] == [KIND_CC] * 5
    assert fan._unanswered.get(old.node.pubkey_x25519, 0) == 0


async def test_bad_batches_are_refused():
    async def one(peer: str, body: Any) -> Any:
        return {}

    serve = batch_handler(one)
    with pytest.raises(TypeError):
        await serve("p", [body("x")])
    with pytest.raises(ValueError, match="at most"):
        await serve("p", {"r": [body(f"x{i}") for i in range(10_000)]})
    assert await serve("p", {"r": []}) == {"r": []}


def gated(member: Member, gate: asyncio.Event) -> None:
    """``member`` stores as :func:`wire` does, but answers nothing until ``gate`` is set."""
    wire(member)
    handlers = member.links.net.handlers[member.node.pubkey_x25519]
    cc, ccb = handlers[KIND_CC], handlers[KIND_CC_BATCH]

    async def wait_cc(peer: str, body: Any) -> Any:
        await gate.wait()
        return await cc(peer, body)

    async def wait_ccb(peer: str, body: Any) -> Any:
        await gate.wait()
        return await ccb(peer, body)

    handlers[KIND_CC], handlers[KIND_CC_BATCH] = wait_cc, wait_ccb


async def test_writes_for_a_member_with_one_unanswered_wait_for_it_and_go_together(net):
    """Nagle's rule: while a link message to a member is unanswered, later writes for it are
    held (a member with nothing unanswered gets its writes at once), and go as one batch as
    soon as it answers, in order; nothing waits for the hold's bound."""
    a, slow, quick = swarm(net, 3)
    gate = asyncio.Event()
    gated(slow, gate)
    wire(quick)
    held: list[int] = []
    fan = LinkFanout(
        a.links,  # type: ignore[arg-type]
        a.view,
        deadline=5.0,
        hold=60.0,
        on_held=held.append,
    )
    first = asyncio.ensure_future(fan.forward(body("n0")))
    await until(lambda: len(net.sent) == 2)  # one link message to each member
    later = []
    for i in range(1, 4):  # three more writes, each in its own loop iteration
        later.append(asyncio.ensure_future(fan.forward(body(f"n{i}"))))
        await until(lambda i=i: len(quick.cc) == i + 1)  # quick: nothing unanswered, sent
    to_slow = [k for x, k in net.sent if x == slow.node.pubkey_x25519]
    assert to_slow == [KIND_CC]  # the rest held for it
    gate.set()
    outs = [await first, *[await f for f in later]]
    assert [k for x, k in net.sent if x == slow.node.pubkey_x25519] == [KIND_CC, KIND_CC_BATCH]
    assert [b["params"]["n"] for b in slow.cc] == ["n0", "n1", "n2", "n3"]
    for i, out in enumerate(outs):
        assert out[slow.node.pubkey_ed25519] == {"hash": H(f"n{i}"), "new": True}
        assert out[quick.node.pubkey_ed25519] == {"hash": H(f"n{i}"), "new": True}
    assert fan.held_writes == 3 and held == [3]  # (the metric: one batch of three)
    # nothing unanswered any more: the next write goes at once
    net.sent.clear()
    assert (await fan.forward(body("n4")))[slow.node.pubkey_ed25519] is not None
    assert [k for x, k in net.sent if x == slow.node.pubkey_x25519] == [KIND_CC]
    assert fan.held_writes == 3


async def test_held_writes_go_when_the_hold_has_passed_and_fail_when_stopped(net):
    """A member that does not answer holds later writes up to ``hold`` only: then they go
    (and are answered when it answers); writes still held when the fan-out stops fail (the
    member counts failed for them: reconciliation brings it level)."""
    a, slow = swarm(net, 2)
    gate = asyncio.Event()
    gated(slow, gate)
    fan = LinkFanout(a.links, a.view, deadline=5.0, hold=0.05)  # type: ignore[arg-type]
    ed = slow.node.pubkey_ed25519
    first = asyncio.ensure_future(fan.forward(body("h0")))
    await until(lambda: len(net.sent) == 1)
    second = asyncio.ensure_future(fan.forward(body("h1")))
    await until(lambda: len(net.sent) == 2)  # sent once the hold passed, still unanswered
    assert fan.held_writes == 1 and not first.done() and not second.done()
    gate.set()
    assert (await first)[ed] == {"hash": H("h0"), "new": True}
    assert (await second)[ed] == {"hash": H("h1"), "new": True}
    # a write held when the fan-out stops fails at once (no 5 s deadline to wait for)
    gate.clear()
    fan.hold = 60.0
    third = asyncio.ensure_future(fan.forward(body("h2")))
    await until(lambda: len(net.sent) == 3)
    fourth = asyncio.ensure_future(fan.forward(body("h3")))
    await until(lambda: bool(fan._held))
    await fan.stop()
    assert (await fourth)[ed] is None
    assert len(net.sent) == 3  # never sent
    gate.set()
    assert (await third)[ed] == {"hash": H("h2"), "new": True}


async def test_writes_resent_one_by_one_still_count_unanswered(net):
    """A batch a member refuses as an unknown kind is sent again one write at a time; until
    those are answered, later writes for that member are held (Nagle's rule) instead of
    overtaking them, and then go, in order."""
    a, old = swarm(net, 2)
    wire(old, batches=False)
    handlers = net.handlers[old.node.pubkey_x25519]
    cc = handlers[KIND_CC]
    waits: list[asyncio.Event] = []

    async def held_cc(peer: str, b: Any) -> Any:
        waits.append(ev := asyncio.Event())
        await ev.wait()
        return await cc(peer, b)

    handlers[KIND_CC] = held_cc
    fan = LinkFanout(a.links, a.view, deadline=5.0, hold=60.0)  # type: ignore[arg-type]
    outs = [asyncio.ensure_future(fan.forward(body("u0")))]
    await until(lambda: len(waits) == 1)
    outs += [asyncio.ensure_future(fan.forward(body(n))) for n in ("u1", "u2")]
    await until(lambda: bool(fan._held))  # held behind u0
    waits[0].set()  # u0 answered: u1 and u2 go as a batch, refused, then one by one
    await until(lambda: len(waits) == 3)
    outs.append(asyncio.ensure_future(fan.forward(body("u3"))))
    await until(lambda: bool(fan._held) or len(waits) == 4)
    assert len(waits) == 3  # u3 waits for u1 and u2 to be answered
    for ev in waits[1:]:
        ev.set()
    await until(lambda: len(waits) == 4)
    waits[3].set()
    done = [await f for f in outs]
    assert all(o[old.node.pubkey_ed25519] is not None for o in done)
    assert [b["params"]["n"] for b in old.cc] == ["u0", "u1", "u2", "u3"]
    to_old = [k for x, k in net.sent if x == old.node.pubkey_x25519]
    assert to_old == [KIND_CC, KIND_CC_BATCH, KIND_CC, KIND_CC, KIND_CC]
