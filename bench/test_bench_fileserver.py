"""File server throughput (issue 10): a 10 MB blob (the largest, 10,223,616 bytes) uploaded to
and downloaded from the devnet's file server through a 3-hop onion path
(:mod:`session.client.files`), against a direct HTTPS upload and download of the same bytes to
the same server in the same run. ``extra_info``:

* ``ratio_upload`` / ``ratio_download``: direct time / onion time (throughput ratio; goal
  ≥ 0.5), medians, interleaved rounds so both see the same machine load;
* ``cpu_ratio_upload`` / ``cpu_ratio_download``: the same ratio of the CPU seconds every
  process involved spent (the client, the nodes, the file server; /proc), which a loaded
  machine does not skew: a store-and-forward path runs one stage after another, so its time on
  an idle machine is close to its CPU time;
* ``cpu_ms_mean``: the CPU milliseconds of each kind of transfer split into the client, all
  nodes and the file server (mean of the rounds; /proc counts in 10 ms ticks);
* ``rss_growth_mb``: peak RSS growth of each process (client, guard and other nodes, file
  server) during one onion upload and download (VmHWM after a reset through clear_refs);
* ``rss_mb``: each process's RSS at the end (services keep freed large buffers for the next
  request, :mod:`session.service.memory`, so their growth after the warm-up is small and
  their RSS stays near its peak);
* ``correct``: the bytes came back and the server's disk holds exactly them.

Results and the command: docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session.client import files
from session.client.network import NetworkClock
from session.client.paths import PathManager
from session.client.transport import OnionTransport
from session.devnet import Devnet
from session.proto.snodes import parse_file_servers, parse_node_list

ROUNDS = 5
_TICK = os.sysconf("SC_CLK_TCK")

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
    cpu: dict[str, list[float]] = {k: [] for k in times}
    #: per transfer: CPU seconds of (the client, all nodes, the file server)
    by_process: dict[str, list[tuple[float, float, float]]] = {k: [] for k in times}
    pids = [n.proc.pid for n in net.nodes if n.proc] + [net.file_server.proc.pid]  # type: ignore[union-attr]
    ok = True

    @contextmanager
    def measured(key: str) -> Iterator[None]:
        c0, t0 = _cpu(pids), time.perf_counter()
        yield
        times[key].append(time.perf_counter() - t0)
        split = [b - a for a, b in zip(c0, _cpu(pids), strict=True)]
        cpu[key].append(sum(split))
        by_process[key].append((split[0], sum(split[1:-1]), split[-1]))

    sent: list[bytes] = []  # what was uploaded (the benchmark may run a single round)

    async def onion_round(blob: bytes) -> None:
        nonlocal ok
        sent.append(blob)
        with measured("up"):
            up = await files.upload(transport, blob, server=server)
        with measured("down"):
            back = await files.download(transport, up.id, server=server)
        ok = ok and back == blob

    async def direct_round(blob: bytes) -> None:
        nonlocal ok
        sent.append(blob)
        with measured("up_direct"):
            async with http.post(f"{server.url}/file", data=blob) as r:
                fid = (await r.json())["id"]
        with measured("down_direct"):
            async with http.get(f"{server.url}/file/{fid}") as r:
                back = await r.read()
        ok = ok and back == blob

    try:
        loop.run_until_complete(onion_round(blobs[-1]))  # warm-up: paths, connections
        blob = os.urandom(files.MAX_UPLOAD_SIZE)
        base = _reset_peaks(pids)
        loop.run_until_complete(onion_round(blob))  # peak memory of one upload + download
        growth = _peak_growth(pids, base)
        for v in (*times.values(), *cpu.values(), *by_process.values()):
            v.clear()
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
    cpu_med = {k: sorted(v)[len(v) // 2] for k, v in cpu.items()}
    benchmark.extra_info.update(
        correct=ok,
        seconds={k: round(v, 3) for k, v in med.items()},
        cpu_seconds={k: round(v, 3) for k, v in cpu_med.items()},
        cpu_ms_mean={
            k: dict(
                zip(
                    ("client", "nodes", "fileserver"),
                    (round(1000 * sum(col) / len(col)) for col in zip(*v, strict=True)),
                    strict=True,
                )
            )
            for k, v in by_process.items()
        },
        ratio_upload=round(med["up_direct"] / med["up"], 3),
        ratio_download=round(med["down_direct"] / med["down"], 3),
        cpu_ratio_upload=round(cpu_med["up_direct"] / cpu_med["up"], 3),
        cpu_ratio_download=round(cpu_med["down_direct"] / cpu_med["down"], 3),
        rss_growth_mb=growth,
        rss_mb={
            k: round(_status_kb(pid, "VmRSS") / 1000, 1)
            for k, pid in zip(growth, ["self", *pids], strict=True)
        },
    )
    print(json.dumps(benchmark.extra_info))
    assert ok


def _cpu(pids: list[int]) -> list[float]:
    """CPU seconds used so far by this process (all threads), then by each of ``pids``."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    out = [me.ru_utime + me.ru_stime]
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[11]) + int(fields[12])) / _TICK)  # utime, stime
    return out


def _status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peaks(pids: list[int]) -> dict[str, int]:
    """Reset the peak RSS (VmHWM) of this process and ``pids``; their RSS now, in kB."""
    base = {}
    for pid in ["self", *map(str, pids)]:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        base[pid] = _status_kb(pid, "VmRSS")
    return base


def _peak_growth(pids: list[int], base: dict[str, int]) -> dict[str, float]:
    """Peak RSS growth (MB) since :func:`_reset_peaks`: ``client``, ``node-N``, ``fileserver``."""
    names = ["client"] + [f"node-{i}" for i in range(len(pids) - 1)] + ["fileserver"]
    return {
        name: round((_status_kb(pid, "VmHWM") - base[pid]) / 1000, 1)
        for name, pid in zip(names, base, strict=True)
    }


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
