"""Node benchmarks: relay cost per onion layer beside the bare peel, HTTPS store/retrieve rates,
3-hop round-trip latency on a small devnet.

Run the measurements with ``python3 -m pytest bench/test_bench_node.py --benchmark-enable -s``;
in the normal test run they execute once (correctness checks only). Figures go to
``benchmark.extra_info`` (and are printed with ``-s``).

Relay rig: a relay process (bench/load/relay_node.py: node links + onion router, nothing else)
between a driver and a sink living in this process. The driver sends one-layer frames over a
node link, the relay peels and forwards to the sink, which answers at once; the answer travels
back through the relay without crypto. The relay's CPU time (from /proc) per layer is compared
with the bare ``Peeler.peel`` time measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from session import onion
from session.identity import Identity

HERE = Path(__file__).parent
PAYLOAD = os.urandom(1024)
RELAY_LAYERS = 3000
CONCURRENCY = 64


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _entry(ident: Identity, port: int) -> dict:
    return {"pubkey_ed25519": ident.ed25519_public.hex(), "pubkey_x25519": ident.x25519_public.hex(),
            "public_ip": "127.0.0.1", "storage_port": 1, "storage_lmq_port": port, "swarm_id": 0}


async def _relay_run(n_layers: int, enc: str, profile: str | None = None) -> dict:
    from session.node.links import KIND_ONION, NodeLinks

    relay_id, sink_id, driver_id = Identity.generate(), Identity.generate(), Identity.generate()
    allowed = {relay_id.x25519_public, driver_id.x25519_public}

    async def authorize(key: bytes) -> bool:
        return key in allowed

    async def sink_handler(peer: str, body: dict) -> dict:
        return {"s": 200, "b": b"ok"}

    sink = NodeLinks(public_x25519=sink_id.x25519_public, secret_x25519=sink_id.export_x25519_secret(),
                     handlers={KIND_ONION: sink_handler}, authorize=authorize)
    sink_port = await sink.start("127.0.0.1", 0)
    driver = NodeLinks(public_x25519=driver_id.x25519_public, secret_x25519=driver_id.export_x25519_secret(),
                       handlers={}, authorize=authorize)
    await driver.start("127.0.0.1", 0)
    cmd = [sys.executable, str(HERE / "load" / "relay_node.py")] + (["--profile", profile] if profile else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps({"secret": relay_id.export_x25519_secret().hex(), "public": relay_id.x25519_public.hex(),
                                 "workers": int(os.environ.get("RELAY_WORKERS", "1")),
                                 "nodes": [_entry(sink_id, sink_port), _entry(driver_id, 1)]}) + "\n")
    proc.stdin.flush()
    relay_port = json.loads(await asyncio.to_thread(proc.stdout.readline))["port"]
    relay_x = relay_id.x25519_public.hex()
    address = f"tcp://127.0.0.1:{relay_port}"
    hop = onion.Hop(relay_id.ed25519_public.hex(), relay_id.x25519_public)
    dst = onion.NodeDestination(sink_id.ed25519_public.hex(), sink_id.x25519_public)
    frames = [onion.build([hop], dst, PAYLOAD, enc)[0] for _ in range(min(n_layers, 500))]
    try:
        async def send(i: int) -> int:
            r = await driver.request(relay_x, address, KIND_ONION, {"f": frames[i % len(frames)]}, 30.0)
            return int(r["s"])

        for s in await asyncio.gather(*(send(i) for i in range(200))):  # warm up + connect
            assert s == 200
        cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
        statuses: list[int] = []
        sem = asyncio.Semaphore(CONCURRENCY)

        async def limited(i: int) -> None:
            async with sem:
                statuses.append(await send(i))

        await asyncio.gather(*(limited(i) for i in range(n_layers)))
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.stdin.close()
        proc.wait(10)
        await driver.close()
        await sink.close()
    assert statuses == [200] * n_layers
    peeler = onion.Peeler.from_x25519_secret(relay_id.export_x25519_secret())
    t = time.perf_counter()
    for f in frames:
        d = peeler.peel(f)
    bare = (time.perf_counter() - t) / len(frames)
    assert isinstance(d, onion.Relay)
    return {"layers": n_layers, "layers_per_s": n_layers / wall, "relay_cpu_us_per_layer": cpu / n_layers * 1e6,
            "bare_peel_us": bare * 1e6, "cpu_ratio_vs_bare_peel": (cpu / n_layers) / bare}


@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
def test_bare_peel_1k(benchmark, enc):
    ident = Identity.generate()
    peeler = onion.Peeler.from_x25519_secret(ident.export_x25519_secret())
    dst = onion.NodeDestination(Identity.generate().ed25519_public.hex(), Identity.generate().x25519_public)
    frame, _ = onion.build([onion.Hop(ident.ed25519_public.hex(), ident.x25519_public)], dst, PAYLOAD, enc)
    benchmark.group = "node relay layer (1 KB)"
    d = benchmark(peeler.peel, frame)
    assert isinstance(d, onion.Relay) and d.next_ed25519 == dst.ed25519_hex


@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
def test_relay_layer_through_node_1k(benchmark, enc):
    benchmark.group = "node relay layer (1 KB)"
    enabled = not benchmark.disabled
    n = RELAY_LAYERS if enabled else 300
    result = benchmark.pedantic(lambda: asyncio.run(_relay_run(n, enc)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 2) for k, v in result.items()})
    print(f"\nrelay {enc}: {result}")


# ---------------------------------------------------------------------------- devnet benches
@pytest.fixture(scope="module")
def small_devnet(tmp_path_factory):
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("bench-devnet"), nodes=4, poll_interval=1.0,
                 extra_env={"SESSION_NODE_LIMITS__REQUESTS_PER_SECOND": "100000", "SESSION_NODE_LIMITS__BURST": "100000"})
    net.start()
    yield net
    net.stop()


def _store(account: str, i: int) -> bytes:
    import base64

    return json.dumps({"method": "store", "params": {"pubkey": account, "timestamp": int(time.time() * 1000),
                                                     "ttl": 3_600_000, "data": base64.b64encode(b"%d" % i + PAYLOAD[:500]).decode()}}).encode()


async def _rates(net, n: int) -> dict:
    import aiohttp

    sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
    from helpers import retrieve_request

    alice = Identity.generate()
    url = net.nodes[0].url
    sem = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, limit=16)) as http:
        async def post(body: bytes) -> int:
            async with sem, http.post(url + "/storage_rpc/v1", data=body) as r:
                await r.read()
                return r.status

        t = time.perf_counter()
        st = await asyncio.gather(*(post(_store(alice.session_id, i)) for i in range(n)))
        store_s = time.perf_counter() - t
        assert st == [200] * n
        t = time.perf_counter()
        st = await asyncio.gather(*(post(json.dumps(retrieve_request(alice)).encode()) for _ in range(n)))
        retrieve_s = time.perf_counter() - t
        assert st == [200] * n
    return {"stores_per_s": n / store_s, "retrieves_per_s": n / retrieve_s, "swarm_size": len(net.nodes)}


def test_store_and_retrieve_over_https(benchmark, small_devnet):
    benchmark.group = "node https rpc"
    n = 400 if not benchmark.disabled else 40
    result = benchmark.pedantic(lambda: asyncio.run(_rates(small_devnet, n)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 1) for k, v in result.items()})
    print(f"\nhttps rpc: {result}")


async def _onion_rtts(net, n: int, enc: str) -> dict:
    import aiohttp

    nodes = net.nodes
    hops = [onion.Hop(x.pubkey_ed25519, bytes.fromhex(x.pubkey_x25519)) for x in nodes[:3]]
    dst = onion.NodeDestination(nodes[3].pubkey_ed25519, bytes.fromhex(nodes[3].pubkey_x25519))
    body = json.dumps({"method": "info", "params": {}}).encode()
    rtts = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        for _ in range(n):
            frame, key = onion.build(hops, dst, body, enc)
            t = time.perf_counter()
            async with http.post(nodes[0].url + "/onion_req/v2", data=frame) as r:
                out = await r.read()
            rtts.append(time.perf_counter() - t)
            assert r.status == 200 and json.loads(key.decrypt(out))["status"] == 200
    rtts.sort()
    return {"requests": n, "p50_ms": statistics.median(rtts) * 1e3, "p99_ms": rtts[int(len(rtts) * 0.99) - 1] * 1e3}


@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
def test_three_hop_round_trip(benchmark, small_devnet, enc):
    benchmark.group = "node 3-hop onion round trip"
    n = 300 if not benchmark.disabled else 20
    result = benchmark.pedantic(lambda: asyncio.run(_onion_rtts(small_devnet, n, enc)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 2) for k, v in result.items()})
    print(f"\n3-hop {enc}: {result}")
