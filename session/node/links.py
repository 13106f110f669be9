"""Node-to-node links: ZeroMQ with CURVE, msgpack payloads, request ids mapped to futures.

Every node binds one ROUTER socket (CURVE server, its X25519 key pair) and keeps one DEALER
socket (CURVE client, same key pair) per peer it talks to, connected once and reused. A
request travels DEALER → ROUTER as frames ``[kind, request_id, msgpack body, *bulk]``; the
answer comes back ROUTER → DEALER as ``[b"R" | b"E", request_id, body, *bulk]``. The request
id maps to a waiting future, so a relayed onion reply travels back without any crypto. Bulk
frames carry a body's large ``bytes`` values (a relayed onion frame, a file download's answer)
outside the msgpack (:func:`pack_body`): packing and unpacking 10 MB would copy it twice.

Authentication: the ROUTER runs a ZAP handler that accepts a CURVE client key only when the
``authorize`` callback says it belongs to a registered node; it stamps the peer's X25519 hex as
the ZMQ ``User-Id`` so handlers know who is asking.

The sockets are driven directly from the event loop (``add_reader`` on the ZMQ file
descriptor, non-blocking sends), which costs a few microseconds per message instead of the
tens that ``zmq.asyncio`` futures cost.

Hot path (a relayed onion layer, thousands a second): a kind can have a *direct* handler
(``NodeLinks.direct``), called synchronously with an :class:`Answer` instead of run as a task,
and :meth:`NodeLinks.send_request` sends a request whose reply goes to a callback instead of
a future. Request deadlines share one timer (:meth:`NodeLinks._sweep`) instead of one loop
timer per request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import struct
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgpack  # type: ignore[import-untyped]
import zmq
import zmq.backend
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from session.errors import ConfigError, StorageError
from session.service.tasks import log_failure

log = logging.getLogger("session.node.links")

#: Message kinds (first frame of a request).
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
_ZAP_ENDPOINT = "inproc://zeromq.zap.01"
MAX_MESSAGE = 10 * 1024 * 1024 + 64 * 1024
#: A top-level ``bytes`` value of a body dict at least this long travels as a bulk frame.
BULK_MIN = 64 * 1024
#: The body key that lists, in order, the keys whose values are the bulk frames.
BULK_KEY = "~"
# plain ints: pyzmq's enum arithmetic shows up in relay profiles
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = _NOBLOCK | int(zmq.SNDMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
#: pyzmq's Cython socket under its Python ``Socket``: the links call its ``send``/``recv``/``get``
#: directly (see :func:`_send_frames`).
_Backend: Any = zmq.backend.Socket
#: Connection events of our links to peers that change a peer's health.
_LINK_EVENTS = int(zmq.EVENT_HANDSHAKE_SUCCEEDED) | int(zmq.EVENT_DISCONNECTED)
#: How long a request waits for a link to a peer to be connected before failing.
CONNECT_WAIT = 3.0
#: Heartbeat of node links (ZMTP PING every second; no traffic for 3 s closes the connection).
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
#: How late past its deadline a request may be failed: deadlines are checked by one shared
#: timer, which fires at the earliest deadline plus this much (so close deadlines share a run).
DEADLINE_SLACK = 0.01
#: At most this many messages are handled per drain of a socket; the rest wait for the next
#: turn of the event loop, so a peer flooding its link cannot keep the loop in one drain
#: (HTTP clients, timers and the other links get their turn in between).
DRAIN_BATCH = 128

#: What ``msgpack.unpackb`` raises for bytes that are not one msgpack object (truncated input,
#: extra data, bad UTF-8 in a string, reserved codes, nesting too deep, a map key of a list).
MSGPACK_ERRORS: tuple[type[Exception], ...] = (ValueError, msgpack.UnpackException)

Handler = Callable[[str, Any], Awaitable[Any]]
#: What a request sent with :meth:`NodeLinks.send_request` gets: the reply's msgpack body and
#: bulk frames as they arrived, or the :class:`LinkError` that ended it.
RawReply = tuple[bytes, list[bytes]]
OnReply = Callable[["RawReply | LinkError"], None]
_log_task_failure = log_failure(log, "a link task")
Authorizer = Callable[[bytes], Awaitable[bool]]


def pack_body(body: Any) -> list[bytes]:
    """The frames of a request or reply body: its msgpack, then one bulk frame per top-level
    ``bytes`` value of at least :data:`BULK_MIN` bytes (their keys listed under
    :data:`BULK_KEY`), so a 10 MB onion frame is handed to ZeroMQ as it is."""
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


def _send_frames(sock: zmq.Socket, frames: list[Any]) -> None:
    """``sock.send_multipart(frames, NOBLOCK)`` without pyzmq's per-frame Python layer (a type
    check per frame, an enum ``|`` per frame, the sugar ``send``): ~2 µs a message, two messages
    per relayed layer. Raises ``zmq.Again`` like it when the message cannot be queued (ZeroMQ
    queues a multipart message whole or not at all: only the first frame can fail so)."""
    send = _Backend.send
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        send(sock, frame, _NOBLOCK_MORE if i < last else _NOBLOCK)


def _recv_frames(sock: zmq.Socket, copy: bool) -> list[Any]:
    """``sock.recv_multipart(NOBLOCK, copy=copy)`` through the Cython socket; raises
    ``zmq.Again`` when nothing is waiting. Frames are received as ``zmq.Frame`` and their
    ``more`` flag read from the frame: asking the socket for ``RCVMORE`` converts the option to
    pyzmq's enum in Python (~1 µs a frame, four or five frames a message)."""
    recv = _Backend.recv
    frame = recv(sock, _NOBLOCK, False)
    parts = [frame]
    while frame.more:
        frame = recv(sock, _NOBLOCK, False)
        parts.append(frame)
    if copy:
        return [f.bytes for f in parts]
    return parts


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


