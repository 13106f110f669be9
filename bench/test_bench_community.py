"""Community server poll cost (issue 11): 1,000 members each make the poll Session's apps
make every 5 s — one signed ``/sequence`` of ``/capabilities``, ``pollInfo``,
``messages/since?t=r``, ``inbox/since`` and ``outbox/since`` — against a running
``session-community`` process (plain HTTP on loopback), 32 in flight; and, in the same run, the
same number of bare round trips to it (an unsigned ``GET /capabilities``: the HTTP cost alone).
Then 200 posts from 200 members.

``extra_info``: ``polls_per_s``, ``poll_ms`` (p50, p99), ``bare_ms`` (p50, p99),
``ratio_poll_vs_bare`` (p50 poll / p50 bare round trip), ``headroom`` (polls/s over the 200/s
that 1,000 members polling every 5 s need), ``posts_per_s``, the server's ``cpu_s_per_poll``
and ``rss_mb``; ``correct`` (every poll answered 200 with its subanswers, every post 201).

Onion paths are left out: their cost is the nodes' (bench/test_bench_onion.py,
test_bench_fileserver.py), the same for every destination. Signatures are made before the
clock starts (a member signs on their own device). pysogs publishes no figures to compare with.

Measured (2 vCPU shared with other agents, load ~15): see the printed ``extra_info``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session.blinding import blind15_sign, sogs_auth_headers
from session.community.store import CommunityStore
from session.devnet.net import stop_process
from session.identity import Identity
from session.protocol import pad

MEMBERS = 1000
POSTS = 200
IN_FLIGHT = 32
POLL = [
    {"method": "GET", "path": "/capabilities"},
    {"method": "GET", "path": "/room/lobby/pollInfo/0"},
    {"method": "GET", "path": "/room/lobby/messages/since/0?t=r&reactors=4"},
    {"method": "GET", "path": "/inbox/since/0"},
    {"method": "GET", "path": "/outbox/since/0"},
]

pytestmark = pytest.mark.integration


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _codes(body: bytes) -> list[int]:
    return [int(a["code"]) for a in json.loads(body)]


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


async def _timed(
    http: aiohttp.ClientSession, method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    async with http.request(method, url, data=body, headers=headers) as r:
        data = await r.read()
    return r.status, data, time.perf_counter() - t0


async def _run_all(jobs: list[Any]) -> list[tuple[int, bytes, float]]:
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(job: Any) -> tuple[int, bytes, float]:
        async with sem:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


def test_bench_community_poll_1000_members(benchmark: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "community"
    store = CommunityStore(data_dir / "store")
    store.add_room("lobby", "Lobby")
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "session.community", "run", "--data-dir", str(data_dir),
         "--port", "0", "--no-tls", "--admin-port", "-1", "--log-level", "warning"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        url, pk = ready["url"], ready["pubkey_x25519"]
        members = [Identity.generate() for _ in range(MEMBERS)]
        body = json.dumps(POLL).encode()
        result: dict[str, Any] = {}

        async def main() -> None:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=IN_FLIGHT)
            ) as http:
                # Warm-up: every member once (the server learns them), then the measured run.
                for _ in range(2):
                    signed = [sogs_auth_headers(m, pk, "POST", "/sequence", body) for m in members]
                    cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
                    polls = await _run_all(
                        [
                            (lambda h=h: _timed(http, "POST", f"{url}/sequence", body, h))
                            for h in signed
                        ]
                    )
                    poll_wall, poll_cpu = time.perf_counter() - t0, _cpu_seconds(proc.pid) - cpu0
                bare = await _run_all(
                    [
                        (lambda: _timed(http, "GET", f"{url}/capabilities", None, {}))
                        for _ in range(MEMBERS)
                    ]
                )
                posts = []
                for m in members[:POSTS]:
                    data = pad(b"a post of a few words, as most are")
                    doc = {
                        "data": base64.b64encode(data).decode(),
                        "signature": base64.b64encode(blind15_sign(m, pk, data)).decode(),
                    }
                    pb = json.dumps(doc).encode()
                    posts.append((pb, sogs_auth_headers(m, pk, "POST", "/room/lobby/message", pb)))
                t0 = time.perf_counter()
                posted = await _run_all(
                    [
                        (lambda p=p: _timed(http, "POST", f"{url}/room/lobby/message", p[0], p[1]))
                        for p in posts
                    ]
                )
                post_wall = time.perf_counter() - t0
                # An empty inbox answers 304, which ends a /sequence (as in SOGS): 4 answers.
                ok = all(s == 200 and _codes(d) == [200, 200, 200, 304] for s, d, _ in polls)
                ok = ok and all(s == 200 for s, _, _ in bare)
                ok = ok and all(s == 201 for s, _, _ in posted)
                poll_t = [t for _, _, t in polls]
                bare_t = [t for _, _, t in bare]
                result.update(
                    correct=ok,
                    polls_per_s=round(MEMBERS / poll_wall, 1),
                    poll_ms={"p50": round(_pct(poll_t, 0.5) * 1e3, 2),
                             "p99": round(_pct(poll_t, 0.99) * 1e3, 2)},
                    bare_ms={"p50": round(_pct(bare_t, 0.5) * 1e3, 2),
                             "p99": round(_pct(bare_t, 0.99) * 1e3, 2)},
                    ratio_poll_vs_bare=round(_pct(poll_t, 0.5) / _pct(bare_t, 0.5), 2),
                    headroom=round(MEMBERS / poll_wall / (MEMBERS / 5), 2),
                    posts_per_s=round(POSTS / post_wall, 1),
                    cpu_s_per_poll=round(poll_cpu / MEMBERS, 5),
                    rss_mb=round(_rss_mb(proc.pid), 1),
                )  # fmt: skip

        def one() -> None:
            asyncio.run(main())

        benchmark.group = "community-poll"
        benchmark.pedantic(one, rounds=1, iterations=1)
        benchmark.extra_info.update(result)
        print(json.dumps(benchmark.extra_info))
        assert result["correct"]
    finally:
        stop_process(proc)
