"""Onion requests at a node: peel one layer, then deliver, relay or proxy.

* Deliver: run the payload as a storage RPC locally; the result is encrypted once with the
  layer's reply cipher (``{"status", "body"}`` wrapper) and answered with HTTP 200.
* Relay: forward the already re-framed inner layer to the next node over its link; the answer
  (status + body) comes back unchanged, no crypto on the way back. Unknown next node → 502,
  no answer in time → 504; a next node the links know is down (and not yet due for a probe)
  → 502 "Next node unreachable" at once, so the client leaves it out of its next path.
* Proxy: POST the decrypted layer to an ``/oxen/v4/lsrpc``-style target, but only at an address
  :class:`~session.node.egress.EgressPolicy` allows (public unicast by default, or the
  allowlist), connecting to the very address that was checked; no redirects are followed. The
  server's (already encrypted) answer is passed back unchanged with its status. A refused, an
  unresolvable and an unreachable destination all get one plain answer (:data:`PROXY_FAILED`,
  502), no sooner than :data:`PROXY_FAILURE_FLOOR` seconds after the layer was peeled, so the
  answer does not tell a private address from a closed public port; a server that does not
  answer in time gets a plain 504 (network spec §4.6, §6.6). Plain, never a 200 encrypted with
  this node's layer key: the client holds only the server's reply key, so it could not open
  such an answer and would take a node's "cannot reach the server" for a garbled reply.
* Errors a path node produces come back plain with their HTTP status; errors found after the
  layer was decrypted ("Invalid json", "Invalid url") are encrypted for the client.

Peeling is one call into the native core with the GIL released. :class:`PeelPool` batches the
frames that arrive in the same loop iteration: a few are peeled one by one on the loop thread,
a burst in one call the core spreads over all cores.

A layer is answered without a task, a future or a timer of its own wherever nothing has to
wait (:meth:`OnionRouter._decide_now`, the one place that decides): a peel error, a layer for
this node whose storage RPC answers at once (``RpcHandler.respond_later``: ``info``, a
``retrieve`` read on the loop's thread) or later from its callbacks (a ``store``: the RPC's
``RpcLater``, sealed for the client by :class:`SealLater` when it ends), a relay refused at
once, and a layer sent on to a next node with
:meth:`~session.node.links.NodeLinks.send_request`, whose reply goes to a callback (at once
over a connected link; one still connecting is waited for by the links). A layer
relayed from node to node (the hot path:
:meth:`OnionRouter.serve_link_now`, the links' direct handler for ``onion``) is peeled with the
pool's batch and the next node's reply, checked, goes back to the previous node as it came
(unpacked only to check its shape, never packed again). A layer that came over HTTPS
(:meth:`OnionRouter.handle_now`, from the node's site) is peeled at once on the loop's thread
and its answer, or the next node's, goes back as ``(status, body)``. Anything else (a proxy
request, an RPC that has to wait) goes on as a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from session.errors import (
    DestinationRefused,
    HttpConnectError,
    HttpError,
    HttpResponseTooLarge,
    InvalidInput,
)
from session.http1.client import HttpClient
from session.node.egress import EgressPolicy, host_header
from session.node.links import (
    KIND_ONION,
    MSGPACK_ERRORS,
    Answer,
    LinkError,
    LinkTimeout,
    LinkUnreachable,
    NodeLinks,
    RawReply,
    unpack_body,
)
from session.node.rpc import RpcLater, RpcResponse, RpcSoon
from session.node.swarm_view import SwarmView
from session.onion import Deliver, Proxy, Relay
from session.proto.onion_status import (
    NEXT_NODE_NOT_FOUND,
    NEXT_NODE_STATUS,
    NEXT_NODE_UNREACHABLE,
    next_node_error,
)
from session.service.tls import client_ssl_context

log = logging.getLogger("session.node.relay")

RELAY_TIMEOUT = 30.0
PROXY_TIMEOUT = 25.0
#: Shortest time before a failed proxy request is answered: a refused destination would
#: otherwise answer at once and a closed public port after a round trip.
PROXY_FAILURE_FLOOR = 0.25
#: Largest server answer passed back (a file download with its framing fits); a larger one is
#: a failed proxy request, so a server cannot make the node buffer without bound.
PROXY_MAX_REPLY = 16 * 1024 * 1024
#: Connections a node keeps open to one proxied server at a time.
PROXY_CONNECTIONS = 100
#: The one answer (plain, status 502) for a destination that is refused or cannot be reached.
PROXY_FAILED = (
    b"Cannot reach the destination server: it did not answer, or it is not an "
    b"address this node proxies to"
)


#: Where the next node's reply to a layer sent on goes: ``relayed(next_ed25519, reply)``, the
#: reply's raw body and bulk frames, or the :class:`LinkError` that ended the request.
OnRelayed = Callable[[str, RawReply | LinkError], None]


class SealLater:
    """A layer for this node whose RPC answers later from callbacks (a client's ``store``:
    :class:`~session.node.rpc.RpcLater`), with no task: whoever answers the client registers
    with ``later.then`` and seals the RPC's answer for the client with :meth:`sealed`."""

    __slots__ = ("later", "reply")

    def __init__(self, later: RpcLater, reply: Any) -> None:
        self.later = later
        self.reply = reply

    def sealed(self, r: RpcResponse) -> tuple[int, bytes]:
        """The layer's answer to the RPC's ``r``, encrypted for the client (as at once)."""
        return 200, self.reply.encrypt_status(r.status, r.to_bytes())


