"""What one replicated write costs a swarm member, over real node links: a second process runs
a member (``NodeLinks`` with the node's ``cc`` handler: ``RpcHandler.handle_forwarded`` on a
``SqliteMessageStore``, re-validation, the write, the signed result); this process forwards it
store requests one at a time with a pause between them, as a member of a 12-node swarm at
~100 messages/s gets them (~one every 10 ms), so every write wakes the member's threads from
idle. Reported per write: the member process's CPU (every thread: the event loop's, ZeroMQ's
I/O thread, SQLite's writer) and its context switches (thread wake-ups).

Same run, same links, three members: ``echo`` (the link round trip alone: a handler that
answers a fixed result), ``queued`` (every write handed to the store's writer thread, as
before small writes could commit on the event loop's thread) and ``inline`` (today's store:
a small write with the writer idle commits on the loop's thread). Ratios to ``echo`` and
``queued`` are the figures to read; run with ``-s`` to see them::

    python -m pytest bench/test_bench_replica.py -m integration -s
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing as mp
import os
import resource
import tempfile
from pathlib import Path
from typing import Any

import pytest
import uvloop

import session.storage.sqlite as S
from session.identity import Identity, verify
from session.node.links import KIND_CC, NodeLinks
from session.storage import SqliteMessageStore
from session.testing.rpc import LocalSwarm

pytestmark = pytest.mark.integration

#: writes measured per member, and the pause between two of them (seconds)
WRITES = 300
WARMUP = 40
GAP = 0.003


def _usage() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_nvcsw + r.ru_nivcsw


async def _yes(_key: bytes) -> bool:
    return True


def _links(ident: Identity, handlers: dict[bytes, Any]) -> NodeLinks:
    return NodeLinks(
        public_x25519=bytes(ident.x25519_public),
        secret_x25519=bytes(ident.export_x25519_secret()),
        handlers=handlers,
        authorize=_yes,
    )


async def _member(kind: str, out: Any, cmds: Any) -> None:
    if kind == "queued":  # (this module is the member process's own copy)
        S.MAX_INLINE = 0
    store = await SqliteMessageStore.open(Path(tempfile.mkdtemp()) / "s.db", max_bytes=None)
    swarm = LocalSwarm([store, store, store])
    rpc = swarm.node(1)
    clients = [swarm.client_in_swarm() for _ in range(20)]
    bodies = [
        clients[i % 20].store(os.urandom(400) + i.to_bytes(4, "big"))
        for i in range(WARMUP + WRITES)
    ]

    async def cc(peer: str, body: Any) -> Any:
        if kind == "echo":
            return {"hash": "h" * 43, "signature": "s" * 86, "expiry": 0}
        return await rpc.handle_forwarded(body)

    ident = Identity.generate()
    links = _links(ident, {KIND_CC: cc})
    port = await links.start("127.0.0.1", 0)
    out.put((port, bytes(ident.x25519_public).hex(), rpc.ed25519_hex, bodies))
    loop = asyncio.get_running_loop()
    for _ in range(2):  # "start", then "stop": this process's clock at each
        await loop.run_in_executor(None, cmds.get)
        out.put(_usage())
    await links.close()
    await store.close()


def _member_main(kind: str, out: Any, cmds: Any) -> None:
    uvloop.run(_member(kind, out, cmds))


async def _measure(kind: str) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out, cmds = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_member_main, args=(kind, out, cmds), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    links = _links(Identity.generate(), {})
    try:
        port, x25519, ed, bodies = await loop.run_in_executor(None, out.get, True, 60)
        await links.start("127.0.0.1", 0)
        address = f"tcp://127.0.0.1:{port}"
        for b in bodies[:WARMUP]:
            await links.request(x25519, address, KIND_CC, b, 10)
        cmds.put("start")
        cpu0, sw0 = await loop.run_in_executor(None, out.get, True, 60)
        results = []
        for b in bodies[WARMUP:]:
            results.append(await links.request(x25519, address, KIND_CC, b, 10))
            await asyncio.sleep(GAP)
        cmds.put("stop")
        cpu1, sw1 = await loop.run_in_executor(None, out.get, True, 60)
    finally:
        await links.close()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    if kind != "echo":  # every write stored and signed by the member
        for r in results:
            assert "failed" not in r, r
            verify(bytes.fromhex(ed), r["hash"].encode(), base64.b64decode(r["signature"]))
    return {"cpu_us": (cpu1 - cpu0) / WRITES * 1e6, "switches": (sw1 - sw0) / WRITES}


def test_replica_write_cost_over_links() -> None:
    async def run() -> dict[str, dict[str, float]]:
        return {k: await _measure(k) for k in ("echo", "queued", "inline", "queued", "inline")}

    # (each kind measured twice, alternating: the later figure of each is kept)
    got = asyncio.run(run())
    echo, queued, inline = got["echo"], got["queued"], got["inline"]
    print(
        f"\nper forwarded write, member process: link round trip alone (echo) "
        f"{echo['cpu_us']:.0f} µs, {echo['switches']:.1f} context switches; replica write, "
        f"writer-thread hand-off {queued['cpu_us']:.0f} µs, {queued['switches']:.1f} switches; "
        f"committed on the loop's thread {inline['cpu_us']:.0f} µs, "
        f"{inline['switches']:.1f} switches\n"
        f"inline ÷ queued {inline['cpu_us'] / queued['cpu_us']:.2f}; "
        f"write ÷ link alone {inline['cpu_us'] / echo['cpu_us']:.2f}"
    )
    assert all(v["cpu_us"] > 0 for v in got.values())
