"""A client that marked every node bad recovers by itself (no network, scripted time).

The onion transport, path manager and swarm RPC are the real ones; only the HTTP session (a
scripted network) and the onion crypto (tested on its own elsewhere) are stand-ins, and time is
a fake clock that the retry waits advance, so nothing sleeps."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
from typing import Any

import pytest

from session.client import paths as paths_mod
from session.client.network import NetworkClock, NodeDirectory
from session.client.paths import PathManager
from session.client.transport import OnionTransport, SwarmRPC, node_is_down
from session.errors import (
    HttpConnectError,
    HttpError,
    HttpProtocolError,
    NetworkError,
    NotEnoughNodes,
)
from session.http1.client import HttpClient, Response
from session.identity import Identity
from session.proto.snodes import ServiceNode
from session.service.tls import client_ssl_context

HASH = "h" * 43


def node(i: int, port: int | None = None) -> ServiceNode:
    return ServiceNode(
        pubkey_ed25519=f"{i + 1:064x}",
        pubkey_x25519=f"{i + 1001:064x}",
        public_ip="127.0.0.1",
        storage_port=port or 30000 + i,
        storage_lmq_port=22020,
        swarm_id=0,
    )


class FakeClock:
    """Monotonic seconds that only move when someone waits."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


class ScriptedNetwork:
    """Stands in for the HTTP client: every guard fails with ``error()`` until
    ``refuse_until`` (fake time), then answers 200 with a store result."""

    closed = False

    def __init__(self, clock: FakeClock, refuse_until: float, error: Any) -> None:
        self.clock, self.refuse_until, self.error = clock, refuse_until, error
        self.refused = 0
        self.served = 0

    async def request(self, method: str, url: str, *, body: bytes, **kw: Any) -> Response:
        if self.clock() < self.refuse_until:
            self.refused += 1
            raise self.error()
        self.served += 1
        reply = {"status": 200, "body": {"hash": HASH, "t": 1_700_000_000_000}}
        return Response(200, {}, json.dumps(reply).encode())

    async def close(self) -> None:
        return None


def parts(
    clock: FakeClock, net: ScriptedNetwork, nodes: list[ServiceNode]
) -> tuple[PathManager, SwarmRPC]:
    pm = PathManager(nodes, rng=random.Random(1), now=clock, paths_wanted=1)
    t = OnionTransport(pm, NetworkClock(lambda: 1_700_000_000 + clock()))
    t._http = net  # type: ignore[assignment]  # the scripted network stands in for HTTP
    rpc = SwarmRPC(t, NodeDirectory(nodes), t.clock, rng=random.Random(2), sleep=clock.sleep)
    return pm, rpc


@pytest.mark.parametrize(
    ("error", "kind", "cap"),
    [
        # a node at its connection cap accepts and closes at once
        (
            lambda: HttpConnectError("reset", ConnectionResetError(104, "reset by peer")),
            "busy",
            paths_mod.BUSY_CAP_S,
        ),
        # ... or after the TLS handshake, before answering
        (lambda: HttpProtocolError("closed before answering"), "busy", paths_mod.BUSY_CAP_S),
        # every node restarting: nothing listens for a while
        (
            lambda: HttpConnectError("refused", ConnectionRefusedError(111, "refused")),
            "down",
            paths_mod.DOWN_CAP_S,
        ),
    ],
    ids=["connection-cap", "closed-unanswered", "restart"],
)
async def test_every_node_refusing_then_accepting_recovers_by_itself(
    plain_onion: None, error: Any, kind: str, cap: float
) -> None:
    clock = FakeClock()
    refuse_for = 600.0
    net = ScriptedNetwork(clock, refuse_until=refuse_for, error=error)
    nodes = [node(i) for i in range(5)]
    pm, rpc = parts(clock, net, nodes)
    data = base64.b64encode(b"hello").decode()
    owner = Identity.generate().session_id
    stored: str | None = None
    most_bad = 0
    short_pool = 0
    for _ in range(1000):  # an outbox retrying every 5 s (bounded: the loop must end)
        try:
            stored = await rpc.store(owner, 0, data, 1_800_000_000_000)
            break
        except NotEnoughNodes:
            short_pool += 1
        except NetworkError:
            pass
        most_bad = max(most_bad, len(pm.bad))
        if clock() < refuse_for:
            assert {k for k in pm.bad if pm.marks[k][2] != kind} == set()
        await clock.sleep(5.0)
    assert stored == HASH
    # too many nodes marked bad to build a path, for a while
    assert most_bad > len(nodes) - paths_mod.HOPS and short_pool > 0
    # back within one capped exclusion (plus the outbox's own wait) after the network is
    assert refuse_for <= clock() <= refuse_for + cap + 5.0 + 10.0
    assert net.refused > 0 and net.served >= 1
    assert pm.paths and not (set(pm.paths[0].ids()) & pm.bad)  # the working path's hops: clear


def test_marks_back_off_up_to_a_cap_and_end() -> None:
    clock = FakeClock()
    pm = PathManager([node(i) for i in range(5)], now=clock)
    k = node(0).pubkey_ed25519
    ends = []
    for _ in range(12):
        pm.mark(k, "busy")
        ends.append(pm.marks[k][0] - clock())
    first = paths_mod.BUSY_FIRST_S
    assert ends[:3] == [first, 2 * first, 4 * first]
    assert max(ends) == ends[-1] == paths_mod.BUSY_CAP_S
    assert k in pm.bad and pm.next_chance_s() == paths_mod.BUSY_CAP_S
    clock.t += paths_mod.BUSY_CAP_S
    assert k not in pm.bad and pm.next_chance_s() is None


def test_a_node_at_a_new_address_starts_afresh() -> None:
    """Restarted on other ports (a refreshed node list): the old address's marks go."""
    clock = FakeClock()
    nodes = [node(i) for i in range(5)]
    pm = PathManager(nodes, now=clock)
    for n in nodes:
        pm.mark(n.pubkey_ed25519, "down")
    with pytest.raises(NotEnoughNodes):
        pm.ensure_paths()
    pm.update_pool(nodes)  # the same list again: the marks stay
    assert len(pm.bad) == 5
    pm.update_pool([node(i, port=31000 + i) for i in range(5)])
    assert pm.bad == frozenset() and pm.ensure_paths()


def test_a_refusing_status_does_not_mark_the_guard() -> None:
    """429/503 from the path: the path is retried later, no node is taken for dead."""
    pm = PathManager([node(i) for i in range(5)], rng=random.Random(3), paths_wanted=1)
    p = pm.choose()
    for _ in range(paths_mod.MAX_FAILURES):
        pm.path_failed(p)
    assert pm.bad == frozenset() and pm.choose().guard == p.guard


async def test_down_and_busy_are_told_apart_on_real_sockets() -> None:
    """A port nobody listens on is down; a listener that closes at once (a connection cap)
    is busy: as the HTTP client reports them."""

    async def close_at_once(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    busy_port = server.sockets[0].getsockname()[1]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
    s.close()
    seen: dict[int, BaseException] = {}
    try:
        async with HttpClient(ssl_context=client_ssl_context()) as http:
            for port in (busy_port, free_port):
                try:
                    await http.request("POST", f"https://127.0.0.1:{port}/onion_req/v2", body=b"x")
                except HttpError as e:
                    seen[port] = e
    finally:
        server.close()
        await server.wait_closed()
    assert node_is_down(seen[free_port])
    assert not node_is_down(seen[busy_port])
