"""Node benchmarks: relay cost per onion layer beside the bare peel, HTTPS store/retrieve rates,
3-hop round-trip latency on a small devnet.

Run the measurements with ``python3 -m pytest bench/test_bench_node.py --benchmark-enable -s``;
in the normal test run they execute once (correctness checks only). Figures go to
``benchmark.extra_info`` (and are printed with ``-s``); ``extra_info["correct"]`` is what the
check after the run found, and ``extra_info["checked"]`` says what that check was.

Only the operation is measured: processes, connections (TLS, ZeroMQ handshakes), warm-up
requests and request bodies are made before the timed call.

Relay rig: a relay process (bench/load/relay_node.py: node links + onion router, nothing else)
between a driver and a sink living in this process. The driver sends one-layer frames over a
node link, the relay peels and forwards to the sink, which answers at once; the answer travels
back through the relay without crypto. The relay's CPU time (from /proc) per layer is compared
with the bare ``Peeler.peel`` CPU time measured in the same run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session import onion
from session.identity import Identity
from session.node.links import KIND_ONION, NodeLinks
from session.testing.http import retrieve_request

HERE = Path(__file__).parent
PAYLOAD_SIZE = 1024
RELAY_LAYERS = 3000
CONCURRENCY = 64


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of process ``pid`` so far, in nanoseconds' resolution
    (``/proc/PID/task/*/schedstat``; ``/proc/PID/stat`` counts 10 ms clock ticks, ±3 µs a layer
    over 3,000 layers). The relay's threads (loop, rayon, ZeroMQ) live as long as it does."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return total / 1e9


def _entry(ident: Identity, port: int) -> dict[str, Any]:
    return {
        "pubkey_ed25519": ident.ed25519_public.hex(),
        "pubkey_x25519": ident.x25519_public.hex(),
        "public_ip": "127.0.0.1",
        "storage_port": 1,
        "storage_lmq_port": port,
        "swarm_id": 0,
    }


class RelayRig:
    """Driver → relay process → sink, connected and warmed up before anything is measured."""

    def __init__(self, enc: str, profile: str | None = None) -> None:
        self.enc = enc
        self.profile = profile
        self.relay_id, self.sink_id, self.driver_id = (Identity.generate() for _ in range(3))
        self.frames: list[bytes] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.sink: NodeLinks | None = None
        self.driver: NodeLinks | None = None

    async def start(self) -> None:
        allowed = {self.relay_id.x25519_public, self.driver_id.x25519_public}

        async def authorize(key: bytes) -> bool:
            return key in allowed

        async def sink_handler(peer: str, body: dict[str, Any]) -> dict[str, Any]:
            return {"s": 200, "b": b"ok"}

        self.sink = NodeLinks(
            public_x25519=self.sink_id.x25519_public,
            secret_x25519=self.sink_id.export_x25519_secret(),
            handlers={KIND_ONION: sink_handler},
            authorize=authorize,
        )
        sink_port = await self.sink.start("127.0.0.1", 0)
        self.driver = NodeLinks(
            public_x25519=self.driver_id.x25519_public,
            secret_x25519=self.driver_id.export_x25519_secret(),
            handlers={},
            authorize=authorize,
        )
        await self.driver.start("127.0.0.1", 0)
        cmd = [sys.executable, str(HERE / "load" / "relay_node.py")]
        if self.profile:
            cmd += ["--profile", self.profile]
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(
            json.dumps(
                {
                    "secret": self.relay_id.export_x25519_secret().hex(),
                    "public": self.relay_id.x25519_public.hex(),
                    "workers": int(os.environ.get("RELAY_WORKERS", "1")),
                    "nodes": [_entry(self.sink_id, sink_port), _entry(self.driver_id, 1)],
                }
            ).encode()
            + b"\n"
        )
        await self.proc.stdin.drain()
        relay_port = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 60))["port"]
        self.address = f"tcp://127.0.0.1:{relay_port}"
        hop = onion.Hop(self.relay_id.ed25519_public.hex(), self.relay_id.x25519_public)
        dst = onion.NodeDestination(self.sink_id.ed25519_public.hex(), self.sink_id.x25519_public)
        payload = os.urandom(PAYLOAD_SIZE)
        self.frames = [onion.build([hop], dst, payload, self.enc)[0] for _ in range(500)]
        warm = await asyncio.gather(*(self._send(i) for i in range(200)))  # connect + warm up
        assert warm == [200] * 200

    async def _send(self, i: int) -> int:
        assert self.driver is not None, "start() first"
        r = await self.driver.request(
            self.relay_id.x25519_public.hex(),
            self.address,
            KIND_ONION,
            {"f": self.frames[i % len(self.frames)]},
            30.0,
        )
        return int(r["s"])

    async def relay(self, n: int) -> dict[str, Any]:
        """The measured operation: ``n`` layers through the relay, ``CONCURRENCY`` in flight."""
        assert self.proc is not None, "start() first"
        pid = self.proc.pid
        cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
        statuses: list[int] = []
        sem = asyncio.Semaphore(CONCURRENCY)

        async def limited(i: int) -> None:
            async with sem:
                statuses.append(await self._send(i))

        await asyncio.gather(*(limited(i) for i in range(n)))
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
        return {"statuses": statuses, "wall": wall, "cpu": cpu}

    def bare_peel_seconds(self, passes: int = 3) -> float:
        """Mean CPU time of one ``Peeler.peel`` over the rig's frames, with the relay's own key
        (CPU time of this thread, like the relay's CPU time: a busy machine inflates wall time
        of both sides differently)."""
        peeler = onion.Peeler.from_x25519_secret(self.relay_id.export_x25519_secret())
        t = time.thread_time()
        decisions = [peeler.peel(f) for _ in range(passes) for f in self.frames]
        bare = (time.thread_time() - t) / len(decisions)
        assert all(isinstance(d, onion.Relay) for d in decisions)
        return bare

    async def close(self) -> None:
        """Stops whatever :meth:`start` got to start."""
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 10)
        for links in (self.driver, self.sink):
            if links is not None:
                await links.close()


@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
def test_bare_peel_1k(benchmark: Any, enc: str) -> None:
    ident = Identity.generate()
    peeler = onion.Peeler.from_x25519_secret(ident.export_x25519_secret())
    other = Identity.generate()
    dst = onion.NodeDestination(other.ed25519_public.hex(), other.x25519_public)
    frame, _ = onion.build(
        [onion.Hop(ident.ed25519_public.hex(), ident.x25519_public)],
        dst,
        os.urandom(PAYLOAD_SIZE),
        enc,
    )
    benchmark.group = "node relay layer (1 KB)"
    d = benchmark(peeler.peel, frame)
    ok = isinstance(d, onion.Relay) and d.next_ed25519 == dst.ed25519_hex
    benchmark.extra_info.update(correct=ok, checked="the peel names the destination as next hop")
    assert ok


@pytest.mark.integration
@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
def test_relay_layer_through_node_1k(
    benchmark: Any, loop: asyncio.AbstractEventLoop, enc: str
) -> None:
    benchmark.group = "node relay layer (1 KB)"
    n = RELAY_LAYERS if not benchmark.disabled else 300
    rig = RelayRig(enc)
    try:
        loop.run_until_complete(rig.start())
        out = benchmark.pedantic(
            lambda: loop.run_until_complete(rig.relay(n)), rounds=1, iterations=1
        )
        bare = rig.bare_peel_seconds()
    finally:
        loop.run_until_complete(rig.close())
    ok = out["statuses"] == [200] * n
    result = {
        "layers": n,
        "layers_per_s": n / out["wall"],
        "relay_cpu_us_per_layer": out["cpu"] / n * 1e6,
        "bare_peel_us": bare * 1e6,
        "cpu_ratio_vs_bare_peel": (out["cpu"] / n) / bare,
    }
    benchmark.extra_info.update({k: round(v, 2) for k, v in result.items()})
    benchmark.extra_info.update(
        correct=ok, checked="every relayed layer came back 200 from the sink"
    )
    print(f"\nrelay {enc}: {result}")
    assert ok


# ---------------------------------------------------------------------------- devnet benches
@pytest.fixture(scope="module")
def small_devnet(unlimited_devnet: Callable[[str, int], Any]) -> Any:
    return unlimited_devnet("bench-devnet", 4)


class HttpsRig:
    """An HTTPS client session with its connections to ``url`` open (TLS done) before use."""

    def __init__(self, url: str, connections: int = 16) -> None:
        self.url = url
        self.connections = connections

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False, limit=self.connections)
        )
        self.sem = asyncio.Semaphore(self.connections)
        info = json.dumps({"method": "info", "params": {}}).encode()
        warm = await asyncio.gather(
            *(self.post("/storage_rpc/v1", info) for _ in range(self.connections * 2))
        )
        assert [s for s, _ in warm] == [200] * self.connections * 2

    async def serving_reads(self, timeout: float = 60.0) -> None:
        """Waits until the node answers a retrieve: a freshly started member first catches up
        with its swarm and refuses reads (503) until then."""
        probe = Identity.generate()
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.post(
                "/storage_rpc/v1", json.dumps(retrieve_request(probe)).encode()
            )
            if status == 200:
                return
            assert status == 503 and time.monotonic() < deadline, (status, body[:200])
            await asyncio.sleep(0.1)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self.sem, self.http.post(self.url + path, data=body) as r:
            return r.status, await r.read()

    async def close(self) -> None:
        await self.http.close()


def _store_body(account: str, i: int, data: bytes) -> bytes:
    return json.dumps(
        {
            "method": "store",
            "params": {
                "pubkey": account,
                "timestamp": int(time.time() * 1000),
                "ttl": 3_600_000,
                "data": base64.b64encode(b"%d" % i + data).decode(),
            },
        }
    ).encode()


@pytest.mark.integration
def test_store_and_retrieve_over_https(
    benchmark: Any, loop: asyncio.AbstractEventLoop, small_devnet: Any
) -> None:
    benchmark.group = "node https rpc"
    n = 400 if not benchmark.disabled else 40
    alice = Identity.generate()
    data = os.urandom(500)
    rig = HttpsRig(small_devnet.nodes[0].url)

    def bodies() -> tuple[tuple[list[bytes], list[bytes]], dict[str, Any]]:
        stores = [_store_body(alice.session_id, i, data) for i in range(n)]
        retrieves = [json.dumps(retrieve_request(alice)).encode() for _ in range(n)]
        return (stores, retrieves), {}

    async def run(stores: list[bytes], retrieves: list[bytes]) -> dict[str, Any]:
        t = time.perf_counter()
        st = await asyncio.gather(*(rig.post("/storage_rpc/v1", b) for b in stores))
        store_s = time.perf_counter() - t
        t = time.perf_counter()
        rt = await asyncio.gather(*(rig.post("/storage_rpc/v1", b) for b in retrieves))
        retrieve_s = time.perf_counter() - t
        return {"stores": st, "retrieves": rt, "store_s": store_s, "retrieve_s": retrieve_s}

    try:
        loop.run_until_complete(rig.start())
        loop.run_until_complete(rig.serving_reads())
        out = benchmark.pedantic(
            lambda s, r: loop.run_until_complete(run(s, r)), setup=bodies, rounds=1, iterations=1
        )
    finally:
        loop.run_until_complete(rig.close())
    stored = [s for s, _ in out["stores"]] == [200] * n
    # every retrieve answered, and (stores having finished first) saw every stored message
    answered = [s for s, _ in out["retrieves"]] == [200] * n
    complete = answered and len(json.loads(out["retrieves"][-1][1])["messages"]) == n
    failures = sorted({(s, b[:80]) for s, b in out["stores"] + out["retrieves"] if s != 200})
    result = {
        "stores_per_s": n / out["store_s"],
        "retrieves_per_s": n / out["retrieve_s"],
        "swarm_size": len(small_devnet.nodes),
    }
    benchmark.extra_info.update({k: round(v, 1) for k, v in result.items()})
    benchmark.extra_info.update(
        correct=stored and complete,
        checked="every store 200; every retrieve 200 and the last one returned all stored messages",
    )
    print(f"\nhttps rpc: {result}")
    assert stored and complete, failures


@pytest.mark.integration
@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
def test_three_hop_round_trip(
    benchmark: Any, loop: asyncio.AbstractEventLoop, small_devnet: Any, enc: str
) -> None:
    benchmark.group = "node 3-hop onion round trip"
    n = 300 if not benchmark.disabled else 20
    nodes = small_devnet.nodes
    hops = [onion.Hop(x.pubkey_ed25519, bytes.fromhex(x.pubkey_x25519)) for x in nodes[:3]]
    dst = onion.NodeDestination(nodes[3].pubkey_ed25519, bytes.fromhex(nodes[3].pubkey_x25519))
    body = json.dumps({"method": "info", "params": {}}).encode()
    rig = HttpsRig(nodes[0].url, connections=1)

    def frames(k: int) -> list[tuple[bytes, Any]]:
        return [onion.build(hops, dst, body, enc) for _ in range(k)]

    async def round_trips(built: list[tuple[bytes, Any]]) -> tuple[list[float], list[int]]:
        rtts, inner = [], []
        for frame, key in built:
            t = time.perf_counter()
            status, out = await rig.post("/onion_req/v2", frame)
            rtts.append(time.perf_counter() - t)
            inner.append(json.loads(key.decrypt(out))["status"] if status == 200 else status)
        return rtts, inner

    try:
        loop.run_until_complete(rig.start())
        # warm up: the guard's TLS session and the links between the four nodes
        _, warm = loop.run_until_complete(round_trips(frames(5)))
        assert warm == [200] * 5
        rtts, inner = benchmark.pedantic(
            lambda b: loop.run_until_complete(round_trips(b)),
            setup=lambda: ((frames(n),), {}),
            rounds=1,
            iterations=1,
        )
    finally:
        loop.run_until_complete(rig.close())
    ok = inner == [200] * n
    rtts.sort()
    result = {
        "requests": n,
        "p50_ms": statistics.median(rtts) * 1e3,
        "p99_ms": rtts[int(len(rtts) * 0.99) - 1] * 1e3,
    }
    benchmark.extra_info.update({k: round(v, 2) for k, v in result.items()})
    benchmark.extra_info.update(correct=ok, checked="every reply decrypted to an inner status 200")
    print(f"\n3-hop {enc}: {result}")
    assert ok
