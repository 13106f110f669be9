"""End-to-end client tests on a loopback devnet (registry + 6 nodes on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import random
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from session.client import (
    Client,
    Event,
    Expiration,
    ExpirationMode,
    MessageDeleted,
    MessageRead,
    MessageReceived,
    MessageSent,
    RequestAccepted,
    Typing,
)
from session.client import messages as M
from session.client.transport import PathFailure

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    d = Devnet(tmp_path_factory.mktemp("devnet"), nodes=6)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def nodes_json(devnet: Any) -> str:
    return str(devnet.dir / "nodes.json")


def open_client(tmp: Path, name: str, devnet: Any, **kw: Any) -> Client:
    kw.setdefault("poll_interval", 0.3)
    return Client.open(tmp / name, nodes_json(devnet), **kw)


class Opener(Protocol):
    async def __call__(self, name: str, network: Any = ..., **kw: Any) -> Client: ...


@pytest.fixture
async def clients(tmp_path: Path, devnet: Any) -> AsyncIterator[Opener]:
    """Opens and starts clients (``await clients("a")``); every one is closed at the end,
    whether the test passed or not."""
    opened: list[Client] = []

    async def open_(name: str, network: Any = None, **kw: Any) -> Client:
        kw.setdefault("poll_interval", 0.3)
        c = Client.open(tmp_path / name, network or nodes_json(devnet), **kw)
        opened.append(c)
        await c.start()
        return c

    try:
        yield open_
    finally:
        for c in reversed(opened):
            await c.close()


async def wait_for(
    q: asyncio.Queue[Event | None], pred: Callable[[Event], bool], timeout: float = 20
) -> Event:
    async def go() -> Event:
        while True:
            ev = await q.get()
            if ev is not None and pred(ev):
                return ev

    return await asyncio.wait_for(go(), timeout)


async def wait_until(cond: Callable[[], bool], timeout: float = 20, step: float = 0.1) -> None:
    """Wait until ``cond()`` holds (checked every ``step`` seconds), else fail."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def settled(c: Client) -> None:
    """Wait until ``c`` has delivered everything it queued."""
    while c.queued():
        await c.flush_outbox()


async def arrived(
    q: asyncio.Queue[Event | None], kind: type[Event], sender: Client, receiver: Client
) -> list[Event]:
    """The ``kind`` events ``receiver`` got once everything ``sender`` queued is in the swarm
    and ``receiver`` polled after that (an absence check that waits on a condition, not time)."""
    await settled(sender)
    await receiver.poll_once()
    got = []
    while not q.empty():
        ev = q.get_nowait()
        if isinstance(ev, kind):
            got.append(ev)
    return got


async def test_two_clients_exchange_messages(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qa, qb = a.hub.subscribe(), b.hub.subscribe()
        await a.set_display_name("Alice")
        t1 = "first words from alice"
        mid = await a.send(b.session_id, t1)
        sent = await wait_for(qa, lambda e: isinstance(e, MessageSent))
        assert isinstance(sent, MessageSent) and sent.message_id == mid and sent.hash
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived)
        assert (ev.author, ev.body, ev.is_request) == (a.session_id, t1, True)
        assert [r.session_id for r in b.requests()] == [a.session_id]
        assert b.contact(a.session_id).name == "Alice"
        assert b.conversations() == []  # still a request
        await b.accept_request(a.session_id)
        acc = await wait_for(qa, lambda e: isinstance(e, RequestAccepted))
        assert isinstance(acc, RequestAccepted) and acc.session_id == b.session_id
        t2 = "reply from bob"
        await b.send(a.session_id, t2)
        ev2 = await wait_for(qa, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev2, MessageReceived) and ev2.body == t2 and not ev2.is_request
        assert [m.body for m in a.messages(b.session_id)] == [t1, t2]
        assert b.requests() == [] and [c.conversation for c in b.conversations()] == [a.session_id]


async def test_offline_recipient_gets_message_when_back(tmp_path: Path, devnet: Any) -> None:
    b = open_client(tmp_path, "b", devnet)
    b_id = b.session_id
    await b.close()  # B is offline
    text = "sent while you were away"
    async with open_client(tmp_path, "a", devnet) as a:
        qa = a.hub.subscribe()
        await a.send(b_id, text)
        await wait_for(qa, lambda e: isinstance(e, MessageSent))
    async with open_client(tmp_path, "b", devnet) as b2:
        assert b2.session_id == b_id
        qb = b2.hub.subscribe()
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.body == text


