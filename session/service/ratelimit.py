"""Per-client token buckets, so one client cannot starve the others.

Each client key gets ``burst`` tokens refilled at ``rate`` per second; a request (or a new
connection) takes one token or is refused (HTTP 429, or the connection closed as it opens).
The table holds at most ``max_clients`` buckets; when it is full, a new client's bucket takes
the place of the one used least recently. (Refusing new clients instead would let anyone
holding many addresses, an IPv6 /48 say, lock everyone else out; a dropped bucket only forgets
a debt, and whoever drops one needs ``max_clients`` addresses busy at once to do it.)

A client is its address as :func:`client_key` reads it: an IPv4 address, or the /64 network
of an IPv6 one (one host is routinely handed a whole /64, so its single addresses would be a
fresh bucket each); an IPv4 address carried in IPv6 (mapped, ``::ffff:a.b.c.d``, or through
NAT64's well-known prefix ``64:ff9b::/96``) is that IPv4 address.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Callable


def client_key(ip: str) -> str:
    """The rate limits' key of a peer at ``ip`` (a socket's address text): the address for
    IPv4 (and anything that is not an IPv6 address), its /64 network for IPv6."""
    return ip if ":" not in ip else _ipv6_key(ip)


@functools.lru_cache(maxsize=4096)
def _ipv6_key(ip: str) -> str:
    """:func:`client_key` of an address with a colon (parsed once per address: the node asks
    for every request)."""
    try:
        addr = ipaddress.IPv6Address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    if addr in _NAT64:
        return str(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return str(ipaddress.IPv6Network((addr, 64), strict=False))


#: NAT64's well-known prefix (RFC 6052): an IPv4 host seen by an IPv6-only server.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RateLimiter:
    __slots__ = ("_buckets", "burst", "clock", "max_clients", "rate", "refused")

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate and max_clients must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}
        self.refused = 0

    def allow(self, client: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``client``'s bucket; False means "answer 429"."""
        now = self.clock()
        buckets = self._buckets
        b = buckets.pop(client, None)  # (put back last: the table's order is recency of use)
        if b is None:
            if len(buckets) >= self.max_clients:
                del buckets[next(iter(buckets))]  # the one used least recently
            b = [self.burst, now]
        else:
            tokens = b[0] + (now - b[1]) * self.rate
            b[0] = tokens if tokens < self.burst else self.burst
            b[1] = now
        buckets[client] = b
        if b[0] >= cost:
            b[0] -= cost
            return True
        self.refused += 1
        return False

    def __len__(self) -> int:
        return len(self._buckets)
