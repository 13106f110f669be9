"""Forwarded replica writes over real node links (127.0.0.1) into a SQLite store,
served by :class:`session.node.forwarded.ForwardedWrites`: a single store is answered as it
arrives, with no task created on the member's loop; with the store's writer thread busy it is
handed to a coroutine (and a later write of the same account behind it), with the same signed
results and the order kept; refusals answer as the coroutine path does. Tasks are counted with
the loop's task factory; every wait is on a condition."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from session.identity import Identity, verify
from session.node.forwarded import ForwardedWrites
from session.node.links import KIND_CC, KIND_CC_BATCH, LinkError
from session.proto import rpc as P
from session.storage import SqliteMessageStore
from session.swarm import message_hash
from session.testing.links import open_links
from session.testing.rpc import LocalSwarm
from session.testing.waits import until


class _Member:
    """A swarm member's links serving forwarded writes into a SQLite store, and a peer's
    links that forward them; ``tasks`` counts tasks created on the loop while ``counting``."""

    def __init__(self, swarm: LocalSwarm, store: SqliteMessageStore) -> None:
        self.swarm = swarm
        self.store = store
        self.rpc = swarm.node(1)
        self.writes = ForwardedWrites(self.rpc)
        self.ident = Identity.generate()
        self.links = open_links(self.ident)
        self.links.direct[KIND_CC] = self.writes.serve_now
        self.links.direct[KIND_CC_BATCH] = self.writes.serve_batch_now
        self.peer = open_links(Identity.generate())
        self.x25519 = bytes(self.ident.x25519_public).hex()
        self.address = ""
        self.tasks = 0
        self.counting = False

    async def start(self) -> None:
        port = await self.links.start("127.0.0.1", 0)
        self.address = f"tcp://127.0.0.1:{port}"
        await self.peer.start("127.0.0.1", 0)
        loop = asyncio.get_running_loop()

        def factory(loop: Any, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            code = getattr(coro, "cr_code", None)
            if (
                self.counting
                and code is not None
                and "/session/" in code.co_filename  # (not the test's own)
                and code.co_qualname != "NodeLinks.request"  # (the peer's)
            ):
                self.tasks += 1
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(factory)

    def forward(self, body: Any, kind: bytes = KIND_CC) -> asyncio.Future[Any]:
        """Send ``body`` as the fan-out does; the future gets the member's reply."""
        return asyncio.ensure_future(self.peer.request(self.x25519, self.address, kind, body, 10))

    async def settled(self) -> None:
        """Wait until a forwarded write can be answered directly again: the fallback's tasks
        ended and the writer thread let go of the store. The writer posts results before it
        releases the store, and a link within one process delivers an answer in the same loop
        turn, so an answer can arrive while the writer still holds it (seen under CI load)."""
        writer = self.store._writer
        assert writer is not None
        await until(
            lambda: not self.links._tasks and not writer.busy.locked(), "the writer to be idle"
        )

    def check_signed(self, result: Any) -> None:
        assert "failed" not in result, result
        sig = base64.b64decode(result["signature"])
        verify(bytes.fromhex(self.rpc.ed25519_hex), P.store_result_text(result["hash"]), sig)


@pytest.fixture
async def member(tmp_path: Path) -> AsyncIterator[_Member]:
    store = await SqliteMessageStore.open(tmp_path / "s.db", max_bytes=None)
    m = _Member(LocalSwarm([store, store, store]), store)
    await m.start()
    # the link's first handshake (its ZAP check runs as a task), then count the member's tasks
    m.check_signed(await m.forward(m.swarm.client_in_swarm().store(b"warm up")))
    m.counting = True
    try:
        yield m
    finally:
        asyncio.get_running_loop().set_task_factory(None)
        await m.peer.close()
        await m.links.close()
        await store.close()


async def test_a_forwarded_store_is_answered_without_a_task(member: _Member) -> None:
    c = member.swarm.client_in_swarm()
    result = await member.forward(c.store(b"hello"))
    member.check_signed(result)
    assert member.tasks == 0
    assert member.writes.answered_now == 2 and member.writes.handed_on == 0
    stored = await member.store.get_by_hash(result["hash"])
    assert stored is not None and bytes(stored.data) == b"hello"
    # the same write again: the same answer as the coroutine path gives (already stored)
    again = await member.rpc.handle_forwarded(c.store(b"hello"))
    direct_again = await member.forward(c.store(b"hello"))
    assert member.tasks == 0
    assert direct_again == again and direct_again["already"] is True


