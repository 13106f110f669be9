"""What a link round trip costs the side that answers it, three ways: our node links (TCP
with a Noise handshake and frames sealed by the Rust core, on the event loop, the node's
direct-handler path), a libzmq ROUTER with CURVE driven from the event loop (what the links
were until 2026-11-30, as OxenMQ is) and a plain uvloop TCP socket with length-prefixed
msgpack (no encryption: the floor), the same request (~400 random bytes) and the same fixed
reply, requests one at a time with a pause between them (``GAP``: a member of a 12-node swarm
at a few hundred messages a second gets one every few milliseconds, so each wakes it from idle).

A server process of each kind, phases alternating; each reports its own CPU (every thread:
the event loop's and, for ZeroMQ, its I/O thread) and context switches. The ratios are the
figures to read: how much of a link message's cost is the transport rather than the work
(``docs/performance.md``, "Node links: what ZeroMQ's I/O thread costs" and "Node links
without ZeroMQ")::

    python -m pytest bench/test_bench_link_transport.py -m integration -s
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
import uvloop
import zmq
import zmq.asyncio
from zmq.utils import z85

from bench.load.probe import self_usage
from session.identity import Identity
from session.node.links import KIND_PING, Answer
from session.testing.links import open_links

pytestmark = pytest.mark.integration

#: round trips per measured phase, phases per kind, warm-up round trips, pause between two
ROUND_TRIPS = 300
ROUNDS = 3
WARMUP = 30
GAP = 0.003
REPLY = {"hash": "h" * 43, "signature": "s" * 86, "expiry": 0}
_LEN = struct.Struct("<I")


class _Echo(asyncio.Protocol):
    """Length-prefixed msgpack requests; answers REPLY, or this process's usage when asked."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = _LEN.unpack_from(self.buf)
            if len(self.buf) < 4 + n:
                return
            body = msgpack.unpackb(self.buf[4 : 4 + n])
            self.buf = self.buf[4 + n :]
            out = msgpack.packb(self_usage() if body == "usage" else REPLY)
            self.transport.write(_LEN.pack(len(out)) + out)


def _zmq_router(ident: Identity, out: Any) -> None:
    """A CURVE ROUTER drained from the event loop (as the node links were: ``add_reader`` on
    its FD, non-blocking receives until EAGAIN), answering each request as it arrives."""
    loop = asyncio.get_running_loop()
    ctx = zmq.Context(io_threads=1)
    r = ctx.socket(zmq.ROUTER)
    r.curve_server = True
    r.curve_publickey = z85.encode(bytes(ident.x25519_public))
    r.curve_secretkey = z85.encode(bytes(ident.export_x25519_secret()))
    port = r.bind_to_random_port("tcp://127.0.0.1")

    def drain() -> None:
        while int(r.get(zmq.EVENTS)) & zmq.POLLIN:
            route, _kind, rid, body = r.recv_multipart(zmq.NOBLOCK)
            req = msgpack.unpackb(body)
            reply = msgpack.packb(self_usage() if req == "usage" else REPLY)
            r.send_multipart([route, b"R", rid, reply], zmq.NOBLOCK)

    loop.add_reader(r.FD, drain)
    out.put(("zmq", port, bytes(ident.x25519_public).hex()))


async def _serve(kind: str, out: Any) -> None:
    loop = asyncio.get_running_loop()
    if kind == "tcp":
        server = await loop.create_server(_Echo, "127.0.0.1", 0)
        out.put(("tcp", server.sockets[0].getsockname()[1], ""))
    elif kind == "zmq":
        _zmq_router(Identity.generate(), out)
    else:
        ident = Identity.generate()

        def answer(peer: str, body: Any, a: Answer) -> None:
            a.result(self_usage() if body == "usage" else REPLY)

        links = open_links(ident, {})
        links.direct[KIND_PING] = answer
        port = await links.start("127.0.0.1", 0)
        out.put(("links", port, bytes(ident.x25519_public).hex()))
    await asyncio.Event().wait()  # (killed by the driver)


def _server_main(kind: str, out: Any) -> None:
    uvloop.run(_serve(kind, out))


