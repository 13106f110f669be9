"""File server throughput (issue 10): a 10 MB blob (the largest, 10,223,616 bytes) uploaded to
and downloaded from the devnet's file server through a 3-hop onion path
(:mod:`session.client.files`), against a direct HTTPS upload and download of the same bytes to
the same server in the same run. ``extra_info``: ``ratio_upload`` and ``ratio_download`` =
direct time / onion time (throughput ratio; goal ≥ 0.5), and ``correct`` (the bytes came back
and the server's disk holds exactly them).

Measured (2 vCPU shared with other work, loopback): upload 0.34, download 0.11 — under the
goal. The direct download is a page-cache read over loopback (~30 ms for 10 MB); through the
onion each of three nodes peels or re-encrypts the 10 MB and passes it between processes, and
the server opens and seals one more layer (~270 ms).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from session.client import files
from session.client.network import NetworkClock
from session.client.paths import PathManager
from session.client.transport import OnionTransport
from session.devnet import Devnet
from session.proto.snodes import parse_file_servers, parse_node_list

ROUNDS = 3

pytestmark = pytest.mark.integration


def test_bench_file_transfer_onion_vs_direct(
    benchmark: Any, loop: asyncio.AbstractEventLoop, unlimited_devnet: Callable[[str, int], Devnet]
) -> None:
    net = unlimited_devnet("fs-bench", 5)
    doc = json.loads((net.dir / "nodes.json").read_text())
    (server,) = parse_file_servers(doc)
    transport = OnionTransport(PathManager(parse_node_list(doc)), NetworkClock())
    http = loop.run_until_complete(_session())
    blobs = [os.urandom(files.MAX_UPLOAD_SIZE) for _ in range(2 * ROUNDS + 1)]
    times: dict[str, list[float]] = {k: [] for k in ("up", "down", "up_direct", "down_direct")}
    ok = True

    sent: list[bytes] = []  # what was uploaded (the benchmark may run a single round)

    async def onion_round(blob: bytes) -> None:
        nonlocal ok
        sent.append(blob)
        t0 = time.perf_counter()
        up = await files.upload(transport, blob, server=server)
        t1 = time.perf_counter()
        back = await files.download(transport, up.id, server=server)
        t2 = time.perf_counter()
        times["up"].append(t1 - t0)
        times["down"].append(t2 - t1)
        ok = ok and back == blob

    async def direct_round(blob: bytes) -> None:
        nonlocal ok
        sent.append(blob)
        t0 = time.perf_counter()
        async with http.post(f"{server.url}/file", data=blob) as r:
            fid = (await r.json())["id"]
        t1 = time.perf_counter()
        async with http.get(f"{server.url}/file/{fid}") as r:
            back = await r.read()
        t2 = time.perf_counter()
        times["up_direct"].append(t1 - t0)
        times["down_direct"].append(t2 - t1)
        ok = ok and back == blob

    try:
        loop.run_until_complete(onion_round(blobs[-1]))  # warm-up: paths, connections
        times = {k: [] for k in times}
        it = iter(blobs[:-1])

        def one() -> None:  # interleaved, so both see the same machine load
            loop.run_until_complete(direct_round(next(it)))
            loop.run_until_complete(onion_round(next(it)))

        benchmark.group = "fileserver-10m"
        benchmark.pedantic(one, rounds=ROUNDS, iterations=1)
    finally:
        loop.run_until_complete(http.close())
        loop.run_until_complete(transport.close())
    assert net.file_server is not None
    disk = net.file_server.data_dir / "store" / "files"
    stored = {p.read_bytes() for p in disk.iterdir()}
    ok = ok and len(sent) >= 3 and all(b in stored for b in sent)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    benchmark.extra_info.update(
        correct=ok,
        seconds={k: round(v, 3) for k, v in med.items()},
        ratio_upload=round(med["up_direct"] / med["up"], 3),
        ratio_download=round(med["down_direct"] / med["down"], 3),
    )
    print(json.dumps(benchmark.extra_info))
    assert ok


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
