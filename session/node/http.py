"""The node's public HTTPS site for clients (served, with the loopback admin site, by
:mod:`session.service`).

Public (HTTPS, self-signed certificate; clients do not verify):

* ``POST /storage_rpc/v1`` → the RPC handler (JSON-RPC body);
* ``POST /onion_req/v2`` → the onion router;
* ``POST /ping_test/v1`` → 200 with the node's Ed25519 key in ``X-Oxen-Snode-Pubkey``;
* ``GET /get_stats/v1`` → ``{"version": "2.8.0"}`` (the storage-server version ``info`` reports);
* everything else → 404.

Both request endpoints answer 503 until the node is ready; bodies over the limit → 413, a
client over its per-address budget (an IPv6 /64 counts as one address:
:func:`session.service.ratelimit.client_key`) → 429, and ``X-Loki-Long-Poll`` on
``/storage_rpc/v1`` → 410.
A body may be sent with ``Content-Encoding: gzip`` or ``deflate`` (other codings → 415, a body
that is not what its header says → 400: :func:`session.http1.server.decode_body`).

The handlers are sans-I/O (a :class:`~session.http1.server.Request` in, a
:class:`~session.http1.server.Response` out); :mod:`session.http1.server` serves them with the
connection limits. ``/storage_rpc/v1`` is a synchronous handler: the admission checks above
(:meth:`ClientSite._admitted`, their one home) and the RPC's answer when it has one at once
(:meth:`~session.node.rpc.RpcHandler.respond_later`: ``info``, a ``retrieve`` read on the
loop's thread, every refusal) are answered with no task; a ``store`` is a
:class:`~session.http1.server.Pending` answered from the RPC's callbacks once its group commit
and the swarm's fan-out report (:class:`~session.node.rpc.RpcLater`), no task either; the rest
of a request that has to wait (a read handed to the reader thread, a batch, a delete) is a
coroutine the server runs in a task.
``/onion_req/v2`` likewise (:meth:`~session.node.relay.OnionRouter.handle_now`), and a layer
sent on to the next node is a :class:`~session.http1.server.Pending` answered from the links'
reply callback, with the relay's 502 and 504 answers, and a store in a layer for this node one
answered from the RPC's callbacks: no task either. The admin site
(127.0.0.1 only: ``/metrics``, ``/healthz``, ``/readyz``) is
:func:`session.service.admin.admin_routes`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from session.http1.server import HttpError, Pending, Request, Response, Routes, decode_body
from session.node.links import LinkError, RawReply
from session.node.relay import SealLater, relayed_answer
from session.node.rpc import RpcLater, RpcResponse
from session.service.ratelimit import client_key
from session.version import STORAGE_SERVER_VERSION_TEXT

SERVER_HEADER = f"Session Storage Server/{STORAGE_SERVER_VERSION_TEXT}"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_SERVER = {"Server": SERVER_HEADER}


class ClientSite:
    """Request handlers of the public site, served by :mod:`session.http1.server`
    (:meth:`routes`): a request in, an answer out."""

    def __init__(
        self,
        *,
        rpc: Any,
        router: Any,
        limiter: Any,
        metrics: Any,
        ready: Callable[[], str | None],
        ed25519_public: bytes,
        max_body: int,
    ) -> None:
        self.rpc = rpc
        self.router = router
        self.limiter = limiter
        self.metrics = metrics
        self.ready = ready
        self.pubkey_b64 = base64.b64encode(ed25519_public).decode()
        self.max_body = max_body
        self.inflight = 0
        self._counters: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def routes(self) -> Routes:
        """The site's routes for :func:`session.http1.server.serve`."""
        return {
            "/storage_rpc/v1": {"POST": self.storage_rpc},
            "/onion_req/v2": {"POST": self.onion_req},
            "/ping_test/v1": {"POST": self.ping_test},
            "/get_stats/v1": {"GET": self.get_stats},
        }

    def _reply(
        self, endpoint: str, status: int, body: bytes, t0: float, content_type: str = _TEXT
    ) -> Response:
        m = self.metrics
        if m is not None:
            # label children are cached: ``labels()`` takes a lock and validates on every call
            key = (endpoint, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = m.requests.labels(endpoint, str(status))
            counter.inc()
            hist = self._latency.get(endpoint)
            if hist is None:
                hist = self._latency[endpoint] = m.latency.labels(endpoint)
            hist.observe(time.perf_counter() - t0)
        return Response(status, body, content_type, _SERVER)

    def _body(self, request: Request) -> bytes:
        """The request body, decompressed when ``Content-Encoding`` says gzip or deflate (at
        most ``max_body`` bytes either way). Raises :class:`HttpError` (413, 415, 400)."""
        raw = request.body
        if len(raw) > self.max_body:
            raise HttpError(413, "Request body too large")
        return decode_body(request.headers.get("content-encoding", ""), raw, self.max_body)

    def _admit(self, request: Request) -> bool:
        ip = request.remote or "?"
        if self.limiter.allow(client_key(ip)):
            return True
        if self.metrics is not None:
            self.metrics.rate_limited.inc()
        return False

    def _admitted(
        self, endpoint: str, request: Request, not_ready: str, t0: float
    ) -> bytes | Response:
        """Rate limit, long poll, size limit and readiness, in that order: the body to handle,
        or the refusal's answer (counted). The one home of these checks for both endpoints,
        whether the request is then answered at once or in a task."""
        if not self._admit(request):
            return self._reply(endpoint, 429, b"Too many requests, try again later", t0)
        if endpoint == "storage_rpc" and "x-loki-long-poll" in request.headers:
            return self._reply(endpoint, 410, b"Long polling is no longer supported", t0)
        try:
            body = self._body(request)
        except HttpError as e:
            return self._reply(endpoint, e.status, e.text.encode(), t0)
        why = self.ready()
        if why is not None:
            return self._reply(endpoint, 503, f"{not_ready}: {why}".encode(), t0)
        return body

    # A request is answered at once when its handler can (no task: session.http1.server);
    # otherwise the rest is a coroutine the server runs in a task, counted as in flight from
    # its start to its answer (``inflight``: the requests that wait for something).

    def storage_rpc(self, request: Request) -> Response | Pending | Coroutine[Any, Any, Response]:
        """``POST /storage_rpc/v1``: the RPC's answer at once when it has one, a
        :class:`Pending` answered from the RPC's callbacks for a store
        (:meth:`RpcHandler.respond_later`), else the rest in a task."""
        t0 = time.perf_counter()
        body = self._admitted("storage_rpc", request, "Service node is not ready", t0)
        if type(body) is Response:
            return body
        assert isinstance(body, bytes)
        r = self.rpc.respond_later(body)
        if isinstance(r, RpcResponse):
            return self._rpc_reply(r, t0)
        if isinstance(r, RpcLater):
            pending = Pending(on_end=self._landed)
            self.inflight += 1  # until the Pending ends (_landed): answered or cancelled
            r.then(partial(self._answer_later, pending, partial(self._rpc_reply, t0=t0)))
            return pending
        return self._rpc_rest(r, t0)

    def _rpc_reply(self, r: RpcResponse, t0: float) -> Response:
        return self._reply("storage_rpc", r.status, r.to_bytes(), t0, r.content_type)

    @staticmethod
    def _answer_later(
        pending: Pending,
        make: Callable[[RpcResponse], Response],
        r: RpcResponse | BaseException,
    ) -> None:
        """An :class:`RpcLater`'s answer (its callback) to the client's ``pending``, made into
        the HTTP answer by ``make`` (a plain RPC answer, or one sealed for an onion layer)."""
        if pending.done:
            return  # the client is gone: its answer is dropped, uncounted, as its task's was
        if isinstance(r, BaseException):
            pending.fail(r)  # a bug: 500, logged by the server
        else:
            pending.answer_with(make, r)

    async def _rpc_rest(self, rest: Awaitable[RpcResponse], t0: float) -> Response:
        self.inflight += 1
        try:
            r = await rest
        finally:
            self.inflight -= 1
        return self._rpc_reply(r, t0)

    # Onion answers are base64 (or raw) ciphertext, a proxied server's answer, or a relay's
    # plain-text error: all text/plain, as Session's storage server labels them.

    def onion_req(self, request: Request) -> Response | Pending | Coroutine[Any, Any, Response]:
        """``POST /onion_req/v2``: the onion router's answer at once when it has one
        (:meth:`OnionRouter.handle_now`), a :class:`Pending` answered when the next node's
        reply comes for a layer sent on or the RPC's answer for a store in a layer for this
        node (:class:`~session.node.relay.SealLater`), else the rest in a task."""
        t0 = time.perf_counter()
        body = self._admitted("onion", request, "Snode not ready", t0)
        if type(body) is Response:
            return body
        assert isinstance(body, bytes)
        pending = Pending(on_end=self._landed)
        r = self.router.handle_now(body, partial(self._onion_relayed, pending, t0))
        if r is None:
            self.inflight += 1  # until the Pending ends (_landed): answered or cancelled
            return pending
        if isinstance(r, tuple):
            return self._reply("onion", r[0], r[1], t0)
        if isinstance(r, SealLater):  # a store for this node: answered from the RPC's callbacks
            self.inflight += 1
            r.later.then(
                partial(self._answer_later, pending, partial(self._sealed_response, r, t0=t0))
            )
            return pending
        return self._onion_rest(r, t0)

    def _sealed_response(self, seal: SealLater, r: RpcResponse, t0: float) -> Response:
        status, out = seal.sealed(r)
        return self._reply("onion", status, out, t0)

    def _landed(self) -> None:
        self.inflight -= 1

    def _onion_relayed(
        self, pending: Pending, t0: float, next_ed25519: str, reply: RawReply | LinkError
    ) -> None:
        """The next node's reply to a layer sent on (the links' reply callback)."""
        if pending.done:
            return  # the client is gone: its answer is dropped, uncounted, as its task's was
        pending.answer_with(self._relayed_response, next_ed25519, reply, t0)

    def _relayed_response(
        self, next_ed25519: str, reply: RawReply | LinkError, t0: float
    ) -> Response:
        status, out = relayed_answer(next_ed25519, reply)
        return self._reply("onion", status, out, t0)

    async def _onion_rest(self, rest: Awaitable[tuple[int, bytes]], t0: float) -> Response:
        self.inflight += 1
        try:
            status, out = await rest
        finally:
            self.inflight -= 1
        return self._reply("onion", status, out, t0)

    def ping_test(self, request: Request) -> Response:
        """``POST /ping_test/v1``: our Ed25519 key (answered at once: no task)."""
        return Response(
            200, b"", None, {"X-Oxen-Snode-Pubkey": self.pubkey_b64, "Server": SERVER_HEADER}
        )

    def get_stats(self, request: Request) -> Response:
        """``GET /get_stats/v1``: the storage-server version (answered at once)."""
        body = json.dumps({"version": STORAGE_SERVER_VERSION_TEXT}).encode()
        return Response(200, body, _JSON, _SERVER)
