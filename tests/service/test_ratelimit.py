"""The per-address token bucket (session/service/ratelimit.py) on an injected clock: bursts,
refill, the burst cap, per-address isolation and the bounded table of addresses; what counts as
one address."""

from __future__ import annotations

import pytest

from session.service.ratelimit import RateLimiter, client_key


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def admitted(limiter: RateLimiter, client: str, n: int) -> list[bool]:
    return [limiter.allow(client) for _ in range(n)]


def test_a_new_address_gets_exactly_its_burst() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate=2.0, burst=5, clock=clock)
    assert admitted(rl, "10.0.0.1", 7) == [True] * 5 + [False] * 2
    assert rl.refused == 2


def test_tokens_refill_at_the_rate() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate=4.0, burst=8, clock=clock)
    assert admitted(rl, "a", 8) == [True] * 8
    assert not rl.allow("a")
    clock.now += 0.5  # 0.5 s × 4/s = 2 tokens
    assert admitted(rl, "a", 3) == [True, True, False]
    clock.now += 0.125  # half a token: not enough
    assert not rl.allow("a")
    clock.now += 0.125  # half + half = 1 token (a refused request takes nothing)
    assert rl.allow("a")
    assert not rl.allow("a")


def test_refill_is_capped_at_the_burst() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate=10.0, burst=3, clock=clock)
    assert admitted(rl, "a", 3) == [True] * 3
    clock.now += 3600  # an hour idle refills to the burst, not to 36,000 tokens
    assert admitted(rl, "a", 5) == [True] * 3 + [False] * 2


def test_sustained_rate_after_the_burst() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate=5.0, burst=10, clock=clock)
    granted = 0
    for _ in range(1000):  # 10 s of one request every 10 ms (100/s offered)
        granted += rl.allow("flood")
        clock.now += 0.01
    # the burst plus 5/s for 10 s (give or take the last partial token)
    assert 10 + 49 <= granted <= 10 + 50
    assert rl.refused == 1000 - granted


def test_cost_takes_several_tokens() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate=1.0, burst=10, clock=clock)
    assert rl.allow("a", cost=6)
    assert not rl.allow("a", cost=6)  # 4 left
    assert rl.allow("a", cost=4)
    assert not rl.allow("a")


def test_addresses_are_isolated() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate=1.0, burst=3, clock=clock)
    assert admitted(rl, "127.0.0.1", 10) == [True] * 3 + [False] * 7
    # a flood from one address leaves every other address its full burst
    assert admitted(rl, "127.0.0.2", 3) == [True] * 3
    assert admitted(rl, "::1", 3) == [True] * 3
    assert not rl.allow("127.0.0.2")
    assert rl.refused == 8
    assert len(rl) == 3


def test_a_full_table_drops_the_bucket_used_least_recently() -> None:
    """A new address always gets its burst (nobody holding many addresses can lock the others
    out by filling the table); the bucket it replaces is the one used least recently, and
    the others keep their debts."""
    clock = FakeClock()
    rl = RateLimiter(rate=1.0, burst=2, max_clients=3, clock=clock)
    for c in ("a", "b", "c"):
        assert admitted(rl, c, 2) == [True, True]  # each bucket spent
    assert rl.allow("a") is False  # "a" used last now (and still in debt)
    assert admitted(rl, "d", 2) == [True, True]  # "b", the least recently used, goes
    assert len(rl) == 3
    assert rl.allow("c") is False and rl.allow("a") is False  # debts kept
    assert rl.allow("b") is True  # "b" was forgotten: a fresh burst ("d" goes now)
    assert rl.allow("d") is True  # and so on ("c" goes)
    assert rl.allow("a") is False and len(rl) == 3  # "a", used recently, kept its debt
    clock.now += 1.0
    assert rl.allow("a") is True  # one token refilled


@pytest.mark.parametrize(
    ("rate", "burst", "max_clients"), [(0, 5, 10), (-1, 5, 10), (1, 0.5, 10), (1, 5, 0)]
)
def test_bad_parameters_are_refused(rate: float, burst: float, max_clients: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate, burst, max_clients=max_clients)


def test_a_client_is_its_ipv4_address_or_its_ipv6_64() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    # one host routinely holds a whole /64: its addresses share one bucket
    assert client_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2:bbbb:cccc:dddd:eeee") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4 mapped into IPv6
    assert client_key("fe80::1%eth0") == "fe80::/64"  # a scoped address
    assert client_key("64:ff9b::cb00:7107") == "203.0.113.7"  # through NAT64
    assert client_key("?") == "?" and client_key("not:an:address") == "not:an:address"
