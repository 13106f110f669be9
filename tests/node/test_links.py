"""Direct tests of session/node/links.py on real TCP connections (127.0.0.1): what a peer gets
back for a frame that is not msgpack, a refused request, a failing store or a bug in a handler;
how a failing authorization callback refuses the key; what a connection that sends a bad frame
or falls silent costs (itself only). Peers that misbehave are spoken by hand (:class:`_Raw`:
the core's handshake and frames over asyncio streams). Every answer is awaited as a condition
(a reply, a log record, a closed connection), never after a fixed sleep."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from session import _core
from session.errors import InvalidInput, StorageError
from session.identity import Identity
from session.node import links as links_mod
from session.node.links import (
    BULK_MIN,
    KIND_DATA,
    KIND_PING,
    KIND_SYNC,
    Answer,
    LinkError,
    LinkTimeout,
    LinkUnreachable,
    NodeLinks,
    pack_body,
    parse_address,
    unpack_body,
)
from session.testing.links import any_peer, open_links
from session.testing.waits import until


class _Server:
    """A started NodeLinks of a fresh identity, and how to reach it."""

    def __init__(self, links: NodeLinks, ident: Identity, port: int) -> None:
        self.links = links
        self.ident = ident
        self.x25519 = bytes(ident.x25519_public).hex()
        self.port = port
        self.address = f"tcp://127.0.0.1:{port}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``await serve(handlers, authorize=...)``: a started server; all are closed afterwards."""
    started: list[NodeLinks] = []

    async def start(handlers: dict[bytes, Any], authorize: Any = any_peer) -> _Server:
        ident = Identity.generate()
        links = open_links(ident, handlers, authorize)
        started.append(links)
        port = await links.start("127.0.0.1", 0)
        return _Server(links, ident, port)

    yield start
    for links in started:
        await links.close()


@pytest.fixture
async def client() -> AsyncIterator[NodeLinks]:
    links = open_links(Identity.generate(), {})
    await links.start("127.0.0.1", 0)
    yield links
    await links.close()


async def _ping(peer: str, body: Any) -> Any:
    return {"pong": body}


#: How many requests a flood sends (several reads' worth of frames).
FLOOD = 512


