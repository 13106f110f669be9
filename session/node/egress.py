"""Where a node may send the onion requests it proxies (the defence against SSRF).

An onion layer that names ``host``/``port``/``target`` asks the node to POST to that server. A
stranger writes that layer, so without a check the node would reach whatever it can reach: its
own admin port, the registry, other services on its loopback or private network, and answer
fast enough to serve as a port scanner.

:class:`EgressPolicy` decides, before any connection, which addresses a proxied request may go
to:

* By default only **public unicast** addresses. The name is resolved once (in a small bounded
  thread pool, with a deadline) and **every** address it resolves to must pass; one bad address
  refuses the whole name (a name that resolves to a public and a private address is a classic
  way around a check of only the first). Refused: loopback, private (RFC 1918, ULA),
  link-local, multicast, unspecified, reserved and documentation ranges, shared address space
  (CGNAT, 100.64.0.0/10), site-local IPv6, the IPv4 address inside IPv4-mapped, 6to4, Teredo
  and NAT64 IPv6 addresses when that IPv4 address is refused, and the node's own addresses
  (its configured public IP, and any address it can bind to, which covers every interface
  without listing them).
* An explicit allowlist of ``host:port`` pairs (``network.proxy_allow``) passes whatever the
  address; a devnet lists exactly its own servers there and turns public addresses off
  (``network.proxy_public = false``), so its nodes proxy to nothing else.

:meth:`EgressPolicy.resolve` returns the checked addresses and the caller connects to one of
*those* (never to the name again), so a DNS answer that changes between check and connection
(DNS rebinding) cannot move the request elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from session.errors import ConfigError, DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Seconds a name may take to resolve before the destination counts as unreachable.
DNS_TIMEOUT = 5.0
#: Lookups running or queued at once; more are refused at once (a stranger cannot tie up the
#: resolver threads with names that never answer).
MAX_PENDING_LOOKUPS = 64
#: Threads of the resolver pool (``getaddrinfo`` blocks).
LOOKUP_THREADS = 4

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

#: Resolves ``(host, port)`` to address strings (injectable so tests can play a DNS server).
Lookup = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class AllowedServer:
    """One ``host:port`` entry of the allowlist (host lower-case, IPv6 without brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _norm_host(host: str) -> str:
    """Lower-case, no brackets, no trailing dot; IP literals in their canonical spelling."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.rstrip(".")
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        return h


def parse_allowlist(text: str) -> tuple[AllowedServer, ...]:
    """Parse ``"host:port, [v6]:port, …"`` (commas or spaces between entries).

    Raises :class:`ConfigError` naming the entry that is not ``host:port``.
    """
    out: list[AllowedServer] = []
    for entry in text.replace(",", " ").split():
        host, sep, port_text = entry.rpartition(":")
        if not sep or not host or (":" in host and not host.startswith("[")):
            raise ConfigError(
                f"network.proxy_allow entry {entry!r} is not host:port "
                "(write IPv6 addresses in brackets: [::1]:8443)"
            )
        try:
            port = int(port_text, 10)
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            raise ConfigError(
                f"network.proxy_allow entry {entry!r} has no port between 1 and 65535"
            )
        out.append(AllowedServer(_norm_host(host), port))
    return tuple(out)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a v6 address carries to an IPv4 host (mapped, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address (a short reason), or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = refusal(inner)
            if why is not None:
                return f"{why} (inside an IPv6 address)"
            if ip.ipv4_mapped is not None:
                return None  # ::ffff:a.b.c.d is exactly a.b.c.d
        if ip.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("shared address space (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("not globally routable", not ip.is_global),
    )
    for why, bad in checks:
        if bad:
            return why
    return None


def is_own_address(ip: IPAddress) -> bool:
    """Whether this machine holds ``ip`` on one of its interfaces (it can bind to it).

    Binding sends nothing and sees every interface, including ones added after start-up. With
    ``ip_nonlocal_bind`` set it errs towards refusing, never towards allowing.
    """
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


class EgressPolicy:
    """Decides and resolves where proxied onion requests may go (see the module docstring)."""

    def __init__(
        self,
        *,
        allow_public: bool = True,
        allow: Iterable[AllowedServer] = (),
        own_addresses: Iterable[str] = (),
        lookup: Lookup | None = None,
        dns_timeout: float = DNS_TIMEOUT,
        max_pending: int = MAX_PENDING_LOOKUPS,
    ) -> None:
        self.allow_public = allow_public
        self.allow = frozenset(allow)
        own: set[IPAddress] = set()
        for a in own_addresses:
            try:
                own.add(ipaddress.ip_address(_norm_host(a)))
            except ValueError:
                continue  # a host name (e.g. listen_host "localhost"): loopback is refused anyway
        self.own = frozenset(own)
        self.dns_timeout = dns_timeout
        self.max_pending = max_pending
        self._pending = 0
        self._pool: ThreadPoolExecutor | None = None
        self._lookup = lookup or self._getaddrinfo

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a request to ``host:port`` may connect to, every one checked.

        Raises :class:`DestinationRefused` (with the reason, for the node's own logs) when the
        destination is not allowed, does not resolve, or does not resolve in time.
        """
        name = _norm_host(host)
        if AllowedServer(name, port) in self.allow:
            return await self._addresses(name, port)
        if not self.allow_public:
            raise DestinationRefused("not on this node's proxy allowlist")
        addrs = await self._addresses(name, port)
        for ip in addrs:
            why = refusal(ip)
            if why is None and (ip in self.own or is_own_address(ip)):
                why = "one of this node's own addresses"
            if why is not None:
                raise DestinationRefused(f"resolves to a {why} address")
        return addrs

    async def _addresses(self, name: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(name)]
        except ValueError:
            pass
        try:
            texts = await asyncio.wait_for(self._lookup(name, port), self.dns_timeout)
        except TimeoutError:
            raise DestinationRefused("name lookup timed out") from None
        except (OSError, UnicodeError):  # socket.gaierror is an OSError; IDNA failures
            raise DestinationRefused("name does not resolve") from None
        out: list[IPAddress] = []
        for t in texts:
            ip = ipaddress.ip_address(t.split("%", 1)[0])  # drop an IPv6 scope id
            if ip not in out:
                out.append(ip)
        if not out:
            raise DestinationRefused("name does not resolve")
        return out

    async def _getaddrinfo(self, name: str, port: int) -> list[str]:
        """The system resolver in the bounded pool.

        A lookup counts as pending until its thread is done, not until the caller gave up on
        it, so names that never answer cannot pile up jobs behind the pool.
        """
        if self._pending >= self.max_pending:
            raise DestinationRefused("too many name lookups in progress")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=LOOKUP_THREADS, thread_name_prefix="egress-dns"
            )
        loop = asyncio.get_running_loop()
        job = self._pool.submit(
            socket.getaddrinfo, name, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        self._pending += 1
        job.add_done_callback(lambda _: self._lookup_finished(loop))
        infos = await asyncio.wrap_future(job)
        return [str(info[4][0]) for info in infos]

    def _lookup_finished(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called in the resolver thread: count the lookup as done on the loop's thread."""
        try:
            loop.call_soon_threadsafe(self._lookup_done)
        except RuntimeError:
            pass  # the loop is closed (node shut down): nothing is left to count

    def _lookup_done(self) -> None:
        self._pending -= 1

    def close(self) -> None:
        """Stop the resolver threads (lookups still running finish in the background)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def host_header(host: str, port: int, scheme: str) -> str:
    """The ``Host`` header of a request to ``scheme://host:port`` (port only if not default)."""
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"