#: A layer's answer at once ``(status, body)``, later from the RPC's callbacks
#: (:class:`SealLater`), None (sent on: the answer comes to the ``relayed`` callback), or the
#: rest as a coroutine.
Answered = tuple[int, bytes] | Coroutine[Any, Any, tuple[int, bytes]] | SealLater | None


class PeelPool:
    """Peels the frames that arrive in the same loop iteration as one batch, on the loop thread
    with the GIL released: a few one by one, a burst in one ``peel_many`` call that the core
    spreads over every core (rayon).

    No thread of our own: splitting a burst between the loop thread and a Python worker that
    then called the (already parallel) ``peel_many`` paid a thread hand-off, a future and a
    wake-up per batch on top of the core's own threads, and cost the relay ~10% more CPU per
    layer than this (docs/performance.md, "Relay path").
    """

    def __init__(self, peeler: Any, workers: int = 1, burst: int = 4) -> None:
        #: ``workers=0``: never parallel (every frame peeled on the loop thread).
        self.peeler = peeler
        self.parallel = workers > 0
        self.burst = burst
        self._queue: list[tuple[bytes, Callable[[Any], None]]] = []
        self._scheduled = False

    def peel(self, frame: bytes) -> asyncio.Future[Any]:
        """A future resolving to the decision, or failing with the peel error."""
        fut = asyncio.get_running_loop().create_future()
        self.submit(frame, partial(_settle, fut))
        return fut

    def submit(self, frame: bytes, done: Callable[[Any], None]) -> None:
        """Peel ``frame`` with this loop iteration's batch; ``done`` gets the decision, or the
        peel error (a ``ValueError``: the core's OnionError with a status, DecodeError,
        InvalidInput) as a value."""
        self._queue.append((frame, done))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._queue = self._queue, []
        if self.parallel and len(batch) >= self.burst:
            # one native call; a frame that fails to peel comes back as its exception
            results = self.peeler.peel_many([f for f, _ in batch])
            for (_, done), r in zip(batch, results, strict=True):
                done(r)
            return
        for frame, done in batch:  # a few frames: no hand-off to the core's threads
            done(self.peel_now(frame))

    def peel_now(self, frame: bytes) -> Any:
        """``frame`` peeled on this thread now (the GIL released): the decision, or the peel
        error as a value (a ``ValueError``: the core's OnionError with a status, DecodeError,
        InvalidInput)."""
        try:
            return self.peeler.peel(frame)
        except ValueError as e:
            return e

    def close(self) -> None:
        """Nothing to stop (kept so owners can close every part alike)."""


