"""What forwarding one write to the other eleven members of a 12-node swarm costs the member
a client wrote to (the entry), over real node links: a second process runs eleven members
(``NodeLinks`` whose ``cc``/``ccb`` direct handlers answer a fixed result at once, so only the
entry's side is measured); this process runs :class:`LinkFanout` over real ``NodeLinks`` and
forwards a store every few milliseconds, as an entry node at ~100 messages/s of a 12-node
swarm does, so its threads wake from idle for every write. Reported per forwarded write:
this process's CPU (the event loop's thread and ZeroMQ's I/O thread) and context switches.

Phases of three kinds alternate in one run: ``task`` (each link message sent by a task of
its own, the write packed for each member: the fan-out's fallback path, and its only path
before ``NodeLinks.send_packed``), ``direct`` (the fan-out today: link messages sent back to
back without a task, each write packed once) and ``pairs`` (two writes made in the same loop
iteration: one link message of two writes to each member, as the fan-out sends writes made
together or held while a member's previous link message is unanswered). Medians of the
phases; run with ``-s`` to see them::

    python -m pytest bench/test_bench_fanout.py -m integration -s
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
from typing import Any

import pytest
import uvloop

from bench.load.probe import self_usage
from session.identity import Identity
from session.node.links import KIND_CC, KIND_CC_BATCH, Answer, NodeLinks
from session.node.replication import LinkFanout
from session.proto.snodes import ServiceNode
from session.testing.links import open_links

pytestmark = pytest.mark.integration

MEMBERS = 11
#: forwards per measured phase, phases per kind (alternating), pause between two forwards
FORWARDS = 300
ROUNDS = 3
WARMUP = 50
GAP = 0.004
KINDS = ("task", "direct", "pairs")
_RESULT = {"hash": "h" * 43, "signature": "s" * 86, "expiry": 1_700_000_000_000}


def _one(peer: str, body: Any, answer: Answer) -> None:
    answer.result(_RESULT)


def _batch(peer: str, body: Any, answer: Answer) -> None:
    answer.result({"r": [_RESULT] * len(body["r"])})


async def _members(out: Any, stop: Any) -> None:
    started: list[NodeLinks] = []
    listed = []
    for _ in range(MEMBERS):
        ident = Identity.generate()
        links = open_links(ident)
        links.direct[KIND_CC], links.direct[KIND_CC_BATCH] = _one, _batch
        port = await links.start("127.0.0.1", 0)
        started.append(links)
        listed.append((ident.ed25519_public.hex(), bytes(ident.x25519_public).hex(), port))
    out.put(listed)
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for links in started:
        await links.close()


def _members_main(out: Any, stop: Any) -> None:
    uvloop.run(_members(out, stop))


class _View:
    """The fan-out's view of the swarm: the eleven other members."""

    def __init__(self, nodes: list[ServiceNode]) -> None:
        self.nodes = nodes

    def peers_in_my_swarm(self) -> list[ServiceNode]:
        return self.nodes


class _TaskLinks:
    """The entry's links with no link message taken at once by ``send_packed``: every link
    message goes the fan-out's task path."""

    def __init__(self, links: NodeLinks) -> None:
        self._links = links

    def send_packed(self, *args: Any) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._links, name)


def _body(i: int) -> dict[str, Any]:
    params = {"pubkey": "05" + "ab" * 32, "timestamp": i, "ttl": 86_400_000, "data": "x" * 600}
    return {"method": "store", "params": params}


async def _measure() -> dict[str, list[dict[str, float]]]:
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_members_main, args=(out, stop), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()
    links = open_links(Identity.generate())
    got: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    try:
        listed = await loop.run_in_executor(None, out.get, True, 60)
        nodes = [ServiceNode(ed, x, "127.0.0.1", 1, port) for ed, x, port in listed]
        await links.start("127.0.0.1", 0)
        view = _View(nodes)
        fans = {
            "task": LinkFanout(_TaskLinks(links), view, deadline=10.0),  # type: ignore[arg-type]
            "direct": LinkFanout(links, view, deadline=10.0),  # type: ignore[arg-type]
        }
        fans["pairs"] = fans["direct"]
        n = 0
        for fan in fans.values():
            for _ in range(WARMUP):
                n += 1
                await fan.forward(_body(n))
        for _ in range(ROUNDS):
            for kind in KINDS:
                fan = fans[kind]
                sent0 = fan.link_requests
                cpu0, sw0 = self_usage()
                writes = 0
                for _ in range(FORWARDS // 2 if kind == "pairs" else FORWARDS):
                    n += 2
                    outs: list[dict[str, Any]]
                    if kind == "pairs":
                        outs = list(
                            await asyncio.gather(fan.forward(_body(n)), fan.forward(_body(n + 1)))
                        )
                    else:
                        outs = [await fan.forward(_body(n))]
                    writes += len(outs)
                    assert all(r == _RESULT for o in outs for r in o.values()), outs
                    assert all(len(o) == MEMBERS for o in outs)
                    await asyncio.sleep(GAP)
                cpu1, sw1 = self_usage()
                got[kind].append(
                    {
                        "cpu_us": (cpu1 - cpu0) / writes * 1e6,
                        "switches": (sw1 - sw0) / writes,
                        "messages": (fan.link_requests - sent0) / writes,
                    }
                )
    finally:
        stop.set()
        await links.close()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return got


def test_fanout_cost_over_links() -> None:
    got = uvloop.run(_measure())
    med = {
        k: {m: statistics.median(r[m] for r in runs) for m in ("cpu_us", "switches", "messages")}
        for k, runs in got.items()
    }
    task, direct, pairs = med["task"], med["direct"], med["pairs"]

    def rounds(a: str, b: str) -> str:
        return ", ".join(
            f"{x['cpu_us'] / y['cpu_us']:.2f}" for x, y in zip(got[a], got[b], strict=True)
        )

    print(
        f"\nper forwarded write to {MEMBERS} members, entry process (medians of {ROUNDS} "
        f"alternating phases): a task per link message {task['cpu_us']:.0f} µs, "
        f"{task['switches']:.1f} context switches; sent back to back without tasks "
        f"{direct['cpu_us']:.0f} µs, {direct['switches']:.1f} switches; two writes per link "
        f"message {pairs['cpu_us']:.0f} µs, {pairs['switches']:.1f} switches "
        f"({pairs['messages']:.1f} link messages per write)\n"
        f"direct ÷ task {direct['cpu_us'] / task['cpu_us']:.2f} (each round: "
        f"{rounds('direct', 'task')}); pairs ÷ direct {pairs['cpu_us'] / direct['cpu_us']:.2f} "
        f"(each round: {rounds('pairs', 'direct')})"
    )
    assert task["messages"] == direct["messages"] == MEMBERS
    assert pairs["messages"] == MEMBERS / 2
    assert all(r["cpu_us"] > 0 for runs in got.values() for r in runs)