async def _phase(req: Any, n: int) -> tuple[float, float]:
    """``n`` round trips GAP apart; the server's CPU µs and switches per round trip."""
    cpu0, sw0 = await req("usage")
    for _ in range(n):
        await req({"x": os.urandom(400)})
        await asyncio.sleep(GAP)
    cpu1, sw1 = await req("usage")
    return (cpu1 - cpu0) / n * 1e6, (sw1 - sw0) / n


async def _measure() -> dict[str, list[tuple[float, float]]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    kinds = ("tcp", "zmq", "links")
    procs = [ctx.Process(target=_server_main, args=(k, out), daemon=True) for k in kinds]
    for p in procs:
        p.start()
    loop = asyncio.get_running_loop()
    me = Identity.generate()
    links = open_links(me, {})
    writer: asyncio.StreamWriter | None = None
    zctx = zmq.asyncio.Context()
    dealer = zctx.socket(zmq.DEALER)
    try:
        where = {}
        for _ in procs:
            kind, port, key = await loop.run_in_executor(None, out.get, True, 60)
            where[kind] = (port, key)
        reader, writer = await asyncio.open_connection("127.0.0.1", where["tcp"][0])
        await links.start("127.0.0.1", 0)
        lport, lkey = where["links"]
        zport, zkey = where["zmq"]
        dealer.curve_serverkey = z85.encode(bytes.fromhex(zkey))
        dealer.curve_publickey = z85.encode(bytes(me.x25519_public))
        dealer.curve_secretkey = z85.encode(bytes(me.export_x25519_secret()))
        dealer.connect(f"tcp://127.0.0.1:{zport}")
        rids = iter(range(1, 1 << 62))

        async def tcp(body: Any) -> Any:
            assert writer is not None
            b = msgpack.packb(body)
            writer.write(_LEN.pack(len(b)) + b)
            (n,) = _LEN.unpack(await reader.readexactly(4))
            return msgpack.unpackb(await reader.readexactly(n))

        async def libzmq(body: Any) -> Any:
            rid = struct.pack("<Q", next(rids))
            await dealer.send_multipart([KIND_PING, rid, msgpack.packb(body)])
            tag, got, reply = await dealer.recv_multipart()
            assert (tag, got) == (b"R", rid)
            return msgpack.unpackb(reply)

        async def ours(body: Any) -> Any:
            return await links.request(lkey, f"tcp://127.0.0.1:{lport}", KIND_PING, body, 10)

        reqs = {"tcp": tcp, "zmq": libzmq, "links": ours}
        for req in reqs.values():
            for _ in range(WARMUP):
                assert await req({"x": b""}) == REPLY
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in reqs}
        for _ in range(ROUNDS):
            for kind, req in reqs.items():
                got[kind].append(await _phase(req, ROUND_TRIPS))
        return got
    finally:
        if writer is not None:
            writer.close()
        dealer.close(0)
        zctx.term()
        await links.close()
        for p in procs:
            p.kill()
            p.join(10)


def test_link_round_trip_cost_against_a_plain_socket() -> None:
    got = asyncio.run(_measure())
    med = {
        k: (statistics.median(c for c, _ in v), statistics.median(s for _, s in v))
        for k, v in got.items()
    }

    def each(a: str, b: str) -> str:
        return ", ".join(f"{x[0] / y[0]:.2f}" for x, y in zip(got[a], got[b], strict=True))

    print(
        f"\nper link round trip, the answering process ({ROUND_TRIPS} requests {GAP * 1e3:.0f} ms "
        f"apart, medians of {ROUNDS} alternating phases): our node links "
        f"{med['links'][0]:.0f} µs, {med['links'][1]:.1f} context switches; a libzmq CURVE "
        f"ROUTER {med['zmq'][0]:.0f} µs, {med['zmq'][1]:.1f} switches; plain uvloop TCP "
        f"{med['tcp'][0]:.0f} µs, {med['tcp'][1]:.1f} switches. Links ÷ ZeroMQ "
        f"{med['links'][0] / med['zmq'][0]:.2f} (each round: {each('links', 'zmq')}); links ÷ "
        f"plain socket {med['links'][0] / med['tcp'][0]:.2f} (each round: {each('links', 'tcp')})"
    )
    assert all(c > 0 for v in got.values() for c, _ in v)