def _settle(fut: asyncio.Future[Any], r: Any) -> None:
    """A peel result into the future :meth:`PeelPool.peel` returned (unless it was cancelled)."""
    if fut.done():
        return
    if isinstance(r, BaseException):
        fut.set_exception(r)
    else:
        fut.set_result(r)


class OnionRouter:
    """Turns an onion frame into ``(http_status, body)``."""

    def __init__(
        self,
        peel_pool: PeelPool,
        view: SwarmView,
        links: NodeLinks,
        rpc: Any,
        *,
        metrics: Any = None,
        max_hops: int = 15,
        relay_timeout: float = RELAY_TIMEOUT,
        proxy_timeout: float = PROXY_TIMEOUT,
        egress: EgressPolicy | None = None,
        proxy_failure_floor: float = PROXY_FAILURE_FLOOR,
        proxy_max_reply: int = PROXY_MAX_REPLY,
    ) -> None:
        self.pool = peel_pool
        self.view = view
        self.links = links
        self.rpc = rpc
        self.metrics = metrics
        self.max_hops = max_hops
        self.relay_timeout = relay_timeout
        self.proxy_timeout = proxy_timeout
        self.egress = egress if egress is not None else EgressPolicy()
        self.proxy_failure_floor = proxy_failure_floor
        self.proxy_max_reply = proxy_max_reply
        self._http: HttpClient | None = None
        # the labelled counters looked up once: ``labels()`` takes a lock and a dict lookup
        self._counters = (
            {d: metrics.onion.labels(d) for d in ("relay", "deliver", "proxy", "error")}
            if metrics is not None
            else {}
        )

    def _count(self, decision: str) -> None:
        counter = self._counters.get(decision)
        if counter is not None:
            counter.inc()

    async def handle(self, frame: bytes) -> tuple[int, bytes]:
        """An onion frame → ``(http_status, body)``, as a coroutine (peeled with the pool's
        batch)."""
        try:
            d = await self.pool.peel(frame)
        except ValueError as e:  # the core's OnionError (with a status), DecodeError, InvalidInput
            d = e
        return await self._decided(d)

    def handle_now(self, frame: bytes, relayed: OnRelayed) -> Answered:
        """:meth:`handle` without a coroutine, for a frame that came over HTTPS: peeled on this
        thread now, then answered at once where nothing has to wait (a peel error, a layer for
        this node whose RPC answers at once, a relay refused at once); a :class:`SealLater`
        for a layer for this node whose RPC answers later from callbacks (a store); None when
        the layer was handed to the links for the next node (sent at once over a connected
        link, or once it connects): its answer, ``(status, body)`` as :meth:`handle` would
        give it, goes to ``relayed`` once it comes (with the same 502 and 504 answers);
        otherwise the rest as a coroutine (a proxy request, an RPC that has to wait)."""
        return self._decide_now(self.pool.peel_now(frame), relayed)

    async def _decided(self, d: Any) -> tuple[int, bytes]:
        """The answer to a peeled layer (``d``: the core's decision, or its peel error)."""
        r = self._decide_now(d, None)
        # (nothing is sent on, nor answered later, without the HTTPS caller's reply callback)
        assert r is not None and not isinstance(r, SealLater)
        return r if isinstance(r, tuple) else await r

    def _decide_now(
        self, d: Any, relayed: OnRelayed | None, held_by: Answer | None = None
    ) -> Answered:
        """The answer to a peeled layer at once, None when it was relayed on (only with a
        ``relayed`` callback: see :meth:`handle_now`; ``held_by``: the previous node's request
        this layer came in, counted as running while the layer waits for the next node's
        link), or the rest as a coroutine."""
        if isinstance(d, ValueError):
            return self._peel_error(d)
        if isinstance(d, BaseException):
            raise d  # not a peel refusal: a bug, answered "internal error" and logged by the links
        if isinstance(d, Relay):
            self._count("relay")
            return self._relay_now(d, relayed, held_by)
        if isinstance(d, Deliver):
            self._count("deliver")
            # From HTTPS or a link (a ``relayed`` callback: handle_now, serve_link_now) a store
            # is answered later from the RPC's callbacks (RpcHandler.respond_later), no task.
            r: RpcSoon = (
                self.rpc.respond_now(d.payload)
                if relayed is None
                else self.rpc.respond_later(d.payload)
            )
            if isinstance(r, RpcResponse):
                return 200, d.reply.encrypt_status(r.status, r.to_bytes())
            if isinstance(r, RpcLater):
                return SealLater(r, d.reply)
            return self._delivered(d, r)
        if isinstance(d, Proxy):
            self._count("proxy")
            return self._proxy(d)
        return 500, b"unexpected onion decision"

    async def _delivered(self, d: Any, rest: Awaitable[RpcResponse]) -> tuple[int, bytes]:
        """A layer for this node whose RPC had to wait."""
        r = await rest
        return 200, d.reply.encrypt_status(r.status, r.to_bytes())

    def _peel_error(self, e: ValueError) -> tuple[int, bytes]:
        """The answer to a frame that could not be peeled: plain with its status, or encrypted
        for the client when the layer was decrypted before the failure."""
        self._count("error")
        status = int(getattr(e, "status", 400) or 400)
        msg = str(e).encode()  # UTF-8 text, as encrypt_status requires
        reply = getattr(e, "reply", None)
        if reply is not None:
            return 200, reply.encrypt_status(status, msg)
        if status < 400 or status > 599:
            status = 400
        return status, msg

    def _relay_now(
        self, d: Any, relayed: OnRelayed | None, held_by: Answer | None = None
    ) -> Answered:
        """A layer for the next node: refused at once (too many hops, an unknown next node, or
        one the links know is down and not yet due for a probe), or handed to the links
        (None: its reply goes to ``relayed``), else sent as a coroutine (no ``relayed``, or
        the links refused it: closed, or a layer too large, and the coroutine says why)."""
        if d.hop_no > self.max_hops:
            return 400, b"onion request max path length exceeded"
        node = self.view.node_by_ed25519(d.next_ed25519)
        if node is None:
            return NEXT_NODE_STATUS, next_node_error(NEXT_NODE_NOT_FOUND, d.next_ed25519)
        if self.links.is_down(node.pubkey_x25519):
            if node.pubkey_x25519 not in self.links.due_for_probe():
                # The links know this node is down (a write to it or a relay through it went
                # unanswered) and its back-off has not elapsed: say so at once, naming it,
                # instead of holding the request until a timeout the client will not wait for.
                # Once the back-off elapses the next relay is the probe (and fails at once in
                # the links while there is no connection to it: the link's reconnection marks
                # it up when it is back).
                return NEXT_NODE_STATUS, next_node_error(NEXT_NODE_UNREACHABLE, d.next_ed25519)
        elif relayed is not None and self.links.send_request(
            node.pubkey_x25519,
            node.zmq_address,
            KIND_ONION,
            {"f": d.frame},
            self.relay_timeout,
            partial(relayed, d.next_ed25519),
            held_by,
        ):
            return None
        return self._relay(node, d.frame, d.next_ed25519)

    async def _relay(self, node: Any, frame: bytes, next_ed25519: str) -> tuple[int, bytes]:
        """A layer sent on as a coroutine (the links refused it a reply callback, or the
        caller gave none: :meth:`handle`)."""
        try:
            r = await self.links.request(
                node.pubkey_x25519, node.zmq_address, KIND_ONION, {"f": frame}, self.relay_timeout
            )
        except LinkError as e:
            return _link_failure(e, next_ed25519)
        return _next_reply(r)

    async def serve_link(self, peer: str, body: Any) -> dict[str, Any]:
        """Link handler for ``KIND_ONION``: a frame relayed by the previous node (the coroutine
        form of :meth:`serve_link_now`)."""
        if not isinstance(body, dict) or not isinstance(body.get("f"), bytes):
            return {"s": 400, "b": b"bad relay message"}
        status, out = await self.handle(body["f"])
        return {"s": status, "b": out}

    def serve_link_now(self, peer: str, body: Any, answer: Answer) -> None:
        """Direct link handler for ``KIND_ONION`` (:attr:`NodeLinks.direct`): the same answers
        as :meth:`serve_link`, with no task of the relay's for a layer relayed on (one still
        waiting for the next node's link counts as running on the previous node's connection,
        as a coroutine would: :meth:`~session.node.links.Answer.hold`)."""
        if not isinstance(body, dict) or not isinstance(body.get("f"), bytes):
            answer.result({"s": 400, "b": b"bad relay message"})
            return
        self.pool.submit(body["f"], partial(self._peeled, answer))

    def _peeled(self, answer: Answer, d: Any) -> None:
        """The peel pool's callback for a relayed frame: run under the links' supervisor of
        direct handlers (:meth:`Answer.guard`), so the pool's other frames get theirs."""
        answer.guard(self._answer_peeled, answer, d)

    def _answer_peeled(self, answer: Answer, d: Any) -> None:
        r = self._decide_now(d, partial(_relayed, answer), answer)
        if r is None:
            return  # sent on: the next node's reply goes back through _relayed
        if isinstance(r, tuple):
            answer.result({"s": r[0], "b": r[1]})
            return
        if isinstance(r, SealLater):  # a store for this node: answered from the RPC's callbacks
            r.later.then(partial(_sealed_for_link, answer, r))
            return
        task = answer.run(_link_answer(r))
        if isinstance(r, Coroutine):
            # a task cancelled before its first step (the links closing) never awaits r
            task.add_done_callback(lambda _: r.close())

    async def _proxy(self, d: Any) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self.proxy_timeout):
                answer = await self._proxy_checked(d)
        except TimeoutError:  # HttpTimeout too
            return 504, b"Request time out"
        if answer is not None:
            return answer
        await asyncio.sleep(max(0.0, started + self.proxy_failure_floor - loop.time()))
        return 502, PROXY_FAILED

    def _client(self) -> HttpClient:
        if self._http is None:
            # servers' certificates are not verified: the onion layer to the server's X25519
            # key carries the security (network spec §6.6)
            self._http = HttpClient(
                ssl_context=client_ssl_context(),
                per_host=PROXY_CONNECTIONS,
                timeout=self.proxy_timeout,
                max_size=self.proxy_max_reply,
            )
        return self._http

    async def _proxy_checked(self, d: Any) -> tuple[int, bytes] | None:
        """POST to the first checked address that accepts a connection; None when none does."""
        try:
            addresses = await self.egress.resolve(d.host, d.port)
        except DestinationRefused as e:
            log.debug("proxy destination refused: %s", e)  # the reason only, never the name
            return None
        # The request goes to the checked address, with the target exactly as the core checked
        # it; the server still sees its name in Host (and in SNI for https). No redirect is
        # ever followed.
        http = self._client()
        headers = {"Host": host_header(d.host, d.port, d.scheme)}
        tls_name = d.host.strip("[]") if d.scheme == "https" else None
        for ip in addresses:
            literal = f"[{ip}]" if ip.version == 6 else str(ip)
            try:
                resp = await http.request(
                    "POST",
                    f"{d.scheme}://{literal}:{d.port}{d.target}",
                    body=d.payload,
                    headers=headers,
                    server_hostname=tls_name,
                    max_size=self.proxy_max_reply,
                )
            except HttpConnectError as e:
                log.debug("proxy connection failed: %s", type(e.os_error).__name__)
                continue  # this address does not accept connections: try the next one
            except HttpResponseTooLarge:
                log.debug("proxy answer larger than %d bytes refused", self.proxy_max_reply)
                return None
            except TimeoutError:  # HttpTimeout: the caller answers 504
                raise
            except HttpError as e:  # closed before or while answering, not HTTP
                log.info("proxy request failed: %s", type(e).__name__)
                return None
            except InvalidInput:  # a target the core let through but HTTP cannot carry
                log.info("proxy request refused: not a usable HTTP target")
                return None
            return resp.status, resp.body
        return None

    async def close(self) -> None:
        self.egress.close()
        if self._http is not None:
            await self._http.close()
            self._http = None


