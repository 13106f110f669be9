"""Node-to-node links: TCP with a Noise handshake, msgpack payloads, request ids mapped to futures.

Every node listens on one TCP port (``network.zmq_port``: the name is the registry's, from the
days these links were ZeroMQ) and keeps one outgoing connection per peer it talks to,
connected once and reused (reconnected within half a second when it drops). A connection starts
with a Noise ``IK`` handshake (``session._core.LinkHandshake``, the ``snow`` crate in the Rust
core): the connecting node knows the listener's X25519 key from the node list and proves its
own, which the listener hands to the ``authorize`` callback (a registered node?) before it
answers; both get fresh ephemeral keys. After that every message is one frame sealed by the
core (``session._core.Link``: length-prefixed ChaCha20-Poly1305, any size up to 16 MB, the
format in ``core_ext/crates/session-link``), whose parts are ours:

* a request, outgoing connection → listener: ``[kind, request id, msgpack body, *bulk]``;
* its answer, back on the same connection: ``[b"R" | b"E", request id, body, *bulk]``;
* a heartbeat: a message of no parts, sent by either side after a second without sending.

The request id maps to a waiting future or callback, so a relayed onion reply travels back
without any crypto. An answer counts only on the connection its request took: when that
connection closes, the requests still waiting on it fail at once (:class:`LinkUnreachable`).
A listener keeps one established connection per peer key (a peer dials again only once its
earlier connection is gone on its side, so an older one still open here is closed), and stops
reading a peer's requests while its answers wait unread past :data:`SEND_BUFFER_HIGH`.
Bulk parts carry a body's large ``bytes`` values (a relayed onion frame, a
file download's answer) outside the msgpack (:func:`pack_body`): packing and unpacking 10 MB
would copy it twice.

Everything runs on the event loop's thread: a message is sealed and written to the socket by
the call that sends it, and opened in the loop's read callback, so a request and its answer
wake no other thread (the libzmq links these replace cost the answering side ~7× a plain
socket's round trip in its I/O thread's wake-ups: docs/performance.md).

A connection that carries nothing for :data:`HEARTBEAT_TIMEOUT_BEATS` heartbeat intervals
(partitioned, frozen host, cable pulled: nothing resets the TCP connection) is closed, and the
peer is down until its next handshake. Heartbeats are counted in the loop's own turns, so a
loop that was itself held up does not blame its peers for it; nor is a peer's connection
that we stopped reading (its answers waiting unread) blamed for the silence that causes.

Hot path (a relayed onion layer, thousands a second): a kind can have a *direct* handler
(``NodeLinks.direct``), called synchronously with an :class:`Answer` instead of run as a task,
and :meth:`NodeLinks.send_request` sends a request whose reply goes to a callback instead of
a future. Request deadlines share one timer (:meth:`NodeLinks._sweep`) instead of one loop
timer per request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import struct
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]

from session._core import Link, LinkHandshake
from session.errors import ConfigError, DecryptionError, InvalidInput, StorageError
from session.service.ratelimit import RateLimiter, client_key
from session.service.tasks import cancel_and_wait, log_failure

log = logging.getLogger("session.node.links")

#: Message kinds (first part of a request).
KIND_ONION = b"onion"  # relay an onion frame; body {"f": frame} → {"s": status, "b": body}
KIND_CC = b"cc"  # a client request forwarded for swarm replication; body dict → result dict
KIND_DATA = b"data"  # bulk push on swarm change; body {"m": [records]} → {"n": accepted}
KIND_PING = b"ping"  # liveness; body {"v": list version} → {"v": list version}
KIND_SYNC = b"sync"  # swarm reconciliation (digests, entries, fetch, apply; see replication.py)
#: several forwarded client requests in order; body {"r": [body, ...]} → {"r": [result, ...]}
#: (a member that does not know this kind answers "unknown kind": the sender then sends singly)
KIND_CC_BATCH = b"ccb"
KINDS = (KIND_ONION, KIND_CC, KIND_DATA, KIND_PING, KIND_SYNC, KIND_CC_BATCH)

_REPLY = b"R"
_ERROR = b"E"
#: A top-level ``bytes`` value of a body dict at least this long travels as a bulk part.
BULK_MIN = 64 * 1024
#: The body key that lists, in order, the keys whose values are the bulk parts.
BULK_KEY = "~"
#: How long a request waits for a link to a peer to be connected before failing; also how
#: long a connection may take to complete its handshake.
CONNECT_WAIT = 3.0
#: A connection that sent nothing for this long sends a heartbeat.
HEARTBEAT_IVL = 1.0
#: A connection on which nothing arrived for this many heartbeat intervals in a row is closed.
HEARTBEAT_TIMEOUT_BEATS = 3
#: Reconnecting a dropped link: first after RECONNECT_MIN seconds, doubling up to RECONNECT_MAX
#: (a restarted peer is reachable again within half a second).
RECONNECT_MIN = 0.1
RECONNECT_MAX = 0.5
#: Bytes a connection may have waiting to be written before sends wait (the socket's own
#: buffer comes first); a reply is written regardless.
SEND_BUFFER_HIGH = 32 * 1024 * 1024
#: The largest handshake frame read (Noise IK's messages are 96 and 48 bytes).
MAX_HANDSHAKE = 1024
#: Connections to us whose handshake is not done yet, at most this many at once in all, and
#: this many from one address: a connection beyond is closed as it opens. Anyone can open
#: one, and each costs a file descriptor (shared with the HTTPS site) and, once its first
#: message arrives, a Diffie-Hellman and a key look-up; a registered node has one connection
#: to us and dials again only once that is gone (a devnet's nodes all dial from 127.0.0.1).
MAX_HANDSHAKES = 256
MAX_HANDSHAKES_PER_ADDRESS = 32
#: New connections to us from one address (an IPv6 /64), per second on average and at once;
#: beyond them a connection is closed as it opens, before any Diffie-Hellman. A node dials us
#: once, and again only after its connection dropped or we refused its key (not listed here
#: yet), backing off to one dial per RECONNECT_MAX: even the dozen nodes of a devnet dialling
#: from 127.0.0.1 stay well below; someone opening connections only to have us do handshakes
#: gets this many Diffie-Hellmans a second (about 0.25 % of a core), not as many as they like.
NEW_CONNECTIONS_PER_SECOND = 50.0
NEW_CONNECTIONS_BURST = 500
#: A peer's connection to us with this many of its requests running (each a task: a handler
#: awaiting the store, a reconciliation read) is read no further until half of them ended,
#: so one node cannot make us hold unbounded tasks; what it sends meanwhile waits in its
#: socket (and, once that is full, in its own send buffer).
MAX_RUNNING = 1024
#: How late past its deadline a request may be failed: deadlines are checked by one shared
#: timer, which fires at the earliest deadline plus this much (so close deadlines share a run).
DEADLINE_SLACK = 0.01

#: What ``msgpack.unpackb`` raises for bytes that are not one msgpack object (truncated input,
#: extra data, bad UTF-8 in a string, reserved codes, nesting too deep, a map key of a list).
MSGPACK_ERRORS: tuple[type[Exception], ...] = (ValueError, msgpack.UnpackException)
#: What the core raises for a frame no link of ours sends (tampered, out of order, malformed).
_FRAME_ERRORS = (DecryptionError, InvalidInput)

Handler = Callable[[str, Any], Awaitable[Any]]
#: What a request sent with :meth:`NodeLinks.send_request` gets: the reply's msgpack body and
#: bulk parts as they arrived, or the :class:`LinkError` that ends it.
RawReply = tuple[bytes, list[bytes]]
OnReply = Callable[["RawReply | LinkError"], None]
_log_task_failure = log_failure(log, "a link task")
Authorizer = Callable[[bytes], Awaitable[bool]]
#: A request waiting for its answer: its future or reply callback, its timeout, the peer's
#: X25519 hex and the connection it was sent on.
_Waiting = tuple["asyncio.Future[Any] | OnReply", float, str, "_Conn"]
#: a send's place in the line of those waiting for a peer's link: (the one before it, its own)
_Turn = tuple["asyncio.Future[None] | None", "asyncio.Future[None]"]


def pack_body(body: Any) -> list[bytes]:
    """The parts of a request or reply body: its msgpack, then one bulk part per top-level
    ``bytes`` value of at least :data:`BULK_MIN` bytes (their keys listed under
    :data:`BULK_KEY`), so a 10 MB onion frame is sealed as it is, never packed."""
    if isinstance(body, dict):
        bulk = [
            k
            for k, v in body.items()
            if isinstance(k, str) and isinstance(v, bytes) and len(v) >= BULK_MIN
        ]
        if bulk:
            head = {k: v for k, v in body.items() if k not in bulk}
            head[BULK_KEY] = bulk
            return [msgpack.packb(head, use_bin_type=True), *(body[k] for k in bulk)]
    return [msgpack.packb(body, use_bin_type=True)]


def unpack_body(body: bytes, bulk: list[bytes]) -> Any:
    """Inverse of :func:`pack_body`; raises ValueError (or a msgpack error) for frames that do
    not fit together."""
    obj = msgpack.unpackb(body, raw=False)
    names = obj.pop(BULK_KEY, None) if isinstance(obj, dict) else None
    if names is None and not bulk:
        return obj
    if (
        not isinstance(names, list)
        or len(names) != len(bulk)
        or not all(isinstance(n, str) and n not in obj for n in names)
    ):
        raise ValueError("bulk frames do not match the keys the body lists")
    obj.update(zip(names, bulk, strict=True))
    return obj


class LinkError(Exception):
    """A peer could not be reached or answered with an error."""


class LinkUnreachable(LinkError):
    """No connection to the peer could be completed in time (down, refusing, or mute)."""


class LinkTimeout(LinkError):
    """No answer within the timeout."""


#: Back-off of a down peer: first probe after PROBE_MIN seconds, doubling up to PROBE_MAX.
PROBE_MIN = 0.5
PROBE_MAX = 30.0


class PeerHealth:
    """What the links know of one peer's liveness: up, or down since a failure with a back-off
    before the next probe. Fed by our link's connection events (a completed handshake means up;
    a dropped connection means down at once: the peer's process was killed, or it went silent
    past the heartbeat timeout), by :meth:`NodeLinks.request` (a reply means up; no connection
    within ``CONNECT_WAIT`` means down) and by requests the peer sends us (up). While a peer is
    down and has no connection, requests to it fail at once (no ``CONNECT_WAIT``). Read by the
    replication fan-out, which skips down peers instead of waiting on them for every write, and
    by the relay, which answers 502 at once for a next node that is down."""

    __slots__ = ("down_since", "failures", "next_probe")

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.failures = 0
        self.next_probe = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, now: float) -> None:
        """A request failed: down (or still down) with a doubled back-off."""
        if self.down_since is None:
            self.down_since = now
        self.failures += 1
        self.next_probe = now + min(PROBE_MAX, PROBE_MIN * 2 ** (self.failures - 1))

    def answered(self) -> bool:
        """A reply arrived; returns True when the peer was down until now."""
        was_down = self.down_since is not None
        self.down_since = None
        self.failures = 0
        self.next_probe = 0.0
        return was_down


def parse_address(address: str) -> tuple[str, int]:
    """``tcp://IP:port`` (``tcp://[IPv6]:port``) → (ip, port). Only IP literals: a link never
    looks a name up (the node list refuses names too: ``ServiceNode.from_json``). Raises
    :class:`LinkUnreachable` for anything else."""
    rest = address.removeprefix("tcp://")
    host, sep, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        if rest == address or not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("not tcp://IP:port")
        ipaddress.ip_address(host)
    except ValueError:
        raise LinkUnreachable(f"a link address must be tcp://IP:port, not {address!r}") from None
    return host, int(port)


class _Conn(asyncio.Protocol):
    """One TCP connection of node links: ours to a peer (``peer`` set: it carries our
    requests and their answers) or a peer's to us (``peer`` None: its requests, our answers).
    Handshake first (:class:`LinkHandshake`), then sealed messages (:class:`Link`)."""

    __slots__ = (
        "beats_quiet",
        "counted_from",
        "handshake",
        "held",
        "hs_buf",
        "link",
        "links",
        "paused",
        "peer",
        "peer_hex",
        "running",
        "rx",
        "rx_seen",
        "throttled",
        "transport",
        "tx",
        "tx_seen",
        "unproven",
    )

    def __init__(self, links: NodeLinks, peer: _Peer | None) -> None:
        self.links = links
        self.peer = peer
        #: the other node's X25519 hex: known up front on our connections, proven by the
        #: handshake on theirs
        self.peer_hex = peer.x25519_hex if peer is not None else ""
        self.transport: asyncio.Transport | None = None
        self.handshake: LinkHandshake | None = None
        self.hs_buf = bytearray()
        self.link: Link | None = None
        self.paused = False  # the write buffer is over SEND_BUFFER_HIGH
        self.running = 0  # (a peer's connection to us) its requests running as tasks
        self.throttled = False  # not read for them (MAX_RUNNING) until half have ended
        #: messages read but not handled yet: they came in the read that throttled it
        self.held: list[list[bytes]] = []
        # messages in and out, and what the heartbeat timer saw of them at its last beat
        self.rx = self.tx = self.rx_seen = self.tx_seen = 0
        self.beats_quiet = 0  # heartbeat intervals in a row with nothing received
        self.unproven = peer is None  # a peer's connection before its first message opened
        #: the address a peer's connection to us is counted under while its handshake is
        #: under way (NodeLinks._handshakes), else None
        self.counted_from: str | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (a TCP transport; uvloop's does not derive from asyncio.Transport)
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=SEND_BUFFER_HIGH)
        links = self.links
        if links.closed:
            transport.abort()
            return
        if self.peer is None and not links._admit_handshake(self, transport):
            transport.abort()
            return
        links._conns.add(self)
        try:
            if self.peer is not None:
                self.handshake = LinkHandshake.initiator(links._secret, self.peer.public)
                transport.write(self.handshake.write())
            else:
                self.handshake = LinkHandshake.responder(links._secret)
        except _FRAME_ERRORS as e:  # (a peer key of the wrong size: the list checks them)
            log.warning("cannot open a node link: %s", e)
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.links._conns.discard(self)
        self.links._handshake_over(self)
        if self.link is not None and self.peer is not None:
            self.links._unanswerable(self)  # (their answers could only come by this connection)
        self.link = None
        if self.peer is not None:
            self.links._lost(self.peer, self)

    def pause_writing(self) -> None:
        self.paused = True
        # A peer's connection: our replies pile up unread. Read no more of its requests until
        # it takes them, so a peer that sends and never reads holds no more than
        # SEND_BUFFER_HIGH (plus the requests already running) of our memory.
        self._reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.peer is not None:
            self.peer.wake()
            return
        self._reading()

    def _reading(self) -> None:
        """Read a peer's connection to us, or not: not while our answers to it pile up unread
        (``paused``) nor while MAX_RUNNING of its requests run (until half of them ended)."""
        t = self.transport
        if self.peer is not None or t is None or t.is_closing():
            return
        n = self.running
        self.throttled = n >= MAX_RUNNING or (self.throttled and n > MAX_RUNNING // 2)
        if not self.throttled and self.held:
            held, self.held = self.held, []
            self._handle(held)  # (may throttle it again: the rest is held again)
        if self.paused or self.throttled or self.held:
            t.pause_reading()
        else:
            t.resume_reading()

    def request_started(self) -> None:
        self.running += 1
        if self.running >= MAX_RUNNING:
            self._reading()

    def request_ended(self, _: object) -> None:
        self.running -= 1
        if self.throttled:
            self._reading()

    def data_received(self, data: bytes) -> None:
        link = self.link
        if link is None:
            self._handshake_data(data)
            return
        try:
            msgs = link.feed(data)
        except _FRAME_ERRORS as e:
            self._broken(e)
            return
        self.rx += 1
        if self.unproven and msgs:
            self._proven()
        if self.held:  # (read before reading paused: behind the ones held)
            self.held.extend(msgs)
            return
        self._handle(msgs)

    def _handle(self, msgs: list[list[bytes]]) -> None:
        """Hand each message to its handler, in order; once the connection is throttled
        (MAX_RUNNING requests running), the rest are held until it is not (:meth:`_reading`)."""
        on_msg = self.links._on_reply if self.peer is not None else self.links._on_request
        for i, parts in enumerate(msgs):
            if self.throttled:
                self.held = msgs[i:]
                return
            if not parts:
                continue  # a heartbeat
            try:
                on_msg(self, parts)
            except Exception:
                # Bug guard, deliberately broad: the handlers check what a peer sends, so only
                # a bug of ours lands here, and the messages after it on this connection must
                # still be handled. Logged with its traceback; the root handler's rate limit
                # (service.logs.RateLimitFilter) keeps a repeated one to a trickle.
                log.exception("bug: a link message handler failed")

    # -- handshake
    def _handshake_data(self, data: bytes) -> None:
        hs = self.handshake
        if hs is None or self.transport is None:
            return  # (authorizing: the peer must wait for our answer before sending more)
        buf = self.hs_buf
        buf += data
        if len(buf) < 4:
            return
        n = int.from_bytes(buf[:4], "big")
        if n > MAX_HANDSHAKE:
            self._broken(InvalidInput("a handshake frame too large"))
            return
        if len(buf) < 4 + n:
            return
        message, rest = bytes(buf[4 : 4 + n]), bytes(buf[4 + n :])
        buf.clear()
        try:
            hs.read(message)
        except _FRAME_ERRORS as e:
            self._broken(e)
            return
        if self.peer is not None:  # ours: the listener answered, the link is up
            self._established(hs, rest)
            return
        key = hs.remote_static
        assert key is not None  # (IK: the first message carries it)
        self.handshake = None  # (until admitted: anything sent meanwhile is out of turn)
        self.links._spawn(self._admit(hs, key, rest))

    async def _admit(self, hs: LinkHandshake, key: bytes, rest: bytes) -> None:
        """A peer's handshake: answer it when ``authorize`` knows its key, else close."""
        ok = False
        try:
            ok = await self.links.authorize(key)
        finally:  # a failing callback (a bug: it is logged by the task) refuses the key
            if not ok:
                if not self.links.closed:  # (closing cancelled the look-up: no refusal)
                    self.links.auth_denied += 1
                    log.info("refused a node link from an unregistered key")
                if self.transport is not None:
                    self.transport.close()
        if self.transport is None or self.transport.is_closing():
            return
        self.peer_hex = key.hex()
        self.transport.write(hs.write())
        self._established(hs, rest)

    def _proven(self) -> None:
        """The first message opened on a peer's connection to us: the peer holds the keys of
        this connection (a replayed handshake message completes a handshake, but what follows
        it never opens). The peer dials us again only once its earlier connection is gone on
        its side (it keeps one per peer), so an older one of its key still open here is dead
        and would hold its buffers until our heartbeats noticed: closed. One connection per
        key."""
        self.unproven = False
        for c in list(self.links._conns):
            if c is not self and c.peer is None and c.peer_hex == self.peer_hex:
                c.close()

    def _established(self, hs: LinkHandshake, rest: bytes) -> None:
        self.handshake = None
        self.links._handshake_over(self)
        self.beats_quiet = 0  # (the beats the handshake took are not the link's silence)
        try:
            self.link = hs.into_link()
        except _FRAME_ERRORS as e:
            self._broken(e)
            return
        if self.peer is not None:
            self.links._link_up(self.peer, self)
        if rest:
            self.data_received(rest)

    def _broken(self, e: Exception) -> None:
        """The other side sent what no node link sends: close this connection only."""
        log.warning("closed a node link that sent a bad frame: %s", e)
        self.close()

    # -- sending
    def send(self, parts: list[bytes]) -> bool:
        """Seal and write one message; False when the link is not up (or is closing). Raises
        :class:`LinkError` for a message larger than a link carries."""
        link, transport = self.link, self.transport
        if link is None or transport is None or transport.is_closing():
            return False
        try:
            frame = link.seal(parts)
        except InvalidInput as e:
            raise LinkError(str(e)) from None
        transport.write(frame)
        self.tx += 1
        return True

    def beat(self) -> None:
        """The heartbeat timer's visit: a heartbeat when nothing was sent since the last
        beat; closed after HEARTBEAT_TIMEOUT_BEATS beats in a row with nothing received; a
        handshake that takes longer than CONNECT_WAIT (counted in beats) is abandoned too."""
        if self.rx != self.rx_seen:
            self.rx_seen = self.rx
            self.beats_quiet = 0
        elif (self.paused or self.throttled) and self.peer is None:
            # We stopped reading it (pause_writing, or its requests running): its silence is
            # ours. A peer that never takes its answers holds this connection's buffer until
            # TCP gives up on it.
            self.beats_quiet = 0
        else:
            self.beats_quiet += 1
        if self.link is None:
            if self.beats_quiet > CONNECT_WAIT / HEARTBEAT_IVL:
                self.close()  # (a port that accepts TCP and says nothing)
            return
        if self.beats_quiet >= HEARTBEAT_TIMEOUT_BEATS:
            log.info("node link to %s… silent: closed", self.peer_hex[:12])
            self.close()
            return
        if self.tx == self.tx_seen:
            self.send([])
        self.tx_seen = self.tx

    def close(self) -> None:
        """Drop this connection at once (what is unsent is dropped too)."""
        if self.transport is not None:
            self.transport.abort()


