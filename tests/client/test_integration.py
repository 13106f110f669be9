"""End-to-end client tests on a loopback devnet (registry + 6 nodes on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

PLAINTEXTS: list[str] = []


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


async def wait_for(q: asyncio.Queue[Event | None], pred: Callable[[Event], bool], timeout: float = 20) -> Event:
    async def go() -> Event:
        while True:
            ev = await q.get()
            if ev is not None and pred(ev):
                return ev

    return await asyncio.wait_for(go(), timeout)


def secret(text: str) -> str:
    PLAINTEXTS.append(text)
    return text


async def test_two_clients_exchange_messages(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qa, qb = a.hub.subscribe(), b.hub.subscribe()
        await a.set_display_name("Alice")
        t1 = secret("first words from alice")
        mid = await a.send(b.session_id, t1)
        sent = await wait_for(qa, lambda e: isinstance(e, MessageSent))
        assert isinstance(sent, MessageSent) and sent.message_id == mid and sent.hash
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived)
        assert (ev.author, ev.body, ev.is_request) == (a.session_id, t1, True)
        assert [r["session_id"] for r in b.requests()] == [a.session_id]
        assert b.db.contact(a.session_id)["name"] == "Alice"
        assert b.conversations() == []  # still a request
        await b.accept_request(a.session_id)
        acc = await wait_for(qa, lambda e: isinstance(e, RequestAccepted))
        assert isinstance(acc, RequestAccepted) and acc.session_id == b.session_id
        t2 = secret("reply from bob")
        await b.send(a.session_id, t2)
        ev2 = await wait_for(qa, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev2, MessageReceived) and ev2.body == t2 and not ev2.is_request
        assert [m["body"] for m in a.messages(b.session_id)] == [t1, t2]
        assert b.requests() == [] and [c["conversation"] for c in b.conversations()] == [a.session_id]


async def test_offline_recipient_gets_message_when_back(tmp_path: Path, devnet: Any) -> None:
    b = open_client(tmp_path, "b", devnet)
    b_id = b.session_id
    await b.close()  # B is offline
    text = secret("sent while you were away")
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
        text = secret("queued offline")
        mid = await a.send(b.session_id, text)  # no node list at all: stays in the outbox
        assert [st for st, _ in a.outbox.entries_for_message(mid)] == ["pending", "pending"]  # + sync copy
        await a.close()
        async with open_client(tmp_path, "a", devnet) as a2:
            qa = a2.hub.subscribe()
            sent = await wait_for(qa, lambda e: isinstance(e, MessageSent))
            assert isinstance(sent, MessageSent) and sent.message_id == mid
            ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
            assert isinstance(ev, MessageReceived) and ev.body == text
            await asyncio.sleep(1.5)
            assert [m["body"] for m in b.messages(a2.session_id)] == [text]


async def test_second_device_sees_the_conversation(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qa, qb = a.hub.subscribe(), b.hub.subscribe()
        await a.set_display_name("Alice Two")
        out = secret("from device one")
        await a.send(b.session_id, out)
        await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        inc = secret("to both devices")
        await b.send(a.session_id, inc)
        await wait_for(qa, lambda e: isinstance(e, MessageReceived))
        await b.block("05" + "77" * 32)  # unrelated, but exercises contacts config on B
        await a.block("05" + "66" * 32)
        await asyncio.sleep(1.0)  # let the config pushes go out
        async with open_client(tmp_path, "a2", devnet, mnemonic=a.identity.mnemonic) as a2:
            assert a2.session_id == a.session_id
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                msgs = a2.messages(b.session_id)
                if len(msgs) == 2 and a2.display_name == "Alice Two" and a2.db.contact("05" + "66" * 32):
                    break
                await asyncio.sleep(0.2)
            msgs = a2.messages(b.session_id)
            assert [(m["body"], m["outgoing"]) for m in msgs] == [(out, True), (inc, False)]
            assert a2.display_name == "Alice Two"
            assert a2.db.contact(b.session_id)["approved"] == 1
            assert a2.db.contact("05" + "66" * 32)["blocked"] == 1


async def test_receipts_typing_and_disappearing(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qa, qb = a.hub.subscribe(), b.hub.subscribe()
        await a.send(b.session_id, secret("please read me"))
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
        assert a.messages(b.session_id)[0]["status"] == "read"
        # read receipts off: nothing is sent
        b.read_receipts = False
        await a.send(b.session_id, secret("no receipt for this"))
        await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        await b.mark_read(a.session_id)
        with pytest.raises(asyncio.TimeoutError):
            await wait_for(qa, lambda e: isinstance(e, MessageRead), timeout=3)
        # disappearing after send (10 s): both sides delete it
        await a.set_disappearing(b.session_id, Expiration(ExpirationMode.AFTER_SEND, 10))
        await wait_for(qb, lambda e: type(e).__name__ == "ExpirationChanged")
        assert b.db.contact(a.session_id)["exp_mode"] == ExpirationMode.AFTER_SEND
        mid = await a.send(b.session_id, secret("this will vanish"))
        rec = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(rec, MessageReceived)
        assert b.db.message(rec.message_id)["expires_at_ms"] == rec.sent_ms + 10_000
        dl = await wait_for(qb, lambda e: isinstance(e, MessageDeleted), timeout=20)
        assert isinstance(dl, MessageDeleted) and dl.reason == "expired" and dl.message_id == rec.message_id
        await wait_for(qa, lambda e: isinstance(e, MessageDeleted) and e.message_id == mid, timeout=10)
        # disappearing after read: the timer starts when read
        await a.set_disappearing(b.session_id, Expiration(ExpirationMode.AFTER_READ, 300))
        await wait_for(qb, lambda e: type(e).__name__ == "ExpirationChanged")
        await a.send(b.session_id, secret("read then vanish"))
        rec2 = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(rec2, MessageReceived)
        assert b.db.message(rec2.message_id)["expires_at_ms"] is None
        before = b.clock.now_ms()
        await b.mark_read(a.session_id)
        exp_at = b.db.message(rec2.message_id)["expires_at_ms"]
        assert before + 300_000 <= exp_at <= b.clock.now_ms() + 300_000
        # unsend
        mid3 = await a.send(b.session_id, secret("oops, unsend me"))
        rec3 = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        await a.unsend(mid3)
        dl3 = await wait_for(qb, lambda e: isinstance(e, MessageDeleted) and e.reason == "unsend")
        assert isinstance(rec3, MessageReceived) and isinstance(dl3, MessageDeleted)
        assert dl3.message_id == rec3.message_id and b.db.message(rec3.message_id) is None


async def test_blocked_sender_is_dropped(tmp_path: Path, devnet: Any) -> None:
    async with open_client(tmp_path, "a", devnet) as a, open_client(tmp_path, "b", devnet) as b:
        qb = b.hub.subscribe()
        await b.block(a.session_id)
        await a.send(b.session_id, secret("you blocked me"))
        with pytest.raises(asyncio.TimeoutError):
            await wait_for(qb, lambda e: isinstance(e, MessageReceived), timeout=3)
        assert b.messages(a.session_id) == [] and b.requests() == []
        await b.unblock(a.session_id)
        await a.send(b.session_id, secret("after unblock"))
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.body == "after unblock"


async def test_skewed_clock_still_sends(tmp_path: Path, devnet: Any) -> None:
    skew = 300.0  # 5 minutes fast
    async with open_client(tmp_path, "a", devnet, clock=lambda: time.time() + skew) as a, \
            open_client(tmp_path, "b", devnet) as b:
        qb = b.hub.subscribe()
        text = secret("my clock is wrong")
        await a.send(b.session_id, text)
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.body == text
        assert abs(a.clock.offset_ms + 300_000) < 5_000
        assert abs(ev.sent_ms - time.time() * 1000) < 30_000  # stamped with network time


async def test_guard_killed_during_send_delivers_exactly_once(tmp_path: Path, devnet: Any) -> None:
    a = open_client(tmp_path, "a", devnet, background=False)
    await a.start()
    async with open_client(tmp_path, "b", devnet) as b:
        qb = b.hub.subscribe()
        a.paths.paths_wanted = 1
        a.paths.paths = a.paths.paths[:1]
        a.paths.ensure_paths()
        by_port = {n.https_port: n for n in devnet.nodes}
        real = a.transport.request
        killed: list[str] = []

        async def flaky(dest: Any, method: str, params: Any, path: Any = None) -> Any:
            path = path or a.paths.choose(dest)
            res = await real(dest, method, params, path)
            if method == "store" and not killed:
                # The store reached the swarm, then the guard dies before its reply arrives.
                devnet.kill_node(by_port[path.guard.storage_port])
                killed.append(path.guard.pubkey_ed25519)
                a.paths.guard_unreachable(path)
                raise PathFailure("reply lost: guard died")
            return res

        a.transport.request = flaky  # type: ignore[method-assign]
        text = secret("exactly once please")
        mid = await a.send(b.session_id, text)
        while a.outbox.pending_count():
            await a.flush_outbox()
        assert killed and all(killed[0] not in p.ids() for p in a.paths.paths)
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.body == text
        with pytest.raises(asyncio.TimeoutError):
            await wait_for(qb, lambda e: isinstance(e, MessageReceived), timeout=3)
        assert [m["body"] for m in b.messages(a.session_id)] == [text]
        assert a.db.message(mid)["status"] == "sent"
        # the swarm holds one copy: retrieve B's namespace 0 from scratch
        node = b.directory.swarm(b.session_id)
        bodies = []
        for n in node:
            if n.pubkey_ed25519 in killed:
                continue
            r = await b.rpc.retrieve(b.identity, 0, n, "")
            bodies = [m["data"] for m in r["messages"]]
            break
        opened = [o for o in M.open_many(b.identity, [(str(i), d, 0) for i, d in enumerate(bodies)])
                  if isinstance(o, M.Incoming) and o.content.dataMessage.body == text]
        assert len(opened) == 1
    await a.close()


async def test_nodes_never_see_plaintext_or_sender(tmp_path: Path, devnet: Any) -> None:
    """Runs last: scans every node database, WAL and log of the devnet."""
    async with open_client(tmp_path, "b", devnet) as b:
        qb = b.hub.subscribe()
        # A sender that only ever stores into B's swarm (no sync copies, never polls): if its
        # Session ID shows up anywhere on the nodes, the 1:1 format leaked it.
        s = Client.open(tmp_path / "s", nodes_json(devnet), background=False)
        await s.start()
        text = secret("the nodes must not read this")
        sent_ms = s.clock.now_ms()
        data = M.seal(s.identity, b.session_id, M.text(text, sent_ms=sent_ms), sent_ms)
        await s.rpc.store(b.session_id, 0, data, sent_ms + M.TTL_CONTENT_MS)
        ev = await wait_for(qb, lambda e: isinstance(e, MessageReceived))
        assert isinstance(ev, MessageReceived) and ev.author == s.session_id
        await s.close()
    await asyncio.sleep(1.5)  # let nodes flush
    blobs = [p.read_bytes() for p in Path(devnet.dir).rglob("*") if p.is_file() and p.name != "nodes.json"]
    assert any(p.name == "storage.db" for p in Path(devnet.dir).rglob("*"))
    sid = s.session_id
    x = bytes.fromhex(sid[2:])
    needles = [t.encode() for t in PLAINTEXTS] + [
        sid.encode(), sid[2:].encode(), x, base64.b64encode(x).rstrip(b"="), sid.upper().encode(),
    ]
    for blob in blobs:
        for n in needles:
            assert n not in blob, f"found {n[:20]!r} on a node"
