"""Serving an aiohttp application the way every service does (node, registry, file and
community servers): TLS or plain, a bound port to report, a bounded shutdown, and limits so a
connection never costs the service more than it costs whoever opened it.

``serve(app, host, port, ssl_context=..., limits=..., max_body=...)`` starts the site and
returns a :class:`Served` (``.port`` is the real port when ``port`` was 0); ``await
served.close()`` stops accepting and lets in-flight requests finish within the shutdown timeout.

The limits (:class:`~session.service.config.ConnectionLimits`) and how each is enforced:

* ``max_connections`` / ``max_connections_per_address`` — counted at accept, before any TLS
  work; a connection over either cap is closed at once.
* ``new_connections_per_second`` / ``new_connections_burst`` — a token bucket per address
  (an IPv6 /64), taken at accept too: a connection beyond it is closed at once.
* ``tls_handshake_timeout`` — the handshake runs in ``loop.start_tls`` with this deadline.
* ``idle_timeout`` — aiohttp's keep-alive timer: from accept, and from each response, a
  connection has this long to deliver the next request's headers.
* ``header_timeout`` — from the first byte of a request to its last header line (slowloris).
* ``body_timeout`` — to receive the whole body once the headers are in (408 otherwise).
* ``max_inflight_body_bytes`` — request bodies are read before the handler runs, each after
  reserving its size (``Content-Length``, or ``max_body`` when chunked) from this budget; a body
  that does not fit is refused with 503 at once, one larger than ``max_body`` with 413, so
  memory stays bounded whatever is sent. A handler marked :func:`streams_body` (a file upload
  written to disk as it arrives) reads its body itself through :func:`body_pieces`, within the
  same body timeout and ``max_body``, and reserves nothing (it holds no body in memory).

aiohttp parses HTTP. The site accepts connections itself
(:class:`~session.service.accept.Listener`, shared with the node's lean server: count, then
``loop.connect_accepted_socket`` with the handshake deadline); a small protocol
(:class:`_Connection`) between the transport and aiohttp's request handler runs the header
timer; the body budget is a middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from session.service.accept import (
    DEFAULT_MAX_BODY,
    Admitted,
    ConnectionStats,
    Gate,
    Listener,
    Refusal,
    ServedSite,
    listening_socket,
)
from session.service.config import ConnectionLimits
from session.service.datadir import DataDirLock
from session.service.memory import keep_large_buffers

log = logging.getLogger("session.service.server")

#: Seconds aiohttp keeps reading (and discarding) a body the site refused (413/503/408) before
#: it closes the connection. 0: a refused connection closes once its answer is written,
#: which keeps a flood of refused TLS uploads from costing memory (measured: 40 concurrent
#: 9.9 MB TLS uploads peak at 144 MB RSS with 2 s of lingering, 121 MB without).
LINGERING_TIME = 0.0
#: Bytes aiohttp buffers per connection before it stops reading the socket (its default is
#: 64 KiB). Measured: 100 concurrent 9.9 MB TLS uploads peak at 168 MB RSS with the default,
#: 144 MB with 16 KiB; one upload's time does not change measurably.
READ_BUFSIZE = 16 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Request key of a streaming handler's body deadline (loop time).
_BODY_DEADLINE = web.RequestKey("session.body_deadline", float)
#: Largest piece :func:`body_pieces` returns.
BODY_PIECE = 256 * 1024
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


class BodyTimeout(Exception):
    """A streamed body did not arrive within the body timeout (the site answers 408)."""


def streams_body(handler: H) -> H:
    """Mark an aiohttp handler that reads its request body itself, piece by piece, through
    :func:`body_pieces` (the site does not read the body for it first)."""
    handler.streams_body = True  # type: ignore[attr-defined]  # a marker the gate reads
    return handler


async def body_pieces(request: web.Request) -> AsyncIterator[bytes]:
    """The body of a request to a :func:`streams_body` handler, as it arrives; raises
    :class:`BodyTimeout` once the site's body timeout has passed."""
    deadline = request[_BODY_DEADLINE]
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                piece = await request.content.read(BODY_PIECE)
        except TimeoutError:
            raise BodyTimeout("the request body was not received in time") from None
        if not piece:
            return
        yield piece