class _Peer:
    """Our connection to one peer (made again when it drops, while the peer is ours to reach)."""

    __slots__ = (
        "address",
        "backoff",
        "behind",
        "closed",
        "conn",
        "dialing",
        "host",
        "port",
        "public",
        "redial",
        "waiters",
        "x25519_hex",
    )

    def __init__(self, x25519_hex: str, address: str) -> None:
        self.x25519_hex = x25519_hex
        self.public = bytes.fromhex(x25519_hex)
        self.address = address
        self.host, self.port = parse_address(address)
        self.conn: _Conn | None = None  # the connection whose handshake completed
        self.closed = False  # dropped (disconnect, close): no more dialling
        #: the last send to this peer that had to wait for the link (its turn: NodeLinks._send,
        #: _send_later), until it is over: later sends go behind it, so messages to a peer
        #: leave in the order made
        self.behind: asyncio.Future[None] | None = None
        self.dialing: asyncio.Task[Any] | None = None
        self.redial: asyncio.TimerHandle | None = None
        self.backoff = RECONNECT_MIN
        #: sends waiting for the link to come up or take more (woken on either)
        self.waiters: list[asyncio.Future[None]] = []

    @property
    def connected(self) -> bool:
        """A handshake completed and that connection still stands."""
        return self.conn is not None

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.redial is not None:
            self.redial.cancel()
        if self.dialing is not None:
            self.dialing.cancel()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.wake()


