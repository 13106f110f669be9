"""Floors: what this machine allows for the pieces a delivered message is made of, measured in
the same run as the load so every load figure can also be read as a ratio to them.

* ``peel_us``: the core's ``Peeler.peel`` of one 1 KB xchacha20 layer (CPU time);
* ``seal_us``: sealing one 1:1 text message (``messages.seal``: protobuf, pad, sign, seal box);
* ``sign_us``: one Ed25519 signature (what a node signs per stored message);
* ``open_us``: opening and verifying one sealed message (``messages.open_many``, per message);
* ``https_rtt_us``: a bare loopback HTTPS round trip (aiohttp server and client, keep-alive,
  TLS 1.3, wall time: it includes both sides and the kernel);
* ``sqlite_insert_us``: a bare SQLite insert of a 400-byte row into a WAL file database, rows
  committed 100 at a time (CPU time per row);
* ``crypto_floor_us``: the crypto a delivered message cannot avoid: seal + 3 peels + the store
  signature + open (the issue's definition; a 3-hop onion to a swarm member peels 4 layers,
  see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from session import onion
from session.client import messages as M
from session.identity import Identity
from session.service import tls

#: Repetitions of each CPU floor (each the median of a few passes).
REPS = 300
PASSES = 3


def _cpu_per_call(fn: Callable[[], Any], reps: int = REPS, passes: int = PASSES) -> float:
    """Median over ``passes`` of the thread CPU time of one call to ``fn`` (µs)."""
    fn()  # warm
    out = []
    for _ in range(passes):
        t = time.thread_time()
        for _ in range(reps):
            fn()
        out.append((time.thread_time() - t) / reps * 1e6)
    return statistics.median(out)


def peel_us() -> float:
    relay, dest = Identity.generate(), Identity.generate()
    frame, _ = onion.build(
        [onion.Hop(relay.ed25519_public.hex(), relay.x25519_public)],
        onion.NodeDestination(dest.ed25519_public.hex(), dest.x25519_public),
        os.urandom(1024),
    )
    peeler = onion.Peeler.from_x25519_secret(relay.export_x25519_secret())
    data = bytes(frame)
    return _cpu_per_call(lambda: peeler.peel(data))


def message_floors() -> dict[str, float]:
    """Seal, sign and open costs of one small text message."""
    a, b = Identity.generate(), Identity.generate()
    now = int(time.time() * 1000)
    content = M.text("load L0:0 " + "x" * 40, sent_ms=now)
    seal = _cpu_per_call(lambda: M.seal(a, b.session_id, content, now))
    sign = _cpu_per_call(lambda: a.sign(b"x" * 32))
    rows = [(f"h{i}", M.seal(a, b.session_id, content, now + i), 0) for i in range(REPS)]
    M.open_many(b, rows[:2])
    t = time.process_time()  # open_many may use both cores: count the process's CPU
    M.open_many(b, rows)
    open_ = (time.process_time() - t) / len(rows) * 1e6
    return {"seal_us": seal, "sign_us": sign, "open_us": open_}


def sqlite_insert_us(reps: int = 3000) -> float:
    with tempfile.TemporaryDirectory(prefix="load-floor-") as d:
        db = sqlite3.connect(Path(d) / "f.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, hash TEXT UNIQUE, data BLOB)")
        row = os.urandom(400)
        t = time.thread_time()
        for i in range(0, reps, 100):
            db.execute("BEGIN")
            for j in range(i, i + 100):
                db.execute("INSERT INTO m (hash, data) VALUES (?, ?)", (f"h{j}", row))
            db.execute("COMMIT")
        out = (time.thread_time() - t) / reps * 1e6
        db.close()
    return out


async def _https_rtt_us(reps: int = 300) -> float:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with tempfile.TemporaryDirectory(prefix="load-floor-") as d:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_ssl_context(d))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp keeps it private
        body = os.urandom(1024)
        times = []
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
                for i in range(reps + 20):
                    t = time.perf_counter()
                    async with http.post(f"https://127.0.0.1:{port}/", data=body) as r:
                        await r.read()
                    if i >= 20:  # the first ones make the connection
                        times.append(time.perf_counter() - t)
        finally:
            await runner.cleanup()
    return statistics.median(times) * 1e6


def measure() -> dict[str, float]:
    """Every floor, measured now in this process (a few seconds)."""
    out = {"peel_us": peel_us(), **message_floors(), "sqlite_insert_us": sqlite_insert_us()}
    out["https_rtt_us"] = asyncio.run(_https_rtt_us())
    out["crypto_floor_us"] = out["seal_us"] + 3 * out["peel_us"] + out["sign_us"] + out["open_us"]
    return {k: round(v, 2) for k, v in out.items()}


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=1))
