"""A client's ``store`` over the node's site is a :class:`Pending` answered from callbacks, with
no task (``ClientSite.storage_rpc`` → ``RpcHandler.respond_later`` → ``RpcLater``, ended by the
SQLite store's group commit (``store_then``) and the swarm's fan-out (``forward_then``)).

Every case is driven through the real site, RPC handler and SQLite store, and compared with
the coroutine path the site used before (``respond_now``, run as a task): the same status,
body, content type, headers, metrics and counters. Covered: stores of one loop turn committed
in one group, a store that fails inside its group (500, the others kept), the store closed,
a member that does not answer within the deadline (its ``timeout`` entry), a member that
answers, and the client going away before the answer (nothing counted, nothing left in
flight, the message stored all the same)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import struct
import types
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bench.load.sidebyside import one_layer_onion, open_xchacha_reply
from session import onion
from session.http1 import server as http1
from session.identity import Identity
from session.node.http import ClientSite
from session.node.links import KIND_CC, KIND_CC_BATCH, KIND_ONION
from session.node.metrics import NodeMetrics
from session.node.relay import OnionRouter, PeelPool
from session.node.replication import LinkFanout, batch_handler
from session.node.rpc import RpcHandler
from session.node.swarm_view import SwarmView
from session.service.ratelimit import RateLimiter
from session.storage.base import MessageStore, StoredMessage, StoreResult
from session.storage.memory import MemoryMessageStore
from session.storage.sqlite import SqliteMessageStore
from session.testing.links import open_links
from session.testing.rpc import Client, LocalSwarm
from session.testing.waits import until
from tests.node.test_replication import FakeLinks, FakeNet

MAX_BODY = 64 * 1024
FAIL = b"this one fails in its group"


class Failing(SqliteMessageStore):
    """The SQLite store, where a message whose data is :data:`FAIL` fails inside its commit
    group as a disk error would (the writer translates it: StorageError)."""

    def _store_op(self, msg: StoredMessage) -> Callable[[sqlite3.Connection], StoreResult]:
        op = super()._store_op(msg)
        if bytes(msg.data) != FAIL:
            return op

        def failing(conn: sqlite3.Connection) -> StoreResult:
            op(conn)  # written, then lost with its savepoint
            raise sqlite3.OperationalError("disk I/O error")

        return failing


class Node:
    """Member 0 of a LocalSwarm (SQLite) behind a ClientSite with its own metrics."""

    def __init__(self, swarm: LocalSwarm, stores: list[MessageStore]) -> None:
        self.swarm = swarm
        self.stores = stores
        self.rpc: RpcHandler = swarm.node(0)
        self.metrics = NodeMetrics()
        self.site = ClientSite(
            rpc=self.rpc, router=None, limiter=RateLimiter(1e6, 1e6), metrics=self.metrics,
            ready=lambda: None, ed25519_public=bytes(32), max_body=MAX_BODY,
        )  # fmt: skip

    @property
    def store(self) -> Failing:
        s = self.stores[0]
        assert isinstance(s, Failing)
        return s


@pytest.fixture(params=[1, 3], ids=["alone", "swarm-of-3"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    """A swarm of one (as the side-by-side benchmark's node) or of three (the others in
    memory, reached through the in-process fan-out, which has no ``forward_then``)."""
    first = await Failing.open(tmp_path)
    stores: list[MessageStore] = [first] + [MemoryMessageStore() for _ in range(request.param - 1)]
    yield Node(LocalSwarm(stores), stores)
    await first.close()


def req(body: bytes) -> http1.Request:
    return http1.Request("POST", "/storage_rpc/v1", "", {}, body, "127.0.0.1")


def landed(pending: http1.Pending) -> asyncio.Future[Any]:
    """A future of the Pending's outcome (as the server's ``deliver`` gets it)."""
    fut = asyncio.get_running_loop().create_future()
    if pending.done:
        fut.set_result(pending.outcome)
    else:
        pending.deliver = fut.set_result
    return fut


async def answer(node: Node, body: bytes, task: bool = False) -> tuple[http1.Response, str]:
    """The site's answer to one request and how it came: ``later`` (a Pending, no task) or,
    ``task``, through the coroutine path (the RPC's ``respond_now``) as before."""
    site = node.site
    if task:
        site.rpc = types.SimpleNamespace(respond_later=node.rpc.respond_now)
    try:
        out = site.storage_rpc(req(body))
    finally:
        site.rpc = node.rpc
    if isinstance(out, http1.Pending):
        assert site.inflight == (0 if out.done else 1)  # (ended at once: the store closed)
        got = await landed(out)
        assert isinstance(got, http1.Response)
        return got, "later"
    assert isinstance(out, Coroutine)
    return await out, "task"


def metric_values(node: Node | Onion) -> dict[str, float]:
    out = {}
    for line in node.metrics.registry.render().decode().splitlines():
        if line and not line.startswith("#") and "request_seconds_" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


async def forget(node: Node, body: bytes) -> None:
    """Remove the stored message from every member (but a closed store), so the same store
    is new again."""
    account = json.loads(body)["params"]["pubkey"]

    def owned(owner: str) -> bool:
        return owner == account

    for s in node.stores:
        if s is node.stores[0] and node.store._closed:
            continue
        for m in await s.export(owned):
            await s.delete_by_hash(m.owner, [m.hash])


async def both(node: Node, body: bytes) -> http1.Response:
    """``body`` answered later (no task) and in a task, the message forgotten in between:
    the same answer, metrics and counters."""
    seen = []
    for task in (False, True):
        metrics, counters = metric_values(node), dict(node.rpc.counters)
        resp, how = await answer(node, body, task)
        assert how == ("task" if task else "later")
        seen.append(
            (
                (resp.status, resp.body, resp.content_type, resp.headers),
                added(metrics, metric_values(node)),
                added(counters, dict(node.rpc.counters)),
            )
        )
        assert node.site.inflight == 0
        await forget(node, body)
    assert seen[0] == seen[1]
    return resp


async def test_a_store_is_answered_later_as_it_was_in_a_task(node: Node) -> None:
    client = node.swarm.client_in_swarm()
    body = json.dumps(client.store(b"hello")).encode()
    resp = await both(node, body)
    out = json.loads(resp.body)
    assert resp.status == 200 and len(out["swarm"]) == len(node.stores)
    assert all("failed" not in r for r in out["swarm"].values())
    assert out["swarm"][node.rpc.ed25519_hex]["hash"] == out["hash"]
    # stored, then the same again: "already"
    first, _ = await answer(node, body)
    again, _ = await answer(node, body)
    assert first.status == again.status == 200
    assert "already" not in json.loads(first.body)["swarm"][node.rpc.ed25519_hex]
    assert json.loads(again.body)["swarm"][node.rpc.ed25519_hex]["already"] is True
    # a refusal (a timestamp far out of the window) is answered at once: no Pending
    out = node.site.storage_rpc(req(json.dumps(client.store(b"x", ts=1)).encode()))
    assert isinstance(out, http1.Response) and out.status == 406, out


async def test_stores_of_one_loop_turn_commit_together_and_a_failure_stays_its_own(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    client = node.swarm.client_in_swarm()
    bodies = [json.dumps(client.store(d)).encode() for d in (b"one", FAIL, b"three")]
    groups = node.store.inline_groups + node.store.queued_groups
    outs = [node.site.storage_rpc(req(b)) for b in bodies]  # one loop turn
    pendings = [p for p in outs if isinstance(p, http1.Pending)]
    assert len(pendings) == len(outs)
    assert node.site.inflight == 3
    with caplog.at_level(logging.ERROR, "session.node.rpc"):
        got = [await landed(p) for p in pendings]
    assert node.store.inline_groups + node.store.queued_groups == groups + 1  # one commit
    assert node.site.inflight == 0
    statuses = [r.status for r in got]
    mine = [json.loads(r.body)["swarm"][node.rpc.ed25519_hex] for r in got]
    assert "failed" not in mine[0] and "failed" not in mine[2]
    assert mine[1] == {
        "failed": True,
        "query_failure": True,
        "reason": "database error: disk I/O error",
        "t": mine[0]["t"],
    }
    # alone, the failed write is the whole swarm's: 500; with others, they stored it: 200
    assert statuses == [200, 500 if len(node.stores) == 1 else 200, 200]
    stored = {m.data for m in await node.store.export(lambda o: o == client.account)}
    assert stored == {b"one", b"three"}
    assert [r.getMessage() for r in caplog.records] == [
        f"store for {client.account[:4]}…{client.account[-2:]} failed: "
        "database error: disk I/O error"
    ]
    # and the very same answer through the task
    await forget(node, bodies[1])
    await both(node, bodies[1])


async def test_a_closed_store_answers_as_the_task_did(node: Node) -> None:
    body = json.dumps(node.swarm.client_in_swarm().store(b"late")).encode()
    await node.store.close()
    resp = await both(node, body)
    mine = json.loads(resp.body)["swarm"][node.rpc.ed25519_hex]
    assert mine["failed"] is True and "closed" in mine["reason"]


# ---------------------------------------------------------------- the links' fan-out


class Linked:
    """Member 0 of a 3-member LocalSwarm whose fan-out is the real LinkFanout over fake links
    (the other members answer with their own RpcHandler); member 2 can be frozen."""

    def __init__(self, swarm: LocalSwarm, store: SqliteMessageStore, deadline: float) -> None:
        self.net = FakeNet()
        self.rpc = swarm.node(0)
        view = self.rpc.swarm
        assert isinstance(view, SwarmView) and view.map is not None
        me = next(n for n in view.map.nodes if n.pubkey_ed25519 == self.rpc.ed25519_hex)
        self.links = FakeLinks(self.net, me.pubkey_x25519)
        self.fanout = LinkFanout(self.links, view, deadline=deadline)  # type: ignore[arg-type]
        self.rpc.fanout = self.fanout
        self.members = [swarm.node(i) for i in (1, 2)]
        for h in self.members:
            node = next(n for n in view.map.nodes if n.pubkey_ed25519 == h.ed25519_hex)
            one = self._handler(h)
            self.net.handlers[node.pubkey_x25519] = {
                KIND_CC: one,
                KIND_CC_BATCH: batch_handler(one),
            }
        self.frozen_ed = self.members[1].ed25519_hex
        self.frozen_x = next(
            n.pubkey_x25519 for n in view.map.nodes if n.pubkey_ed25519 == self.frozen_ed
        )
        self.metrics = NodeMetrics()
        self.site = ClientSite(
            rpc=self.rpc, router=None, limiter=RateLimiter(1e6, 1e6), metrics=self.metrics,
            ready=lambda: None, ed25519_public=bytes(32), max_body=MAX_BODY,
        )  # fmt: skip
        self.store = store

    @staticmethod
    def _handler(h: RpcHandler) -> Any:
        async def one(peer: str, body: Any) -> Any:
            return await h.handle_forwarded(body)

        return one


@pytest.fixture
async def linked(tmp_path: Path) -> AsyncIterator[Linked]:
    store = await SqliteMessageStore.open(tmp_path)
    swarm = LocalSwarm([store, MemoryMessageStore(), MemoryMessageStore()])
    n = Linked(swarm, store, deadline=0.05)
    yield n
    n.net.thawed.set()
    await n.fanout.stop()
    await store.close()


async def test_a_member_silent_past_the_deadline_is_a_timeout_entry(linked: Linked) -> None:
    linked.net.frozen.add(linked.frozen_x)
    client = Client()
    while linked.rpc.swarm.swarm_id_for(client.account) != 0:
        client = Client()
    out = linked.site.storage_rpc(req(json.dumps(client.store(b"to all")).encode()))
    assert isinstance(out, http1.Pending)
    resp = await asyncio.wait_for(landed(out), 30)
    assert isinstance(resp, http1.Response) and resp.status == 200
    swarm = json.loads(resp.body)["swarm"]
    assert swarm[linked.frozen_ed] == {"failed": True, "timeout": True}
    answered = swarm[linked.members[0].ed25519_hex]
    assert "failed" not in answered and answered["hash"] == swarm[linked.rpc.ed25519_hex]["hash"]
    assert linked.fanout.slow() == [linked.frozen_ed]  # its write still runs
    assert linked.site.inflight == 0


async def test_the_client_gone_before_the_answer_drops_it_uncounted(linked: Linked) -> None:
    """Over HTTP: the client closes its connection while the store waits for a member (a long
    deadline); the Pending is cancelled (nothing in flight), the message is stored all the
    same, and the answer that comes once the member replies is dropped, uncounted."""
    linked.fanout.deadline = 60.0
    linked.net.frozen.add(linked.frozen_x)
    client = Client()
    while linked.rpc.swarm.swarm_id_for(client.account) != 0:
        client = Client()
    served = await http1.serve(linked.site.routes(), "127.0.0.1", 0, max_body=MAX_BODY)
    try:
        body = json.dumps(client.store(b"then gone")).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        head = b"POST /storage_rpc/v1 HTTP/1.1\r\nHost: n\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % len(body) + body)
        await until(lambda: linked.site.inflight == 1, "the store in flight")
        await until(lambda: bool(linked.net.sent), "the write sent to the members")
        # the connection is reset (not half-closed: the server would still answer that)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        await until(lambda: linked.site.inflight == 0, "the Pending cancelled")
        assert not await reader.read()  # nothing was answered
        stored = await linked.store.export(lambda o: o == client.account)
        assert [m.data for m in stored] == [b"then gone"]
        linked.net.thawed.set()  # the member answers now: the answer has nobody to go to
        await asyncio.wait_for(asyncio.gather(*linked.links.tasks), 30)
        assert 'endpoint="storage_rpc"' not in linked.metrics.registry.render().decode()
        assert linked.rpc.counters["store"] == 1
    finally:
        await served.close()


# ---------------------------------------------------------------- in an onion layer


class Onion:
    """Member 0 of a one-node LocalSwarm (SQLite) with its onion router (a real peel pool)
    behind its ClientSite; its links, for the link test, started by that test."""

    def __init__(self, swarm: LocalSwarm, store: SqliteMessageStore) -> None:
        self.rpc = swarm.node(0)
        self.swarm = swarm
        self.store = store
        ident = self.rpc.identity
        assert isinstance(ident, Identity) and isinstance(self.rpc.swarm, SwarmView)
        self.ident: Identity = ident
        peeler = onion.Peeler.from_x25519_secret(ident.export_x25519_secret())
        self.links = open_links(ident)
        self.router = OnionRouter(PeelPool(peeler), self.rpc.swarm, self.links, self.rpc)
        self.metrics = NodeMetrics()
        self.site = ClientSite(
            rpc=self.rpc, router=self.router, limiter=RateLimiter(1e6, 1e6),
            metrics=self.metrics, ready=lambda: None, ed25519_public=bytes(32),
            max_body=MAX_BODY,
        )  # fmt: skip

    def frame(self, payload: bytes) -> tuple[bytes, bytes]:
        return one_layer_onion(bytes(self.ident.x25519_public), payload)


@pytest.fixture
async def onion_node(tmp_path: Path) -> AsyncIterator[Onion]:
    store = await SqliteMessageStore.open(tmp_path)
    n = Onion(LocalSwarm([store]), store)
    yield n
    await n.router.close()
    n.router.pool.close()
    await n.links.close()
    await store.close()


def opened(key: bytes, body: bytes) -> tuple[int, Any]:
    doc = json.loads(open_xchacha_reply(key, body))
    return doc["status"], json.loads(doc["body"])


async def test_a_store_in_an_onion_layer_over_https_is_answered_later_as_in_a_task(
    onion_node: Onion,
) -> None:
    """The layer for this node whose RPC is a store: a Pending answered from the RPC's
    callbacks (no task); the same opened answer, status and metrics as the task path."""
    n = onion_node
    client = n.swarm.client_in_swarm()
    payload = json.dumps(client.store(b"through an onion")).encode()
    seen = []
    for task in (False, True):
        frame, key = n.frame(payload)
        if task:
            n.router.rpc = types.SimpleNamespace(respond_later=n.rpc.respond_now)
        before = metric_values(n)
        try:
            out = n.site.onion_req(http1.Request("POST", "/onion_req/v2", "", {}, frame, "1"))
        finally:
            n.router.rpc = n.rpc
        if task:
            assert isinstance(out, Coroutine)
            resp = await out
        else:
            assert isinstance(out, http1.Pending) and n.site.inflight == 1
            resp = await landed(out)
        assert isinstance(resp, http1.Response) and n.site.inflight == 0
        seen.append((resp.status, opened(key, resp.body), added(before, metric_values(n))))
        for m in await n.store.export(lambda o: o == client.account):
            await n.store.delete_by_hash(m.owner, [m.hash])
    assert seen[0] == seen[1]
    status, (inner, body) = seen[0][:2]
    assert (status, inner) == (200, 200) and body["swarm"][n.rpc.ed25519_hex]["hash"]


async def test_a_store_in_an_onion_layer_over_a_link_is_answered_later(
    onion_node: Onion,
) -> None:
    """A layer for this node that came over a node link (the last hop of a path): its store
    is answered from the RPC's callbacks through the link's Answer, sealed for the client."""
    n = onion_node
    n.links.direct[KIND_ONION] = n.router.serve_link_now
    port = await n.links.start("127.0.0.1", 0)
    driver = open_links(Identity.generate())
    await driver.start("127.0.0.1", 0)
    try:
        client = n.swarm.client_in_swarm()
        frame, key = n.frame(json.dumps(client.store(b"over a link")).encode())
        reply = await driver.request(
            bytes(n.ident.x25519_public).hex(),
            f"tcp://127.0.0.1:{port}",
            KIND_ONION,
            {"f": frame},
            30.0,
        )
        assert reply["s"] == 200
        inner, body = opened(key, reply["b"])
        assert inner == 200 and "failed" not in body["swarm"][n.rpc.ed25519_hex]
        stored = await n.store.export(lambda o: o == client.account)
        assert [m.data for m in stored] == [b"over a link"]
    finally:
        await driver.close()


async def test_a_fan_out_task_that_ends_cancelled_is_answered_not_left_hanging(
    tmp_path: Path,
) -> None:
    """A fan-out without ``forward_then`` runs in a task; when that task ends cancelled (the
    loop closing), the client still gets its one answer (500, as for a bug), instead of the
    CancelledError escaping the RpcLater's callback into the event loop and the client's
    Pending never ending."""

    class Cancelled:
        async def forward(self, request_body: dict[str, Any]) -> dict[str, Any]:
            raise asyncio.CancelledError  # (its task ends cancelled)

    first = await SqliteMessageStore.open(tmp_path)
    stores: list[MessageStore] = [first, MemoryMessageStore(), MemoryMessageStore()]
    node = Node(LocalSwarm(stores), stores)
    node.rpc.fanout = Cancelled()
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, ctx: escaped.append(ctx))
    try:
        body = json.dumps(node.swarm.client_in_swarm().store(b"cancelled")).encode()
        pending = node.site.storage_rpc(req(body))
        assert isinstance(pending, http1.Pending)
        await until(lambda: pending.done or bool(escaped), "an answer or an escaped error")
        assert escaped == []
        assert isinstance(pending.outcome, RuntimeError)  # a 500 from the server
        assert "cancelled" in str(pending.outcome)
        assert node.site.inflight == 0
    finally:
        loop.set_exception_handler(None)
        await first.close()