def _z85(key: bytes) -> bytes:
    if len(key) != 32:
        raise ValueError("CURVE keys are 32 bytes")
    return z85.encode(key)


class _Pump:
    """Drains one ZMQ socket from the event loop (ZMQ's FD is edge-triggered). One ``EVENTS``
    query first (~1 µs: most drains after a :meth:`kick` find nothing), then receives until the
    socket says ``EAGAIN``, which is how it tells that it has processed its pending commands and
    has no message left (so the FD signals again for the next one). ``EAGAIN`` costs ~3 µs
    (pyzmq raises ``zmq.Again``), once per drain; asking ``EVENTS`` before every message cost
    ~1 µs a message, and under load a drain finds ten or more.

    A drain handles at most :data:`DRAIN_BATCH` messages; with more waiting it schedules
    itself for the next loop turn (the FD will not signal again for messages already queued,
    so without that they would wait for the next edge).

    A :meth:`kick` during a drain of the same socket (a reply sent by a handler as the request
    arrives) schedules nothing: the drain receives again after the handler, until ``EAGAIN``,
    which is what a kicked drain would do (on a member answering a forwarded write, one
    scheduled callback and one ``EVENTS`` query per request fewer)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: zmq.Socket,
        on_msg: Callable[[list[Any]], None],
        copy: bool = True,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.on_msg = on_msg
        self.copy = copy
        self._scheduled = False
        self._draining = False
        self._kicked = False  # kick() was called during this drain
        self._closed = False
        loop.add_reader(sock.FD, self.drain)

    def kick(self) -> None:
        """After a send the FD may have swallowed a readiness edge: drain soon (unless this is
        a handler of this socket's drain, which receives again anyway: see the class)."""
        if self._draining:
            self._kicked = True
        elif not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.drain)

    def drain(self) -> None:
        self._scheduled = False
        if self._closed or self._draining:  # (a drain scheduled by kick() before close)
            return
        self._draining = True
        self._kicked = False
        rearmed = False
        try:
            rearmed = self._drain()
        finally:
            self._draining = False
            if self._kicked and not rearmed:  # (ended otherwise than on EAGAIN)
                self.kick()

    def _drain(self) -> bool:
        """Receive and handle; True when it ended with the socket saying it has nothing left
        (so its FD signals the next message)."""
        sock, copy, on_msg = self.sock, self.copy, self.on_msg
        try:
            if not _Backend.get(sock, _EVENTS) & _POLLIN:
                return True
            for _ in range(DRAIN_BATCH):
                try:
                    msg = _recv_frames(sock, copy)
                except zmq.Again:
                    return True
                try:
                    on_msg(msg)
                except Exception:
                    # Bug guard, deliberately broad: the handlers check what a peer sends, so
                    # only a bug of ours lands here, and this pump serves every peer (the FD is
                    # edge-triggered: what is queued behind an escaped error would wait for the
                    # next edge). Logged with its traceback; the root handler's rate limit
                    # (service.logs.RateLimitFilter) keeps a repeated one to a trickle.
                    log.exception("bug: a link message handler failed")
            self._scheduled = True  # a full batch: more may be waiting, go on next loop turn
            self.loop.call_soon(self.drain)
        except zmq.ZMQError as e:
            if e.errno != zmq.ENOTSOCK:
                log.warning("link socket error: %s", e)
        return False

    def close(self) -> None:
        self._closed = True
        try:
            self.loop.remove_reader(self.sock.FD)
        except (zmq.ZMQError, ValueError, OSError):
            pass