def _link_failure(e: LinkError, next_ed25519: str) -> tuple[int, bytes]:
    """The answer to a relay whose next node did not answer, or answered with an error."""
    if isinstance(e, LinkTimeout):
        return 504, b"Request time out"
    if isinstance(e, LinkUnreachable):
        # Named, so the client can avoid this node when it builds its next path.
        return NEXT_NODE_STATUS, next_node_error(NEXT_NODE_UNREACHABLE, next_ed25519)
    return NEXT_NODE_STATUS, next_node_error(NEXT_NODE_UNREACHABLE, next_ed25519, str(e))


def _next_reply(r: Any) -> tuple[int, bytes]:
    """The next node's reply ``{"s": status, "b": body}`` as ``(status, body)``; 502 when it
    is not one (the status an integer, the body bytes: an infinite float or a number for the
    body is a bad reply, not a conversion that raises or makes that many zero bytes)."""
    if isinstance(r, dict):
        s, b = r.get("s"), r.get("b")
        if type(s) is int and type(b) is bytes:
            return s, b
    return 502, b"Bad reply from next node"


def relayed_answer(next_ed25519: str, reply: RawReply | LinkError) -> tuple[int, bytes]:
    """The answer, ``(status, body)``, to a layer sent on with a reply callback
    (:meth:`OnionRouter.handle_now`), from the next node's reply or the link's error: what
    :meth:`OnionRouter._relay` answers for the same."""
    if isinstance(reply, LinkError):
        return _link_failure(reply, next_ed25519)
    r = _unpacked(reply)
    if isinstance(r, LinkError):
        return _link_failure(r, next_ed25519)
    return _next_reply(r)