async def test_written_offline_is_sent_when_network_returns(tmp_path: Path, devnet: Any) -> None:
    # A client with no reachable node (all ports closed) queues; reopening online delivers once.
    async with open_client(tmp_path, "b", devnet) as b:
        qb = b.hub.subscribe()
        a = Client.open(tmp_path / "a", None, poll_interval=0.3, background=False)
        text = "queued offline"
        mid = await a.send(b.session_id, text)  # no node list at all: stays in the outbox
        assert a.delivery_states(mid) == ["pending", "pending"]  # + sync copy
        await a.close()
        async with open_client(tmp_path, "a", devnet) as a2:
            qa = a2.hub.subscribe()
            sent = await wait_for(qa, lambda e: isinstance(e, MessageSent))
            assert isinstance(sent, MessageSent) and sent.message_id == mid
            ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
            assert isinstance(ev, MessageReceived) and ev.body == text
            # Once A delivered everything (message and sync copy), a poll of B's swarm sees
            # all there is: a second copy would show up now.
            await settled(a2)
            await b.poll_once()
            assert [m.body for m in b.messages(a2.session_id)] == [text]


async def test_second_device_sees_the_conversation(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qa, qb = a.hub.subscribe(), b.hub.subscribe()
        await a.set_display_name("Alice Two")
        out = "from device one"
        await a.send(b.session_id, out)
        await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        inc = "to both devices"
        await b.send(a.session_id, inc)
        await wait_for(qa, lambda e: isinstance(e, MessageReceived))
        await b.block("05" + "77" * 32)  # unrelated, but exercises contacts config on B
        await a.block("05" + "66" * 32)
        await settled(a)  # the config pushes went out
        async with open_client(tmp_path, "a2", devnet, mnemonic=a.identity.mnemonic) as a2:
            assert a2.session_id == a.session_id
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                msgs = a2.messages(b.session_id)
                if (
                    len(msgs) == 2
                    and a2.display_name == "Alice Two"
                    and a2.contact("05" + "66" * 32)
                ):
                    break
                await asyncio.sleep(0.2)
            msgs = a2.messages(b.session_id)
            assert [(m.body, m.outgoing) for m in msgs] == [(out, True), (inc, False)]
            assert a2.display_name == "Alice Two"
            assert a2.contact(b.session_id).approved == 1
            assert a2.contact("05" + "66" * 32).blocked == 1


async def test_two_devices_edit_at_the_same_moment_and_both_keep_both(
    tmp_path: Path, devnet: Any
) -> None:
    """Device one renames us and blocks X, device two blocks Y; both push before either polls
    (same config seqnos on the swarm). After polling, both devices hold every edit: the
    configs are merged with libsession's rules, not replaced by the newest push."""
    x, y = "05" + "78" * 32, "05" + "79" * 32
    async with open_client(tmp_path, "d1", devnet, background=False) as d1:
        async with open_client(
            tmp_path, "d2", devnet, background=False, mnemonic=d1.identity.mnemonic
        ) as d2:
            await d1.set_display_name("Alice Merged")
            await d1.block(x)
            await d2.block(y)
            await settled(d1)
            await settled(d2)

            def both_hold_both() -> bool:
                return all(
                    d.display_name == "Alice Merged"
                    and (cx := d.contact(x)) is not None
                    and cx.blocked
                    and (cy := d.contact(y)) is not None
                    and cy.blocked
                    for d in (d1, d2)
                )

            deadline = time.monotonic() + 20
            while not both_hold_both() and time.monotonic() < deadline:
                for d in (d1, d2):
                    await d.poll_once()
                    await settled(d)  # a merge that combined several pushes is pushed
            assert both_hold_both()


async def test_receipts_typing_and_disappearing(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qa, qb = a.hub.subscribe(), b.hub.subscribe()
        await a.send(b.session_id, ("please read me"))
        got = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        await b.accept_request(a.session_id)
        # typing
        await b.send_typing(a.session_id, True)
        ty = await wait_for(qa, lambda e: isinstance(e, Typing))
        assert isinstance(ty, Typing) and ty.started and ty.conversation == b.session_id
        # read receipt on
        assert isinstance(got, MessageReceived)
        await b.mark_read(a.session_id)
        rd = await wait_for(qa, lambda e: isinstance(e, MessageRead))
        assert isinstance(rd, MessageRead) and rd.sent_ms == (got.sent_ms,)
        assert a.messages(b.session_id)[0].status == "read"
        # read receipts off: nothing is sent
        b.read_receipts = False
        await a.send(b.session_id, ("no receipt for this"))
        await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        await b.mark_read(a.session_id)
        assert not await arrived(qa, MessageRead, b, a)
        # disappearing after send (10 s): both sides delete it
        await a.set_disappearing(b.session_id, Expiration(ExpirationMode.AFTER_SEND, 10))
        await wait_for(qb, lambda e: type(e).__name__ == "ExpirationChanged")
        assert b.contact(a.session_id).exp_mode == ExpirationMode.AFTER_SEND
        mid = await a.send(b.session_id, ("this will vanish"))
        rec = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(rec, MessageReceived)
        assert b.message(rec.message_id).expires_at_ms == rec.sent_ms + 10_000
        dl = await wait_for(qb, lambda e: isinstance(e, MessageDeleted), timeout=20)
        assert (
            isinstance(dl, MessageDeleted)
            and dl.reason == "expired"
            and dl.message_id == rec.message_id
        )
        await wait_for(
            qa, lambda e: isinstance(e, MessageDeleted) and e.message_id == mid, timeout=10
        )
        # disappearing after read: the timer starts when read
        await a.set_disappearing(b.session_id, Expiration(ExpirationMode.AFTER_READ, 300))
        await wait_for(qb, lambda e: type(e).__name__ == "ExpirationChanged")
        await a.send(b.session_id, ("read then vanish"))
        rec2 = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(rec2, MessageReceived)
        assert b.message(rec2.message_id).expires_at_ms is None
        before = b.clock.now_ms()
        await b.mark_read(a.session_id)
        exp_at = b.message(rec2.message_id).expires_at_ms
        assert before + 300_000 <= exp_at <= b.clock.now_ms() + 300_000
        # unsend
        mid3 = await a.send(b.session_id, ("oops, unsend me"))
        rec3 = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        await a.unsend(mid3)
        dl3 = await wait_for(qb, lambda e: isinstance(e, MessageDeleted) and e.reason == "unsend")
        assert isinstance(rec3, MessageReceived) and isinstance(dl3, MessageDeleted)
        assert dl3.message_id == rec3.message_id and b.message(rec3.message_id) is None


async def test_blocked_sender_is_dropped(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qb = b.hub.subscribe()
        await b.block(a.session_id)
        await a.send(b.session_id, ("you blocked me"))
        assert not await arrived(qb, MessageReceived, a, b)
        assert b.messages(a.session_id) == [] and b.requests() == []
        await b.unblock(a.session_id)
        await a.send(b.session_id, ("after unblock"))
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.body == "after unblock"


async def test_skewed_clock_still_sends(tmp_path: Path, devnet: Any) -> None:
    skew = 300.0  # 5 minutes fast
    async with (
        open_client(tmp_path, "a", devnet, clock=lambda: time.time() + skew) as a,
        open_client(tmp_path, "b", devnet) as b,
    ):
        qb = b.hub.subscribe()
        text = "my clock is wrong"
        await a.send(b.session_id, text)
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.body == text
        assert abs(a.clock.offset_ms + 300_000) < 5_000
        assert abs(ev.sent_ms - time.time() * 1000) < 30_000  # stamped with network time


async def test_guard_killed_during_send_delivers_exactly_once(
    clients: Opener, devnet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await clients("a", background=False, rng=random.Random(7))
    b = await clients("b")
    qb = b.hub.subscribe()
    by_key = {n.pubkey_ed25519: n for n in devnet.nodes}
    real = a.transport.request
    killed: list[str] = []

    async def reply_lost(dest: Any, method: str, params: Any, path: Any = None) -> Any:
        path = path or a.paths.choose(dest)
        res = await real(dest, method, params, path)
        if method == "store" and not killed:
            # The store reached the swarm, then the guard dies before its reply arrives: the
            # client learns it the way it would have, from its next request over that guard.
            devnet.kill_node(by_key[path.guard.pubkey_ed25519])
            killed.append(path.guard.pubkey_ed25519)
            with pytest.raises(PathFailure):
                await real(dest, "info", {}, path)
            raise PathFailure("reply lost: guard died")
        return res

    monkeypatch.setattr(a.transport, "request", reply_lost)
    text = "exactly once please"
    mid = await a.send(b.session_id, text)
    await settled(a)
    assert killed and killed[0] in a.failed_nodes
    assert all(killed[0] not in p for p in a.onion_paths)
    ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
    assert isinstance(ev, MessageReceived) and ev.body == text
    assert not await arrived(qb, MessageReceived, a, b)
    assert [m.body for m in b.messages(a.session_id)] == [text]
    assert a.message(mid).status == "sent"
    # the swarm holds one copy: B restored on a fresh device retrieves its mailbox from scratch
    fresh = await clients("b-fresh", mnemonic=b.identity.mnemonic, background=False)
    await fresh.poll_once()
    assert [m.body for m in fresh.messages(a.session_id)] == [text]


async def test_refresh_learns_a_new_node_from_the_nodes(tmp_path: Path) -> None:
    """Client.refresh_nodes asks nodes (oxend_request get_service_nodes), not the bootstrap
    file: a node added after the client started is learned with the bootstrap file gone."""
    from session.devnet import Devnet

    with Devnet(tmp_path / "net", nodes=5) as net:
        boot = tmp_path / "bootstrap.json"
        shutil.copy(net.dir / "nodes.json", boot)
        c = Client.open(tmp_path / "c", str(boot), background=False, rng=random.Random(3))
        try:
            await c.start()
            assert c.node_count == 5
            new = net.add_node()
            boot.unlink()  # a fallback to the bootstrap source would now fail loudly
            assert await c.refresh_nodes() == 6
            assert new.pubkey_ed25519 in {n.pubkey_ed25519 for n in c.directory.nodes}
            assert not boot.exists()
        finally:
            await c.close()


async def test_nodes_never_see_plaintext_or_sender(tmp_path: Path) -> None:
    """On a devnet of its own: after a conversation (messages, sync copies, receipts, config
    pushes) and a store by a sender that never polls, every node database, WAL and log is
    scanned once the nodes have stopped (so everything they would write is written)."""
    from session.devnet import Devnet

    plaintexts = ["the nodes must not read this", "nor this reply", "Alice Plaintext"]
    net = Devnet(tmp_path / "net", nodes=5)
    net.start()
    try:
        nodes = str(net.dir / "nodes.json")
        async with (
            Client.open(tmp_path / "a", nodes, poll_interval=0.3) as a,
            Client.open(tmp_path / "b", nodes, poll_interval=0.3) as b,
        ):
            qa, qb = a.hub.subscribe(), b.hub.subscribe()
            await a.set_display_name(plaintexts[2])
            await a.send(b.session_id, plaintexts[1])
            await wait_for(qb, lambda e: isinstance(e, MessageReceived))
            # A sender that only ever stores into B's swarm (no sync copies, never polls): if
            # its Session ID shows up anywhere on the nodes, the 1:1 format leaked it.
            s = Client.open(tmp_path / "s", nodes, background=False)
            try:
                await s.start()
                sent_ms = s.clock.now_ms()
                data = M.seal(
                    s.identity, b.session_id, M.text(plaintexts[0], sent_ms=sent_ms), sent_ms
                )
                await s.rpc.store(b.session_id, 0, data, sent_ms + M.TTL_CONTENT_MS)
            finally:
                await s.close()
            ev = await wait_for(
                qb, lambda e: isinstance(e, MessageReceived) and e.author == s.session_id
            )
            assert isinstance(ev, MessageReceived) and ev.body == plaintexts[0]
            await b.accept_request(a.session_id)
            await b.mark_read(a.session_id)
            await wait_for(qa, lambda e: isinstance(e, MessageRead))
            await settled(a)
            await settled(b)
    finally:
        net.stop()
    files = [p for p in Path(net.dir).rglob("*") if p.is_file() and p.name != "nodes.json"]
    assert any(p.name == "storage.db" for p in files)
    sid = s.session_id
    x = bytes.fromhex(sid[2:])
    needles = [t.encode() for t in plaintexts] + [
        sid.encode(),
        sid[2:].encode(),
        x,
        base64.b64encode(x).rstrip(b"="),
        sid.upper().encode(),
    ]
    for p in files:
        blob = p.read_bytes()
        for n in needles:
            assert n not in blob, f"found {n[:20]!r} in {p.name} on a node"
