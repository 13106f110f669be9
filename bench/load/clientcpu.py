"""The client library's CPU per message, by thread, in one process: two library clients
(:class:`session.client.Client`) on a devnet, one sealing and storing messages to the other
through 3-hop onions (``SwarmRPC.store``), the other polling every ``--every`` messages and
opening what it got (``Poller.poll`` + ``Receiver.apply_unseen``), as ``bench.load``'s
workers do, one message at a time so nothing else runs in the process::

    python -m bench.load.clientcpu                        # starts its own 12-node devnet
    python -m bench.load.clientcpu --network DIR/nodes.json --messages 300

It prints one JSON line: CPU per message (µs) of the whole process, of the event loop's thread
and of each other thread (rayon's pool: onion key agreements, batch opens), the kernel's part
and context switches per message. To compare two checkouts, run each against one devnet
(``python -m session.devnet``), alternating, with its own ``PYTHONPATH`` (docs/performance.md,
"The client's CPU per message").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.load.probe import thread_cpu_ns
from session.client import Client
from session.client import messages as M
from session.devnet import Devnet

#: Time to live of the messages (milliseconds).
TTL_MS = 3600_000
#: Polls (5 ms apart) a recipient makes for messages its sender had acknowledged.
POLL_TRIES = 40


async def measure(nodes_json: Path, messages: int, every: int, warmup: int) -> dict[str, Any]:
    """Send and receive ``warmup`` messages unmeasured, then ``messages`` measured."""
    with tempfile.TemporaryDirectory(prefix="bench-clientcpu-") as tmp:
        return await _measure(Path(tmp), nodes_json, messages, every, warmup)


async def _measure(
    tmp: Path, nodes_json: Path, messages: int, every: int, warmup: int
) -> dict[str, Any]:
    clients = []
    for i in range(2):
        c = Client(tmp / f"c{i}", nodes_json, background=False, rng=random.Random(i + 7))
        await c.start()
        clients.append(c)
    a, b = clients
    received = 0

    async def run(first: int, count: int) -> None:
        nonlocal received
        received = 0
        for i in range(first, first + count):
            sent = a.clock.now_ms()
            data = M.seal(a.identity, b.session_id, M.text(f"m{i}", sent_ms=sent), sent)
            await a.rpc.store(b.session_id, 0, data, sent + TTL_MS)
            if (i - first + 1) % every and i != first + count - 1:
                continue
            for _ in range(POLL_TRIES):
                received += len(b.receiver.apply_unseen(await b.receiver.poller.poll(0)))
                if received >= i - first + 1:
                    break
                await asyncio.sleep(0.005)  # replication to the member polled may lag

    try:
        await run(0, warmup)  # paths built, connections open
        me = threading.get_native_id()
        # The process's clock is read outside the threads' (reading /proc costs the loop's
        # thread CPU too): the whole is never less than its part, rayon's threads or none.
        cpu0 = time.process_time()
        th0, r0 = thread_cpu_ns(os.getpid()), resource.getrusage(resource.RUSAGE_SELF)
        await run(warmup, messages)
        th1, r1 = thread_cpu_ns(os.getpid()), resource.getrusage(resource.RUSAGE_SELF)
        cpu1 = time.process_time()
    finally:
        for c in clients:
            await c.close()
    others = sorted(
        ((th1[t] - th0.get(t, 0)) / messages / 1000 for t in th1 if t != me), reverse=True
    )
    return {
        "messages": messages,
        "received": received,
        "cpu_us": round((cpu1 - cpu0) / messages * 1e6, 1),
        "loop_thread_us": round((th1[me] - th0[me]) / messages / 1000, 1),
        "other_threads_us": [round(x, 1) for x in others if x >= 1],
        "kernel_us": round((r1.ru_stime - r0.ru_stime) / messages * 1e6, 1),
        "voluntary_switches": round((r1.ru_nvcsw - r0.ru_nvcsw) / messages, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load.clientcpu", description=__doc__)
    ap.add_argument("--network", type=Path, help="a running devnet's nodes.json")
    ap.add_argument("--nodes", type=int, default=12, help="size of the devnet started otherwise")
    ap.add_argument("--messages", type=int, default=300, help="messages measured")
    ap.add_argument("--every", type=int, default=3, help="messages per poll (default 3)")
    ap.add_argument("--warmup", type=int, default=20, help="messages sent before measuring")
    a = ap.parse_args(argv)
    if a.messages < 1 or a.every < 1 or a.warmup < 0:
        ap.error("--messages and --every must be at least 1, --warmup at least 0")
    if a.network is None and a.nodes < 5:
        ap.error("--nodes: at least 5 (3-hop paths that avoid their destination)")
    import uvloop

    if a.network is not None:
        result = uvloop.run(measure(a.network, a.messages, a.every, a.warmup))
    else:
        with (
            tempfile.TemporaryDirectory(prefix="bench-clientcpu-net-") as d,
            Devnet(d, nodes=a.nodes, file_server=False, community=False) as net,
        ):
            result = uvloop.run(measure(net.dir / "nodes.json", a.messages, a.every, a.warmup))
    print(json.dumps(result))
    return 0 if result["received"] == a.messages else 1


if __name__ == "__main__":
    raise SystemExit(main())
