"""The ``store-scale`` scenario: fill one swarm with ``--count`` messages and measure what a
store and a retrieve cost as it grows (at 1k, 10k, 100k, 1M, … and at the end).

The fill goes straight to the swarm's members over HTTPS (public-inbox stores to many
accounts that all belong to the swarm, ``--concurrency`` at a time from the driver): it is
not what is measured, it only has to be fast. With ``--bulk-fill`` (the driver's own devnet
only) most of each stretch between checkpoints (``1 - REAL_SHARE``) is written by the driver
into every member's database through the node's own storage layer
(:meth:`SqliteMessageStore.import_messages`, what reconciliation imports with; the same
messages on every member, as replication leaves them), and the rest, last, through the real
path: this is what makes 1,000,000 messages a matter of minutes instead of an hour, while the
nodes keep running, reading and reconciling over the whole store. At each checkpoint the
fill pauses and two probes run: ``PROBE_STORES`` stores (node CPU per store across all
nodes, replication included, idle subtracted; store latency) and ``PROBE_RETRIEVES`` signed
retrieves of one probe account holding ``PROBE_MESSAGES`` messages (node CPU and latency per
retrieve). Each node's RSS and database size are read there too, and before the probes the
nodes' CPU with no request for ``BACKGROUND_S`` seconds (``background_cpu_per_s``: what the
swarm does by itself at that size, such as reconciliation; not subtracted) and the machine's
1-minute load average. The figures must stay flat
as the swarm fills: the result's ``extra.store_scale.flatness`` is the last checkpoint over
the first.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

import aiohttp

from bench.load import report
from bench.load.probe import NodeProbe
from session.identity import Identity
from session.proto.snodes import ServiceNode, parse_node_list
from session.storage import SqliteMessageStore, StoredMessage
from session.storage.base import now_ms
from session.swarm import closest_swarm, message_hash
from session.testing.http import retrieve_request, store_request

PROBE_STORES = 500
PROBE_RETRIEVES = 1000
PROBE_MESSAGES = 20
#: seconds of no requests before the probes, to read the nodes' own background CPU
BACKGROUND_S = 3.0
#: accounts the fill spreads its messages over
ACCOUNTS = 2000
DATA_BYTES = 300
#: the fill's messages live this long (a long run must not see its first ones expire)
FILL_TTL_MS = 7 * 24 * 3600 * 1000
#: with --bulk-fill, the share of each stretch still stored through the real path (HTTPS,
#: the node's RPC, fan-out to the members), after the bulk part
REAL_SHARE = 0.05
#: messages per bulk transaction (the nodes' own writers wait for it: SQLite's busy timeout)
BULK_BATCH = 2000


def checkpoints(count: int) -> list[int]:
    out, c = [], 1000
    while c < count:
        out.append(c)
        c *= 10
    return [*out, count]


class StoreScale:
    def __init__(
        self,
        nodes_json: str,
        probe: NodeProbe,
        idle_cpu_per_s: float,
        conc: int,
        bulk_dbs: dict[int, str] | None = None,
    ):
        """``bulk_dbs``: storage port → database file of every node, for ``--bulk-fill``."""
        nodes = parse_node_list(json.loads(open(nodes_json).read()))
        swarm_ids = sorted({n.swarm_id for n in nodes})
        self.swarm = nodes[0].swarm_id
        self.members: list[ServiceNode] = [n for n in nodes if n.swarm_id == self.swarm]
        self.accounts: list[str] = []
        rng = random.Random(7)
        while len(self.accounts) < ACCOUNTS:
            acct = "05" + rng.randbytes(32).hex()
            if closest_swarm(acct, swarm_ids) == self.swarm:
                self.accounts.append(acct)
        while True:
            self.probe_id = Identity.generate()
            if closest_swarm(self.probe_id.session_id, swarm_ids) == self.swarm:
                break
        self.probe = probe
        self.idle = idle_cpu_per_s
        self.conc = conc
        self.bulk_dbs = (
            None if bulk_dbs is None else [bulk_dbs[n.storage_port] for n in self.members]
        )
        self.stored = 0
        self.bulked = 0  # of which written through the storage layer (--bulk-fill)
        self.errors: dict[str, int] = {}
        self.hist = report.new_histogram()

    def url(self, i: int) -> str:
        n = self.members[i % len(self.members)]
        return f"https://{n.public_ip}:{n.storage_port}/storage_rpc/v1"

    async def post(self, http: aiohttp.ClientSession, i: int, doc: dict[str, Any]) -> Any:
        t = time.monotonic()
        try:
            async with http.post(self.url(i), data=json.dumps(doc).encode()) as r:
                body = await r.read()
                if r.status != 200:
                    k = f"status {r.status}"
                    self.errors[k] = self.errors.get(k, 0) + 1
                    return None
        except (aiohttp.ClientError, TimeoutError) as e:
            k = type(e).__name__
            self.errors[k] = self.errors.get(k, 0) + 1
            return None
        report.record(self.hist, time.monotonic() - t)
        return json.loads(body)

    async def fill(self, http: aiohttp.ClientSession, upto: int) -> None:
        if self.bulk_dbs:
            await self.bulk(int((upto - self.stored) * (1 - REAL_SHARE)))
        nxt = [self.stored]

        async def one() -> None:
            while nxt[0] < upto:
                i = nxt[0]
                nxt[0] += 1
                doc = store_request(
                    self.accounts[i % ACCOUNTS], os.urandom(DATA_BYTES), ttl=FILL_TTL_MS
                )
                if await self.post(http, i, doc) is not None:
                    self.stored += 1

        await asyncio.gather(*(one() for _ in range(self.conc)))

    async def bulk(self, count: int) -> None:
        """Write ``count`` fill messages into every member's database through the storage
        layer, the same messages on each (as a store replicated to the whole swarm leaves
        them), ``BULK_BATCH`` to a transaction, the members side by side."""
        assert self.bulk_dbs is not None
        stores = [await SqliteMessageStore.open(p, max_bytes=None) for p in self.bulk_dbs]
        try:
            done = 0
            while done < count:
                k = min(BULK_BATCH, count - done)
                now = now_ms()
                batch = []
                for j in range(k):
                    acct = self.accounts[(self.stored + j) % ACCOUNTS]
                    data = os.urandom(DATA_BYTES)
                    h = message_hash(acct, 0, data)
                    batch.append(StoredMessage(acct, 0, h, data, now, now + FILL_TTL_MS, now))
                got = await asyncio.gather(*(s.import_messages(batch) for s in stores))
                if any(n != k for n in got):
                    raise RuntimeError(f"bulk fill: members took {got} of {k} new messages")
                done += k
                self.stored += k
                self.bulked += k
        finally:
            for s in stores:
                await s.close()

    async def measure(self, http: aiohttp.ClientSession, at: int) -> dict[str, Any]:
        lat_s, lat_r = report.new_histogram(), report.new_histogram()
        load_avg = os.getloadavg()[0]
        self.probe.reset()
        t = time.monotonic()
        await asyncio.sleep(BACKGROUND_S)
        self.probe.sample()
        background = sum(x.cpu_s for x in self.probe.totals.values()) / (time.monotonic() - t)

        async def timed(h: Any, i: int, doc: dict[str, Any]) -> Any:
            t = time.monotonic()
            out = await self.post(http, i, doc)
            report.record(h, time.monotonic() - t)
            return out

        # stores
        self.probe.reset()
        t = time.monotonic()
        docs = [store_request(self.accounts[i % ACCOUNTS], os.urandom(DATA_BYTES)) for i in
                range(PROBE_STORES)]  # fmt: skip
        for k in range(0, PROBE_STORES, 8):
            await asyncio.gather(*(timed(lat_s, k + j, d) for j, d in enumerate(docs[k : k + 8])))
        await asyncio.sleep(0.5)  # replication to the other members finishes
        self.probe.sample(sizes=True)
        store_cpu = sum(x.cpu_s for x in self.probe.totals.values())
        store_cpu -= self.idle * (time.monotonic() - t)
        self.stored += PROBE_STORES
        # retrieves
        self.probe.reset()
        t = time.monotonic()
        got = 0
        for k in range(0, PROBE_RETRIEVES, 8):
            outs = await asyncio.gather(
                *(timed(lat_r, k + j, retrieve_request(self.probe_id)) for j in range(8))
            )
            got += sum(len(o.get("messages", [])) for o in outs if isinstance(o, dict))
        self.probe.sample(sizes=True)
        retr_cpu = sum(x.cpu_s for x in self.probe.totals.values())
        retr_cpu -= self.idle * (time.monotonic() - t)
        nodes = self.probe.totals.values()
        return {
            "messages": at,
            "bulk_filled": self.bulked,
            "store_cpu_us": round(max(0.0, store_cpu) / PROBE_STORES * 1e6, 1),
            "store_p50_ms": report.summary(lat_s)["p50"],
            "retrieve_cpu_us": round(max(0.0, retr_cpu) / PROBE_RETRIEVES * 1e6, 1),
            "retrieve_p50_ms": report.summary(lat_r)["p50"],
            "retrieved_ok": got == PROBE_RETRIEVES * PROBE_MESSAGES,
            "max_rss_mb": round(max(x.rss_mb for x in nodes), 1),
            "max_db_mb": round(max(x.db_mb for x in nodes), 1),
            "background_cpu_per_s": round(background, 4),
            "load_avg_1m": round(load_avg, 2),
        }

    async def run(self, count: int, on_checkpoint: Any) -> dict[str, Any]:
        conn = aiohttp.TCPConnector(ssl=False, limit=self.conc + 8)
        async with aiohttp.ClientSession(
            connector=conn, timeout=aiohttp.ClientTimeout(total=30)
        ) as http:
            for i in range(PROBE_MESSAGES):
                doc = store_request(self.probe_id.session_id, os.urandom(DATA_BYTES))
                await self.post(http, i, doc)
            marks = []
            for at in checkpoints(count):
                await self.fill(http, at)
                marks.append(await self.measure(http, at))
                on_checkpoint(marks[-1])
        first, last = marks[0], marks[-1]
        return {
            "swarm_members": len(self.members),
            "bulk_fill": self.bulk_dbs is not None,
            "real_share": REAL_SHARE if self.bulk_dbs is not None else 1.0,
            "checkpoints": marks,
            "flatness": {
                "store_cpu": round(last["store_cpu_us"] / first["store_cpu_us"], 2)
                if first["store_cpu_us"]
                else None,
                "retrieve_cpu": round(last["retrieve_cpu_us"] / first["retrieve_cpu_us"], 2)
                if first["retrieve_cpu_us"]
                else None,
            },
            "errors": self.errors,
        }