def _unpacked(reply: RawReply) -> Any:
    """The body of a raw link reply, or the LinkError saying it is not msgpack."""
    try:
        return unpack_body(*reply)
    except MSGPACK_ERRORS as e:
        return LinkError(f"bad reply: {e}")


def _relayed(answer: Answer, next_ed25519: str, reply: RawReply | LinkError) -> None:
    """The next node's reply to a layer relayed from node to node, back to the previous node:
    as it came when it is a well-formed ``{"s": int, "b": bytes}`` (checked by unpacking, never
    packed again), otherwise what :func:`relayed_answer` answers (the reply unpacked once)."""
    if isinstance(reply, LinkError):
        status, out = _link_failure(reply, next_ed25519)
    else:
        r = _unpacked(reply)
        if isinstance(r, LinkError):
            status, out = _link_failure(r, next_ed25519)
        elif isinstance(r, dict) and type(r.get("s")) is int and type(r.get("b")) is bytes:
            body, bulk = reply
            answer.forward([body, *bulk])
            return
        else:
            status, out = _next_reply(r)
    answer.result({"s": status, "b": out})


def _sealed_for_link(answer: Answer, seal: SealLater, r: RpcResponse | BaseException) -> None:
    """The RPC's later answer to a layer for this node that came over a link (its
    :class:`RpcLater`'s callback), under the links' supervisor (:meth:`Answer.guard`)."""
    answer.guard(_answer_sealed, answer, seal, r)


def _answer_sealed(answer: Answer, seal: SealLater, r: RpcResponse | BaseException) -> None:
    if isinstance(r, BaseException):
        raise r  # a bug: answered "internal error" and logged, as from the task
    status, out = seal.sealed(r)
    answer.result({"s": status, "b": out})


async def _link_answer(rest: Awaitable[tuple[int, bytes]]) -> dict[str, Any]:
    """The link answer of a layer whose answer came from a coroutine."""
    status, out = await rest
    return {"s": status, "b": out}
