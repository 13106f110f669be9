from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

#: Seconds a devnet process may take to be ready: a slow machine raises it (ci/aarch64.sh runs
#: these tests on an emulated CPU, where a node's imports alone take 10 s or more).
READY_TIMEOUT = float(os.environ.get("SESSION_TEST_READY_TIMEOUT", "60"))


@pytest.fixture(scope="session")
def v4_socket():
    """The listening socket of the session's test v4 server: bound before the devnet starts so
    that the devnet can allow exactly this server (``proxy_allow``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


async def _serving_reads(urls: list[str]) -> None:
    """Every node answers reads: a fresh node first catches up with its swarm (503 until then)."""
    from session.testing.http import Client

    c = Client()
    try:
        await asyncio.gather(*(c.serving_reads(u, READY_TIMEOUT) for u in urls))
    finally:
        await c.close()


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory, v4_socket: socket.socket):
    """A registry and 5 node processes on 127.0.0.1 for the whole session."""
    from session.devnet import STEADY_HEALTH, Devnet

    v4_port = v4_socket.getsockname()[1]
    net = Devnet(
        tmp_path_factory.mktemp("devnet"),
        nodes=5,
        poll_interval=0.5,
        ready_timeout=READY_TIMEOUT,
        proxy_allow=[f"127.0.0.1:{v4_port}"],
        # test_devnet kills and restarts members; the modules after it need all five in the
        # swarm (no decommission acting late on reports of those outages)
        health=STEADY_HEALTH,
        # the tests check that every member stored and signed a store: a live member on a
        # loaded 2-core machine may answer after the default 1 s (killed members still fail
        # at once: their links close)
        extra_env={"SESSION_NODE_REPLICATION__FORWARD_DEADLINE": "10"},
    )
    net.start()
    asyncio.run(_serving_reads([n.url for n in net.nodes]))
    yield net
    net.stop()
    codes = net.exit_codes()
    # every node the tests did not kill on purpose exits cleanly on SIGTERM
    bad = {k: v for k, v in codes.items() if v not in (0, -9)}
    assert not bad, f"nodes exited uncleanly: {bad}"
