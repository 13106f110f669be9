"""The node's public HTTPS site for clients (served, with the loopback admin site, by
:mod:`session.service`).

Public (HTTPS, self-signed certificate; clients do not verify):

* ``POST /storage_rpc/v1`` → the RPC handler (JSON-RPC body);
* ``POST /onion_req/v2`` → the onion router;
* ``POST /ping_test/v1`` → 200 with the node's Ed25519 key in ``X-Oxen-Snode-Pubkey``;
* ``GET /get_stats/v1`` → ``{"version": "2.8.0"}`` (the storage-server version ``info`` reports);
* everything else → 404.

Both request endpoints answer 503 until the node is ready; bodies over the limit → 413, a
client over its per-IP budget → 429, and ``X-Loki-Long-Poll`` on ``/storage_rpc/v1`` → 410.
A body may be sent with ``Content-Encoding: gzip`` or ``deflate`` (other codings → 415, a body
that is not what its header says → 400).

The admin site (127.0.0.1 only: ``/metrics``, ``/healthz``, ``/readyz``) is
:func:`session.service.admin.admin_app`.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from session.version import STORAGE_SERVER_VERSION_TEXT

SERVER_HEADER = f"Session Storage Server/{STORAGE_SERVER_VERSION_TEXT}"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"

#: A request body → (status, response body, content type).
Handler = Callable[[bytes], Awaitable[tuple[int, bytes, str]]]

#: zlib window bits of the content codings a body may use (RFC 9110 §8.4.1).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Refused(Exception):
    """A request refused before its handler runs: the status and the sentence to answer."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def decode_body(content_encoding: str, raw: bytes, limit: int) -> bytes:
    """``raw`` decoded as its ``Content-Encoding`` header says: as is (none, ``identity``), or
    gunzipped / inflated (``gzip``, ``deflate``) to at most ``limit`` bytes. aiohttp's own
    decompression is off: it failed with a 500 on a body that was not what the header said,
    and with a logged traceback on codings it cannot decode. Raises :class:`_Refused`: 415 for
    any other coding, 400 for a body that is not valid data of its coding, 413 past ``limit``."""
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return raw
    wbits = _CODINGS.get(coding)
    if wbits is None:
        raise _Refused(
            415,
            "Unsupported Content-Encoding: send the body uncompressed, or compressed with gzip "
            "or deflate",
        )
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error:
        out = None
    if out is not None and (len(out) > limit or d.unconsumed_tail):
        raise _Refused(413, "Request body too large once decompressed")
    if out is None or not d.eof or d.unused_data:
        raise _Refused(
            400,
            f"The request body is not valid {coding} data although its Content-Encoding header "
            "says so: send it uncompressed, or compressed correctly",
        )
    return out


class ClientSite:
    """Request handlers of the public site (kept separate from aiohttp plumbing for tests)."""

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

    def app(self) -> web.Application:
        # auto_decompress off: bodies are decoded (and checked) by decode_body
        app = web.Application(
            client_max_size=self.max_body,
            handler_args={"max_field_size": 16384, "auto_decompress": False},
        )
        app.router.add_post("/storage_rpc/v1", self.storage_rpc)
        app.router.add_post("/onion_req/v2", self.onion_req)
        app.router.add_post("/ping_test/v1", self.ping_test)
        app.router.add_get("/get_stats/v1", self.get_stats)
        return app

    def _reply(
        self, endpoint: str, status: int, body: bytes, t0: float, content_type: str = _TEXT
    ) -> web.Response:
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
        headers = {"Content-Type": content_type, "Server": SERVER_HEADER}
        return web.Response(status=status, body=body, headers=headers)

    async def _body(self, request: web.Request) -> bytes:
        """The request body, decompressed when ``Content-Encoding`` says gzip or deflate (at
        most ``max_body`` bytes either way). Raises :class:`_Refused` (413, 415, 400)."""
        if request.content_length is not None and request.content_length > self.max_body:
            raise _Refused(413, "Request body too large")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Refused(413, "Request body too large") from None
        return decode_body(request.headers.get(hdrs.CONTENT_ENCODING, ""), raw, self.max_body)

    def _admit(self, request: web.Request) -> bool:
        ip = request.remote or "?"
        if self.limiter.allow(ip):
            return True
        if self.metrics is not None:
            self.metrics.rate_limited.inc()
        return False

    async def _serve(
        self, endpoint: str, request: web.Request, handler: Handler, not_ready: str
    ) -> web.Response:
        """Rate limit, size limit and readiness, then ``handler(body)`` counted as in flight."""
        t0 = time.perf_counter()
        if not self._admit(request):
            return self._reply(endpoint, 429, b"Too many requests, try again later", t0)
        if endpoint == "storage_rpc" and "X-Loki-Long-Poll" in request.headers:
            return self._reply(endpoint, 410, b"Long polling is no longer supported", t0)
        try:
            body = await self._body(request)
        except _Refused as e:
            return self._reply(endpoint, e.status, e.text.encode(), t0)
        why = self.ready()
        if why is not None:
            return self._reply(endpoint, 503, f"{not_ready}: {why}".encode(), t0)
        self.inflight += 1
        try:
            status, out, content_type = await handler(body)
        finally:
            self.inflight -= 1
        return self._reply(endpoint, status, out, t0, content_type)

    async def _rpc(self, body: bytes) -> tuple[int, bytes, str]:
        r = await self.rpc.respond(body)
        return r.status, r.to_bytes(), r.content_type

    async def _onion(self, body: bytes) -> tuple[int, bytes, str]:
        # Onion answers are base64 (or raw) ciphertext, a proxied server's answer, or a relay's
        # plain-text error: all text/plain, as Session's storage server labels them.
        status, out = await self.router.handle(body)
        return status, out, _TEXT

    async def storage_rpc(self, request: web.Request) -> web.Response:
        return await self._serve("storage_rpc", request, self._rpc, "Service node is not ready")

    async def onion_req(self, request: web.Request) -> web.Response:
        return await self._serve("onion", request, self._onion, "Snode not ready")

    async def ping_test(self, request: web.Request) -> web.Response:
        return web.Response(
            status=200,
            body=b"",
            headers={"X-Oxen-Snode-Pubkey": self.pubkey_b64, "Server": SERVER_HEADER},
        )

    async def get_stats(self, request: web.Request) -> web.Response:
        body = json.dumps({"version": STORAGE_SERVER_VERSION_TEXT}).encode()
        return web.Response(
            status=200, body=body, headers={"Content-Type": _JSON, "Server": SERVER_HEADER}
        )
