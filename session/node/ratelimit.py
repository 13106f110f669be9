"""Per-client token buckets, so one client cannot starve the others.

Each client key (an IP address) gets ``burst`` tokens refilled at ``rate`` per second; a
request takes one token or is refused (HTTP 429). The table holds at most ``max_clients``
buckets; when it is full, buckets that have refilled completely are dropped (they carry no
state), and if none can be dropped a new client is refused until some are.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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
        b = self._buckets.get(client)
        if b is None:
            if len(self._buckets) >= self.max_clients and not self._prune(now):
                self.refused += 1
                return False
            b = self._buckets[client] = [self.burst, now]
        else:
            tokens = b[0] + (now - b[1]) * self.rate
            b[0] = tokens if tokens < self.burst else self.burst
            b[1] = now
        if b[0] >= cost:
            b[0] -= cost
            return True
        self.refused += 1
        return False

    def _prune(self, now: float) -> bool:
        full = [
            k
            for k, (tok, last) in self._buckets.items()
            if tok + (now - last) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        return bool(full)

    def __len__(self) -> int:
        return len(self._buckets)
