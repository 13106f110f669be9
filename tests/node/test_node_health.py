"""A node's uptime proofs and reachability tests (session/node/health.py), with the registry
and the peers replaced by recorders: what is tested when, what is reported, and what a
refused proof leads to."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from session.errors import RegistryError
from session.http1.client import HttpClient
from session.identity import Identity
from session.node.health import RETEST_CAP, ReachabilityTester, UptimeProver, ping_https
from session.node.links import LinkUnreachable
from session.node.swarm_view import SwarmView
from session.proto.snodes import ServiceNode
from session.registry.health import verify_report, verify_uptime_proof
from session.service.tls import client_ssl_context, server_ssl_context


def node(ident: Identity, i: int, *, active: bool = True) -> ServiceNode:
    return ServiceNode(
        pubkey_ed25519=ident.ed25519_public.hex(),
        pubkey_x25519=ident.x25519_public.hex(),
        public_ip="127.0.0.1",
        storage_port=20000 + i,
        storage_lmq_port=21000 + i,
        swarm_id=0 if active else 2**64 - 1,
        active=active,
    )


class Links:
    """Answers pings of the nodes in ``up``; the others are unreachable."""

    def __init__(self, up: set[str]) -> None:
        self.up = up

    async def request(self, x25519: str, address: str, kind: bytes, body: Any, timeout: Any) -> Any:
        if x25519 not in self.up:
            raise LinkUnreachable("down")
        return {"v": ""}


async def _noop() -> None:
    return None


async def _no_fetch() -> list[ServiceNode]:
    return []


def setup(
    n: int, *, me_active: bool = True, inactive: tuple[int, ...] = ()
) -> tuple[Identity, list[ServiceNode], SwarmView]:
    me = Identity.generate()
    peers = [node(Identity.generate(), i, active=i not in inactive) for i in range(n)]
    view = SwarmView(me.ed25519_public.hex(), _no_fetch)
    view.apply([node(me, 99, active=me_active), *peers])
    return me, peers, view


def make_tester(
    me: Identity, view: SwarmView, links: Links, https_up: set[str], sent: list[Any]
) -> ReachabilityTester:
    async def ping(n: ServiceNode, timeout: float) -> bool:
        return n.pubkey_ed25519 in https_up

    async def send(doc: dict[str, Any]) -> None:
        sent.append(doc)

    return ReachabilityTester(
        me, view, links, send, interval=10.0, timeout=1.0, ping_https=ping, rng=random.Random(5)
    )


def test_random_tests_cover_every_listed_node_before_repeating() -> None:
    me, peers, view = setup(6, inactive=(2,))  # decommissioned nodes are tested too
    t = make_tester(me, view, Links(set()), set(), [])
    picked = []
    now = 0.0
    for _ in range(6):
        now += 100.0
        picked += [n.pubkey_ed25519 for n in t.due(now)]
    assert sorted(picked) == sorted(p.pubkey_ed25519 for p in peers)
    assert t.due(now) == []  # the next random test is not due yet


def test_a_node_that_is_not_active_tests_no_one() -> None:
    me, _, view = setup(4, me_active=False)
    t = make_tester(me, view, Links(set()), set(), [])
    assert t.due(1e9) == []


async def test_results_are_reported_signed_and_failures_retested_sooner() -> None:
    me, peers, view = setup(3)
    good, half, dead = peers
    sent: list[Any] = []
    links = Links({good.pubkey_x25519, half.pubkey_x25519})
    t = make_tester(me, view, links, {good.pubkey_ed25519}, sent)
    assert await t.test(good) is True
    assert await t.test(half) is False  # HTTPS ping failed, link answered
    assert await t.test(dead) is False
    now = time.time()
    facts = [verify_report(d, now=now) for d in sent]
    assert [(f["target"], f["https_ok"], f["link_ok"]) for f in facts] == [
        (good.pubkey_ed25519, True, True),
        (half.pubkey_ed25519, False, True),
        (dead.pubkey_ed25519, False, False),
    ]
    assert all(f["pubkey_ed25519"] == me.ed25519_public.hex() for f in facts)
    assert set(t.failing) == {half.pubkey_ed25519, dead.pubkey_ed25519}
    # the failing ones come back for a retest within the cap; the good one only at random
    failures, when = t.failing[dead.pubkey_ed25519]
    assert failures == 1
    assert when <= asyncio.get_running_loop().time() + RETEST_CAP * t.interval
    t._next_random = float("inf")
    due = {n.pubkey_ed25519 for n in t.due(max(w for _, w in t.failing.values()) + 0.01)}
    assert due == {half.pubkey_ed25519, dead.pubkey_ed25519}
    # a pass clears a node's failures
    links.up.add(dead.pubkey_x25519)
    assert await t.test(dead) is False  # still no HTTPS
    assert t.failing[dead.pubkey_ed25519][0] == 2
    t._ping_https = _always_ok
    assert await t.test(dead) is True
    assert dead.pubkey_ed25519 not in t.failing


async def _always_ok(n: ServiceNode, timeout: float) -> bool:
    return True


async def test_a_refused_proof_registers_again_and_state_changes_are_noticed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = Identity.generate()
    sent: list[dict[str, Any]] = []
    answers: list[Any] = [
        {"active": True, "decommission_count": 0},
        {"active": False, "decommission_count": 1},
        RegistryError("node is not registered", 404),
        RegistryError("registry at x is unreachable", 0),
        {"active": True, "decommission_count": 1},
        RegistryError("node is not registered", 404),
    ]
    registered = []

    async def send(doc: dict[str, Any]) -> dict[str, Any]:
        sent.append(doc)
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return dict(a)

    async def register_again() -> None:
        registered.append(True)

    p = UptimeProver(
        me,
        send,
        interval=1.0,
        ports=lambda: (22021, 22020),
        storage=lambda: (4096, 1 << 30),
        register_again=register_again,
    )
    with caplog.at_level("INFO", logger="session.node.health"):
        for _ in range(4):
            await p.prove()
        assert p.active is False and p.sent == 2
        # a 404 after a decommission re-registers; an unreachable registry does not
        assert registered == [True]
        await p.prove()
        await p.prove()  # deregistered while active: on purpose, it stays out
    assert registered == [True] and p.active is None
    assert "no longer lists this node" in caplog.text
    assert "decommissioned" in caplog.text
    f = verify_uptime_proof(sent[0], now=time.time())
    assert (f["https_port"], f["zmq_port"], f["storage_bytes"]) == (22021, 22020, 4096)


async def test_a_registration_refused_for_good_is_logged_and_proofs_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    async def send(doc: dict[str, Any]) -> dict[str, Any]:
        calls.append(doc)
        raise RegistryError("the proof's ports differ from the registration", 409)

    async def register_again() -> None:
        raise RegistryError("address 10.0.0.1 port 22021 is already registered", 409)

    p = UptimeProver(
        Identity.generate(),
        send,
        interval=1.0,
        ports=lambda: (22021, 22020),
        storage=lambda: (0, 1),
        register_again=register_again,
    )
    with caplog.at_level("ERROR", logger="session.node.health"):
        await p.prove()
        await p.prove()
    assert len(calls) == 2
    assert caplog.text.count("registering again failed") == 2


async def test_ping_https_passes_only_the_node_answering_with_its_own_key(tmp_path: Path) -> None:
    """The HTTPS half of a reachability test, on real sockets: 200 with the node's own key
    passes; another key, another status, a silent node and a closed port fail."""
    me, other = Identity.generate(), Identity.generate()
    answers: dict[int, bytes] = {}
    heads: list[bytes] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        if port in answers:
            writer.write(answers[port])
            await writer.drain()
        else:
            await reader.read()  # silent until the tester gives up
        writer.close()

    def reply(status: str, key: bytes) -> bytes:
        b64 = base64.b64encode(key).decode()
        return (
            f"HTTP/1.1 {status}\r\nX-Oxen-Snode-Pubkey: {b64}\r\nContent-Length: 0\r\n\r\n".encode()
        )

    ctx = server_ssl_context(tmp_path)
    servers = [await asyncio.start_server(peer, "127.0.0.1", 0, ssl=ctx) for _ in range(4)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    answers[ports[0]] = reply("200 OK", me.ed25519_public)
    answers[ports[1]] = reply("200 OK", other.ed25519_public)
    answers[ports[2]] = reply("503 Service Unavailable", me.ed25519_public)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    http = HttpClient(ssl_context=client_ssl_context(), keepalive=False)
    try:
        results = [
            await ping_https(http, dataclasses.replace(node(me, 0), storage_port=p), 0.5)
            for p in [*ports, closed_port]
        ]
    finally:
        await http.close()
        for s in servers:
            s.close()
            await s.wait_closed()
    assert results == [True, False, False, False, False]
    assert len(heads) == 4 and all(h.startswith(b"POST /ping_test/v1 HTTP/1.1\r\n") for h in heads)
    assert all(b"\r\nConnection: close\r\n" in h for h in heads)  # a fresh connection each
