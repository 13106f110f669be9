"""Issue 8: whatever JSON (or junk) is thrown at any HTTP endpoint of a running node — public
site and admin site — the node answers, never with a 500, and within a second; and nothing it
logs is a traceback.

One real node (in-process, HTTPS and node links on 127.0.0.1, in a swarm of its own) serves every
example; the bodies come from :func:`session.testing.hostile.hostile_bodies`, which other
services' tests reuse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session import onion
from session.identity import Identity
from session.node.config import AdminConfig, LimitsConfig, NetworkConfig, NodeConfig, RegistryConfig
from session.node.daemon import Node
from session.proto import rpc
from session.proto.snodes import ServiceNode
from session.service.tls import ensure_certificate
from session.storage.memory import MemoryMessageStore
from session.testing.hostile import ANSWER_WITHIN, CONTENT_ENCODINGS, hostile_bodies, probe
from session.testing.http import open_onion_reply

PARAM_KEYS = [
    "pubkey", "pubKey", "timestamp", "ttl", "expiry", "data", "namespace", "signature",
    "messages", "sig_timestamp", "pubkey_ed25519", "subaccount", "subaccount_sig", "last_hash",
    "max_count", "max_size", "before", "revoke", "unrevoke", "requests", "if", "then", "else",
    "endpoint", "params", "shorten", "extend", "required", "name_hash", "type",
]  # fmt: skip


class Fired:
    """The node under fire, its event loop, an HTTPS client, and its URLs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, node: Node, http: aiohttp.ClientSession):
        self.loop = loop
        self.node = node
        self.http = http
        site = f"https://127.0.0.1:{node.https_port}"
        admin = f"http://127.0.0.1:{node.admin_port}"
        #: (HTTP method, URL) of every route the node serves, plus one it does not.
        self.routes = [
            ("POST", f"{site}/storage_rpc/v1"),
            ("POST", f"{site}/onion_req/v2"),
            ("POST", f"{site}/ping_test/v1"),
            ("GET", f"{site}/get_stats/v1"),
            ("POST", f"{site}/get_stats/v1"),
            ("POST", f"{site}/no/such/path"),
            ("GET", f"{admin}/metrics"),
            ("GET", f"{admin}/healthz"),
            ("GET", f"{admin}/readyz"),
            ("POST", f"{admin}/readyz"),
        ]
        me = node.identity
        self.dest = onion.NodeDestination(me.ed25519_public.hex(), bytes(me.x25519_public))
        self.hop = onion.Hop(me.ed25519_public.hex(), bytes(me.x25519_public))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def fired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fired]:
    tmp = tmp_path_factory.mktemp("fired")
    ensure_certificate(tmp)  # in process: no child process for the certificate
    ident = Identity.generate()
    cfg = NodeConfig(
        data_dir=tmp,
        network=NetworkConfig(
            listen_host="127.0.0.1", https_port=0, zmq_port=0, public_ip="127.0.0.1"
        ),
        admin=AdminConfig(port=0),
        registry=RegistryConfig(poll_interval=3600),
        # the examples come faster than a client's budget: the bucket must not answer for them
        limits=LimitsConfig(requests_per_second=1e6, burst=1_000_000),
        shutdown_timeout=2.0,
    )
    listed: list[ServiceNode] = []

    async def fetch() -> list[ServiceNode]:
        return list(listed)

    async def start() -> Fired:
        node = Node(
            cfg, identity=ident, store=MemoryMessageStore(), fetch_nodes=fetch, register=False
        )
        await node.start()
        listed.append(
            ServiceNode(
                ident.ed25519_public.hex(),
                ident.x25519_public.hex(),
                "127.0.0.1",
                node.https_port,
                node.zmq_port,
                swarm_id=0,
            )
        )
        await node.view.refresh()
        assert node.ready_reason() is None
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        return Fired(asyncio.get_running_loop(), node, http)

    loop = asyncio.new_event_loop()
    f = loop.run_until_complete(start())
    yield f
    loop.run_until_complete(f.http.close())
    loop.run_until_complete(f.node.stop())
    loop.close()


def _assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=hostile_bodies(sorted(rpc.METHODS), PARAM_KEYS),
    route=st.integers(0, 9),
    coding=CONTENT_ENCODINGS,
)
def test_any_body_at_any_endpoint_gets_an_answer(
    fired: Fired, caplog: pytest.LogCaptureFixture, body: bytes, route: int, coding: str | None
) -> None:
    caplog.clear()
    method, url = fired.routes[route]
    status, took = fired.run(probe(fired.http, method, url, body, coding))
    assert status != 500 and status < 600, (url, body[:200])
    assert took < ANSWER_WITHIN, (url, took, body[:200])
    _assert_no_tracebacks(caplog)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_bodies(sorted(rpc.METHODS), PARAM_KEYS))
def test_any_body_as_an_onion_payload_gets_an_encrypted_answer(
    fired: Fired, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    """The same bodies inside a real onion whose destination is the node (one hop: the node
    relays to itself): the answer is an encrypted reply whose inner status is not 500."""
    caplog.clear()
    frame, key = onion.build([fired.hop], fired.dest, body)
    status, took = fired.run(_probe_onion(fired, frame))
    assert took < ANSWER_WITHIN
    assert status[0] == 200, status
    assert open_onion_reply(key, status[1])["status"] != 500
    _assert_no_tracebacks(caplog)


async def _probe_onion(fired: Fired, frame: bytes) -> tuple[tuple[int, bytes], float]:
    t0 = time.perf_counter()
    async with fired.http.post(fired.routes[1][1], data=frame) as r:
        answer = (r.status, await r.read())
    return answer, time.perf_counter() - t0
