"""Time from a node's death to its swarm being whole again, on a 14-node devnet (two swarms of
7) with the devnet's default health windows (``session.devnet.net.DEVNET_HEALTH``: no proof
for 20 s, or three testers failing a node for 6 s; proofs and tests every 2 s; node-list polls
every second).

One node is SIGKILLed; measured from the kill: when the registry lists it decommissioned, and
when its swarm is whole again (every running node runs on the registry's new list, and every
live member of the dead node's swarm holds every message stored there before the kill). Then it
is restarted, and the time until it is recommissioned and ready is measured too.

Measurement only (``python3 -m pytest bench/test_bench_health.py --benchmark-enable -s``):
without ``--benchmark-enable`` it is skipped, since it waits out real windows (about a minute);
the behaviour itself is tested, with windows of seconds, in
``tests/integration/test_network_health.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from session.identity import Identity
from session.testing.http import Client, retrieve_request, store_request

pytestmark = pytest.mark.integration


def _states(net: Any) -> dict[str, dict[str, Any]]:
    return {e["pubkey_ed25519"]: e for e in net.node_list()["result"]["service_node_states"]}


async def _holds(http: Client, url: str, ident: Identity, want: set[str]) -> bool:
    status, body = await http.rpc(url, retrieve_request(ident))
    return status == 200 and want <= {m["hash"] for m in body["messages"]}


def test_death_to_whole_swarm(benchmark: Any, tmp_path: Any) -> None:
    if benchmark.disabled:
        pytest.skip("a measurement (about a minute of real windows): run with --benchmark-enable")
    from session.devnet import Devnet

    with Devnet(tmp_path / "net", nodes=14, file_server=False) as net:
        result = asyncio.run(_measure(net))
    benchmark.extra_info.update(result)
    benchmark.extra_info["checked"] = "decommissioned, swarm whole, recommissioned"
    benchmark.extra_info["correct"] = True
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(result)


async def _measure(net: Any) -> dict[str, float]:
    http = Client()
    try:
        victim = net.nodes[5]
        mates = [
            n
            for n in net.nodes
            if n is not victim
            and _states(net)[n.pubkey_ed25519]["swarm_id"]
            == _states(net)[victim.pubkey_ed25519]["swarm_id"]
        ]
        # an account of the victim's swarm, and messages every member holds
        owner, stored = None, set()
        while owner is None:
            ident = Identity.generate()
            status, body = await http.rpc(mates[0].url, store_request(ident.session_id, b"probe"))
            if status == 200 and victim.pubkey_ed25519 in body["swarm"]:
                owner = ident
                stored.add(body["hash"])
        for i in range(20):
            status, body = await http.rpc(
                mates[i % 3].url, store_request(owner.session_id, b"m%d" % i)
            )
            assert status == 200, body
            stored.add(body["hash"])
        t0 = time.monotonic()
        net.kill_node(victim)
        while _states(net)[victim.pubkey_ed25519]["active"]:
            await asyncio.sleep(0.1)
        decommissioned = time.monotonic() - t0
        await asyncio.to_thread(net.wait_converged, 60)
        swarm = _states(net)
        members = [
            n
            for n in net.running_nodes()
            if swarm[n.pubkey_ed25519]["swarm_id"] == swarm[mates[0].pubkey_ed25519]["swarm_id"]
        ]
        while not all([await _holds(http, n.url, owner, stored) for n in members]):
            await asyncio.sleep(0.1)
        whole = time.monotonic() - t0
        t1 = time.monotonic()
        # restart_node returns once the node is ready (in a swarm again: recommissioned, and
        # caught up) and every node runs on the registry's list
        await asyncio.to_thread(net.restart_node, victim)
        back = time.monotonic() - t1
        assert _states(net)[victim.pubkey_ed25519]["active"]
        return {
            "decommissioned_s": round(decommissioned, 2),
            "swarm_whole_s": round(whole, 2),
            "swarm_members_after": len(members),
            "recommissioned_and_ready_s": round(back, 2),
        }
    finally:
        await http.close()
