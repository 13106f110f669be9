"""A small HTTP/1.1 client on asyncio protocols and httptools' response parser.

It replaces aiohttp's client wherever the node and the client library make HTTP requests (the
client's onion requests to guards, the registry client, a node's proxying to v4 servers and its
reachability pings): aiohttp costs about 11 MB of RSS in every process that imports it
(docs/performance.md, "A node's footprint").

    async with HttpClient(ssl_context=client_ssl_context()) as http:
        r = await http.request("POST", "https://127.0.0.1:22021/onion_req/v2", body=frame,
                               timeout=10, max_size=1 << 20)
        r.status, r.headers["content-type"], r.body

* Connections are pooled per (scheme, host, port, TLS server name), at most ``per_host`` at a
  time (further requests wait for one, within their timeout); an idle one is closed after
  ``idle_timeout`` seconds (before a server's own keep-alive timer, which is 60 s on ours). A
  connection goes back to the pool only after a complete answer that both sides keep alive;
  one that failed, timed out, was cancelled or got bytes nobody asked for is closed.
* ``timeout`` is the total time of one request: waiting for a connection, connecting, TLS,
  sending and the whole answer.
* ``max_size`` caps the answer's body: a larger ``Content-Length`` is refused before the body is
  read, and a chunked or close-delimited answer is refused as soon as it passes the cap. The
  response head is capped at :data:`session.http1.MAX_HEAD` bytes (64 KiB), and so are a
  chunked answer's trailers, as the server caps a request's.
* TLS uses the caller's :class:`ssl.SSLContext` (the project's nodes have self-signed
  certificates: callers pass :func:`session.service.tls.client_ssl_context`, which does not
  verify them; the onion layers carry the security).
* Errors are typed (:mod:`session.errors`): :class:`HttpConnectError` (nothing accepted the
  connection, or its TLS handshake failed), :class:`HttpTimeout` (also a ``TimeoutError``),
  :class:`HttpProtocolError` (malformed answer, or closed before the answer was complete) and
  :class:`HttpResponseTooLarge`; a bad URL or header is :class:`InvalidInput`.
* Redirects are never followed; ``HEAD`` and protocol upgrades are not supported. A request
  whose method is idempotent (GET, PUT, DELETE, OPTIONS) is sent again, once, on a fresh
  connection when a reused one was closed before any byte of the answer came (the server's
  keep-alive timer won the race); a POST never is.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

from session.errors import (
    HttpConnectError,
    HttpError,
    HttpProtocolError,
    HttpResponseTooLarge,
    HttpTimeout,
    InvalidInput,
)
from session.http1 import MAX_HEAD

#: Largest answer body when the caller names no cap.
DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
#: Seconds an unused pooled connection stays open.
DEFAULT_IDLE_TIMEOUT = 15.0

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
#: Headers the client writes itself from the body and its keep-alive setting.
_OWN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})

_Key = tuple[str, str, int, str | None]


@dataclass(frozen=True, slots=True)
class Response:
    """One complete answer."""

    status: int
    #: Header names lower-cased; a repeated header's values joined with ", ".
    headers: Mapping[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends one request at a time and parses its answer."""

    def __init__(self, label: str) -> None:
        self.label = label  # "host:port", for error messages
        self.transport: asyncio.Transport | None = None
        self.closed = False
        #: True after a complete answer that both sides keep alive.
        self.reusable = False
        #: A byte of the current answer arrived.
        self.answered = False
        #: The pool's hook for an idle connection that the server closed.
        self.on_lost: Callable[[_Connection], None] | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Response] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused = False
        self._expecting = False
        self._stray = False
        self._limit = 0
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._head_bytes = 0
        self._head_done = False
        self._quiet = 0  # bytes read since the last chunk header or body data (trailers)
        self._progress = False
        self._until_close = False
        self._keep_alive = False
        self._failure: HttpError | None = None

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self._expecting:
            self._stray = True  # nobody asked: the connection is in an unknown state
            self.abort()
            return
        self.answered = True
        if not self._head_done:
            self._head_bytes += len(data)
        self._progress = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HttpProtocolError(f"{self.label} switched protocols"))
            return
        except httptools.HttpParserError as e:
            self._fail(HttpProtocolError(f"{self.label} sent a malformed HTTP answer ({e})"))
            return
        if self._failure is not None:
            self._fail(self._failure)
        elif not self._head_done and self._head_bytes > MAX_HEAD:
            self._fail(
                HttpProtocolError(f"{self.label} sent a response head over {MAX_HEAD} bytes")
            )
        elif self._head_done and self._expecting and not self._progress:
            self._quiet += len(data)  # httptools keeps a trailer whole until its line ends
            if self._quiet > MAX_HEAD:
                self._fail(HttpProtocolError(f"{self.label} sent trailers over {MAX_HEAD} bytes"))
        elif self._stray:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._expecting:
            if self._head_done and self._until_close and self._failure is None:
                self._finish()  # the body ran to the end of the connection, as announced
            elif self._failure is not None:
                self._fail(self._failure)
            elif self.answered:
                self._fail(HttpProtocolError(f"{self.label} closed the connection mid-answer"))
            else:
                self._fail(
                    HttpProtocolError(f"{self.label} closed the connection before answering")
                )
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -------------------------------------------------------------- httptools callbacks

    def on_message_begin(self) -> None:
        if not self._expecting:
            self._stray = True

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._status = self._parser.get_status_code()
        # read here: by the message's end llhttp may have moved on (as the server found)
        self._keep_alive = self._parser.should_keep_alive()
        if self._status < 200:
            return  # an interim answer (100 Continue): the real one follows
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limit:
            self._failure = self._too_large()
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        self._until_close = length is None and not chunked and self._status not in (204, 304)

    def on_chunk_header(self) -> None:
        self._progress = True
        self._quiet = 0

    def on_body(self, chunk: bytes) -> None:
        self._progress = True
        self._quiet = 0
        if self._failure is not None:
            return
        self._size += len(chunk)
        if self._size > self._limit:
            self._failure = self._too_large()
            self._body.clear()
        else:
            self._body.append(chunk)

    def on_message_complete(self) -> None:
        if self._status < 200:
            self._headers = {}
            self._head_done = False
            self._head_bytes = 0
            return
        self.reusable = self._keep_alive and not self._until_close
        if self._failure is None:
            self._finish()

    # -------------------------------------------------------------- requests

    async def exchange(self, data: list[bytes], limit: int) -> Response:
        """Send one request (``data``: its head and body) and return the complete answer."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise HttpProtocolError(f"{self.label} closed the connection before answering")
        loop = asyncio.get_running_loop()
        self._answer = answer = loop.create_future()
        self._expecting, self.reusable, self.answered = True, False, False
        self._limit, self._status, self._headers, self._body, self._size = limit, 0, {}, [], 0
        self._head_bytes, self._head_done, self._until_close = 0, False, False
        self._quiet = 0
        self._keep_alive = False
        self._failure = None
        transport.writelines(data)
        while self._paused and not self.closed and not answer.done():
            self._writable = loop.create_future()
            await self._writable
        return await answer

    def abort(self) -> None:
        """Close at once, answer or not (nothing more is read or written)."""
        self.reusable = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.transport is not None:
            self.transport.abort()

    def _too_large(self) -> HttpResponseTooLarge:
        return HttpResponseTooLarge(
            f"{self.label} answered with more than {self._limit} bytes", self._limit
        )

    def _finish(self) -> None:
        self._expecting = False
        if self._answer is not None and not self._answer.done():
            body = b"".join(self._body)
            self._answer.set_result(Response(self._status, self._headers, body))
        self._body = []

    def _fail(self, error: HttpError) -> None:
        self._expecting = False
        self._body = []
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.abort()


@dataclass
class _Host:
    """The connections to one (scheme, host, port, server name)."""

    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)
    users: int = 0  # requests holding or waiting for a slot


class HttpClient:
    """Pooled HTTP/1.1 requests (see the module's description).

    ``ssl_context`` is used for ``https`` URLs (a request to one without it is refused);
    ``per_host`` caps the connections open to one host at a time; ``keepalive=False`` closes
    every connection after its answer (for tests of reachability, where a pooled connection
    would hide a restart); ``user_agent`` is sent unless a request names its own.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        per_host: int = 8,
        timeout: float = DEFAULT_TIMEOUT,
        max_size: int = DEFAULT_MAX_RESPONSE,
        keepalive: bool = True,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        user_agent: str | None = None,
    ) -> None:
        if per_host < 1:
            raise InvalidInput("per_host must be at least 1")
        self.ssl_context = ssl_context
        self.per_host = per_host
        self.timeout = timeout
        self.max_size = max_size
        self.keepalive = keepalive
        self.idle_timeout = idle_timeout
        self.user_agent = user_agent
        self.closed = False
        self._hosts: dict[_Key, _Host] = {}

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self.closed = True
        for host in self._hosts.values():
            for conn in host.idle:
                conn.on_lost = None
                conn.abort()
            host.idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    def open_connections(self) -> int:
        """Idle pooled connections (for tests and metrics)."""
        return sum(len(h.idle) for h in self._hosts.values())

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_size: int | None = None,
        server_hostname: str | None = None,
    ) -> Response:
        """Send ``method url`` with ``body``; return the complete answer (any status).

        ``timeout`` (seconds, total) and ``max_size`` (body bytes) default to the client's;
        ``server_hostname`` is the TLS server name when it is not the URL's host (a request
        to a checked address on behalf of a name); ``headers`` may set ``Host``.
        """
        if self.closed:
            raise InvalidInput("this HTTP client is closed")
        key, head = self._prepare(method, url, body, headers or {}, server_hostname)
        limit = self.max_size if max_size is None else max_size
        wait = self.timeout if timeout is None else timeout
        data = [head, body] if body else [head]
        try:
            async with asyncio.timeout(wait):
                return await self._exchange(key, method, data, limit)
        except TimeoutError as e:
            if isinstance(e, HttpError):
                raise
            raise HttpTimeout(f"{_label(key)} did not answer within {wait:g} s") from None

    # -------------------------------------------------------------- internals

    def _prepare(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        server_hostname: str | None,
    ) -> tuple[_Key, bytes]:
        if not _TOKEN.fullmatch(method) or method.upper() != method:
            raise InvalidInput(f"not an HTTP method: {method!r}")
        if method == "HEAD":
            raise InvalidInput("HEAD requests are not supported")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise InvalidInput(f"not a usable URL: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidInput(f"not an http(s) URL: scheme {scheme!r}")
        host = parts.hostname
        if not host or parts.username is not None or parts.password is not None:
            raise InvalidInput("the URL needs a host (and no user name)")
        if scheme == "https" and self.ssl_context is None:
            raise InvalidInput("an https URL needs the client's ssl_context")
        default = 443 if scheme == "https" else 80
        port = default if port is None else port
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _BAD_TARGET.search(target) or not target.isascii():
            raise InvalidInput("the URL's path holds spaces, control or non-ASCII characters")
        shown = f"[{host}]" if ":" in host else host
        lines = [f"{method} {target} HTTP/1.1"]
        given = {name.lower() for name in headers}
        if "host" not in given:
            lines.append(f"Host: {shown}" if port == default else f"Host: {shown}:{port}")
        if self.user_agent and "user-agent" not in given:
            lines.append(f"User-Agent: {self.user_agent}")
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                raise InvalidInput(f"not a valid HTTP header: {name!r}")
            if name.lower() in _OWN_HEADERS:
                raise InvalidInput(f"the client sets {name} itself")
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if not self.keepalive:
            lines.append("Connection: close")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidInput("an HTTP header holds characters outside Latin-1") from None
        sni = (server_hostname or host) if scheme == "https" else None
        return (scheme, host, port, sni), head

    async def _exchange(self, key: _Key, method: str, data: list[bytes], limit: int) -> Response:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(asyncio.Semaphore(self.per_host))
        host.users += 1
        try:
            async with host.slots:
                conn = self._take_idle(host)
                if conn is not None and method in _IDEMPOTENT:
                    try:
                        return await self._send(key, host, conn, data, limit)
                    except HttpProtocolError:
                        if conn.answered:
                            raise
                    conn = None  # the server closed it as we reused it: once more, afresh
                if conn is None:
                    conn = await self._connect(key)
                return await self._send(key, host, conn, data, limit)
        finally:
            host.users -= 1
            self._forget_if_unused(key, host)

    async def _send(
        self, key: _Key, host: _Host, conn: _Connection, data: list[bytes], limit: int
    ) -> Response:
        ok = False
        try:
            response = await conn.exchange(data, limit)
            ok = True
            return response
        finally:
            if ok and conn.reusable and self.keepalive and not self.closed and not conn.closed:
                self._park(key, host, conn)
            else:
                conn.abort()

    async def _connect(self, key: _Key) -> _Connection:
        scheme, host, port, sni = key
        label = _label(key)
        loop = asyncio.get_running_loop()
        tls = self.ssl_context if scheme == "https" else None
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(label), host, port, ssl=tls, server_hostname=sni
            )
        except OSError as e:  # refused, unreachable, unknown name (gaierror), TLS (SSLError)
            reason = e.strerror or str(e) or type(e).__name__
            raise HttpConnectError(f"cannot connect to {label}: {reason}", e) from None
        return conn

    def _take_idle(self, host: _Host) -> _Connection | None:
        while host.idle:
            conn = host.idle.pop()
            conn.on_lost = None
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
            conn.abort()
        return None

    def _park(self, key: _Key, host: _Host, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()

        def drop(c: _Connection) -> None:
            if c in host.idle:
                host.idle.remove(c)
            c.on_lost = None
            c.abort()
            self._forget_if_unused(key, host)

        conn.on_lost = drop
        conn.idle_timer = loop.call_later(self.idle_timeout, drop, conn)
        host.idle.append(conn)

    def _forget_if_unused(self, key: _Key, host: _Host) -> None:
        if host.users == 0 and not host.idle and self._hosts.get(key) is host:
            del self._hosts[key]


def _label(key: _Key) -> str:
    _, host, port, _ = key
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["DEFAULT_MAX_RESPONSE", "HttpClient", "Response"]