class _Peer:
    """Our DEALER to one peer, and its monitor (connection events drive the peer's health)."""

    __slots__ = (
        "address",
        "behind",
        "connected",
        "monitor",
        "monitor_pump",
        "pump",
        "sock",
        "x25519_hex",
    )

    def __init__(self, x25519_hex: str, sock: zmq.Socket, address: str) -> None:
        self.x25519_hex = x25519_hex
        self.sock = sock
        self.address = address
        self.connected = False  # a CURVE handshake completed and the connection still stands
        #: the last send to this peer that had to wait for the link (NodeLinks._send), until
        #: it is over: later sends go behind it, so messages to a peer leave in the order made
        self.behind: asyncio.Future[None] | None = None
        self.pump: _Pump | None = None
        self.monitor: zmq.Socket | None = None
        self.monitor_pump: _Pump | None = None

    def close(self) -> None:
        for pump in (self.pump, self.monitor_pump):
            if pump is not None:
                pump.close()
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close(0)
        self.sock.close(0)


class Answer:
    """The way back to one peer's waiting request, given to a direct handler
    (:attr:`NodeLinks.direct`). The handler must end the request exactly once: :meth:`result`,
    :meth:`forward` (a reply body already packed, e.g. a next node's reply passed back
    unchanged), or :meth:`run` (hand the rest to a coroutine, as an ordinary handler)."""

    __slots__ = ("_links", "_rid", "_route", "peer")

    def __init__(self, links: NodeLinks, route: bytes, rid: bytes, peer: str) -> None:
        self._links = links
        self._route = route
        self._rid = rid
        #: the asking peer's X25519 hex (its CURVE key)
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
        handler's error is (:meth:`fail`), and the caller (the pump, the peel pool) goes on
        with its next message. Were the request already answered, the peer drops the second
        answer as late."""
        try:
            handler(*args)
        except Exception as e:
            # Bug guard, deliberately broad: the handlers answer every refusal themselves, so
            # only a bug of ours lands here, and what it raises is not known in advance.
            self.fail(e)

    def run(self, result: Awaitable[Any]) -> asyncio.Task[Any]:
        """Answer with what the awaitable returns, run as a task with an ordinary handler's
        error handling (refusals answered with their sentence). Returns the task (its done
        callbacks run however it ends, cancelled before its first step included)."""
        links = self._links
        t = links._spawn(links._serve(result, self.peer, self._route, self._rid))
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
    """The node's ZeroMQ endpoint: a CURVE ROUTER for peers' requests, DEALERs to peers.

    ``handlers`` maps a kind (``KIND_*``) to ``async handler(peer_x25519_hex, body) -> reply``;
    ``direct`` maps a kind to a :data:`DirectHandler` (taking precedence over ``handlers``):
    no task per request, for the relay's hot path. ``authorize(x25519_public)`` decides whether
    a connecting CURVE key is a registered node.
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
        self._pub = _z85(public_x25519)
        self._sec = _z85(secret_x25519)
        self.public_hex = public_x25519.hex()
        self.handlers = handlers
        self.direct: dict[bytes, DirectHandler] = direct if direct is not None else {}
        self.authorize = authorize
        self.request_timeout = request_timeout
        self._ctx: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._router_pump: _Pump | None = None
        self._zap: zmq.Socket | None = None
        self._zap_pump: _Pump | None = None
        self._peers: dict[str, _Peer] = {}
        #: X25519 hex -> liveness of peers we sent requests to (see :class:`PeerHealth`).
        self.health: dict[str, PeerHealth] = {}
        #: called with a peer's X25519 hex when it answers again after being down
        self.on_peer_up = on_peer_up
        #: called with the kind of every request handed to its handler (metrics)
        self.on_served: Callable[[bytes], None] | None = None
        #: request id -> (its future or reply callback, its timeout, the peer's X25519 hex)
        self._pending: dict[int, tuple[asyncio.Future[Any] | OnReply, float, str]] = {}
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

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str, port: int) -> int:
        """Bind the ROUTER on ``tcp://host:port`` (0 = any free port); returns the port."""
        self._loop = asyncio.get_running_loop()
        ctx = self._ctx = zmq.Context(io_threads=1)
        # ZAP handler first: libzmq consults it for every CURVE handshake on this context.
        zap = self._zap = ctx.socket(zmq.ROUTER)
        zap.linger = 0
        zap.bind(_ZAP_ENDPOINT)
        self._zap_pump = _Pump(self._loop, zap, self._on_zap)
        r = self._router = ctx.socket(zmq.ROUTER)
        r.linger = 0
        r.curve_server = True
        r.curve_publickey = self._pub
        r.curve_secretkey = self._sec
        r.zap_domain = b"session-node"
        r.maxmsgsize = MAX_MESSAGE
        r.sndhwm = r.rcvhwm = 10000
        r.router_mandatory = False
        r.ipv6 = True  # (a node whose public_ip is IPv6 binds and is reached over it)
        try:
            if port:
                r.bind(f"tcp://{host}:{port}")
                self.port = port
            else:
                self.port = r.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as e:  # a port in use or an address not on this machine
            raise ConfigError(
                f"cannot listen for node links on {host} port {port} (network.zmq_port): "
                f"{e.strerror}"
            ) from None
        self._router_pump = _Pump(self._loop, r, self._on_request, copy=False)
        return self.port

    async def close(self) -> None:
        """Fail waiting requests, close every socket (no linger)."""
        if self.closed:
            return
        self.closed = True
        pending, self._pending = self._pending, {}
        self._deadlines.clear()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for waiter, _, _ in pending.values():
            _fail(waiter, LinkError("link closed"))
        for t in list(self._tasks):
            t.cancel()
        for p in self._peers.values():
            p.close()
        self._peers.clear()
        for pump, sock in ((self._router_pump, self._router), (self._zap_pump, self._zap)):
            if pump:
                pump.close()
            if sock is not None:
                sock.close(0)
        if self._ctx is not None:
            self._ctx.term()

    # ------------------------------------------------------------------ ZAP
    def _on_zap(self, msg: list[bytes]) -> None:
        # [routing id, b"", version, request id, domain, address, identity, mechanism, key]
        if len(msg) < 9:
            return
        self._spawn(self._answer_zap(msg))

    async def _answer_zap(self, msg: list[bytes]) -> None:
        mechanism, key = msg[7], msg[8]
        ok = False
        try:
            if mechanism == b"CURVE" and len(key) == 32:
                ok = await self.authorize(key)
        finally:  # a failing callback (a bug: it is logged by the task) refuses the key
            self._zap_reply(msg, key, ok)

    def _zap_reply(self, msg: list[bytes], key: bytes, ok: bool) -> None:
        envelope, version, req_id = msg[:2], msg[2], msg[3]
        if not ok:
            self.auth_denied += 1
            log.info("refused a node link from an unregistered CURVE key")
        user = key.hex().encode() if ok else b""
        reply = [
            version,
            req_id,
            b"200" if ok else b"400",
            b"OK" if ok else b"unknown node",
            user,
            b"",
        ]
        if self._zap is not None and not self.closed:
            self._zap.send_multipart(envelope + reply, zmq.NOBLOCK)
            assert self._zap_pump is not None
            self._zap_pump.kick()

    # ------------------------------------------------------------------ server side
    def _on_request(self, frames: list[zmq.Frame]) -> None:
        if len(frames) < 4:
            return  # not our framing: drop
        route, kind, rid, body, *bulk = frames
        self.received += 1
        k = kind.bytes
        direct = self.direct.get(k)
        handler = self.handlers.get(k) if direct is None else None
        peer = str(frames[1].get("User-Id") or "")
        if peer in self.health:
            self._answered(peer)  # a peer that talks to us is up (e.g. restarted and syncing)
        if handler is None and direct is None:
            self._reply(route.bytes, _ERROR, rid.bytes, [b"unknown kind"])
            return
        try:
            obj = unpack_body(body.bytes, [f.bytes for f in bulk])
        except MSGPACK_ERRORS:
            self._reply(route.bytes, _ERROR, rid.bytes, [b"bad msgpack"])
            return
        if self.on_served is not None:
            self.on_served(k)
        if direct is not None:
            answer = Answer(self, route.bytes, rid.bytes, peer)
            answer.guard(direct, peer, obj, answer)  # (no task: errors answered as _serve's)
            return
        assert handler is not None
        self._spawn(self._serve(handler(peer, obj), peer, route.bytes, rid.bytes))

    async def _serve(self, result: Awaitable[Any], peer: str, route: bytes, rid: bytes) -> None:
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

    def _reply(self, route: bytes, tag: bytes, rid: bytes, body: list[bytes]) -> None:
        if self._router is None or self.closed:
            return
        try:
            _send_frames(self._router, [route, tag, rid, *body])
        except zmq.ZMQError as e:
            log.warning("could not send a link reply: %s", e)
        assert self._router_pump is not None
        self._router_pump.kick()

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
        assert self._ctx is not None and self._loop is not None
        s = self._ctx.socket(zmq.DEALER)
        s.linger = 0
        s.curve_serverkey = _z85(bytes.fromhex(x25519_hex))
        s.curve_publickey = self._pub
        s.curve_secretkey = self._sec
        s.maxmsgsize = MAX_MESSAGE
        s.sndhwm = s.rcvhwm = 10000
        s.ipv6 = True  # (tcp://[addr]:port: a peer whose public_ip is IPv6)
        s.reconnect_ivl = 100
        s.reconnect_ivl_max = 500  # a restarted peer is reachable again within half a second
        # Queue only to completed (handshaken) connections: a send to a dead or refusing peer
        # fails at once instead of waiting for a reply that can never come, so relays answer
        # 502 within CONNECT_WAIT seconds rather than a 504 after the whole request timeout.
        s.immediate = True
        # ZMTP heartbeats: a peer that went silent (partitioned, frozen host, cable pulled:
        # nothing resets the TCP connection) loses its connection within HEARTBEAT_TIMEOUT, and
        # from then on sends fail at once as above instead of queueing into a dead connection.
        s.heartbeat_ivl = HEARTBEAT_IVL_MS
        s.heartbeat_timeout = HEARTBEAT_TIMEOUT_MS
        p = self._peers[x25519_hex] = _Peer(x25519_hex, s, address)
        # Connection events before connecting, so the first handshake is seen too.
        p.monitor = s.get_monitor_socket(_LINK_EVENTS)
        p.monitor_pump = _Pump(self._loop, p.monitor, lambda msg: self._on_link_event(p, msg))
        try:
            s.connect(address)
        except zmq.ZMQError as e:  # an address ZeroMQ refuses (EINVAL): no link is left half made
            del self._peers[x25519_hex]
            p.close()
            raise LinkUnreachable(
                f"{x25519_hex[:16]}... has an address the link refuses: {e}"
            ) from None
        p.pump = _Pump(self._loop, s, self._on_reply)
        p.monitor_pump.kick()  # (the FD is edge-triggered: drain what came before the reader)
        return p

    def _on_link_event(self, p: _Peer, msg: list[bytes]) -> None:
        """A link came up (handshake done: the peer is up) or went down (the peer's process or
        host closed it: down at once, before any request has to wait for it)."""
        if self._peers.get(p.x25519_hex) is not p:
            return  # an event of a link already replaced or dropped
        event = parse_monitor_message(msg)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            p.connected = True
            self._answered(p.x25519_hex)
        elif event == zmq.EVENT_DISCONNECTED:
            p.connected = False
            log.info("link to %s… closed", p.x25519_hex[:12])
            self.mark_down(p.x25519_hex)

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

    def _on_reply(self, msg: list[bytes]) -> None:
        if len(msg) < 3:
            return
        tag, rid, body, *bulk = msg
        try:
            (n,) = struct.unpack("<Q", rid)
        except struct.error:
            return
        entry = self._settle(n)
        if entry is None:
            return  # late reply after a timeout
        waiter, _, peer = entry
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
    def _wait(self, n: int, waiter: asyncio.Future[Any] | OnReply, peer: str, limit: float) -> None:
        """Register request ``n`` as waiting for its reply until ``limit`` seconds from now."""
        assert self._loop is not None
        deadline = self._loop.time() + limit
        self._pending[n] = (waiter, limit, peer)
        queue = self._deadlines.get(limit)
        if queue is None:
            queue = self._deadlines[limit] = {}
        queue[n] = deadline
        if deadline + DEADLINE_SLACK < self._sweep_at:
            self._schedule_sweep(deadline + DEADLINE_SLACK)

    def _settle(self, n: int) -> tuple[asyncio.Future[Any] | OnReply, float, str] | None:
        """Request ``n`` is over (answered, failed or abandoned): forget it; its entry, or None
        when it was already over."""
        entry = self._pending.pop(n, None)
        if entry is not None:
            queue = self._deadlines.get(entry[1])
            if queue is not None:
                queue.pop(n, None)
        return entry

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
            waiter, limit, peer = entry
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
        self._wait(n, fut, x25519_hex, limit)
        self.sent += 1
        assert p.pump is not None
        p.pump.kick()
        try:
            reply = await fut
        except LinkTimeout:
            raise  # no mark-down (see _sweep)
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
    ) -> bool:
        """:meth:`request` without a coroutine, for the relay's hot path: when the link to the
        peer is connected and takes the message at once, send it and return True; the reply
        (its raw body and bulk frames), or the :class:`LinkError` that ends the request
        (:class:`LinkTimeout` after ``timeout``, or an error reply), goes to ``on_reply``
        exactly once. False, and nothing sent: the caller uses :meth:`request`, which waits
        for a connection or fails with the reason."""
        return self.send_packed(x25519_hex, address, kind, pack_body(body), timeout, on_reply)

    def send_packed(
        self,
        x25519_hex: str,
        address: str,
        kind: bytes,
        frames: list[bytes],
        timeout: float | None,
        on_reply: OnReply,
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
        if not self._send_now(p, [kind, struct.pack("<Q", n), *frames]):
            return False
        self._wait(n, on_reply, x25519_hex, timeout or self.request_timeout)
        self.sent += 1
        assert p.pump is not None
        p.pump.kick()
        return True

    def _send_now(self, p: _Peer, frames: list[bytes]) -> bool:
        """The common case without a coroutine: a connected link that takes the message at
        once (True). False: :meth:`_send` decides (wait for a connection, or fail)."""
        if not p.connected or p.behind is not None or self.closed or p.sock.closed:
            return False
        try:
            _send_frames(p.sock, frames)
        except zmq.Again:
            return False
        return True

    async def _send(self, p: _Peer, frames: list[bytes], wait: float) -> None:
        """Queue ``frames`` on the peer's link, waiting up to ``wait`` seconds for a completed
        connection (:class:`LinkUnreachable` after that, and the peer is marked down).

        Messages to one peer leave in the order they were made: this one goes after any
        earlier send still waiting here (each waits its turn, then its own ``wait``), and
        while it waits, later sends wait behind it instead of leaving at once
        (:meth:`_send_now`). A forwarded write that found the link not yet connected is never
        overtaken by a later write of the same account sent once the link is up."""
        assert self._loop is not None
        prev, mine = p.behind, self._loop.create_future()
        p.behind = mine
        try:
            if prev is not None:
                # (asyncio.wait: neither raises prev's outcome nor cancels prev when this
                # request is cancelled)
                await asyncio.wait([prev])
            await self._send_in_turn(p, frames, wait)
        finally:
            mine.set_result(None)  # (only ever waited on through asyncio.wait: not cancelled)
            if p.behind is mine:
                p.behind = None

    async def _send_in_turn(self, p: _Peer, frames: list[bytes], wait: float) -> None:
        """:meth:`_send` once every earlier waiting send to the peer is over."""
        assert self._loop is not None
        if not p.connected and self.is_down(p.x25519_hex):
            # Known down and not connected: fail at once instead of waiting CONNECT_WAIT for
            # every request. The link keeps reconnecting on its own (every ≤ 0.5 s), and the
            # handshake of a peer that is back marks it up before anyone has to ask.
            raise LinkUnreachable(f"{p.x25519_hex[:16]}... is down (no connection)")
        started = self._loop.time()
        deadline = started + wait
        while True:
            if self.closed:
                raise LinkError("link closed")
            if p.sock.closed:  # dropped by disconnect() while this request waited
                raise LinkUnreachable(f"the link to {p.x25519_hex[:16]}... was dropped")
            try:
                _send_frames(p.sock, frames)
                return
            except zmq.Again:
                # No completed connection yet (a new link still handshaking, or the peer is
                # down) or the queue is full: wait a little, bounded.
                if self._loop.time() >= deadline:
                    if not p.connected:  # (it may have come back while this request waited)
                        self.mark_down(p.x25519_hex)
                    raise LinkUnreachable(
                        f"no connection to {p.x25519_hex[:16]}... within {wait:.1f}s"
                    ) from None
                await asyncio.sleep(0.02)


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
    that raises is logged and contained, so the pump, the timer and close go on."""
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
