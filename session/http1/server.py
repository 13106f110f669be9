"""A small HTTP/1.1 server on asyncio (or uvloop) protocols with httptools' request parser: the
node's public HTTPS site and its loopback admin site, without aiohttp's server (about 11 MB of
RSS on a Raspberry Pi; see docs/performance.md, "A node's footprint").

``await serve(routes, host, port, ssl_context=..., limits=..., max_body=...)`` starts a site
and returns a :class:`Served` (``.port``, ``.stats``, ``await .close()``). ``routes`` maps a
path to ``{method: handler}``; a handler takes a :class:`Request` (method, path, headers, the
whole body, the peer's address) and returns a :class:`Response`. Other paths get 404, other
methods on a known path 405; ``HEAD`` is answered by the ``GET`` handler without the body.

Connections are accepted by :class:`session.service.accept.Listener` (shared with the aiohttp
sites of :mod:`session.service.server`): counted against the caps before any TLS work, then
the TLS handshake under its deadline. Every other limit of
:class:`~session.service.config.ConnectionLimits` is enforced here, per connection:

* ``idle_timeout`` — from accept, and from each response, a connection has this long to start
  its next request, else it is closed (a peer that stops reading its answers is idle from the
  last answer written, however many requests it has queued);
* ``header_timeout`` — from a request's first byte to its last header line (slowloris), else
  the connection is closed without an answer;
* ``body_timeout`` — to receive the whole body once the headers are in, else 408 and close;
* ``max_inflight_body_bytes`` / ``max_body`` — a body reserves its ``Content-Length`` (or
  ``max_body`` when chunked) from the site's budget when its headers are in: 503 at once when
  the budget is full, 413 when larger than ``max_body`` (or when a chunked body grows past
  it); the reservation is given back when the handler is done.

Keep-alive is HTTP/1.1's (``Connection: close`` and HTTP/1.0 without keep-alive close after the
answer; a request asking for a protocol upgrade is answered as a plain one, then the connection
closes); pipelined requests are answered in the order they came, one handler at a time (reading
and parsing pause while 8 complete requests wait, or while the peer does not read its answers:
a read is parsed 4 KiB at a time, so one read full of small requests does not queue
thousands). A request the parser rejects gets 400 (431 for headers, or a chunked body's
trailers, over 64 KiB; 414 for a target over 8 KiB) and the connection closes. Bodies are
passed on as sent: :func:`decode_body` decodes a
``Content-Encoding`` for handlers that accept one. A handler that raises is a bug: it is logged
with its traceback and the client gets 500.

A handler is called as its request's turn comes and returns one of three things:

* a :class:`Response` — a *synchronous* handler (a plain function) that answered at once: no
  task, no loop turn (the node's ``info``, a ``retrieve`` whose read did not wait, an onion
  layer for this node);
* a :class:`Pending` — a synchronous handler whose answer comes later from a callback (an
  onion layer relayed to the next node: its reply comes back to a callback of the links; a
  client's ``store``: its group commit's and its swarm's fan-out's callbacks), still
  without a task; on a lost connection the server cancels it, as it would cancel a task;
* an awaitable — an ``async def`` handler's coroutine, or the rest of a synchronous handler's
  work that has to wait: run in a task of its own, so whatever needs a current task
  (``asyncio.timeout``, ``TaskGroup``) has one. On Python 3.12 and later it is an eager task
  (:func:`asyncio.eager_task_factory`): its first step runs at once. On 3.11 an ordinary one.

Plain functions never need a task, so nothing runs outside one that might; a synchronous
handler that raises is a bug answered as a task that raised (500).

:meth:`Served.close` stops accepting, closes idle connections, lets requests in flight finish
within the shutdown timeout, then closes what is left.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from http import HTTPStatus
from typing import Any, NoReturn, cast

import httptools

from session.http1 import MAX_HEAD
from session.service.accept import (
    DEFAULT_MAX_BODY,
    Admitted,
    Gate,
    Listener,
    Refusal,
    ServedSite,
    listening_socket,
)
from session.service.config import ConnectionLimits

log = logging.getLogger("session.http1.server")

#: Longest request target; longer: 414.
MAX_TARGET = 8 * 1024
#: Most headers in one request; more: 431.
MAX_HEADERS = 100
#: Complete requests a connection may have waiting behind the one being handled before
#: reading pauses (pipelining).
MAX_PIPELINED = 8
#: Bytes given to the parser at a time: one read holds thousands of small pipelined requests,
#: so what follows the one that fills the queue is kept unparsed until the queue drains.
_FEED = 4096

_TEXT = "text/plain; charset=utf-8"
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class Request:
    """One request as a handler sees it: ``headers`` by lower-case name (repeated headers
    joined with ``", "``), ``body`` whole (as sent: not decoded), ``remote`` the peer's IP."""

    __slots__ = ("body", "headers", "method", "path", "query", "remote")

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, remote: str
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.remote = remote