async def test_refusals_answer_as_the_coroutine_path(member: _Member) -> None:
    c = member.swarm.client_in_swarm()
    bad = c.store(b"x", ns=3)  # (a namespace whose stores are signed)
    bad["params"]["signature"] = base64.b64encode(bytes(64)).decode()
    r = await member.forward(bad)
    assert member.tasks == 0  # a failure entry is a result: answered at once too
    assert r == await member.rpc.handle_forwarded(bad)
    assert r["failed"] and r["code"] == 401
    with pytest.raises(LinkError, match=r"^forwarded request must be a map$"):
        await member.forward([1, 2])
    assert member.writes.handed_on == 1


async def test_busy_writer_hands_over_to_a_coroutine_in_order(member: _Member) -> None:
    c = member.swarm.client_in_swarm()
    before = member.store.queued_groups
    writer = member.store._writer
    assert writer is not None
    assert writer.busy.acquire(blocking=False)  # the writer thread "runs a batch"
    try:
        first = member.forward(c.store(b"one"))
        await until(lambda: member.writes.handed_on == 1)
        # writer idle again would not matter: a later write waits behind the first
        second = member.forward(c.store(b"two"))
        await until(lambda: member.writes.handed_on == 2)
        await until(lambda: member.store.queued_groups > before)
        assert not first.done() and not second.done()
    finally:
        writer.busy.release()
    r1, r2 = await first, await second
    member.check_signed(r1)
    member.check_signed(r2)
    assert member.tasks >= 2  # (the fallback's tasks: the count does see tasks)
    msgs, _ = await member.store.retrieve(c.account, 0)
    assert [m.hash for m in msgs][-2:] == [r1["hash"], r2["hash"]]
    await member.settled()
    member.tasks = 0
    member.check_signed(await member.forward(c.store(b"three")))
    assert member.tasks == 0 and member.writes.answered_now == 2


async def test_a_batch_finding_the_writer_busy_goes_on_as_a_coroutine_and_later_writes_wait(
    member: _Member,
) -> None:
    c = member.swarm.client_in_swarm()
    writer = member.store._writer
    assert writer is not None
    assert writer.busy.acquire(blocking=False)  # the batch's writes wait in the queue
    try:
        batch = member.forward({"r": [c.store(b"b1"), c.store(b"b2")]}, KIND_CC_BATCH)
        await until(lambda: member.store.queued_groups > 0)
        single = member.forward(c.store(b"after"))
        # the batch is handed on (1), then the single write behind it, not direct (2)
        await until(lambda: member.writes.handed_on == 2)
        assert not batch.done() and not single.done()
    finally:
        writer.busy.release()
    rb, rs = await batch, await single
    for r in [*rb["r"], rs]:
        member.check_signed(r)
        assert await member.store.get_by_hash(r["hash"]) is not None
    assert member.writes.answered_now == 1  # (the fixture's warm-up)


async def test_a_batch_is_answered_without_a_task_in_one_reply(member: _Member) -> None:
    """The writes of a batch are answered as it arrives, each committed on the loop's thread,
    with one reply in the batch's order; a write refused gets None (the sender counts that
    member failed for it), a refused signature its failure entry, and the others are stored."""
    c, d = member.swarm.client_in_swarm(), member.swarm.client_in_swarm()
    bad = c.store(b"x", ns=3)
    bad["params"]["signature"] = base64.b64encode(bytes(64)).decode()
    reqs = [c.store(b"c1"), d.store(b"d1"), [1, 2], bad, c.store(b"c2")]
    r = (await member.forward({"r": reqs}, KIND_CC_BATCH))["r"]
    assert member.tasks == 0 and member.writes.handed_on == 0
    assert member.writes.answered_now == 1 + 4  # (the fixture's warm-up, then all but [1, 2])
    assert r[2] is None
    assert r[3]["failed"] and r[3]["code"] == 401
    for result in (r[0], r[1], r[4]):
        member.check_signed(result)
    msgs, _ = await member.store.retrieve(c.account, 0)
    assert [m.hash for m in msgs] == [r[0]["hash"], r[4]["hash"]]
    # the batch of a writer-thread-free store is the single path's result, write for write
    again = (await member.forward({"r": [c.store(b"c1")]}, KIND_CC_BATCH))["r"]
    assert again == [await member.rpc.handle_forwarded(c.store(b"c1"))]
    assert again[0]["already"] is True