class Answer:
    """The way back to one peer's waiting request, given to a direct handler
    (:attr:`NodeLinks.direct`). The handler must end the request exactly once: :meth:`result`,
    :meth:`forward` (a reply body already packed, e.g. a next node's reply passed back
    unchanged), or :meth:`run` (hand the rest to a coroutine, as an ordinary handler)."""

    __slots__ = ("_links", "_rid", "_route", "peer")

    def __init__(self, links: NodeLinks, route: _Conn, rid: bytes, peer: str) -> None:
        self._links = links
        self._route = route
        self._rid = rid
        #: the asking peer's X25519 hex (the key its link's handshake proved)
        self.peer = peer

    def result(self, value: Any) -> None:
        """Answer with ``value`` (packed like an ordinary handler's result)."""
        self._links._reply(self._route, _REPLY, self._rid, pack_body(value))

    def forward(self, frames: list[bytes]) -> None:
        """Answer with frames that are already a packed reply body (:func:`pack_body`)."""
        self._links._reply(self._route, _REPLY, self._rid, frames)

    def fail(self, e: Exception) -> None:
        """Answer as an ordinary handler that raised ``e`` is answered (a refusal's sentence;
        a bug "internal error", its traceback logged)."""
        self.run(_raising(e))

    def guard(self, handler: Callable[..., None], *args: Any) -> None:
        """Run ``handler(*args)``, which ends this request now or later. The one supervisor of
        code that answers through an Answer outside any task (a direct handler as its request
        arrives, the relay's peel callback): what escapes it is answered as an ordinary
        handler's error is (:meth:`fail`), and the caller (the link, the peel pool) goes on
        with its next message. Were the request already answered, the peer drops the second
        answer as late."""
        try:
            handler(*args)
        except Exception as e:
            # Bug guard, deliberately broad: the handlers answer every refusal themselves, so
            # only a bug of ours lands here, and what it raises is not known in advance.
            self.fail(e)

    def hold(self) -> Callable[[object], None]:
        """Count this request as running on its peer's connection (:data:`MAX_RUNNING`: that
        connection is read no further while too many run) until the returned release is
        called: a send made for it that waits for another peer's link (the relay's next
        node), as a coroutine handler waiting for the same would count."""
        self._route.request_started()
        return self._route.request_ended

    def run(self, result: Awaitable[Any]) -> asyncio.Task[Any]:
        """Answer with what the awaitable returns, run as a task with an ordinary handler's
        error handling (refusals answered with their sentence). Returns the task (its done
        callbacks run however it ends, cancelled before its first step included)."""
        t = self._links._run_request(result, self.peer, self._route, self._rid)
        if isinstance(result, Coroutine):  # cancelled before its first step: never awaited
            t.add_done_callback(lambda _: result.close())
        return t