class _Raw:
    """One node link spoken by hand: the core's handshake and frames over asyncio streams."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _core.Link
    ) -> None:
        self.reader, self.writer, self.link = reader, writer, link
        self.inbox: list[list[bytes]] = []

    @staticmethod
    async def _handshake_frame(reader: asyncio.StreamReader) -> bytes:
        n = int.from_bytes(await reader.readexactly(4), "big")
        return await reader.readexactly(n)

    @classmethod
    async def connect(cls, server: _Server, me: Identity) -> _Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        hs = _core.LinkHandshake.initiator(
            bytes(me.export_x25519_secret()), bytes(server.ident.x25519_public)
        )
        writer.write(hs.write())
        hs.read(await cls._handshake_frame(reader))
        return cls(reader, writer, hs.into_link())

    @classmethod
    async def accept(
        cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Identity
    ) -> _Raw:
        hs = _core.LinkHandshake.responder(bytes(me.export_x25519_secret()))
        hs.read(await cls._handshake_frame(reader))
        writer.write(hs.write())
        return cls(reader, writer, hs.into_link())

    def send(self, parts: list[bytes]) -> None:
        self.writer.write(self.link.seal(parts))

    async def recv(self) -> list[bytes]:
        """The next message that is not a heartbeat."""
        async with asyncio.timeout(10):
            while not self.inbox:
                data = await self.reader.read(65536)
                assert data, "the link closed"
                self.inbox.extend(m for m in self.link.feed(data) if m)
        return self.inbox.pop(0)

    async def closed_by_peer(self) -> None:
        """Returns once the other side closed the connection (what it sends meanwhile is
        dropped)."""
        async with asyncio.timeout(10):
            while await self.reader.read(65536):
                pass

    def close(self) -> None:
        self.writer.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_links_work_over_ipv6() -> None:
    """A node whose public_ip is IPv6 (the list accepts it; ``ServiceNode.zmq_address`` writes
    it ``tcp://[::1]:port``) binds its links there and is reached over them."""
    ident = Identity.generate()
    server = open_links(ident, {KIND_PING: _ping}, any_peer)
    other = open_links(Identity.generate(), {})
    try:
        port = await server.start("::1", 0)
        await other.start("::1", 0)
        got = await other.request(
            bytes(ident.x25519_public).hex(), f"tcp://[::1]:{port}", KIND_PING, {"v": 7}, 10
        )
        assert got == {"pong": {"v": 7}}
    finally:
        await other.close()
        await server.close()


async def test_a_send_waiting_for_the_link_is_not_overtaken_once_it_is_up(
    client: NodeLinks,
) -> None:
    """A request made while the peer's link is not connected waits for it; a later
    request made the moment the link comes up goes behind it, not before it: messages to one
    peer leave in the order they were made (a member's replica writes of one account)."""
    with socket.socket() as probe:  # a free port, listened on only later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    got: list[int] = []

    async def record(peer: str, body: Any) -> Any:
        got.append(body["n"])
        return {"n": body["n"]}

    ident = Identity.generate()
    x = bytes(ident.x25519_public).hex()
    address = f"tcp://127.0.0.1:{port}"
    first = asyncio.ensure_future(client.request(x, address, KIND_PING, {"n": 1}, 10))
    await until(lambda: x in client._peers, "the first request waiting for the link")
    server = open_links(ident, {KIND_PING: record}, any_peer)
    try:
        await server.start("127.0.0.1", port)
        # the link comes up: the very next request goes at once unless something waits before it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not client._peers[x].connected and loop.time() < deadline:
            await asyncio.sleep(0)
        assert client._peers[x].connected
        replies: list[Any] = []
        if not client.send_request(x, address, KIND_PING, {"n": 2}, 10, replies.append):
            replies.append(await client.request(x, address, KIND_PING, {"n": 2}, 10))
        assert await first == {"n": 1}
        await until(lambda: bool(replies), "the second reply")
        assert got == [1, 2]
    finally:
        await server.close()


async def test_a_frame_that_is_not_msgpack_gets_the_sentence_and_the_link_goes_on(
    serve: Any, client: NodeLinks
) -> None:
    server = await serve({KIND_PING: _ping})
    raw = await _Raw.connect(server, Identity.generate())
    try:
        # reserved code, truncated array, invalid UTF-8 in a string, trailing bytes
        for n, body in enumerate([b"\xc1", b"\x92\x01", b"\xa2\xff\xfe", b"\x01\x02"]):
            rid = struct.pack("<Q", n)
            raw.send([KIND_PING, rid, body])
            assert await raw.recv() == [b"E", rid, b"bad msgpack"]
        # Parts that are not a request at all are dropped; the link still serves, ours and
        # another peer's.
        raw.send([KIND_PING])
        raw.send([KIND_PING, b"\x09" * 8, msgpack.packb(1)])
        tag, _, body = await raw.recv()
        assert (tag, msgpack.unpackb(body)) == (b"R", {"pong": 1})
        assert await client.request(server.x25519, server.address, KIND_PING, 2, 5.0) == {"pong": 2}
    finally:
        raw.close()


async def test_a_connection_that_sends_a_bad_frame_is_closed_alone(
    serve: Any, client: NodeLinks, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not a sealed frame of this link (tampered, replayed, another protocol)
    close that connection, and only it: another peer's requests go on."""
    server = await serve({KIND_PING: _ping})
    assert await client.request(server.x25519, server.address, KIND_PING, 1, 5.0) == {"pong": 1}
    raw = await _Raw.connect(server, Identity.generate())
    frame = bytearray(raw.link.seal([KIND_PING, b"\x01" * 8, msgpack.packb(1)]))
    frame[-1] ^= 1  # the tag no longer matches
    with caplog.at_level(logging.WARNING, logger="session.node.links"):
        raw.writer.write(bytes(frame))
        await raw.closed_by_peer()
    assert any("bad frame" in r.getMessage() for r in caplog.records)
    raw.close()
    assert await client.request(server.x25519, server.address, KIND_PING, 2, 5.0) == {"pong": 2}


async def test_a_connection_that_is_not_a_link_is_closed(serve: Any, client: NodeLinks) -> None:
    """A client that speaks something else (here HTTP) gets nothing and is closed; a
    handshake frame claiming more than a handshake is refused before it is read."""
    server = await serve({KIND_PING: _ping})
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 200):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(junk)
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()
    assert await client.request(server.x25519, server.address, KIND_PING, 1, 5.0) == {"pong": 1}


async def test_a_link_to_a_listener_with_another_key_never_comes_up(
    serve: Any, client: NodeLinks
) -> None:
    """The listener's key is part of the handshake (Noise IK): a node at the address with
    another key cannot answer it, and the request fails as unreachable."""
    server = await serve({KIND_PING: _ping})
    someone_else = bytes(Identity.generate().x25519_public).hex()
    with pytest.raises(LinkUnreachable):
        await client.request(someone_else, server.address, KIND_PING, 1, 0.5)
    assert not server.links.auth_denied  # (refused by the cryptography, before any lookup)


async def test_a_peer_that_falls_silent_is_down_after_its_heartbeats(
    client: NodeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that completed its handshake and then says nothing (a frozen host: nothing
    resets the connection) loses its link after HEARTBEAT_TIMEOUT_BEATS beats and is down;
    while the link is up, our side sends heartbeats on it; and a request that was in flight
    on the link when the peer fell silent fails then as unreachable, not after its 30 s."""
    monkeypatch.setattr(links_mod, "HEARTBEAT_IVL", 0.05)
    await client.close()
    client = open_links(Identity.generate(), {})
    await client.start("127.0.0.1", 0)
    me = Identity.generate()
    accepted: asyncio.Queue[_Raw] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(await _Raw.accept(reader, writer, me))

    silent = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    x = bytes(me.x25519_public).hex()
    try:
        waiting = asyncio.ensure_future(
            client.request(x, f"tcp://127.0.0.1:{port}", KIND_PING, 1, 30)
        )
        raw = await accepted.get()
        assert await raw.recv() == [KIND_PING, struct.pack("<Q", 1), msgpack.packb(1)]
        # (the request is never answered) our heartbeats arrive, then the link is closed
        async with asyncio.timeout(10):
            beats = 0
            while data := await raw.reader.read(65536):
                beats += sum(1 for m in raw.link.feed(data) if not m)
        assert beats >= 1
        await until(lambda: client.is_down(x), "the silent peer marked down")
        async with asyncio.timeout(10):  # far below the request's own 30 s
            with pytest.raises(LinkUnreachable, match="closed"):
                await waiting
        raw.close()
    finally:
        silent.close()
        await client.close()


def test_link_addresses_are_ip_literals_only() -> None:
    assert parse_address("tcp://127.0.0.1:22020") == ("127.0.0.1", 22020)
    assert parse_address("tcp://[::1]:5") == ("::1", 5)
    for bad in ("tcp://example.com:1", "udp://1.2.3.4:5", "tcp://1.2.3.4", "tcp://1.2.3.4:0",
                "tcp://1.2.3.4:70000", "1.2.3.4:5", "tcp://no such host:5"):  # fmt: skip
        with pytest.raises(LinkUnreachable):
            parse_address(bad)


async def test_a_store_failure_reaches_the_peer_as_its_sentence(
    serve: Any, client: NodeLinks
) -> None:
    async def failing_store(peer: str, body: Any) -> Any:
        raise StorageError("database error: disk I/O error")

    server = await serve({KIND_PING: failing_store})
    with pytest.raises(LinkError, match=r"^database error: disk I/O error$"):
        await client.request(server.x25519, server.address, KIND_PING, {}, 5.0)
    assert not client.is_down(server.x25519)  # an error answer is an answer


async def test_a_handler_bug_is_answered_at_once_and_logged_with_its_traceback(
    serve: Any, client: NodeLinks, caplog: pytest.LogCaptureFixture
) -> None:
    async def buggy(peer: str, body: Any) -> Any:
        raise RuntimeError("a bug in a handler")

    server = await serve({KIND_PING: buggy})
    with caplog.at_level(logging.ERROR, logger="session.node.links"):
        # The peer is answered (not left to its 30 s timeout) without the bug's text ...
        with pytest.raises(LinkError, match=r"^internal error$"):
            await client.request(server.x25519, server.address, KIND_PING, {}, 30.0)

        # ... and the bug surfaces in the log with its traceback.
        def logged() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage() == "a link task failed"]

        await until(lambda: bool(logged()))
    exc_info = logged()[0].exc_info
    assert exc_info is not None and isinstance(exc_info[1], RuntimeError)


async def test_an_authorization_callback_that_fails_refuses_the_key(
    serve: Any, client: NodeLinks
) -> None:
    async def broken(key: bytes) -> bool:
        raise RuntimeError("a bug in the callback")

    server = await serve({KIND_PING: _ping}, authorize=broken)
    with pytest.raises(LinkUnreachable):
        await client.request(server.x25519, server.address, KIND_PING, {}, 1.0)
    assert server.links.auth_denied >= 1


async def test_a_reply_that_is_not_msgpack_fails_the_request(client: NodeLinks) -> None:
    """A peer answering with bytes that are not msgpack: the request fails with LinkError; an
    answer to a request id this peer was never sent is ignored."""
    ident = Identity.generate()

    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = await _Raw.accept(reader, writer, ident)
        _kind, rid, _body = await raw.recv()
        raw.send([b"R", struct.pack("<Q", 10**9), msgpack.packb("not yours")])
        raw.send([b"R", rid, b"\xc1"])

    server = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(LinkError, match=r"^bad reply: "):
            await client.request(
                bytes(ident.x25519_public).hex(), f"tcp://127.0.0.1:{port}", KIND_PING, {}, 5.0
            )
    finally:
        server.close()


async def test_large_bytes_travel_as_bulk_frames_both_ways(serve: Any, client: NodeLinks) -> None:
    """A body's large ``bytes`` values (a relayed 10 MB onion frame and its answer) travel as
    frames of their own after the msgpack, and arrive as the same dict; small ones stay inside."""
    seen: list[Any] = []

    async def echo(peer: str, body: Any) -> Any:
        seen.append(body)
        return {"s": 200, "b": body["f"][::-1], "small": body["small"]}

    server = await serve({KIND_PING: echo})
    big = os.urandom(BULK_MIN * 3 + 7)
    frames = pack_body({"f": big, "small": b"x" * 10, "n": 1})
    assert frames[1] == big and len(frames) == 2 and len(frames[0]) < 100
    got = await client.request(
        server.x25519, server.address, KIND_PING, {"f": big, "small": b"xy", "n": 1}, 10.0
    )
    assert seen == [{"f": big, "small": b"xy", "n": 1}]
    assert got == {"s": 200, "b": big[::-1], "small": b"xy"}


def test_bulk_frames_that_do_not_fit_the_body_are_refused() -> None:
    head = msgpack.packb({"~": ["f"], "n": 1})
    assert unpack_body(head, [b"blob"]) == {"n": 1, "f": b"blob"}
    for body, bulk in (
        (msgpack.packb({"n": 1}), [b"stray"]),  # a frame no key names
        (head, []),  # a key with no frame
        (msgpack.packb({"~": ["f", "g"]}), [b"one"]),
        (msgpack.packb({"~": ["n"], "n": 1}), [b"overwrites"]),
        (msgpack.packb({"~": [1]}), [b"not a str key"]),
        (msgpack.packb([1]), [b"not a dict"]),
    ):
        with pytest.raises(ValueError, match="bulk frames"):
            unpack_body(body, bulk)


async def test_a_peer_known_down_fails_at_once_and_is_up_again_when_it_returns(
    serve: Callable[..., Any], client: NodeLinks
) -> None:
    """A store must not wait on a member known to be down: once the link to a peer closed (its
    process died), requests fail at once (not after CONNECT_WAIT); the link's own reconnection
    marks the peer up as soon as it is back on its address."""
    srv = await serve({KIND_PING: _ping})
    assert await client.request(srv.x25519, srv.address, KIND_PING, 1) == {"pong": 1}
    port = int(srv.address.rsplit(":", 1)[1])
    await srv.links.close()
    await until(lambda: client.is_down(srv.x25519))
    with pytest.raises(LinkUnreachable, match="is down"):
        await client.request(srv.x25519, srv.address, KIND_PING, 2)
    back = open_links(srv.ident, {KIND_PING: _ping})
    try:
        await back.start("127.0.0.1", port)
        await until(lambda: not client.is_down(srv.x25519))
        assert await client.request(srv.x25519, srv.address, KIND_PING, 3) == {"pong": 3}
    finally:
        await back.close()


async def test_a_request_waiting_on_a_link_that_is_dropped_fails_cleanly(
    client: NodeLinks,
) -> None:
    """disconnect() (the peer left the list) while a request waits for the connection: the
    request ends with LinkUnreachable, not an error of a closed socket."""
    nobody = Identity.generate()
    x = bytes(nobody.x25519_public).hex()
    waiting = asyncio.ensure_future(client.request(x, "tcp://127.0.0.1:9", KIND_PING, 1))
    await until(lambda: x in client.peers())
    client.disconnect(x)
    with pytest.raises(LinkUnreachable, match="dropped"):
        await waiting


class _Replies:
    """Collects what :meth:`NodeLinks.send_request` callbacks get, by name."""

    def __init__(self) -> None:
        self.got: dict[str, Any] = {}

    def __call__(self, name: str) -> Callable[[Any], None]:
        def on_reply(reply: Any) -> None:
            assert name not in self.got, f"{name} answered twice"
            self.got[name] = reply

        return on_reply


async def test_send_request_answers_its_callback_and_deadlines_share_one_timer(
    serve: Any, client: NodeLinks
) -> None:
    """The relay's task-free request: the reply (raw msgpack body and bulk frames), an error
    reply, and timeouts of different lengths each reach their callback once; expired requests
    are gone from the links and the one deadline timer is idle afterwards."""
    release = asyncio.Event()

    async def handler(peer: str, body: Any) -> Any:
        if body == "slow":
            await release.wait()
        if body == "refuse":
            raise ValueError("not for me")
        return {"echo": body}

    server = await serve({KIND_PING: handler})
    assert await client.request(server.x25519, server.address, KIND_PING, 0, 5.0) == {"echo": 0}
    replies = _Replies()

    def send(name: str, body: Any, timeout: float) -> bool:
        return client.send_request(
            server.x25519, server.address, KIND_PING, body, timeout, replies(name)
        )

    assert send("slow-long", "slow", 0.6)
    assert send("slow-short", "slow", 0.2)  # sent later, expires first
    assert send("ok", 1, 5.0)
    assert send("refused", "refuse", 5.0)
    await until(lambda: len(replies.got) == 4)
    body, bulk = replies.got["ok"]
    assert unpack_body(body, bulk) == {"echo": 1}
    refused = replies.got["refused"]
    assert isinstance(refused, LinkError) and str(refused) == "not for me"
    short, long = replies.got["slow-short"], replies.got["slow-long"]
    assert isinstance(short, LinkTimeout) and "within 0.2s" in str(short)
    assert isinstance(long, LinkTimeout) and "within 0.6s" in str(long)
    assert client.timeouts == 2
    assert not client._pending and not client._deadlines and client._sweep_handle is None
    release.set()
    # a late answer to an expired request is dropped; the link goes on serving
    assert await client.request(server.x25519, server.address, KIND_PING, 2, 5.0) == {"echo": 2}
    assert len(replies.got) == 4


async def test_send_request_without_a_connection_fails_its_callback_as_unreachable(
    client: NodeLinks,
) -> None:
    """No connection comes: the request is taken (its turn kept), and its callback gets
    LinkUnreachable once the wait for a connection (its timeout here) is over; nothing is left
    registered, and the peer is down."""
    nobody = bytes(Identity.generate().x25519_public).hex()
    replies = _Replies()
    assert client.send_request(nobody, "tcp://127.0.0.1:9", KIND_PING, 1, 0.5, replies("x"))
    assert not replies.got  # (never called back before send_request returns)
    await until(lambda: "x" in replies.got, "the callback's failure")
    assert isinstance(replies.got["x"], LinkUnreachable)
    assert not client._pending and client.is_down(nobody)


async def test_closing_fails_a_send_still_waiting_for_its_link(client: NodeLinks) -> None:
    nobody = bytes(Identity.generate().x25519_public).hex()
    replies = _Replies()
    assert client.send_request(nobody, "tcp://127.0.0.1:9", KIND_PING, 1, 30.0, replies("x"))
    await client.close()
    assert isinstance(replies.got["x"], LinkError) and "closed" in str(replies.got["x"])


async def _recording(serve: Any) -> tuple[_Server, list[Any]]:
    """A server whose ``ping`` handler records each body as it arrives and echoes it."""
    arrived: list[Any] = []

    async def record(peer: str, body: Any) -> Any:
        arrived.append(body)
        return body

    return await serve({KIND_PING: record}), arrived


async def test_sends_waiting_for_a_link_leave_in_the_order_made(
    serve: Any, client: NodeLinks
) -> None:
    """A send with a callback that the link cannot take at once keeps its place before it
    returns: a send made after it, even once the send before it has gone and the link is up,
    never leaves first; futures and callbacks alike."""
    server, arrived = await _recording(serve)
    x, address = server.x25519, server.address
    replies = _Replies()
    # (a new peer: its link is still being dialled, so the first send waits for it)
    assert client.send_request(x, address, KIND_PING, "first", 10, replies("first"))
    assert client._peers[x].behind is not None  # (its turn, kept before it returned)
    second = asyncio.ensure_future(client.request(x, address, KIND_PING, "second", 10))
    await until(lambda: "first" in replies.got, "the first answer")  # (the link is up)
    assert client.send_request(x, address, KIND_PING, "third", 10, replies("third"))
    assert await client.request(x, address, KIND_PING, "fourth", 10) == "fourth"
    assert await second == "second"
    await until(lambda: "third" in replies.got, "the third answer")
    assert arrived == ["first", "second", "third", "fourth"]
    assert [unpack_body(*replies.got[k]) for k in ("first", "third")] == ["first", "third"]


async def test_a_send_cancelled_in_line_does_not_let_a_later_one_overtake(
    serve: Any, client: NodeLinks
) -> None:
    """Sends wait in line for a new peer's link; the one in the middle (a request whose caller
    gave up) is cancelled: the send after it still leaves after the ones before it."""
    server, arrived = await _recording(serve)
    x, address = server.x25519, server.address
    replies = _Replies()
    for name in ("Z", "A"):
        assert client.send_request(x, address, KIND_PING, name, 10, replies(name))
    b = asyncio.ensure_future(client.request(x, address, KIND_PING, "B", 10))
    await asyncio.sleep(0)  # (one loop turn, not a wait for time: B's task takes its place)
    assert client.send_request(x, address, KIND_PING, "C", 10, replies("C"))
    assert not client._peers[x].connected  # (B still waits in line when it is cancelled)
    b.cancel()
    await until(lambda: len(replies.got) == 3, "the three answers")
    assert b.cancelled()
    # (B may have left before it was cancelled, if the link came up that soon)
    assert [m for m in arrived if m != "B"] == ["Z", "A", "C"]
    assert arrived.index("C") == len(arrived) - 1


async def test_closing_fails_requests_waiting_on_callbacks(serve: Any) -> None:
    release = asyncio.Event()

    async def never(peer: str, body: Any) -> Any:
        await release.wait()

    server = await serve({KIND_PING: never, KIND_DATA: _ping})
    links = open_links(Identity.generate(), {})
    await links.start("127.0.0.1", 0)
    try:
        await links.request(server.x25519, server.address, KIND_DATA, 0, 5.0)
        replies = _Replies()
        assert links.send_request(server.x25519, server.address, KIND_PING, 1, 30.0, replies("w"))
    finally:
        await links.close()
        release.set()
    failed = replies.got["w"]
    assert isinstance(failed, LinkError) and str(failed) == "link closed"


async def test_a_direct_handler_answers_now_or_through_a_coroutine(
    serve: Any, client: NodeLinks
) -> None:
    """A direct handler (no task) answers at once, passes packed frames on as they are, or
    hands over to a coroutine whose refusal reaches the peer as its sentence; it takes
    precedence over an ordinary handler of the same kind."""

    async def refuse() -> Any:
        raise ValueError("refused later")

    def direct(peer: str, body: Any, answer: Answer) -> None:
        assert answer.peer == client.public_hex
        if body == "now":
            answer.result({"now": True})
        elif body == "packed":
            answer.forward(pack_body({"packed": True}))
        else:
            answer.run(refuse())

    server = await serve({KIND_PING: _ping, KIND_SYNC: _ping})
    server.links.direct[KIND_PING] = direct
    served: list[bytes] = []
    server.links.on_served = served.append
    ask = client.request
    assert await ask(server.x25519, server.address, KIND_PING, "now", 5.0) == {"now": True}
    assert await ask(server.x25519, server.address, KIND_PING, "packed", 5.0) == {"packed": True}
    with pytest.raises(LinkError, match=r"^refused later$"):
        await ask(server.x25519, server.address, KIND_PING, "later", 5.0)
    assert await ask(server.x25519, server.address, KIND_SYNC, 1, 5.0) == {"pong": 1}
    with pytest.raises(LinkError, match=r"^unknown kind$"):
        await ask(server.x25519, server.address, KIND_DATA, 1, 5.0)
    # every request handed to a handler, direct or ordinary, counted once by its kind
    assert served == [KIND_PING, KIND_PING, KIND_PING, KIND_SYNC]


async def test_what_a_direct_handler_raises_is_answered_and_the_link_goes_on(
    serve: Any, client: NodeLinks, caplog: pytest.LogCaptureFixture
) -> None:
    """A direct handler runs in the link's read callback, not in a task: a refusal it raises
    reaches the peer as its sentence, a bug as "internal error" (logged with its traceback),
    and the link keeps serving the requests after it."""

    def direct(peer: str, body: Any, answer: Answer) -> None:
        if body == "refuse":
            raise ValueError("not for me now")
        if body == "bug":
            raise KeyError("oops")
        answer.result({"ok": body})

    server = await serve({KIND_PING: _ping})
    server.links.direct[KIND_PING] = direct
    ask = client.request
    with pytest.raises(LinkError, match=r"^not for me now$"):
        await ask(server.x25519, server.address, KIND_PING, "refuse", 5.0)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(LinkError, match=r"^internal error$"):
            await ask(server.x25519, server.address, KIND_PING, "bug", 5.0)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    assert await ask(server.x25519, server.address, KIND_PING, "after", 5.0) == {"ok": "after"}


async def test_a_flooding_peer_loses_nothing_and_another_link_is_served(serve: Any) -> None:
    """A peer floods the link with several batches' worth of requests without waiting; a
    second peer's request meanwhile is answered, and every flooded request is answered."""
    server = await serve({KIND_PING: _ping})
    flooder = open_links(Identity.generate(), {})
    other = open_links(Identity.generate(), {})
    await flooder.start("127.0.0.1", 0)
    await other.start("127.0.0.1", 0)
    try:
        await flooder.request(server.x25519, server.address, KIND_PING, 0, 5)  # (connected)
        replies: list[Any] = []
        flood = FLOOD
        for i in range(flood):
            assert flooder.send_request(
                server.x25519, server.address, KIND_PING, i, 30, replies.append
            )
        answer = await other.request(server.x25519, server.address, KIND_PING, "other", 30)
        assert answer == {"pong": "other"}
        await until(lambda: len(replies) == flood)
        assert sorted(unpack_body(*r)["pong"] for r in replies) == list(range(flood))
    finally:
        await flooder.close()
        await other.close()


async def test_a_reply_callback_that_raises_does_not_stop_the_others(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply callback that raises (a bug) is logged without its message, and the deadline
    timer still expires the requests after it and stays scheduled; closing the links still
    fails the requests after one whose callback raises, and closes."""
    release = asyncio.Event()

    async def never(peer: str, body: Any) -> Any:
        await release.wait()

    server = await serve({KIND_PING: never, KIND_DATA: _ping})
    links = open_links(Identity.generate(), {})
    await links.start("127.0.0.1", 0)

    def broken(reply: Any) -> None:
        raise RuntimeError("secret request bytes")

    try:
        await links.request(server.x25519, server.address, KIND_DATA, 0, 5.0)
        replies = _Replies()
        with caplog.at_level(logging.ERROR, logger="session.node.links"):
            assert links.send_request(server.x25519, server.address, KIND_PING, 1, 0.05, broken)
            assert links.send_request(
                server.x25519, server.address, KIND_PING, 2, 0.05, replies("a")
            )
            await until(lambda: "a" in replies.got)
            assert isinstance(replies.got["a"], LinkTimeout)
            # the timer is still running: a later request expires too
            assert links.send_request(
                server.x25519, server.address, KIND_PING, 3, 0.05, replies("b")
            )
            await until(lambda: "b" in replies.got)
            assert isinstance(replies.got["b"], LinkTimeout)
            assert links.send_request(server.x25519, server.address, KIND_PING, 4, 30.0, broken)
            assert links.send_request(
                server.x25519, server.address, KIND_PING, 5, 30.0, replies("c")
            )
            await links.close()
        bugs = [r for r in caplog.records if "reply callback failed" in r.getMessage()]
        assert len(bugs) == 2 and all("RuntimeError" in r.getMessage() for r in bugs)
        assert not any("secret" in r.getMessage() for r in caplog.records)
        failed = replies.got["c"]
        assert isinstance(failed, LinkError) and str(failed) == "link closed"
        assert links.closed and not links._peers
    finally:
        await links.close()
        release.set()


async def test_a_reply_callback_that_raises_on_a_reply_leaves_the_link_serving(
    serve: Any, client: NodeLinks, caplog: pytest.LogCaptureFixture
) -> None:
    """The guard covers a callback given a real reply too (not only the timer's and close's
    errors): logged without its message, and the replies after it still reach theirs."""

    def broken(reply: Any) -> None:
        raise RuntimeError("secret request bytes")

    server = await serve({KIND_PING: _ping})
    await client.request(server.x25519, server.address, KIND_PING, 0, 5.0)  # connected
    replies = _Replies()
    with caplog.at_level(logging.DEBUG):
        assert client.send_request(server.x25519, server.address, KIND_PING, 1, 5.0, broken)
        assert client.send_request(server.x25519, server.address, KIND_PING, 2, 5.0, replies("a"))
        await until(lambda: "a" in replies.got)
    assert not isinstance(replies.got["a"], BaseException)
    bugs = [r for r in caplog.records if "reply callback failed" in r.getMessage()]
    assert len(bugs) == 1 and "RuntimeError" in bugs[0].getMessage()
    assert not any("secret" in r.getMessage() or r.exc_info for r in caplog.records)


async def _accepting_peer(me: Identity) -> tuple[asyncio.Server, asyncio.Queue[_Raw], str]:
    """A listener of ``me`` spoken by hand: each connection's :class:`_Raw` lands in the
    queue; returns the server, the queue and the address."""
    accepted: asyncio.Queue[_Raw] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(await _Raw.accept(reader, writer, me))

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return srv, accepted, f"tcp://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def test_requests_on_a_connection_that_closes_fail_at_once(client: NodeLinks) -> None:
    """The peer closes the connection while requests wait on it (its process died): their
    answers could only have come by that connection, so they fail as unreachable at once, a
    future and a callback alike, instead of each waiting out its 30 s timeout; and the peer
    is down, not marked up by the failure."""
    me = Identity.generate()
    srv, accepted, address = await _accepting_peer(me)
    x = bytes(me.x25519_public).hex()
    try:
        waiting = asyncio.ensure_future(client.request(x, address, KIND_PING, 1, 30))
        raw = await accepted.get()
        await raw.recv()
        replies = _Replies()
        assert client.send_request(x, address, KIND_PING, 2, 30, replies("cb"))
        await raw.recv()
        raw.writer.transport.abort()  # (no answer; the connection is gone)
        async with asyncio.timeout(10):  # far below the requests' own 30 s
            with pytest.raises(LinkUnreachable, match="closed"):
                await waiting
        await until(lambda: "cb" in replies.got, "the callback's failure")
        assert isinstance(replies.got["cb"], LinkUnreachable)
        assert client.is_down(x) and not client._pending
    finally:
        srv.close()


async def test_a_peer_that_connects_again_replaces_its_older_connection(serve: Any) -> None:
    """The same node key completes a second handshake while its first connection is still
    open here (its side already gave that one up): the older one is closed, so a key holds
    one established connection, and the new one serves."""
    server = await serve({KIND_PING: _ping})
    me = Identity.generate()
    first = await _Raw.connect(server, me)
    first.send([KIND_PING, struct.pack("<Q", 1), msgpack.packb(1)])
    assert (await first.recv())[0] == b"R"
    second = await _Raw.connect(server, me)
    second.send([KIND_PING, struct.pack("<Q", 2), msgpack.packb(2)])
    await first.closed_by_peer()
    tag, _, body = await second.recv()
    assert (tag, msgpack.unpackb(body)) == (b"R", {"pong": 2})
    established = [c for c in server.links._conns if c.link is not None]
    assert len(established) == 1
    first.close()
    second.close()


async def test_a_replayed_handshake_does_not_close_the_peers_connection(serve: Any) -> None:
    """Someone who recorded a node's first handshake message (Noise IK's can be replayed)
    sends it again: the handshake completes, but nothing that follows opens, so the node's
    real connection of that key stays open and served."""
    server = await serve({KIND_PING: _ping})
    me = Identity.generate()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    hs = _core.LinkHandshake.initiator(
        bytes(me.export_x25519_secret()), bytes(server.ident.x25519_public)
    )
    first_message = hs.write()
    writer.write(first_message)
    hs.read(await _Raw._handshake_frame(reader))
    real = _Raw(reader, writer, hs.into_link())
    real.send([KIND_PING, struct.pack("<Q", 1), msgpack.packb(1)])
    assert (await real.recv())[0] == b"R"
    r2, replay = await asyncio.open_connection("127.0.0.1", server.port)
    replay.write(first_message)
    await _Raw._handshake_frame(r2)  # (answered: the listener cannot tell a replay)
    replay.write(b"\x00\x00\x00\x10" + b"\x00" * 16)  # a heartbeat it cannot seal
    async with asyncio.timeout(10):
        assert await r2.read() == b""  # (closed: does not open)
    real.send([KIND_PING, struct.pack("<Q", 2), msgpack.packb(2)])
    tag, _, body = await real.recv()
    assert (tag, msgpack.unpackb(body)) == (b"R", {"pong": 2})
    replay.close()
    real.close()


async def test_a_peer_that_never_reads_its_answers_is_read_no_more(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer sends requests with large answers and reads none of them: once our replies
    wait past SEND_BUFFER_HIGH, its connection is not read any more (its requests stay in
    the kernel: no more tasks, no more replies held), and everything is answered once it
    reads."""
    monkeypatch.setattr(links_mod, "SEND_BUFFER_HIGH", 256 * 1024)
    big = b"\x5a" * (256 * 1024)

    async def large(peer: str, body: Any) -> Any:
        return {"n": body["i"], "b": big}

    server = await serve({KIND_DATA: large})
    raw = await _Raw.connect(server, Identity.generate())
    count = 160  # 40 MB of answers: past what the kernel's socket buffers hold
    pad = b"\x00" * 8192  # (1.3 MB of requests: many reads' worth)
    try:
        for i in range(count):
            raw.send([KIND_DATA, struct.pack("<Q", i), msgpack.packb({"i": i, "p": pad})])
        await until(
            lambda: any(c.paused for c in server.links._conns), "our replies over the limit"
        )
        (conn,) = [c for c in server.links._conns if c.paused]
        assert conn.transport is not None and not conn.transport.is_reading()
        assert server.links.received < count
        got: set[int] = set()
        while len(got) < count:
            tag, rid, _, bulk = await raw.recv()
            assert tag == b"R" and bulk == big
            got.add(struct.unpack("<Q", rid)[0])
        assert got == set(range(count))
    finally:
        raw.close()


async def test_a_dial_that_hangs_is_abandoned_and_tried_again(
    client: NodeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer whose SYNs go unanswered (a partition dropping packets; here a listener whose
    backlog is full) leaves our connect hanging for the kernel's two minutes: the dial is
    abandoned after CONNECT_WAIT and made again, so the link comes up within the reconnect
    back-off once the peer answers again, not at the kernel's next SYN retry."""
    monkeypatch.setattr(links_mod, "CONNECT_WAIT", 0.2)
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    filler = socket.socket()
    filler.connect(("127.0.0.1", port))  # (the backlog's one place: the next SYN is dropped)
    dials = 0
    connect = client._connect

    async def counted(p: Any) -> None:
        nonlocal dials
        dials += 1
        await connect(p)

    monkeypatch.setattr(client, "_connect", counted)
    ident = Identity.generate()
    x = bytes(ident.x25519_public).hex()
    address = f"tcp://127.0.0.1:{port}"
    try:
        with pytest.raises(LinkUnreachable):
            await client.request(x, address, KIND_PING, 1, 5)
        await until(lambda: dials >= 3, "the hanging dial abandoned and made again")
    finally:
        filler.close()
        full.close()
    server = open_links(ident, {KIND_PING: _ping}, any_peer)
    try:
        await server.start("127.0.0.1", port)
        await until(lambda: client._peers[x].connected, "the link up once the peer answers")
        assert await client.request(x, address, KIND_PING, 2, 5) == {"pong": 2}
    finally:
        await server.close()


async def test_closing_returns_once_the_request_tasks_it_cancels_have_ended(
    serve: Any, client: NodeLinks
) -> None:
    """close() cancels the handlers still running and returns only once they have ended (their
    clean-up done), so the node closing its store next finds no link handler still in it;
    the asker's request fails at once with the closed connection."""
    entered = asyncio.Event()
    cleaned: list[Any] = []

    async def slow(peer: str, body: Any) -> Any:
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(body)

    server = await serve({KIND_DATA: slow})
    waiting = asyncio.ensure_future(client.request(server.x25519, server.address, KIND_DATA, 1, 30))
    async with asyncio.timeout(10):
        await entered.wait()
    await server.links.close()
    assert cleaned == [1] and not server.links._tasks
    async with asyncio.timeout(10):
        with pytest.raises(LinkUnreachable):
            await waiting


async def test_a_connection_lost_before_its_dial_returns_is_dialled_again(
    serve: Any, client: NodeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our connection ends before the dial that made it has returned (here its handshake
    cannot start; as when a peer closes a connection the moment it accepts it): the link is
    dialled again, not left with no connection and no dial for good."""
    server = await serve({KIND_PING: _ping})
    real = links_mod.LinkHandshake
    failures = [1]

    class FailingOnce:
        responder = staticmethod(real.responder)

        @staticmethod
        def initiator(secret: bytes, public: bytes) -> Any:
            if failures:
                failures.pop()
                raise InvalidInput("a handshake that cannot start")
            return real.initiator(secret, public)

    monkeypatch.setattr(links_mod, "LinkHandshake", FailingOnce)
    # (waits for the link, CONNECT_WAIT at most: answered through the second dial)
    assert await client.request(server.x25519, server.address, KIND_PING, 1, 5) == {"pong": 1}
    assert not failures  # (the first dial's connection did end at once)


async def test_closing_while_a_key_is_being_authorized_is_no_refusal(
    serve: Any, client: NodeLinks, caplog: pytest.LogCaptureFixture
) -> None:
    """The links close while a connecting node's key is still being looked up: that is not a
    refused key (the metric of refusals and its log line are for keys that are not listed)."""
    asked = asyncio.Event()

    async def slow(key: bytes) -> bool:
        asked.set()
        await asyncio.Event().wait()
        return True

    server = await serve({KIND_PING: _ping}, authorize=slow)
    waiting = asyncio.ensure_future(client.request(server.x25519, server.address, KIND_PING, 1, 5))
    async with asyncio.timeout(10):
        await asked.wait()
    with caplog.at_level(logging.INFO, logger="session.node.links"):
        await server.links.close()
    assert server.links.auth_denied == 0
    assert not any("refused" in r.getMessage() for r in caplog.records)
    waiting.cancel()


async def test_a_peer_read_no_more_is_not_silent_while_it_takes_its_answers(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While we read no more of a peer's connection (its answers wait unread), its heartbeats
    cannot reach us: that silence is ours, not the peer's. A peer that takes its answers
    slowly (4 KB per heartbeat interval: the kernel's buffers hide that from our write buffer
    for many intervals) keeps its connection past the heartbeat timeout and gets every
    answer."""
    monkeypatch.setattr(links_mod, "HEARTBEAT_IVL", 0.05)
    monkeypatch.setattr(links_mod, "SEND_BUFFER_HIGH", 256 * 1024)
    beats: list[None] = []
    beat = links_mod._Conn.beat

    def counted(conn: Any) -> None:
        beat(conn)
        beats.append(None)

    monkeypatch.setattr(links_mod._Conn, "beat", counted)

    async def next_beat() -> None:
        seen = len(beats)
        await until(lambda: len(beats) > seen, "a heartbeat interval")

    big = b"\x5a" * (256 * 1024)

    async def large(peer: str, body: Any) -> Any:
        return {"n": body["i"], "b": big}

    server = await serve({KIND_DATA: large})
    raw = await _Raw.connect(server, Identity.generate())
    count = 60  # 15 MB of answers
    pad = b"\x00" * 8192
    try:
        for i in range(count):
            raw.send([KIND_DATA, struct.pack("<Q", i), msgpack.packb({"i": i, "p": pad})])
        await until(lambda: any(c.paused for c in server.links._conns), "reading paused")
        (conn,) = server.links._conns
        got = 0
        for _ in range(2 * links_mod.HEARTBEAT_TIMEOUT_BEATS):
            await next_beat()
            got += sum(1 for m in raw.link.feed(await raw.reader.read(4096)) if m)
        assert conn.paused and conn in server.links._conns  # (still waiting on the peer)
        while got < count:
            data = await raw.reader.read(1 << 20)
            assert data, "the link closed"
            got += sum(1 for m in raw.link.feed(data) if m)
    finally:
        raw.close()


async def test_handshakes_under_way_are_capped_per_address_and_in_all(
    serve: Any, client: NodeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections that never finish a handshake (anyone can open them) hold a slot each:
    beyond MAX_HANDSHAKES_PER_ADDRESS from one address, or MAX_HANDSHAKES in all, a new one is
    closed as it opens (counted); once they are gone, a node's link comes up again, and a
    link whose handshake is done holds no slot."""
    monkeypatch.setattr(links_mod, "MAX_HANDSHAKES_PER_ADDRESS", 3)
    server = await serve({KIND_PING: _ping})
    assert await client.request(server.x25519, server.address, KIND_PING, 1, 5.0) == {"pong": 1}
    assert not server.links._handshakes  # (done: no slot)

    async def mute() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", server.port)

    async def full_then_one_more(n: int) -> None:
        """``n`` mute connections hold their slots; one more is closed as it opens."""
        held = [await mute() for _ in range(n)]
        await until(lambda: sum(server.links._handshakes.values()) == n, "the slots held")
        reader, writer = await mute()
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()
        for _, w in held:
            w.close()

    await full_then_one_more(3)  # a fourth from the same address: closed at once
    assert server.links.handshakes_refused == 1
    await until(lambda: not server.links._handshakes, "the mute connections gone")
    other = open_links(Identity.generate(), {})
    await other.start("127.0.0.1", 0)
    try:
        assert await other.request(server.x25519, server.address, KIND_PING, 2, 5.0) == {"pong": 2}
    finally:
        await other.close()
    # the cap in all (here below the one per address)
    monkeypatch.setattr(links_mod, "MAX_HANDSHAKES_PER_ADDRESS", 100)
    monkeypatch.setattr(links_mod, "MAX_HANDSHAKES", 4)
    await full_then_one_more(4)
    assert server.links.handshakes_refused == 2


async def test_an_address_opening_link_connections_too_fast_is_refused_as_they_open(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections that each end at once (a stranger having us start handshakes over and
    over) take one of their address's NEW_CONNECTIONS_BURST each; beyond it a new one is
    closed as it opens (counted), while another address's is let in to its handshake."""
    monkeypatch.setattr(links_mod, "NEW_CONNECTIONS_BURST", 3)
    monkeypatch.setattr(links_mod, "NEW_CONNECTIONS_PER_SECOND", 0.001)  # no refill in the test
    server = await serve({KIND_PING: _ping})

    async def opens_and_leaves() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.close()

    for _ in range(3):
        await opens_and_leaves()
    await until(lambda: not server.links._handshakes, "the connections gone")
    assert server.links.connections_too_fast == 0
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # the 4th from 127.0.0.1: closed at once
    writer.close()
    assert server.links.connections_too_fast == 1
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
    await until(lambda: server.links._handshakes.get("127.0.0.2") == 1, "let in from 127.0.0.2")
    writer.close()
    assert server.links.connections_too_fast == 1 and server.links.handshakes_refused == 0


async def test_a_send_to_a_peer_that_stopped_reading_fails_saying_so(
    client: NodeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that is connected but reads nothing: once our buffer for it is full, sends wait
    for it to drain, CONNECT_WAIT at most, then fail saying the peer is not reading (not that
    there is no connection), futures and callbacks alike, and the peer is not marked down for
    it (it is up, and slow)."""
    monkeypatch.setattr(links_mod, "SEND_BUFFER_HIGH", 64 * 1024)
    monkeypatch.setattr(links_mod, "CONNECT_WAIT", 0.3)
    me = Identity.generate()
    accepted: asyncio.Queue[_Raw] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(await _Raw.accept(reader, writer, me))  # then reads nothing

    deaf = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    address = f"tcp://127.0.0.1:{deaf.sockets[0].getsockname()[1]}"
    x = bytes(me.x25519_public).hex()
    raw: _Raw | None = None
    try:
        first = asyncio.ensure_future(client.request(x, address, KIND_PING, {"n": 0}, 30))
        raw = await accepted.get()
        await until(lambda: client._peers[x].connected, "the link up")
        big = {"f": os.urandom(1024 * 1024)}
        link = client._peers[x].conn
        assert link is not None
        sent = 0
        while not link.paused:
            assert client.send_request(x, address, KIND_DATA, big, 30, lambda _: None)
            sent += 1
            assert sent < 200, "the kernel and our buffer took 200 MB"
        replies = _Replies()
        assert client.send_request(x, address, KIND_DATA, big, 30, replies("waiting"))
        with pytest.raises(LinkUnreachable, match="not reading"):
            await client.request(x, address, KIND_PING, {"n": 1}, 30)
        await until(lambda: "waiting" in replies.got, "the waiting send's failure")
        assert isinstance(replies.got["waiting"], LinkUnreachable)
        assert "not reading" in str(replies.got["waiting"])
        assert not client.is_down(x)
        first.cancel()
    finally:
        if raw is not None:
            raw.close()
        deaf.close()


async def test_a_peer_with_too_many_requests_running_is_read_no_further_until_half_end(
    serve: Any, client: NodeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered node that sends request after request whose handlers wait: once
    MAX_RUNNING of them run, its connection is not read (no more tasks), until half of them
    ended; nothing it sent is lost, every request is answered, and another peer is served
    all along."""
    monkeypatch.setattr(links_mod, "MAX_RUNNING", 8)
    gate = asyncio.Event()
    running = peak = 0

    async def waits(peer: str, body: Any) -> Any:
        nonlocal running, peak
        if body["n"] < 0:  # (the other peer's)
            return body
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
        finally:
            running -= 1
        return body

    server = await serve({KIND_SYNC: waits})
    raw = await _Raw.connect(server, Identity.generate())
    try:
        for n in range(20):
            raw.send([KIND_SYNC, struct.pack("<Q", n), msgpack.packb({"n": n})])
        await until(lambda: running == 8, "eight requests running")
        # another peer meanwhile: its request runs and is answered
        got = await client.request(server.x25519, server.address, KIND_SYNC, {"n": -1}, 5.0)
        assert got == {"n": -1}
        assert running == 8 and peak == 8
        gate.set()
        answered = {struct.unpack("<Q", (await raw.recv())[1])[0] for _ in range(20)}
        assert answered == set(range(20))
        assert peak <= 8
    finally:
        raw.close()
