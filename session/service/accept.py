"""Accepting connections for every service site, whichever HTTP server parses the requests
(:mod:`session.service.server` on aiohttp, :mod:`session.http1.server` for the node): counting
connections against the caps before any TLS work, the TLS handshake deadline, and the in-flight
request-body budget, and closing a site. Imports nothing heavier than asyncio, so the node's
lean site uses it too.

* :class:`Gate` — one site's shared state: open connections, all and per address
  (``max_connections``, ``max_connections_per_address``), how fast one address opens new ones
  (``new_connections_per_second``, ``new_connections_burst``: a TLS handshake costs the site
  far more than the connection costs its opener, so an address that keeps opening them is
  refused at accept, before any TLS work, however few it holds open), the body budget
  (``max_inflight_body_bytes``, ``max_body``) and the :class:`ConnectionStats` counters.
* :class:`Listener` — the listening socket and its accept loop: a connection is counted (or
  closed at once when over a cap) from its address, then handed to the loop with the TLS
  handshake deadline (``loop.connect_accepted_socket``); the protocol built for it is told to
  :meth:`~Admitted.release` its place when it ends or never starts.
* :class:`ServedSite` — a running site (either server's ``Served``): its port, its counters,
  and the one shutdown sequence: stop accepting, let requests in hand be answered within the
  shutdown timeout (:meth:`Gate.close_connections`), then close what is left.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from session.service.config import ConnectionLimits
from session.service.ratelimit import RateLimiter, client_key

log = logging.getLogger("session.service.server")

#: Largest request body of a site that does not say otherwise (the admin sites).
DEFAULT_MAX_BODY = 1024 * 1024


class ConnectionStats:
    """Counters of what the limits refused or cut (read by the services' metrics)."""

    def __init__(self) -> None:
        self.open = 0
        self.refused = 0  # closed at accept: a connection cap was reached
        self.too_fast = 0  # closed at accept: its address opened new ones faster than allowed
        self.tls_failed = 0  # handshake failed or took longer than tls_handshake_timeout
        self.header_timeouts = 0
        self.body_timeouts = 0
        self.bodies_refused = 0  # 503: the in-flight body budget was full
        self.bodies_too_large = 0  # 413


class Refusal:
    """A request the site answers itself before any handler runs: status, sentence, and the
    ``Retry-After`` seconds if any. The connection is closed once it is written."""

    __slots__ = ("retry_after", "status", "text")

    def __init__(self, status: int, text: str, retry_after: int | None = None) -> None:
        self.status = status
        self.text = text
        self.retry_after = retry_after


#: The answer to a body that did not arrive within the body timeout.
BODY_TIMEOUT = Refusal(408, "Request body was not received in time")


class Admitted(asyncio.Protocol, abc.ABC):
    """The protocol of an admitted connection, counted in its site's :class:`Gate` from accept
    to :meth:`release`: :class:`Listener` calls it when the connection never starts (a failed
    handshake), the protocol when it ends. A subclass sets ``_transport`` when the connection
    is made and says in :meth:`_forget` what a released connection lets go of."""

    def __init__(self, gate: Gate, ip: str) -> None:
        self._gate = gate
        self._ip = ip
        self._counted = True
        self._transport: asyncio.Transport | None = None
        gate.connections.add(self)
        gate.all_closed.clear()

    @abc.abstractmethod
    def _forget(self) -> None:
        """Cancel the connection's timers and drop what it holds (every release calls it)."""

    def shutdown(self) -> None:
        """The site is closing and has stopped reading requests: close now. (A server whose
        connections finish the request in hand first overrides this.)"""
        self.abort()

    def abort(self) -> None:
        """Close now (and stop counting the connection)."""
        if self._transport is not None:
            self._transport.abort()
        self.release()

    def release(self) -> None:
        """Give the connection's place back to the gate (idempotent)."""
        self._forget()
        if self._counted:
            self._counted = False
            self._gate.release(self, self._ip)


class Gate:
    """The shared state of one site: the open connections (all, and per address), the body
    budget."""

    def __init__(
        self, limits: ConnectionLimits, max_body: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        if max_body > limits.max_inflight_body_bytes:
            raise ValueError("max_inflight_body_bytes must be at least the largest request body")
        self.limits = limits
        self.max_body = max_body
        self.ssl_context = ssl_context
        self.stats = ConnectionStats()
        #: open connections per address (by :func:`client_key`, as every limit here)
        self.per_address: dict[str, int] = {}
        #: new connections per address
        self.openings = RateLimiter(limits.new_connections_per_second, limits.new_connections_burst)
        self.body_bytes = 0
        self.connections: set[Admitted] = set()
        self.all_closed = asyncio.Event()  # set while no connection is open
        self.all_closed.set()

    # -- connections --------------------------------------------------------------------
    def admit(self, ip: str) -> bool:
        """Count a new connection from ``ip``; False (and not counted) when over a cap, or
        when its address opens new connections faster than the site allows. Both count by
        :func:`client_key` (an IPv6 /64 is one address)."""
        key = client_key(ip)
        n = self.per_address.get(key, 0)
        if (
            self.stats.open >= self.limits.max_connections
            or n >= self.limits.max_connections_per_address
        ):
            self.stats.refused += 1
            return False
        if not self.openings.allow(key):
            self.stats.too_fast += 1
            return False
        self.per_address[key] = n + 1
        self.stats.open += 1
        return True

    def release(self, conn: Admitted, ip: str) -> None:
        """Stop counting ``conn`` (from ``ip``): :meth:`Admitted.release` calls this once."""
        key = client_key(ip)
        n = self.per_address.get(key, 0) - 1
        if n > 0:
            self.per_address[key] = n
        else:
            self.per_address.pop(key, None)
        self.stats.open -= 1
        self.connections.discard(conn)
        if not self.connections:
            self.all_closed.set()

    async def close_connections(self, timeout: float) -> None:
        """Once the site has stopped accepting: each open connection is told to shut down
        (:meth:`Admitted.shutdown`), those answering a request get ``timeout`` seconds to end,
        then what is still open is closed."""
        for conn in list(self.connections):
            conn.shutdown()
        try:
            async with asyncio.timeout(timeout):
                await self.all_closed.wait()
        except TimeoutError:
            log.warning("closing: %d requests were still being handled", len(self.connections))
        for conn in list(self.connections):
            conn.abort()

    # -- request bodies -----------------------------------------------------------------
    def reserve_body(self, want: int) -> Refusal | None:
        """Reserve ``want`` bytes (a body's Content-Length, or ``max_body`` when chunked) from
        the in-flight budget; a refusal (413, 503) instead when it is over a limit. The caller
        gives the bytes back with :meth:`free_body` once the request's handler is done."""
        if want > self.max_body:
            return self.too_large()
        if self.body_bytes + want > self.limits.max_inflight_body_bytes:
            self.stats.bodies_refused += 1
            return Refusal(
                503,
                "Server busy: too many request bodies in flight; try again shortly",
                retry_after=1,
            )
        self.body_bytes += want
        return None

    def free_body(self, reserved: int) -> None:
        self.body_bytes -= reserved

    def too_large(self) -> Refusal:
        self.stats.bodies_too_large += 1
        return Refusal(413, f"Request body too large (limit {self.max_body} bytes)")

    def body_timed_out(self) -> Refusal:
        self.stats.body_timeouts += 1
        return BODY_TIMEOUT


class ServedSite(abc.ABC):
    """A running site, whichever server parses its requests: the port it listens on, its
    counters, and :meth:`close`."""

    def __init__(self, gate: Gate, port: int, shutdown_timeout: float) -> None:
        self._gate = gate
        self.port = port
        self._shutdown_timeout = shutdown_timeout

    @property
    def stats(self) -> ConnectionStats:
        return self._gate.stats

    @property
    def inflight_body_bytes(self) -> int:
        return self._gate.body_bytes

    @abc.abstractmethod
    async def _stop_accepting(self) -> None:
        """Stop listening (and whatever the server does itself when it closes)."""

    async def close(self) -> None:
        """Stop listening; requests being handled get the shutdown timeout to be answered,
        then connections still open (idle, or in their TLS handshake) are closed."""
        await self._stop_accepting()
        await self._gate.close_connections(self._shutdown_timeout)


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking socket listening on ``host:port`` (IPv6 when ``host`` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


class Listener(asyncio.AbstractServer):
    """The listening socket and its accept loop: a connection is counted (or refused) from
    its address before any TLS work, then handed to the loop with the handshake deadline.
    ``make_protocol(ip)`` builds the protocol of an admitted connection."""

    def __init__(
        self, sock: socket.socket, gate: Gate, make_protocol: Callable[[str], Admitted]
    ) -> None:
        self._sock = sock
        self._gate = gate
        self._make_protocol = make_protocol
        self._opening: set[asyncio.Task[None]] = set()
        self._task = asyncio.ensure_future(self._accept_forever())

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self._sock)
            except OSError as e:  # EMFILE/ENFILE/ENOBUFS: out of descriptors or memory
                log.warning(
                    "accepting a connection failed: %s; pausing accepts for 1 s", e.strerror
                )
                await asyncio.sleep(1.0)
                continue
            ip = str(addr[0]) if isinstance(addr, tuple) and addr else ""
            if not self._gate.admit(ip):
                log.debug("connection refused: over a cap, or its address opens them too fast")
                conn.close()
                continue
            task = asyncio.ensure_future(self._open(conn, ip))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open(self, conn: socket.socket, ip: str) -> None:
        loop = asyncio.get_running_loop()
        proto = self._make_protocol(ip)
        ctx = self._gate.ssl_context
        timeout = self._gate.limits.tls_handshake_timeout if ctx is not None else None
        try:
            await loop.connect_accepted_socket(
                lambda: proto, conn, ssl=ctx, ssl_handshake_timeout=timeout
            )
        except OSError:  # ssl.SSLError, a reset, or the handshake deadline
            self._gate.stats.tls_failed += 1
            conn.close()
            proto.release()
        except asyncio.CancelledError:
            conn.close()
            proto.release()
            raise

    def close(self) -> None:
        self._task.cancel()
        for task in list(self._opening):
            task.cancel()
        self._sock.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._task, *self._opening, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._task.get_loop()

    def is_serving(self) -> bool:
        return not self._task.done()

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        await self._task


__all__ = [
    "DEFAULT_MAX_BODY",
    "Admitted",
    "ConnectionStats",
    "Gate",
    "Listener",
    "Refusal",
    "ServedSite",
    "listening_socket",
]
