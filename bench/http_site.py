"""Requests per second and server CPU per request of the node's public site, on its own HTTP/1.1
server (:mod:`session.http1.server`) against the aiohttp server it replaced, in the same run.

    python -m bench.http_site [--rounds 3] [--duration 5] [--connections 8] [--json out.json]

Both servers serve the same handlers: the node's :class:`~session.node.http.ClientSite` with a
real :class:`~session.node.rpc.RpcHandler` over an in-memory store (a swarm of one), its
metrics and rate limiter, TLS with the node's certificate kind, the node's connection limits.
``aiohttp`` runs them through :func:`session.service.server.serve` (the aiohttp site every
other service uses, as the node did) with a thin adapter per request (``web.Request`` →
``Request``, ``Response`` → ``web.Response``: the work the node's old aiohttp handlers did);
``http1`` through :func:`session.http1.server.serve`, as the node does now.

Each server runs in its own process (uvloop, as a node); one client process keeps
``--connections`` keep-alive HTTPS connections, each sending ``{"method": "info"}`` to
``/storage_rpc/v1`` and waiting for the answer, for ``--duration`` seconds. A round measures the
server process's CPU clock (user + system, from /proc) over the round: **CPU per answered
request**, and answered requests per second (bounded by the one Python client on a small
machine: the CPU figure is the one to compare). Rounds alternate the servers, the order flipped
every round; the result is the median of each, and the ratio http1 / aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import add_json_option, publish

SERVERS = ("aiohttp", "http1")
INFO = b'{"method": "info", "params": {}}'
REQUEST = (
    b"POST /storage_rpc/v1 HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(INFO), INFO)
)


# -- the server process ------------------------------------------------------------------------
async def _serve(kind: str, cert_dir: Path) -> None:
    from session.node.http import ClientSite
    from session.node.metrics import NodeMetrics
    from session.service.config import ConnectionLimits
    from session.service.ratelimit import RateLimiter
    from session.service.tls import server_ssl_context
    from session.storage.memory import MemoryMessageStore
    from session.testing.rpc import LocalSwarm

    site = ClientSite(
        rpc=LocalSwarm([MemoryMessageStore()]).node(0),
        router=None,
        limiter=RateLimiter(1e9, 1e9),
        metrics=NodeMetrics(),
        ready=lambda: None,
        ed25519_public=bytes(32),
        max_body=10 * 1024 * 1024,
    )
    ctx = server_ssl_context(cert_dir)
    limits = ConnectionLimits(max_inflight_body_bytes=64 * 1024 * 1024)
    served: Any
    if kind == "http1":
        from session.http1.server import serve

        served = await serve(
            site.routes(), "127.0.0.1", 0, ssl_context=ctx, limits=limits, max_body=site.max_body
        )
    else:
        served = await _serve_aiohttp(site, ctx, limits)
    print(json.dumps({"port": served.port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await served.close()


async def _serve_aiohttp(site: Any, ctx: ssl.SSLContext, limits: Any) -> Any:
    """The same routes on the aiohttp site of :mod:`session.service.server`."""
    from aiohttp import web

    from session.http1.server import Request, Response
    from session.service.server import serve

    def adapt(handler: Any) -> Any:
        async def run(request: web.Request) -> web.Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            req = Request(
                request.method,
                request.path,
                request.query_string,
                headers,
                await request.read(),
                request.remote or "",
            )
            out = handler(req)  # a Response at once, or the rest to await
            resp = out if isinstance(out, Response) else await out
            out = web.Response(status=resp.status, body=resp.body, headers=resp.headers)
            if resp.content_type is not None:
                out.headers["Content-Type"] = resp.content_type
            return out

        return run

    app = web.Application(
        client_max_size=site.max_body,
        handler_args={"max_field_size": 16384, "auto_decompress": False},
    )
    for path, methods in site.routes().items():
        for method, handler in methods.items():
            app.router.add_route(method, path, adapt(handler))
    return await serve(app, "127.0.0.1", 0, ssl_context=ctx, limits=limits, max_body=site.max_body)


# -- the client --------------------------------------------------------------------------------
async def _connection(port: int, ctx: ssl.SSLContext, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    n = 0
    while time.monotonic() < until:
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:60]!r}")
        i = head.lower().index(b"content-length:")
        length = int(head[i + 15 : head.index(b"\r\n", i)])
        await reader.readexactly(length)
        n += 1
    counts.append(n)
    writer.close()


async def _load(port: int, connections: int, duration: float) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    counts: list[int] = []
    until = time.monotonic() + duration
    await asyncio.gather(*(_connection(port, ctx, until, counts) for _ in range(connections)))
    return sum(counts)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(kind: str, cert_dir: Path, connections: int, duration: float) -> dict[str, float]:
    """Start ``kind``'s server, warm it up, load it for ``duration`` s; its figures."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http_site", "serve", kind, str(cert_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = json.loads(proc.stdout.readline())["port"]
        asyncio.run(_load(port, connections, 1.0))  # warm-up: TLS sessions, imports, caches
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        answered = asyncio.run(_load(port, connections, duration))
        cpu, wall = _cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
        return {
            "requests": answered,
            "requests_per_s": round(answered / wall, 1),
            "cpu_us_per_request": round(cpu / answered * 1e6, 1),
        }
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(30)


def measure(rounds: int, duration: float, connections: int) -> dict[str, Any]:
    """Alternating rounds of both servers; medians and the ratio http1 / aiohttp."""
    per: dict[str, list[dict[str, float]]] = {k: [] for k in SERVERS}
    with tempfile.TemporaryDirectory(prefix="http-site-") as tmp:
        from session.service.tls import ensure_certificate

        ensure_certificate(Path(tmp))
        for r in range(rounds):
            for kind in SERVERS if r % 2 == 0 else SERVERS[::-1]:
                per[kind].append(one_round(kind, Path(tmp), connections, duration))
    med = {
        k: {
            f: statistics.median(x[f] for x in per[k])
            for f in ("requests_per_s", "cpu_us_per_request")
        }
        for k in SERVERS
    }
    return {
        "load_average": os.getloadavg(),
        "rounds": per,
        "median": med,
        "ratio_http1_to_aiohttp": {
            f: round(med["http1"][f] / med["aiohttp"][f], 3)
            for f in ("requests_per_s", "cpu_us_per_request")
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        import uvloop

        uvloop.run(_serve(args[1], Path(args[2])))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.http_site", description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per round (default 5)")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    add_json_option(p)
    a = p.parse_args(args)
    publish(measure(a.rounds, a.duration, a.connections), a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