class _Gate(Gate):
    """A site's :class:`~session.service.accept.Gate`, plus the connection of each aiohttp
    request handler (for the header timer)."""

    def __init__(
        self, limits: ConnectionLimits, max_body: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(limits, max_body, ssl_context)
        self.by_handler: dict[RequestHandler, _Connection] = {}

    # -- request bodies -----------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Mark the head as received (stops the header timer), then read the body within the
        budget and the body timeout before the handler runs."""
        conn = self.by_handler.get(request.protocol)
        if conn is not None:
            conn.request_started()
        reserved = 0
        try:
            if getattr(request.match_info.handler, "streams_body", False):
                return await self._streamed(request, handler)
            if request.body_exists:
                want = self.max_body if request.content_length is None else request.content_length
                refusal = self.reserve_body(want)
                if refusal is not None:
                    return _refusal(refusal)
                reserved = want
                refused = await self._read_body(request)
                if refused is not None:
                    return refused
            return await handler(request)
        finally:
            self.free_body(reserved)
            if conn is not None:
                conn.request_done()

    async def _streamed(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Run a handler that reads its own body (:func:`body_pieces`): over ``max_body`` by
        its Content-Length is a 413 before it runs; a body that does not arrive in time a 408."""
        if request.content_length is not None and request.content_length > self.max_body:
            return _refusal(self.too_large())
        request[_BODY_DEADLINE] = asyncio.get_running_loop().time() + self.limits.body_timeout
        try:
            return await handler(request)
        except BodyTimeout:
            return _refusal(self.body_timed_out())
        except RequestPayloadError:
            return _refusal_text(
                400,
                "Request body could not be decoded: it does not match its Transfer-Encoding header",
            )

    async def _read_body(self, request: web.Request) -> web.Response | None:
        """Read the body within the body timeout; a refusal when it cannot be had."""
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                await request.read()
        except TimeoutError:
            return _refusal(self.body_timed_out())
        except web.HTTPRequestEntityTooLarge:
            return _refusal(self.too_large())
        except RequestPayloadError:  # e.g. not the gzip its Content-Encoding says
            return _refusal_text(
                400,
                "Request body could not be decoded: it does not match its "
                "Content-Encoding or Transfer-Encoding header",
            )
        return None


def _refusal(refusal: Refusal) -> web.Response:
    return _refusal_text(refusal.status, refusal.text, refusal.retry_after)


def _refusal_text(status: int, text: str, retry_after: int | None = None) -> web.Response:
    resp = web.Response(status=status, text=text)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    resp.force_close()
    return resp


class _Connection(Admitted):
    """One admitted connection (already counted by the gate, TLS already done): a header timer,
    and every event passed on to aiohttp's request handler."""

    _gate: _Gate

    def __init__(self, gate: _Gate, make_handler: Callable[[], RequestHandler], ip: str) -> None:
        super().__init__(gate, ip)
        self._make_handler = make_handler
        self._handler: RequestHandler | None = None
        self._busy = False  # a request's head was received and its handler has not finished
        self._header_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's transports do not subclass it
        self._transport = transport
        handler = self._make_handler()
        self._handler = handler
        self._gate.by_handler[handler] = self
        handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is None:
            return
        if not self._busy and self._header_timer is None:
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(
                self._gate.limits.header_timeout, self._header_expired
            )
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            self._handler.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()
        if self._handler is not None:
            handler, self._handler = self._handler, None
            handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    # -- ours -----------------------------------------------------------------------------
    def request_started(self) -> None:
        self._busy = True
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def request_done(self) -> None:
        self._busy = False

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._busy:
            return
        self._gate.stats.header_timeouts += 1
        log.debug("connection closed: request headers not received in time")
        self.abort()

    def _forget(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._handler is not None:
            self._gate.by_handler.pop(self._handler, None)


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections are accepted by :class:`_Listener`."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, gate: _Gate, backlog: int
    ) -> None:
        super().__init__(runner, ssl_context=gate.ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._gate = gate

    @property
    def name(self) -> str:
        scheme = "https" if self._gate.ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        factory = self._runner.server
        assert factory is not None  # set by runner.setup()
        gate = self._gate
        sock = listening_socket(self._host, self._port, self._backlog)
        self._server = Listener(sock, gate, lambda ip: _Connection(gate, factory, ip))

    def bound_port(self) -> int:
        sockets = getattr(self._server, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else self._port


class Served(ServedSite):
    """A running site: the port it listens on, its counters, and :meth:`close`."""

    def __init__(
        self, runner: web.AppRunner, site: _GuardedSite, gate: _Gate, shutdown_timeout: float
    ) -> None:
        super().__init__(gate, site.bound_port(), shutdown_timeout)
        self.runner = runner
        self.site = site

    async def _stop_accepting(self) -> None:
        """aiohttp's runner stops listening and gives the requests in flight the shutdown
        timeout; the connections it leaves are closed at once (:meth:`Admitted.shutdown`)."""
        await self.runner.cleanup()


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: ConnectionLimits | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    shutdown_timeout: float = 10.0,
    backlog: int = 1024,
) -> Served:
    """Start ``app`` on ``host:port`` (0 picks a free port) with ``limits``; ``max_body`` is the
    largest request body the site accepts. Raises ``OSError`` if it cannot listen."""
    limits = limits or ConnectionLimits()
    gate = _Gate(limits, max_body, ssl_context)
    app.middlewares.insert(0, gate.middleware)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=limits.idle_timeout,
        lingering_time=LINGERING_TIME,
        read_bufsize=READ_BUFSIZE,
    )
    await runner.setup()
    site = _GuardedSite(runner, host, port, gate, backlog)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return Served(runner, site, gate, shutdown_timeout)


@contextlib.asynccontextmanager
async def stop_on_signals(stop: asyncio.Event | None = None) -> AsyncIterator[asyncio.Event]:
    """``stop`` (or a new event), set by SIGTERM or SIGINT while the block runs; the signal
    handlers are removed when it ends. Where signals cannot be handled (not the main thread)
    only whoever holds the event can stop the service."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


async def run_until_signal(
    start: Callable[[], Awaitable[S]], on_ready: Callable[[S], None], logger: logging.Logger,
    what: str, lock: DataDirLock | None = None,
) -> None:  # fmt: skip
    """Start a service (``await start()``), call ``on_ready`` with it, serve until SIGTERM or
    SIGINT, then close it. Freed large buffers are kept for the next request
    (:func:`~session.service.memory.keep_large_buffers`). ``lock`` (its data directory's) is
    held from before the start to after the close: a second one on the directory is refused."""
    keep_large_buffers()
    if lock is not None:
        lock.acquire()
    try:
        async with stop_on_signals() as stop:
            server = await start()
            try:
                logger.info("%s listening", what)
                on_ready(server)
                await stop.wait()
            finally:
                await server.close()
    finally:
        if lock is not None:
            lock.release()


__all__ = [
    "DEFAULT_MAX_BODY",
    "ConnectionStats",
    "Served",
    "run_until_signal",
    "serve",
    "stop_on_signals",
]