async def test_a_batch_goes_on_as_a_coroutine_from_a_write_that_needs_one(member: _Member) -> None:
    """A write of a batch that needs a coroutine (a delete) hands the rest of the batch to one:
    the stores before it are committed first, it and the writes after it follow in order (the
    delete finds the store before it), and the reply holds them all."""
    c = member.swarm.client_in_swarm()
    h1 = message_hash(c.account, 0, b"c1")
    reqs = [c.store(b"c1"), c.store(b"c2"), c.delete([h1]), c.store(b"c3")]
    counters = member.rpc.counters
    before = counters["forwarded_store"], counters["forwarded_delete"]
    r = (await member.forward({"r": reqs}, KIND_CC_BATCH))["r"]
    assert (counters["forwarded_store"], counters["forwarded_delete"]) == (
        before[0] + 3,
        before[1] + 1,
    )
    for i in (0, 1, 3):
        member.check_signed(r[i])
    assert r[0]["hash"] == h1 and r[2]["deleted"] == [h1]
    assert member.writes.answered_now == 1 and member.writes.handed_on == 1  # (warm-up)
    assert member.tasks >= 1
    msgs, _ = await member.store.retrieve(c.account, 0)
    assert [m.hash for m in msgs] == [r[1]["hash"], r[3]["hash"]]
    # nothing behind any more: the next single write is answered directly again
    await member.settled()
    member.check_signed(await member.forward(c.store(b"c4")))
    assert member.writes.answered_now == 2


async def test_a_batch_the_store_cannot_commit_at_once_goes_on_as_a_coroutine(
    member: _Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the store cannot commit the batch's stores at once (the writer thread busy), the
    whole batch goes on as a coroutine, through the store's queue, in order per account."""
    c, d = member.swarm.client_in_swarm(), member.swarm.client_in_swarm()
    monkeypatch.setattr(member.store, "store_many_now", lambda msgs: None)
    reqs = [c.store(b"c1"), d.store(b"d1"), c.store(b"c2")]
    before = member.rpc.counters["forwarded_store"]
    r = (await member.forward({"r": reqs}, KIND_CC_BATCH))["r"]
    for result in r:
        member.check_signed(result)
    assert member.writes.answered_now == 1 and member.writes.handed_on == 1
    # parsed twice (the direct attempt, then the coroutine), counted once each
    assert member.rpc.counters["forwarded_store"] - before == 3
    msgs, _ = await member.store.retrieve(c.account, 0)
    assert [m.hash for m in msgs] == [r[0]["hash"], r[2]["hash"]]
    assert await member.store.get_by_hash(r[1]["hash"]) is not None


async def test_a_fallback_cancelled_before_its_first_step_does_not_keep_writes_behind(
    member: _Member,
) -> None:
    """A request handed to a coroutine whose task is cancelled before it ever runs (as closing
    the links does) still takes back its place in the order guard: the next write is answered
    directly again, not handed on for ever."""
    serve_now = member.writes.serve_now

    def serve_then_cancel(peer: str, body: Any, answer: Any) -> None:
        serve_now(peer, body, answer)
        for t in list(member.links._tasks):  # (the fallback's task, not started yet)
            t.cancel()

    member.links.direct[KIND_CC] = serve_then_cancel
    lost: list[Any] = []
    assert member.peer.send_request(member.x25519, member.address, KIND_CC, [1, 2], 10, lost.append)
    await until(lambda: member.writes.handed_on == 1)
    member.links.direct[KIND_CC] = serve_now
    await member.settled()
    c = member.swarm.client_in_swarm()
    member.tasks = 0
    member.check_signed(await member.forward(c.store(b"after a cancelled one")))
    assert member.writes.handed_on == 1 and member.writes.answered_now == 2
    assert member.tasks == 0