class Response:
    """A handler's answer. ``Content-Length``, ``Date`` and ``Connection`` are the server's."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str | None = _TEXT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


class Pending:
    """An answer a synchronous handler gives later, from a callback, with no task: the handler
    returns it and ends it exactly once, :meth:`answer` or :meth:`fail` (a bug: 500, logged,
    connection closed, as a task that raised). The server cancels it (:meth:`cancel`) when
    the connection is lost or aborted, as it cancels a handler's task; an answer after that is
    dropped. ``on_end`` runs once however it ends (cancelled included), before the answer is
    written: the handler's ``finally``."""

    __slots__ = ("_on_end", "deliver", "done", "outcome")

    def __init__(self, on_end: Callable[[], None] | None = None) -> None:
        self._on_end = on_end
        self.done = False
        #: the answer, once ended (None: cancelled)
        self.outcome: Response | BaseException | None = None
        #: set by the server: where the outcome goes
        self.deliver: Callable[[Response | BaseException | None], None] | None = None

    def answer(self, response: Response) -> None:
        """End with ``response`` (dropped when already ended: cancelled)."""
        self._end(response)

    def fail(self, exc: BaseException) -> None:
        """End with a bug: the client gets 500 and the connection closes."""
        self._end(exc)

    def answer_with(self, make: Callable[..., Response], *args: Any) -> None:
        """End with ``make(*args)``. The one guard of code that answers a Pending from a
        callback (outside any task): what escapes ``make`` fails the answer (500, logged with
        its traceback, as a task's bug) instead of leaving the client without one."""
        try:
            response = make(*args)
        except Exception as bug:
            # Bug guard, deliberately broad: refusals are answers (responses), so only a bug of
            # ours lands here, and what it raises is not known in advance.
            self.fail(bug)
            return
        self.answer(response)

    def cancel(self) -> None:
        """(The server's) the connection is gone: nothing will be written."""
        self._end(None)

    def result(self) -> Response:
        """The answer of a Pending that ended; raises what it failed with."""
        if isinstance(self.outcome, Response):
            return self.outcome
        raise self.outcome if self.outcome is not None else RuntimeError("answer cancelled")

    def _end(self, outcome: Response | BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        self.outcome = outcome
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()
        if self.deliver is not None:
            self.deliver(outcome)


#: A request → its answer: a :class:`Response` now, a :class:`Pending` answered later from a
#: callback, or an awaitable (an ``async def`` handler's coroutine) run in a task.
Handler = Callable[[Request], Awaitable[Response] | Response | Pending]
#: path → {method → handler}
Routes = Mapping[str, Mapping[str, Handler]]


class HttpError(Exception):
    """A request a handler refuses: the status and the one sentence to answer."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


#: zlib window bits of the content codings a body may use (RFC 9110 §8.4.1).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_body(content_encoding: str, raw: bytes, limit: int) -> bytes:
    """``raw`` decoded as its ``Content-Encoding`` header says: as is (none, ``identity``), or
    gunzipped / inflated (``gzip``, ``deflate``) to at most ``limit`` bytes. Raises
    :class:`HttpError`: 415 for any other coding, 400 for a body that is not valid data of its
    coding, 413 past ``limit``."""
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return raw
    wbits = _CODINGS.get(coding)
    if wbits is None:
        raise HttpError(
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
        raise HttpError(413, "Request body too large once decompressed")
    if out is None or not d.eof or d.unused_data:
        raise HttpError(
            400,
            f"The request body is not valid {coding} data although its Content-Encoding header "
            "says so: send it uncompressed, or compressed correctly",
        )
    return out


_date_second = 0
_date_line = b""


def _date() -> bytes:
    """The ``Date`` header line, formatted once a second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
        _date_line = b"Date: " + stamp.encode() + b"\r\n"
    return _date_line


def _head(status: int, resp: Response, length: int, close: bool) -> bytes:
    reason = _REASONS.get(status, b"Unknown")
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    if resp.content_type is not None:
        parts.append(b"Content-Type: " + resp.content_type.encode("latin-1") + b"\r\n")
    if resp.headers:
        for name, value in resp.headers.items():
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    parts.append(_date())
    parts.append(b"Content-Length: %d\r\n" % length)
    parts.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
    return b"".join(parts)


#: A queued item that ends the connection without an answer of its own.
_END = Refusal(0, "")


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: the connection answers and closes."""


class _Site:
    """What the connections of one site share: routes and gate (which counts them)."""

    def __init__(self, routes: Routes, gate: Gate) -> None:
        self.routes = routes
        self.gate = gate


# A queued item: a complete request (with its body reservation and keep-alive), or a refusal
# the server answers itself (then the connection closes).
_Queued = tuple[Request, int, bool] | Refusal


#: asyncio's eager task factory (Python 3.12+), else None (see the module docstring)
_EAGER = getattr(asyncio, "eager_task_factory", None)


def _start(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task running ``coro``: eager where asyncio has eager tasks (its first step runs now)."""
    if _EAGER is not None:
        return cast("asyncio.Task[None]", _EAGER(loop, coro))
    return loop.create_task(coro)


class _Connection(Admitted):
    """One admitted connection (TLS already done): parses requests, enforces the per-request
    limits, and answers in order."""

    def __init__(self, site: _Site, ip: str) -> None:
        super().__init__(site.gate, ip)
        self._site = site
        self._limits = site.gate.limits
        self._tls = site.gate.ssl_context is not None
        self._parser = httptools.HttpRequestParser(self)
        self._loop = asyncio.get_running_loop()
        # the request being parsed
        self._in_head = False  # its first byte came, its headers are not complete
        self._in_body = False  # its headers are complete, its body is not
        self._url = b""
        self._head_bytes = 0  # bytes of the reads after the one the head began in
        self._quiet = 0  # body bytes fed since the last chunk header or body data (trailers)
        self._progress = False  # this piece had a chunk header or body data
        self._head_size = 0
        self._header_count = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_len = 0
        self._reserved = 0
        self._keep_alive = True
        self._stopping: Refusal | None = None  # set by a callback that raises _Stop
        # requests parsed, waiting for their turn, and the one being handled
        self._queue: collections.deque[_Queued] = collections.deque()
        # the request being handled: its task, or the Pending answer of a synchronous handler
        self._busy: asyncio.Task[None] | Pending | None = None
        self._started = False  # that task has begun its first step
        self._cancel_at_start = False  # ... and is to be cancelled there (the peer went first)
        self._done_reading = False  # the last request came (close after it) or it failed
        self._eof = False  # the peer half-closed: close once every request is answered
        self._closing = False  # close once what is being handled is answered (shutdown)
        self._reading_paused = False
        self._writing_paused = False
        self._unparsed = b""  # read, not parsed yet: the queue was full (pipelining)
        self._parsing = False
        # timers: the idle timer is lazy (re-armed when it fires early), the others per request
        self._idle_since = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        self._transport = base  # type: ignore[assignment]  # uvloop's do not subclass Transport
        self._idle_since = self._loop.time()
        self._idle_timer = self._loop.call_at(
            self._idle_since + self._limits.idle_timeout, self._idle_check
        )

    def data_received(self, data: bytes) -> None:
        if self._unparsed:  # reading is paused; a transport may still hand over what it had
            self._unparsed += data
            return
        self._feed(data)

    def _feed(self, data: bytes, whole: bool = False) -> None:
        """Parse ``data`` a piece at a time; keep the rest unparsed (and reading paused) once
        :data:`MAX_PIPELINED` requests wait, unless ``whole``."""
        self._parsing = True
        view = memoryview(data)
        try:
            for at in range(0, len(view), _FEED):
                if self._done_reading:
                    return
                if at and not whole and len(self._queue) >= MAX_PIPELINED:
                    self._unparsed = bytes(view[at:])
                    self._pause_reading()
                    return
                self._parse(view[at : at + _FEED])
        finally:
            self._parsing = False
        self._maybe_resume_reading()

    def _parse(self, data: memoryview) -> None:
        if self._done_reading:
            return
        if self._in_head:  # a head begun in an earlier piece: httptools buffers a header whole
            self._head_bytes += len(data)
        self._progress = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # the request asking for it is answered as a plain one (RFC 9110 §7.8 lets a
            # server ignore Upgrade); what follows is not HTTP/1.1, so the connection ends
            self._fail(_END)
        except httptools.HttpParserError as e:
            if self._stopping is not None:
                self._fail(self._stopping)
            elif not self._done_reading:
                self._fail(Refusal(400, f"Malformed HTTP request: {_parser_reason(e)}"))
            return
        if self._in_head and self._head_bytes > MAX_HEAD + MAX_TARGET:
            self._fail(Refusal(431, "Request headers too large"))
            return
        if self._in_body:  # trailers (or a chunk extension) that never end are buffered too
            self._quiet = 0 if self._progress else self._quiet + len(data)
            if self._quiet > MAX_HEAD:
                self._fail(Refusal(431, "Request trailers too large"))
                return
        if self._in_head and self._header_timer is None:
            self._header_timer = self._loop.call_later(
                self._limits.header_timeout, self._header_expired
            )
        if self._in_body and self._body_timer is None:
            self._body_timer = self._loop.call_later(self._limits.body_timeout, self._body_expired)

    def eof_received(self) -> bool | None:
        # the peer will send nothing more: answer what was received (pipelined), then close
        if self._unparsed:
            data, self._unparsed = self._unparsed, b""
            self._feed(data, whole=True)
        self._done_reading = self._eof = True
        self._discard_partial()
        if self._busy is None and not self._queue:
            self.close()
        # plain TCP: keep our side open to write the answers (TLS cannot half-close)
        return None if self._tls else True

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._discard_partial()
        self._cancel_busy()
        for item in self._queue:
            if not isinstance(item, Refusal):
                self._gate.free_body(item[1])
        self._queue.clear()
        self.release()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._next()
        self._maybe_resume_reading()

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._head_bytes = 0
        self._quiet = 0
        self._head_size = 0
        self._header_count = 0
        self._headers = {}
        self._body = []
        self._body_len = 0
        self._reserved = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_TARGET:
            self._stop(Refusal(414, f"Request target too long (limit {MAX_TARGET} bytes)"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        self._header_count += 1
        if self._head_size > MAX_HEAD or self._header_count > MAX_HEADERS:
            self._stop(Refusal(431, "Request headers too large"))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        self._in_head = False
        # read here: llhttp may have moved on from the message by its end
        self._keep_alive = self._parser.should_keep_alive()
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        headers = self._headers
        length = headers.get("content-length")
        if length is not None:
            want = int(length)  # the parser checked it is digits
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            want = self._gate.max_body
        else:
            want = 0
        if want:
            refusal = self._gate.reserve_body(want)
            if refusal is not None:
                self._stop(refusal)
            self._reserved = want
            self._in_body = True
            if (
                headers.get("expect", "").lower() == "100-continue"
                and self._busy is None
                and not self._queue
                and self._transport is not None
            ):
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_chunk_header(self) -> None:
        self._progress = True

    def on_body(self, body: bytes) -> None:
        self._progress = True
        self._body_len += len(body)
        if self._body_len > self._reserved:  # a chunked body past max_body
            self._stop(self._gate.too_large())
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_head = self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        method = self._parser.get_method().decode("ascii", "replace")
        path, _, query = self._url.decode("latin-1").partition("?")
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        keep_alive = self._keep_alive and not self._closing
        request = Request(method, path, query, self._headers, body, self._ip)
        self._queue.append((request, self._reserved, keep_alive))
        self._reserved = 0
        self._body = []
        if not keep_alive:
            self._done_reading = True
        if len(self._queue) >= MAX_PIPELINED:
            self._pause_reading()
        self._next()

    # -- answering, in order --------------------------------------------------------------
    def _next(self) -> None:
        """Start handling the next queued request, unless one is being handled or the peer
        is not reading its answers."""
        while self._busy is None and self._queue and not self._writing_paused:
            item = self._queue.popleft()
            if item is _END:
                self._queue.clear()
                self.close()
                return
            if isinstance(item, Refusal):
                self._queue.clear()
                self._write(Response(item.status, item.text.encode(), _TEXT, _retry(item)), True)
                return
            request, reserved, keep_alive = item
            handler = self._route(request)
            if isinstance(handler, Response):
                self._gate.free_body(reserved)
                self._write(handler, not keep_alive, request.method == "HEAD")
                continue
            try:
                out = handler(request)
                if isinstance(out, Pending) and out.done:  # ended before it was returned
                    out = out.result()
            except Exception as exc:
                # Bug guard, deliberately broad: what a synchronous handler raises is a bug of
                # ours (refusals are answers), answered as a task's failure is (_failed: 500,
                # logged with its traceback, connection closed). The one supervisor of handlers
                # that run outside a task; an async handler cannot raise here (its call only
                # makes its coroutine).
                self._gate.free_body(reserved)
                self._failed(exc)
                return
            if isinstance(out, Response):  # answered at once: no task
                self._gate.free_body(reserved)
                self._write(out, not keep_alive, request.method == "HEAD")
                continue
            if isinstance(out, Pending):  # answered later from a callback: no task either
                self._busy = out
                out.deliver = partial(
                    self._later, reserved, not keep_alive, request.method == "HEAD"
                )
                continue
            self._started = self._cancel_at_start = False
            task = _start(self._loop, self._run(out, request, reserved, keep_alive))
            if task.done():  # an eager task that never waited: answered, or a bug
                bug = None if task.cancelled() else task.exception()
                if bug is not None:
                    self._failed(bug)
                    return
                continue
            self._busy = task
            task.add_done_callback(self._handled)
        if self._eof and self._busy is None and not self._queue:
            self.close()  # the peer sent its last request and every one is answered
            return
        self._maybe_resume_reading()

    def _route(self, request: Request) -> Handler | Response:
        methods = self._site.routes.get(request.path)
        if methods is None:
            return Response(404, b"404: Not Found")
        handler = methods.get(request.method)
        if handler is None and request.method == "HEAD":
            handler = methods.get("GET")
        if handler is None:
            allow = ", ".join(methods)
            return Response(405, b"405: Method Not Allowed", headers={"Allow": allow})
        return handler

    async def _run(
        self, rest: Awaitable[Response], request: Request, reserved: int, keep: bool
    ) -> None:
        self._started = True
        if self._cancel_at_start:
            # Cancelled before its first step: cancelled at the first wait of ``rest`` instead,
            # so ``rest`` (and every coroutine it holds) starts and its ``finally`` blocks run,
            # as for a task cancelled where it waits; none is left never awaited.
            cast("asyncio.Task[None]", asyncio.current_task()).cancel()
        try:
            response = await rest
        finally:
            self._gate.free_body(reserved)
        self._write(response, not keep or self._closing, request.method == "HEAD")

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._busy = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._failed(exc)
            return
        self._next()

    def _later(
        self, reserved: int, close: bool, head_only: bool, outcome: Response | BaseException | None
    ) -> None:
        """The answer of a :class:`Pending` (None: it was cancelled, the connection is gone or
        closing), as :meth:`_run` and :meth:`_handled` take a task's."""
        self._busy = None
        self._gate.free_body(reserved)
        if outcome is None:
            return
        if isinstance(outcome, BaseException):
            self._failed(outcome)
            return
        self._write(outcome, close or self._closing, head_only)
        self._next()

    def _failed(self, exc: BaseException) -> None:
        """A handler raised (a bug): log it, answer 500 and close."""
        log.error("a request handler failed", exc_info=exc)
        self._queue.clear()
        self._write(Response(500, b"500: Internal Server Error"), True)

    def _write(self, response: Response, close: bool, head_only: bool = False) -> None:
        transport = self._transport
        if transport is None:
            return
        close = close or self._closing
        body = response.body
        head = _head(response.status, response, len(body), close)
        if head_only or not body:
            transport.write(head)
        elif len(body) < 16 * 1024:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        if close:
            self._done_reading = True
            self.close()
        else:
            self._idle_since = self._loop.time()

    def _maybe_resume_reading(self) -> None:
        if (
            self._reading_paused
            and not self._writing_paused
            and not self._parsing
            and len(self._queue) < MAX_PIPELINED
            and self._transport is not None
        ):
            if self._unparsed:
                data, self._unparsed = self._unparsed, b""
                self._feed(data)  # resumes reading once all of it is parsed
                return
            self._reading_paused = False
            self._transport.resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    # -- refusals and timers -------------------------------------------------------------
    def _stop(self, refusal: Refusal) -> NoReturn:
        """From a parser callback: answer ``refusal`` (after what is queued) and close."""
        self._stopping = refusal
        raise _Stop(refusal.text)

    def _fail(self, refusal: Refusal) -> None:
        """Stop reading; answer ``refusal`` after the requests already queued, then close."""
        self._done_reading = True
        self._discard_partial()
        self._queue.append(refusal)
        self._next()

    def _discard_partial(self) -> None:
        """Forget the request being parsed (and give back its body reservation)."""
        self._in_head = self._in_body = False
        self._gate.free_body(self._reserved)
        self._reserved = 0
        self._body = []
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._transport is None:
            return
        now = self._loop.time()
        # a peer that does not read its answers is idle however many requests it queued
        busy = not self._writing_paused and (
            self._in_head or self._in_body or self._busy is not None or bool(self._queue)
        )
        due = self._idle_since + self._limits.idle_timeout
        if busy or now < due:
            self._idle_timer = self._loop.call_at(
                max(due, now + self._limits.idle_timeout) if busy else due, self._idle_check
            )
            return
        log.debug("connection closed: idle")
        self.abort()

    def _header_expired(self) -> None:
        self._header_timer = None
        self._gate.stats.header_timeouts += 1
        log.debug("connection closed: request headers not received in time")
        self.abort()

    def _body_expired(self) -> None:
        self._body_timer = None
        self._fail(self._gate.body_timed_out())

    # -- closing -------------------------------------------------------------------------
    def shutdown(self) -> None:
        """The site is closing: close now when nothing is being handled, else after the
        answer of the request in hand (requests queued behind it are not started)."""
        self._closing = True
        self._done_reading = True
        if self._busy is None:
            self.abort()
        else:
            for item in self._queue:
                if not isinstance(item, Refusal):
                    self._gate.free_body(item[1])
            self._queue.clear()

    def _cancel_busy(self) -> None:
        """Cancel the request being handled: its Pending, or its task (at its first step when
        it has not begun: :meth:`_run`)."""
        busy = self._busy
        if isinstance(busy, Pending) or (busy is not None and self._started):
            busy.cancel()
        elif busy is not None:
            self._cancel_at_start = True

    def close(self) -> None:
        """Close once the answers written are sent."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close now, cancelling the handler in hand (and stop counting the connection)."""
        self._cancel_busy()
        super().abort()

    def _forget(self) -> None:
        for timer in (self._idle_timer, self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._header_timer = self._body_timer = None


def _retry(refusal: Refusal) -> dict[str, str] | None:
    return None if refusal.retry_after is None else {"Retry-After": str(refusal.retry_after)}


def _parser_reason(e: httptools.HttpParserError) -> str:
    """The parser's reason, without the bytes it quotes (they are the stranger's)."""
    text = str(e).split(":", 1)[0].strip().rstrip(".")
    return text or "not HTTP/1.1"


class Served(ServedSite):
    """A running site: the port it listens on, its counters, and :meth:`close`."""

    def __init__(self, listener: Listener, site: _Site, shutdown_timeout: float) -> None:
        super().__init__(site.gate, listener.port, shutdown_timeout)
        self._listener = listener
        self._site = site

    async def _stop_accepting(self) -> None:
        self._listener.close()
        await self._listener.wait_closed()


async def serve(
    routes: Routes,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: ConnectionLimits | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    shutdown_timeout: float = 10.0,
    backlog: int = 1024,
) -> Served:
    """Serve ``routes`` on ``host:port`` (0 picks a free port) with ``limits``; ``max_body`` is
    the largest request body the site accepts. Raises ``OSError`` if it cannot listen."""
    gate = Gate(limits or ConnectionLimits(), max_body, ssl_context)
    site = _Site(routes, gate)
    listener = Listener(
        listening_socket(host, port, backlog), gate, lambda ip: _Connection(site, ip)
    )
    return Served(listener, site, shutdown_timeout)


__all__ = [
    "Handler",
    "HttpError",
    "Request",
    "Response",
    "Routes",
    "Served",
    "decode_body",
    "serve",
]
