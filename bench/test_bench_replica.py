"""What one replicated write costs a swarm member, over real node links: a second process runs
a member (``NodeLinks`` with the node's ``cc`` handler: ``RpcHandler.handle_forwarded`` on a
``SqliteMessageStore``, re-validation, the write, the signed result); this process forwards it
store requests one at a time with a pause between them, as a member of a 12-node swarm at
~100 messages/s gets them (~one every 10 ms), so every write wakes the member's threads from
idle. Reported per write: the member process's CPU (every thread: the event loop's, ZeroMQ's
I/O thread, SQLite's writer) and its context switches (thread wake-ups).

Same run, one member process, phases of four kinds alternating: ``echo`` (the link round
trip alone: a handler that answers a fixed result), ``queued`` (every write handed to the
store's writer thread, as before small writes could commit on the event loop's thread),
``inline`` (a coroutine per write whose small store commits on the loop's thread when the
writer is idle), ``direct`` (the node's handler today: :class:`ForwardedWrites` answers the
write as it arrives, no task or future, committing it on the loop's thread) and ``batch4``
(the same handler, the writes arriving four to a link message: ``ccb``, as the fan-out sends
writes made together or held while the member's previous link message is unanswered). Medians
of the phases; ratios to ``echo``, ``queued`` and ``inline`` are the figures to read; run with
``-s`` to see them::

    python -m pytest bench/test_bench_replica.py -m integration -s
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing as mp
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import pytest
import uvloop

import session.storage.sqlite as S
from bench.load.probe import self_usage
from session.identity import Identity, verify
from session.node.forwarded import ForwardedWrites
from session.node.links import KIND_CC, KIND_CC_BATCH
from session.storage import SqliteMessageStore
from session.storage.sqlite import MAX_INLINE
from session.testing.links import open_links
from session.testing.rpc import LocalSwarm

pytestmark = pytest.mark.integration

#: writes per measured phase, phases per kind (alternating), and the pause between two writes
WRITES = 200
ROUNDS = 3
WARMUP = 40
GAP = 0.003
KINDS = ("echo", "queued", "inline", "direct", "batch4")
#: writes per link message in the ``batch4`` phases
BATCH = 4


async def _member(out: Any, cmds: Any) -> None:
    store = await SqliteMessageStore.open(Path(tempfile.mkdtemp()) / "s.db", max_bytes=None)
    swarm = LocalSwarm([store, store, store])
    rpc = swarm.node(1)
    clients = [swarm.client_in_swarm() for _ in range(20)]
    total = WARMUP + WRITES * ROUNDS * len(KINDS)
    bodies = [clients[i % 20].store(os.urandom(400) + i.to_bytes(4, "big")) for i in range(total)]
    kind = ["inline"]

    async def cc(peer: str, body: Any) -> Any:
        if kind[0] == "echo":
            return {"hash": "h" * 43, "signature": "s" * 86, "expiry": 0}
        return await rpc.handle_forwarded(body)

    ident = Identity.generate()
    links = open_links(ident, {KIND_CC: cc})
    writes = ForwardedWrites(rpc)
    links.direct[KIND_CC_BATCH] = writes.serve_batch_now
    port = await links.start("127.0.0.1", 0)
    out.put((port, bytes(ident.x25519_public).hex(), rpc.ed25519_hex, bodies))
    loop = asyncio.get_running_loop()
    while True:  # ("phase", kind) or ("end", None): this process's clock at each
        cmd, arg = await loop.run_in_executor(None, cmds.get)
        if cmd == "phase":
            kind[0] = arg
            # queued: every write handed to the writer thread, as before small writes could
            # commit on the loop's thread
            S.MAX_INLINE = 0 if arg == "queued" else MAX_INLINE
            # direct: the node's own handler of forwarded writes (no task per write)
            if arg in ("direct", "batch4"):
                links.direct[KIND_CC] = writes.serve_now
            else:
                links.direct.pop(KIND_CC, None)
        out.put((*self_usage(), writes.answered_now))  # (and how many were answered directly)
        if cmd == "stop":
            break
    await links.close()
    await store.close()


def _member_main(out: Any, cmds: Any) -> None:
    uvloop.run(_member(out, cmds))


async def _measure() -> dict[str, list[dict[str, float]]]:
    """Each kind's phases, measured alternately on one member process."""
    ctx = mp.get_context("spawn")
    out, cmds = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_member_main, args=(out, cmds), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    links = open_links(Identity.generate(), {})
    got: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    try:
        port, x25519, ed, bodies = await loop.run_in_executor(None, out.get, True, 60)
        await links.start("127.0.0.1", 0)
        address = f"tcp://127.0.0.1:{port}"
        for b in bodies[:WARMUP]:
            await links.request(x25519, address, KIND_CC, b, 10)
        todo = iter(bodies[WARMUP:])
        for _ in range(ROUNDS):
            for kind in KINDS:
                cmds.put(("phase", kind))
                cpu0, sw0, now0 = await loop.run_in_executor(None, out.get, True, 60)
                for _ in range(WRITES // BATCH if kind == "batch4" else WRITES):
                    if kind == "batch4":
                        body = {"r": [next(todo) for _ in range(BATCH)]}
                        rs = (await links.request(x25519, address, KIND_CC_BATCH, body, 10))["r"]
                    else:
                        rs = [await links.request(x25519, address, KIND_CC, next(todo), 10)]
                    for r in rs if kind != "echo" else ():  # stored and signed by the member
                        assert "failed" not in r, r
                        sig = base64.b64decode(r["signature"])
                        verify(bytes.fromhex(ed), r["hash"].encode(), sig)
                    await asyncio.sleep(GAP)
                cmds.put(("end", None))
                cpu1, sw1, now1 = await loop.run_in_executor(None, out.get, True, 60)
                got[kind].append(
                    {
                        "cpu_us": (cpu1 - cpu0) / WRITES * 1e6,
                        "switches": (sw1 - sw0) / WRITES,
                        "direct": (now1 - now0) / WRITES,
                    }
                )
        cmds.put(("stop", None))
        await loop.run_in_executor(None, out.get, True, 60)
    finally:
        await links.close()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return got


def test_replica_write_cost_over_links() -> None:
    got = asyncio.run(_measure())
    med = {
        k: {m: statistics.median(r[m] for r in runs) for m in ("cpu_us", "switches")}
        for k, runs in got.items()
    }
    echo, queued, inline, direct = med["echo"], med["queued"], med["inline"], med["direct"]
    batch4 = med["batch4"]

    def rounds(a: str, b: str) -> str:
        return ", ".join(
            f"{x['cpu_us'] / y['cpu_us']:.2f}" for x, y in zip(got[a], got[b], strict=True)
        )

    print(
        f"\nper forwarded write, member process (medians of {ROUNDS} alternating phases of "
        f"{WRITES}): link round trip alone (echo) {echo['cpu_us']:.0f} µs, "
        f"{echo['switches']:.1f} context switches; replica write, writer-thread hand-off "
        f"{queued['cpu_us']:.0f} µs, {queued['switches']:.1f} switches; a task per write, "
        f"committed on the loop's thread {inline['cpu_us']:.0f} µs, "
        f"{inline['switches']:.1f} switches; answered as it arrives (direct) "
        f"{direct['cpu_us']:.0f} µs, {direct['switches']:.1f} switches; {BATCH} writes per "
        f"link message (batch4) {batch4['cpu_us']:.0f} µs, {batch4['switches']:.1f} switches\n"
        f"inline ÷ queued {inline['cpu_us'] / queued['cpu_us']:.2f} (each round: "
        f"{rounds('inline', 'queued')}); direct ÷ inline "
        f"{direct['cpu_us'] / inline['cpu_us']:.2f} (each round: {rounds('direct', 'inline')}); "
        f"write ÷ link alone: inline {inline['cpu_us'] / echo['cpu_us']:.2f}, direct "
        f"{direct['cpu_us'] / echo['cpu_us']:.2f}; batch4 ÷ direct "
        f"{batch4['cpu_us'] / direct['cpu_us']:.2f} (each round: {rounds('batch4', 'direct')}); "
        f"share answered without a task in the "
        f"direct phases: {min(r['direct'] for r in got['direct']):.2f}"
    )
    assert all(r["cpu_us"] > 0 for runs in got.values() for r in runs)
