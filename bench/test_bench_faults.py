"""Store latency while swarm members are down, as ratios against the all-live baseline measured
in the same run (5-node devnet, one swarm, stores over HTTPS at node 0, one at a time).

Phases, in order: all members live (baseline); one member frozen (SIGSTOP); the frozen member
resumed and another SIGKILLed; one dead and one frozen. Each phase first waits until the
fault is visible (a store reports the member failed), so a phase measures the steady state; the
cost of discovering a fault (one store waits ``replication.forward_deadline``) is reported
separately as ``first_store_after_fault_ms``.

Run the measurement with ``python3 -m pytest bench/test_bench_faults.py --benchmark-enable -s``;
in the normal test run it executes once with fewer stores (correctness checks only).
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from session.identity import Identity
from session.testing.http import retrieve_request, store_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faultnet(unlimited_devnet: Callable[[str, int], Any]) -> Iterator[Any]:
    net = unlimited_devnet("bench-faults", 5)
    yield net
    for n in net.nodes:
        if n.proc is not None and n.proc.poll() is None:
            n.proc.send_signal(signal.SIGCONT)  # a frozen node must be able to stop
    net.stop()


class StoreRig:
    """One HTTPS connection to node 0 (TLS done before anything is measured)."""

    def __init__(self, url: str, ident: Identity) -> None:
        self.url = url
        self.ident = ident
        self.i = 0

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, limit=1))
        for _ in range(5):
            status, _ = await self.store()
            assert status == 200

    async def rpc(self, doc: Any) -> tuple[int, Any]:
        async with self.http.post(self.url + "/storage_rpc/v1", data=json.dumps(doc)) as r:
            body = await r.read()
            return r.status, json.loads(body) if r.status == 200 else body

    async def store(self) -> tuple[int, Any]:
        self.i += 1
        return await self.rpc(store_request(self.ident.session_id, b"bench %d" % self.i))

    async def timed_stores(self, n: int) -> tuple[list[float], list[Any]]:
        lat, bodies = [], []
        for _ in range(n):
            t = time.perf_counter()
            status, body = await self.store()
            lat.append(time.perf_counter() - t)
            assert status == 200, body
            bodies.append(body)
        return lat, bodies

    async def until_failed(self, eds: set[str]) -> float:
        """Store until a response reports every member of ``eds`` failed; returns the latency
        of the first store after the fault (the one that discovers it)."""
        first: float | None = None
        for _ in range(200):
            t = time.perf_counter()
            status, body = await self.store()
            first = time.perf_counter() - t if first is None else first
            assert status == 200, body
            if all(body["swarm"][ed].get("failed") for ed in eds):
                return first
        raise AssertionError("the fault never showed in a store response")

    async def count(self) -> int:
        n, last = 0, None
        while True:
            status, body = await self.rpc(retrieve_request(self.ident, last_hash=last))
            assert status == 200, body
            n += len(body["messages"])
            if not body.get("more") or not body["messages"]:
                return n
            last = body["messages"][-1]["hash"]

    async def close(self) -> None:
        await self.http.close()


def _summary(lat: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in lat)
    return {
        "median_ms": statistics.median(ms),
        "p95_ms": ms[int(len(ms) * 0.95) - 1],
        "max_ms": ms[-1],
    }


def test_store_latency_with_members_down(
    benchmark: Any, loop: asyncio.AbstractEventLoop, faultnet: Any
) -> None:
    benchmark.group = "node store latency with swarm members down"
    n = 200 if not benchmark.disabled else 20
    nodes = faultnet.nodes
    frozen, dead = nodes[3], nodes[4]
    rig = StoreRig(nodes[0].url, Identity.generate())
    out: dict[str, Any] = {}

    async def phases() -> dict[str, Any]:
        res: dict[str, Any] = {}
        res["all live"], _ = await rig.timed_stores(n)
        assert frozen.proc is not None
        frozen.proc.send_signal(signal.SIGSTOP)
        res["first after freeze"] = await rig.until_failed({frozen.pubkey_ed25519})
        res["one frozen"], _ = await rig.timed_stores(n)
        frozen.proc.send_signal(signal.SIGCONT)
        await asyncio.to_thread(faultnet.kill_node, dead)
        res["first after kill"] = await rig.until_failed({dead.pubkey_ed25519})
        res["one dead"], bodies = await rig.timed_stores(n)
        res["dead reported failed"] = all(
            b["swarm"][dead.pubkey_ed25519].get("failed") for b in bodies
        )
        frozen.proc.send_signal(signal.SIGSTOP)
        await rig.until_failed({frozen.pubkey_ed25519, dead.pubkey_ed25519})
        res["one dead, one frozen"], _ = await rig.timed_stores(n)
        frozen.proc.send_signal(signal.SIGCONT)
        return res

    try:
        loop.run_until_complete(rig.start())
        out = benchmark.pedantic(lambda: loop.run_until_complete(phases()), rounds=1, iterations=1)
        stored = loop.run_until_complete(rig.count())
    finally:
        if frozen.proc is not None:
            frozen.proc.send_signal(signal.SIGCONT)
        loop.run_until_complete(rig.close())
    base = _summary(out["all live"])
    result: dict[str, Any] = {
        "stores_per_phase": n,
        "baseline_median_ms": round(base["median_ms"], 2),
    }
    for phase in ("one frozen", "one dead", "one dead, one frozen"):
        s = _summary(out[phase])
        key = phase.replace(", ", "_").replace(" ", "_")
        result[f"{key}_median_ms"] = round(s["median_ms"], 2)
        result[f"{key}_p95_ms"] = round(s["p95_ms"], 2)
        result[f"{key}_ratio"] = round(s["median_ms"] / base["median_ms"], 2)
    result["first_store_after_freeze_ms"] = round(out["first after freeze"] * 1000, 1)
    result["first_store_after_kill_ms"] = round(out["first after kill"] * 1000, 1)
    # 5 warm-up stores + 4 phases + the stores that waited for each fault to show
    complete = stored == rig.i
    ok = out["dead reported failed"] and complete
    benchmark.extra_info.update(result)
    benchmark.extra_info.update(
        correct=ok,
        checked="every store 200; every store with a member dead reported it "
        "failed; node 0 then held every acknowledged message",
    )
    print(f"\nstore latency with members down: {result}")
    assert ok, (out["dead reported failed"], stored, rig.i)