async def _raising(e: Exception) -> Any:
    """``e``, raised where :meth:`NodeLinks._serve` answers it."""
    raise e


#: A direct handler: ``handler(peer_x25519_hex, body, answer)``, called on the loop as the
#: request arrives; it answers through ``answer`` now or later (see :class:`Answer`).
DirectHandler = Callable[[str, Any, Answer], None]


class NodeLinks:
    """The node's link endpoint: a TCP listener for peers' requests, a connection to each peer
    we send requests to.

    ``handlers`` maps a kind (``KIND_*``) to ``async handler(peer_x25519_hex, body) -> reply``;
    ``direct`` maps a kind to a :data:`DirectHandler` (taking precedence over ``handlers``):
    no task per request, for the relay's hot path. ``authorize(x25519_public)`` decides whether
    a connecting node's key (proven by its handshake) is a registered node.
    """

    def __init__(
        self,
        *,
        public_x25519: bytes,
        secret_x25519: bytes,
        handlers: dict[bytes, Handler],
        authorize: Authorizer,
        request_timeout: float = 30.0,
        on_peer_up: Callable[[str], None] | None = None,
        direct: dict[bytes, DirectHandler] | None = None,
    ) -> None:
        if len(public_x25519) != 32 or len(secret_x25519) != 32:
            raise ValueError("link keys are 32 bytes")
        self._secret = secret_x25519
        self.public_hex = public_x25519.hex()
        self.handlers = handlers
        self.direct: dict[bytes, DirectHandler] = direct if direct is not None else {}
        self.authorize = authorize
        self.request_timeout = request_timeout
        self._server: asyncio.Server | None = None
        #: every open connection, both directions (the heartbeat timer visits them)
        self._conns: set[_Conn] = set()
        self._beat_handle: asyncio.TimerHandle | None = None
        self._peers: dict[str, _Peer] = {}
        #: X25519 hex -> liveness of peers we sent requests to (see :class:`PeerHealth`).
        self.health: dict[str, PeerHealth] = {}
        #: called with a peer's X25519 hex when it answers again after being down
        self.on_peer_up = on_peer_up
        #: called with the kind of every request handed to its handler (metrics)
        self.on_served: Callable[[bytes], None] | None = None
        #: request id -> (its future or reply callback, its timeout, the peer's X25519 hex,
        #: the connection it was sent on: its answer comes by that one or never)
        self._pending: dict[int, _Waiting] = {}
        #: timeout -> {request id: deadline}, in sending order, so in deadline order
        self._deadlines: dict[float, dict[int, float]] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.closed = False
        # counters read by metrics
        self.sent = 0
        self.received = 0
        self.timeouts = 0
        self.auth_denied = 0
        #: connections to us closed as they opened: too many handshakes under way
        self.handshakes_refused = 0
        #: ... and because their address opens them too fast
        self.connections_too_fast = 0
        #: connections to us whose handshake is under way, by the address they come from
        #: (by client_key, as the new connections per address)
        self._handshakes: dict[str, int] = {}
        self._openings = RateLimiter(NEW_CONNECTIONS_PER_SECOND, NEW_CONNECTIONS_BURST)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the port."""
        loop = self._loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Conn(self, None), host, port, reuse_address=True
            )
        except OSError as e:  # a port in use or an address not on this machine
            raise ConfigError(
                f"cannot listen for node links on {host} port {port} (network.zmq_port): "
                f"{e.strerror or e}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._beat_handle = loop.call_later(HEARTBEAT_IVL, self._beat)
        return self.port

    async def close(self) -> None:
        """Fail waiting requests, close every connection, and return once the request tasks
        it cancels have ended (so what the node closes next, its store, is no handler's)."""
        if self.closed:
            return
        self.closed = True
        pending, self._pending = self._pending, {}
        self._deadlines.clear()
        for handle in (self._sweep_handle, self._beat_handle):
            if handle is not None:
                handle.cancel()
        self._sweep_handle = self._beat_handle = None
        for waiter, _, _, _ in pending.values():
            _fail(waiter, LinkError("link closed"))
        for t in list(self._tasks):
            t.cancel()
        for p in self._peers.values():
            p.close()
        self._peers.clear()
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            c.close()
        self._conns.clear()
        if self._server is not None:
            await self._server.wait_closed()
        # (the task closing the links, were it one of theirs, is not waited for)
        await cancel_and_wait(t for t in list(self._tasks) if t is not asyncio.current_task())

    def _admit_handshake(self, conn: _Conn, transport: asyncio.Transport) -> bool:
        """Whether a peer's new connection to us may start its handshake (the limits of
        :data:`MAX_HANDSHAKES`); counted until its handshake is over (:meth:`_handshake_over`)."""
        peername = transport.get_extra_info("peername")
        addr = client_key(str(peername[0])) if isinstance(peername, tuple) and peername else "?"
        counts = self._handshakes
        if (
            sum(counts.values()) >= MAX_HANDSHAKES
            or counts.get(addr, 0) >= MAX_HANDSHAKES_PER_ADDRESS
        ):
            self.handshakes_refused += 1
            log.warning("refused a node link: too many handshakes under way")
            return False
        if not self._openings.allow(addr):
            self.connections_too_fast += 1
            log.warning("refused a node link: its address opens connections too fast")
            return False
        counts[addr] = counts.get(addr, 0) + 1
        conn.counted_from = addr
        return True

    def _handshake_over(self, conn: _Conn) -> None:
        """``conn``'s handshake ended (done, or the connection closed): no longer counted."""
        addr, conn.counted_from = conn.counted_from, None
        if addr is None:
            return
        n = self._handshakes[addr] - 1
        if n:
            self._handshakes[addr] = n
        else:
            del self._handshakes[addr]

    def _beat(self) -> None:
        """The one heartbeat timer (see :meth:`_Conn.beat`)."""
        assert self._loop is not None
        for c in list(self._conns):
            c.beat()
        self._beat_handle = self._loop.call_later(HEARTBEAT_IVL, self._beat)

    # ------------------------------------------------------------------ server side
    def _on_request(self, route: _Conn, parts: list[bytes]) -> None:
        """A message on a peer's connection to us: a request ``[kind, id, body, *bulk]``."""
        if len(parts) < 3:
            return  # not our framing: drop
        k, rid, body, *bulk = parts
        self.received += 1
        direct = self.direct.get(k)
        handler = self.handlers.get(k) if direct is None else None
        peer = route.peer_hex
        if peer in self.health:
            self._answered(peer)  # a peer that talks to us is up (e.g. restarted and syncing)
        if handler is None and direct is None:
            self._reply(route, _ERROR, rid, [b"unknown kind"])
            return
        try:
            obj = unpack_body(body, bulk)
        except MSGPACK_ERRORS:
            self._reply(route, _ERROR, rid, [b"bad msgpack"])
            return
        if self.on_served is not None:
            self.on_served(k)
        if direct is not None:
            answer = Answer(self, route, rid, peer)
            answer.guard(direct, peer, obj, answer)  # (no task: errors answered as _serve's)
            return
        assert handler is not None
        self._run_request(handler(peer, obj), peer, route, rid)

    def _run_request(
        self, result: Awaitable[Any], peer: str, route: _Conn, rid: bytes
    ) -> asyncio.Task[Any]:
        """A peer's request as a task (:meth:`_serve`), counted on its connection while it
        runs (:data:`MAX_RUNNING`)."""
        t = self._spawn(self._serve(result, peer, route, rid))
        route.request_started()
        t.add_done_callback(route.request_ended)
        return t

    async def _serve(self, result: Awaitable[Any], peer: str, route: _Conn, rid: bytes) -> None:
        """Run one request (``result``: the handler's awaitable); the peer always gets an answer
        (its waiting future is ours to end): the packed result, the refusal's sentence, or
        "internal error" when a bug escapes the handler (the bug goes on to the task's log).
        One coroutine per request."""
        tag, body = _ERROR, [b"internal error"]
        try:
            value = await result
        except (ValueError, TypeError) as e:
            # A request the handler refused (malformed, or not for us): the peer gets the
            # sentence; one log line, no traceback.
            log.info("refused a %s link request from %s…: %s", type(e).__name__, peer[:12], e)
            body = [str(e).encode()[:200]]
        except StorageError as e:  # our store failed: the peer gets the sentence too
            log.warning("a link request from %s… failed in the store: %s", peer[:12], e)
            body = [str(e).encode()[:200]]
        else:
            tag, body = _REPLY, pack_body(value)
        finally:
            self._reply(route, tag, rid, body)

    def _reply(self, route: _Conn, tag: bytes, rid: bytes, body: list[bytes]) -> None:
        """Answer on the connection the request came by (gone: the asker is gone too)."""
        if self.closed:
            return
        try:
            route.send([tag, rid, *body])
        except LinkError as e:  # (a reply larger than a link carries: the asker gets why)
            log.warning("could not send a link reply: %s", e)
            route.send([_ERROR, rid, b"reply too large for a link"])

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a request's task; a bug that escapes it is logged with its traceback when it
        ends (the root handler's rate limit keeps a repeated one to a trickle)."""
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        _log_task_failure(t)

    # ------------------------------------------------------------------ client side
    def _peer(self, x25519_hex: str, address: str) -> _Peer:
        p = self._peers.get(x25519_hex)
        if p is not None and p.address == address:
            return p
        if p is not None:  # the node moved: reconnect
            self.disconnect(x25519_hex)
        p = _Peer(x25519_hex, address)  # (LinkUnreachable for an address not tcp://IP:port)
        self._peers[x25519_hex] = p
        self._dial(p)
        return p

    def _dial(self, p: _Peer) -> None:
        p.redial = None
        if p.closed or self.closed:
            return
        p.dialing = self._spawn(self._connect(p))

    async def _connect(self, p: _Peer) -> None:
        """One attempt to connect to the peer; on failure the next is scheduled (back-off).
        An attempt that gets no answer within CONNECT_WAIT (SYNs dropped: a partition) is
        abandoned too, so a peer that answers again is reached within the back-off, not at
        the kernel's next SYN retry (up to a minute apart)."""
        assert self._loop is not None
        try:
            _, conn = await asyncio.wait_for(
                self._loop.create_connection(lambda: _Conn(self, p), p.host, p.port), CONNECT_WAIT
            )
        except OSError:  # (TimeoutError included)
            p.dialing = None
            self._redial(p)  # (refused, unreachable: the peer's health learns it from requests)
            return
        finally:
            p.dialing = None
        if conn not in self._conns:
            # Lost before this dial returned (closed the moment it was accepted, or its
            # handshake could not start): its _lost found the dial still under way and left
            # the next one to it.
            self._redial(p)

    def _redial(self, p: _Peer) -> None:
        if p.closed or self.closed or p.redial is not None or p.dialing is not None:
            return
        assert self._loop is not None
        p.redial = self._loop.call_later(p.backoff, self._dial, p)
        p.backoff = min(RECONNECT_MAX, p.backoff * 2)

    def _link_up(self, p: _Peer, conn: _Conn) -> None:
        """Our connection to a peer completed its handshake: the peer is up."""
        if p.closed or self._peers.get(p.x25519_hex) is not p:
            conn.close()  # a link already replaced or dropped
            return
        if p.conn is not None and p.conn is not conn:
            p.conn.close()
        p.conn = conn
        p.backoff = RECONNECT_MIN
        self._answered(p.x25519_hex)
        p.wake()

    def _lost(self, p: _Peer, conn: _Conn) -> None:
        """One of our connections to a peer closed: when it was the peer's link, the peer is
        down at once (its process or host closed it, or it went silent); dial again."""
        if p.conn is conn:
            p.conn = None
            if not p.closed and self._peers.get(p.x25519_hex) is p:
                log.info("link to %s… closed", p.x25519_hex[:12])
                self.mark_down(p.x25519_hex)
        if not p.closed and p.conn is None:
            self._redial(p)

    def disconnect(self, x25519_hex: str) -> None:
        """Drop the link to a peer (it left the network)."""
        p = self._peers.pop(x25519_hex, None)
        self.health.pop(x25519_hex, None)
        if p is not None:
            p.close()

    def peers(self) -> list[str]:
        return list(self._peers)

    # ------------------------------------------------------------------ peer health
    def is_down(self, x25519_hex: str) -> bool:
        """Whether the last request to this peer failed (unreachable or no answer in time)."""
        h = self.health.get(x25519_hex)
        return h is not None and h.down

    def mark_down(self, x25519_hex: str) -> None:
        """Record a failure seen by a caller (e.g. a write deadline that passed unanswered)."""
        assert self._loop is not None
        self.health.setdefault(x25519_hex, PeerHealth()).failed(self._loop.time())

    def due_for_probe(self) -> list[str]:
        """Down peers whose back-off has elapsed (the caller pings them)."""
        if self._loop is None:
            return []
        now = self._loop.time()
        return [x for x, h in self.health.items() if h.down and h.next_probe <= now]

    def _answered(self, x25519_hex: str) -> None:
        h = self.health.get(x25519_hex)
        if h is None:
            self.health[x25519_hex] = PeerHealth()
        elif h.answered() and self.on_peer_up is not None:
            log.info("peer %s… answers again", x25519_hex[:12])
            self.on_peer_up(x25519_hex)

    def _on_reply(self, conn: _Conn, msg: list[bytes]) -> None:
        """A message on our connection to a peer: an answer ``[tag, id, body, *bulk]``."""
        if len(msg) < 3:
            return
        tag, rid, body, *bulk = msg
        try:
            (n,) = struct.unpack("<Q", rid)
        except struct.error:
            return
        entry = self._pending.get(n)
        if entry is None or entry[3] is not conn:
            return  # late (after a timeout), or not a request sent on this connection
        self._settle(n)
        waiter, _, peer, _ = entry
        if isinstance(waiter, asyncio.Future):
            if waiter.done():
                return
            if tag == _REPLY:
                try:
                    waiter.set_result(unpack_body(body, bulk))
                except MSGPACK_ERRORS as e:
                    waiter.set_exception(LinkError(f"bad reply: {e}"))
            else:
                waiter.set_exception(LinkError(body.decode("utf-8", "replace")))
            return
        self._answered(peer)  # a reply, even an error reply: the peer is alive
        _call_back(
            waiter, (body, bulk) if tag == _REPLY else LinkError(body.decode("utf-8", "replace"))
        )

    # ------------------------------------------------------------------ deadlines
    def _wait(self, n: int, waiter: asyncio.Future[Any] | OnReply, p: _Peer, limit: float) -> None:
        """Register request ``n``, just sent on ``p``'s connection, as waiting for its reply
        until ``limit`` seconds from now (or until that connection closes)."""
        assert self._loop is not None and p.conn is not None
        deadline = self._loop.time() + limit
        self._pending[n] = (waiter, limit, p.x25519_hex, p.conn)
        queue = self._deadlines.get(limit)
        if queue is None:
            queue = self._deadlines[limit] = {}
        queue[n] = deadline
        if deadline + DEADLINE_SLACK < self._sweep_at:
            self._schedule_sweep(deadline + DEADLINE_SLACK)

    def _settle(self, n: int) -> _Waiting | None:
        """Request ``n`` is over (answered, failed or abandoned): forget it; its entry, or None
        when it was already over."""
        entry = self._pending.pop(n, None)
        if entry is not None:
            queue = self._deadlines.get(entry[1])
            if queue is not None:
                queue.pop(n, None)
        return entry

    def _unanswerable(self, conn: _Conn) -> None:
        """Our connection ``conn`` closed: the requests sent on it can no longer be answered
        (a reply comes back by the connection its request took), so they fail now, as
        unreachable, instead of each waiting out its timeout."""
        lost = [n for n, entry in self._pending.items() if entry[3] is conn]
        for n in lost:
            entry = self._settle(n)
            if entry is not None:  # (a callback failed before may have ended it)
                _fail(entry[0], LinkUnreachable(f"the link to {entry[2][:16]}... closed"))

    def _schedule_sweep(self, when: float) -> None:
        assert self._loop is not None
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        self._sweep_at = when
        self._sweep_handle = self._loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """The one deadline timer: fail every request past its deadline, then sleep until the
        earliest remaining one. Requests with the same timeout expire in sending order, so
        only the head of each timeout's queue is looked at beyond the expired ones."""
        assert self._loop is not None
        self._sweep_handle = None
        self._sweep_at = math.inf
        now = self._loop.time()
        expired: list[int] = []
        for queue in self._deadlines.values():
            for n, deadline in queue.items():
                if deadline > now:
                    break
                expired.append(n)
        for n in expired:
            entry = self._settle(n)
            if entry is None:
                continue
            waiter, limit, peer, _ = entry
            self.timeouts += 1
            # No mark-down: a slow peer is not a dead one. A peer that stopped answering
            # altogether loses its connection by heartbeat, and that event marks it down.
            _fail(waiter, LinkTimeout(f"no answer from {peer[:16]}... within {limit}s"))
        for limit in [t for t, queue in self._deadlines.items() if not queue]:
            del self._deadlines[limit]
        earliest = min((next(iter(q.values())) for q in self._deadlines.values()), default=None)
        if earliest is not None and earliest + DEADLINE_SLACK < self._sweep_at:
            self._schedule_sweep(earliest + DEADLINE_SLACK)

    async def request(
        self, x25519_hex: str, address: str, kind: bytes, body: Any, timeout: float | None = None
    ) -> Any:
        """Send ``body`` to the peer and wait for its reply (``LinkTimeout`` after ``timeout``)."""
        if self.closed:
            raise LinkError("link closed")
        p = self._peer(x25519_hex, address)
        n = next(self._ids)
        frames = [kind, struct.pack("<Q", n), *pack_body(body)]
        limit = timeout or self.request_timeout
        if not self._send_now(p, frames):
            await self._send(p, frames, min(CONNECT_WAIT, limit))
        # Registered only once sent (no await since): close() fails only awaited futures.
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._wait(n, fut, p, limit)
        self.sent += 1
        try:
            reply = await fut
        except (LinkTimeout, LinkUnreachable):
            raise  # no mark-down (see _sweep), nor up (its connection closed: marked down)
        except LinkError:
            self._answered(x25519_hex)  # an error reply: the peer is alive
            raise
        finally:
            self._settle(n)  # (already done unless this request was cancelled)
        self._answered(x25519_hex)
        return reply

    def send_request(
        self,
        x25519_hex: str,
        address: str,
        kind: bytes,
        body: Any,
        timeout: float | None,
        on_reply: OnReply,
        held_by: Answer | None = None,
    ) -> bool:
        """:meth:`request` with its reply to a callback, for the relay's hot path. True: the
        request is taken, and the reply (its raw body and bulk parts), or the
        :class:`LinkError` that ends the request (:class:`LinkTimeout` after ``timeout``,
        :class:`LinkUnreachable` when no connection comes, an error reply), goes to
        ``on_reply`` exactly once. A link that takes it at once sends it now, with no task;
        otherwise its turn among the peer's sends is kept at once and a task sends it when
        the link can (:meth:`_send_later`; ``held_by``: the request of another peer's that
        this one is made for, counted as running on its connection while this one waits,
        :meth:`Answer.hold`). False, nothing sent: the links are closed, the address is not
        one, or the body is larger than a connected link carries; the caller uses
        :meth:`request`, which fails with the reason."""
        return self.send_packed(
            x25519_hex, address, kind, pack_body(body), timeout, on_reply, held_by
        )

    def send_packed(
        self,
        x25519_hex: str,
        address: str,
        kind: bytes,
        frames: list[bytes],
        timeout: float | None,
        on_reply: OnReply,
        held_by: Answer | None = None,
    ) -> bool:
        """:meth:`send_request` for a body already packed (``frames``: what :func:`pack_body`
        makes of it), so that one body sent to several peers is packed once."""
        if self.closed:
            return False
        try:
            p = self._peer(x25519_hex, address)
        except LinkUnreachable:
            return False  # (request() fails with it, as the caller's answer)
        n = next(self._ids)
        frames = [kind, struct.pack("<Q", n), *frames]
        limit = timeout or self.request_timeout
        try:
            if not self._send_now(p, frames):
                self._send_later(p, n, frames, limit, on_reply, held_by)
                return True
        except LinkError:
            return False  # (too large: request() fails with it, as the caller's answer)
        self._wait(n, on_reply, p, limit)
        self.sent += 1
        return True

    def _send_later(
        self,
        p: _Peer,
        n: int,
        frames: list[bytes],
        limit: float,
        on_reply: OnReply,
        held_by: Answer | None,
    ) -> None:
        """Request ``n``, which the link to ``p`` cannot take now (not connected yet, full,
        or an earlier send still waiting), sent by a task once it can; its turn among the
        peer's sends is kept now, before this returns, so a send made later, even in this
        same loop turn, never leaves before it (:meth:`_send`). A failure to send, or the
        links closing first, goes to ``on_reply``."""
        turn = self._take_turn(p)
        release = held_by.hold() if held_by is not None else None

        async def send() -> None:
            await self._send_on_turn(p, turn, frames, min(CONNECT_WAIT, limit))
            self._wait(n, on_reply, p, limit)  # (sent: no await since, the link still up)
            self.sent += 1

        def ended(task: asyncio.Task[None]) -> None:
            _end_turn(p, turn)  # (a task cancelled before its first step never ran send)
            if release is not None:
                release(None)
            if task.cancelled():
                _fail(on_reply, LinkError("link closed"))
                return
            e = task.exception()
            if isinstance(e, LinkError):
                _fail(on_reply, e)
            elif e is not None:  # a bug: logged with its traceback (_task_done); still ended
                _fail(on_reply, LinkError("the request could not be sent"))

        self._spawn(send()).add_done_callback(ended)

    def _send_now(self, p: _Peer, frames: list[bytes]) -> bool:
        """The common case without a coroutine: a connected link that takes the message at
        once (True). False: the caller waits its turn (:meth:`_send`, :meth:`_send_later`)."""
        c = p.conn
        if c is None or c.paused or p.behind is not None or self.closed:
            return False
        return c.send(frames)

    async def _send(self, p: _Peer, frames: list[bytes], wait: float) -> None:
        """Queue ``frames`` on the peer's link, waiting up to ``wait`` seconds for a completed
        connection (:class:`LinkUnreachable` after that, and the peer is marked down).

        Messages to one peer leave in the order they were made: this one goes after any
        earlier send still waiting here (each waits its turn, then its own ``wait``), and
        while it waits, later sends wait behind it instead of leaving at once
        (:meth:`_send_now`). A forwarded write that found the link not yet connected is never
        overtaken by a later write of the same account sent once the link is up."""
        await self._send_on_turn(p, self._take_turn(p), frames, wait)

    def _take_turn(self, p: _Peer) -> _Turn:
        """A place in the line of sends to ``p`` that wait for its link: after the last one
        (which is returned with it), before any made later (:meth:`_send_now` sends nothing
        while one waits)."""
        assert self._loop is not None
        prev, mine = p.behind, self._loop.create_future()
        p.behind = mine
        return prev, mine

    async def _send_on_turn(self, p: _Peer, turn: _Turn, frames: list[bytes], wait: float) -> None:
        """:meth:`_send_in_turn` once the sends before ``turn`` are over; the turn ends with
        it, however it ends."""
        prev = turn[0]
        try:
            if prev is not None:
                # (asyncio.wait: neither raises prev's outcome nor cancels prev when this
                # request is cancelled)
                await asyncio.wait([prev])
            await self._send_in_turn(p, frames, wait)
        finally:
            _end_turn(p, turn)

    async def _send_in_turn(self, p: _Peer, frames: list[bytes], wait: float) -> None:
        """:meth:`_send` once every earlier waiting send to the peer is over."""
        assert self._loop is not None
        if not p.connected and self.is_down(p.x25519_hex):
            # Known down and not connected: fail at once instead of waiting CONNECT_WAIT for
            # every request. The link keeps reconnecting on its own (every ≤ 0.5 s), and the
            # handshake of a peer that is back marks it up before anyone has to ask.
            raise LinkUnreachable(f"{p.x25519_hex[:16]}... is down (no connection)")
        deadline = self._loop.time() + wait
        while True:
            if self.closed:
                raise LinkError("link closed")
            if p.closed:  # dropped by disconnect() while this request waited
                raise LinkUnreachable(f"the link to {p.x25519_hex[:16]}... was dropped")
            c = p.conn
            if c is not None and not c.paused and c.send(frames):
                return
            # No completed connection yet (a new link still handshaking, or the peer is
            # down) or its buffer is full: wait until that changes, bounded.
            left = deadline - self._loop.time()
            if left <= 0:
                if p.connected:  # (up, but its send buffer stayed full: a peer not reading)
                    raise LinkUnreachable(
                        f"the link to {p.x25519_hex[:16]}... took nothing more within "
                        f"{wait:.1f}s (the peer is not reading)"
                    )
                self.mark_down(p.x25519_hex)
                raise LinkUnreachable(f"no connection to {p.x25519_hex[:16]}... within {wait:.1f}s")
            woken: asyncio.Future[None] = self._loop.create_future()
            p.waiters.append(woken)
            try:
                await asyncio.wait([woken], timeout=left)
            finally:
                if woken in p.waiters:
                    p.waiters.remove(woken)


def _end_turn(p: _Peer, turn: _Turn) -> None:
    """A send's turn (:meth:`NodeLinks._take_turn`) is over: the next in line may go, but
    never before the one ahead of it (a send cancelled while it waited in line passes its
    place on only when the send before it is over). A turn is only ever waited on through
    asyncio.wait, so it is never cancelled; ending it twice is harmless."""
    prev, mine = turn
    if prev is not None and not prev.done():
        prev.add_done_callback(lambda _: _end_turn(p, (None, mine)))
        return
    if not mine.done():
        mine.set_result(None)
    if p.behind is mine:
        p.behind = None


def _fail(waiter: asyncio.Future[Any] | OnReply, e: LinkError) -> None:
    """End a waiting request with ``e`` (its future, or its reply callback). A callback that
    raises is logged and contained, so the deadline timer and :meth:`NodeLinks.close` go on
    to the other requests (and the timer is rescheduled)."""
    if isinstance(waiter, asyncio.Future):
        if not waiter.done():
            waiter.set_exception(e)
        return
    _call_back(waiter, e)


def _call_back(callback: OnReply, outcome: Any) -> None:
    """Give a request's reply callback its outcome (the reply, or the error). The one guard of
    reply callbacks, on every path that calls them (a reply, the deadline timer, closing): one
    that raises is logged and contained, so the link's read callback, the timer and close go
    on."""
    try:
        callback(outcome)
    except Exception as bug:
        # Bug guard, deliberately broad: a reply callback is our own code (the relay's), so
        # only a bug of ours lands here, and what it raises is not known in advance. Logged
        # with its type and where it was raised, not its message (which may carry request
        # bytes); the requests after it still end.
        tb = traceback.extract_tb(bug.__traceback__)
        where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
        log.error("bug: a link reply callback failed (%s at %s)", type(bug).__name__, where)


async def ping(
    links: NodeLinks, x25519_hex: str, address: str, version: str, timeout: float
) -> bool:
    """A ``ping`` to a peer carrying our node-list version; True when it answered in time
    (the reconciler's probes of down members and the reachability tests)."""
    try:
        await links.request(x25519_hex, address, KIND_PING, {"v": version}, timeout)
    except LinkError:
        return False
    return True
