"""Memory of a reconciliation digest pass as the store grows: ``bucket_digests`` (one bucket
at a time from SQLite) beside, in the same run, the whole-store pass it replaced (every row of
the swarm turned into Python objects at once). Peaks of Python allocations (tracemalloc).
And the CPU of a pass as the store grows: the running digests (``bucket_sums``, kept by the
store as it writes) beside the sorted-lines digests (``bucket_digests``, every message read),
in the same run."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from session.node.replication import bucket_digests
from session.storage import SqliteMessageStore, StoredMessage
from session.storage.base import bucket_sums, digest_rows, sum_rows
from session.swarm import message_hash

ACCOUNTS = 2000  # as bench.load's store-scale fills a swarm
SIZES = (10_000, 40_000)
#: the session comparison: accounts, and sizes (at 20,000 a part's 256 accounts hold 12,800
#: entries; the session's own bound is 2,000)
SESSION_ACCOUNTS = 400
SESSION_SIZES = (2_000, 20_000)


def _owner(i: int) -> str:
    return "05" + hashlib.blake2b(i.to_bytes(4, "big"), digest_size=32).hexdigest()


async def _fill(store: SqliteMessageStore, upto: int, start: int, accounts: int = ACCOUNTS) -> None:
    owners = [_owner(i) for i in range(accounts)]
    batch = []
    for n in range(start, upto):
        o = owners[n % accounts]
        data = n.to_bytes(8, "big") * 38
        batch.append(StoredMessage(o, 0, message_hash(o, 0, data), data, 1000, 10**13))
        if len(batch) == 5000:
            await store.import_messages(batch)
            batch = []
    if batch:
        await store.import_messages(batch)


def _whole_store(path: str) -> dict[str, bytes]:
    """The pass before bucket streaming: every row of the store at once, then the digests."""
    conn = sqlite3.connect(path)
    try:
        owners = {
            oid: bytes([t]).hex() + bytes(pk).hex()
            for oid, t, pk in conn.execute("SELECT id, type, pubkey FROM owners")
        }
        rows = conn.execute(
            "SELECT owner, namespace, hash, expiry FROM messages WHERE expiry > 0"
        ).fetchall()
        return bucket_digests(digest_rows((owners[o], ns, h, e) for o, ns, h, e in rows))
    finally:
        conn.close()


def _peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_digest_pass_memory_stays_flat_as_the_store_grows(tmp_path: Any) -> None:
    loop = asyncio.new_event_loop()

    def run(aw: Awaitable[Any]) -> Any:
        return loop.run_until_complete(aw)

    store = run(SqliteMessageStore.open(tmp_path, max_bytes=None))
    figures: dict[int, tuple[int, int]] = {}
    try:
        have = 0
        for size in SIZES:
            run(_fill(store, size, have))
            have = size
            new, new_peak = _peak(lambda: run(store.bucket_digests(lambda o: True, 0)))
            old, old_peak = _peak(lambda: _whole_store(str(store.path)))
            assert new == old and len(new) > 200  # the same digests, computed either way
            figures[size] = (new_peak, old_peak)
    finally:
        run(store.close())
        loop.close()
    print()
    for size, (new_peak, old_peak) in figures.items():
        print(
            f"{size:>7} messages: bucket at a time {new_peak / 1e6:.2f} MB peak, "
            f"whole store {old_peak / 1e6:.2f} MB ({old_peak / new_peak:.1f}x)"
        )
    (small_new, small_old), (big_new, big_old) = figures[SIZES[0]], figures[SIZES[-1]]
    growth = SIZES[-1] / SIZES[0]
    print(
        f"growth {SIZES[0]}→{SIZES[-1]} ({growth:.0f}x the messages): "
        f"bucket at a time {big_new / small_new:.2f}x, whole store {big_old / small_old:.2f}x"
    )


def test_running_digest_pass_cpu_stays_flat_as_the_store_grows(tmp_path: Any) -> None:
    """CPU (this process's clock, all threads) of one digest pass over 2,000 accounts at
    ``PASS_SIZES`` messages: running digests against sorted-lines digests, both in the same
    run, and the wall time of retrieves issued while each pass runs (they share the store's
    reader thread); the running digests must equal a from-scratch computation over the rows
    (up to 100,000 messages: beyond, the check would hold every entry in memory).
    ``BENCH_DIGEST_SIZES=10000,1000000`` measures larger stores (1M: ~2 minutes to fill)."""
    loop = asyncio.new_event_loop()

    def run(aw: Awaitable[Any]) -> Any:
        return loop.run_until_complete(aw)

    def cpu(fn: Callable[[], Any]) -> tuple[Any, float]:
        t = time.process_time()
        out = fn()
        return out, time.process_time() - t

    async def retrieves_during(pass_: Awaitable[Any]) -> list[float]:
        lat: list[float] = []

        async def probe() -> None:
            for _ in range(50):
                t = time.perf_counter()
                await store.retrieve(_owner(5), 0, max_count=20)
                lat.append(time.perf_counter() - t)

        await asyncio.gather(pass_, probe())
        return sorted(lat)

    sizes = tuple(int(x) for x in os.environ.get("BENCH_DIGEST_SIZES", "").split(",") if x)
    sizes = sizes or SIZES
    store = run(SqliteMessageStore.open(tmp_path, max_bytes=None))
    figures: dict[int, tuple[float, float, list[float], list[float]]] = {}
    try:
        have = 0
        for size in sizes:
            run(_fill(store, size, have))
            have = size
            sums, sums_cpu = cpu(lambda: run(store.bucket_sums(lambda o: True, 0)))
            _, lines_cpu = cpu(lambda: run(store.bucket_digests(lambda o: True, 0)))
            if size <= 100_000:
                rows = run(store.sync_index(lambda o: True, 0))
                assert sums == bucket_sums(
                    sum_rows((e.owner, e.namespace, e.hash, e.expiry_ms) for e in rows)
                )
            with_sums = run(retrieves_during(store.bucket_sums(lambda o: True, 0)))
            with_lines = run(retrieves_during(store.bucket_digests(lambda o: True, 0)))
            figures[size] = (sums_cpu, lines_cpu, with_sums, with_lines)
    finally:
        run(store.close())
        loop.close()
    print()
    for size, (sums_cpu, lines_cpu, ws, wl) in figures.items():
        print(
            f"{size:>7} messages: running digests {sums_cpu * 1e3:.1f} ms CPU a pass, "
            f"sorted-lines digests {lines_cpu * 1e3:.1f} ms ({lines_cpu / sums_cpu:.0f}x); "
            f"retrieves during the pass p50/max {ws[25] * 1e3:.2f}/{ws[-1] * 1e3:.1f} ms "
            f"against {wl[25] * 1e3:.2f}/{wl[-1] * 1e3:.1f} ms"
        )
    (s0, l0, _, _), (s1, l1, _, _) = figures[sizes[0]], figures[sizes[-1]]
    print(
        f"growth {sizes[0]}→{sizes[-1]}: running digests {s1 / s0:.2f}x, "
        f"sorted-lines digests {l1 / l0:.2f}x"
    )


def test_session_memory_is_bounded_by_entries_not_accounts(tmp_path: Any, monkeypatch: Any) -> None:
    """A whole reconciliation session between two SQLite members in which every one of
    400 accounts differs (one message each on one side): its peak of Python allocations as
    the stores grow, with parts bounded by entries (``SYNC_ENTRIES``, today) beside, in the
    same run, parts of 256 accounts whatever they hold (before: ``SYNC_ENTRIES`` unbounded)."""
    import sys
    from pathlib import Path

    from session.node import replication

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.node.test_replication import FakeNet, swarm

    figures: dict[int, dict[str, int]] = {}
    bound = replication.SYNC_ENTRIES

    async def main() -> None:
        a, b = swarm(FakeNet(), 2)
        for i, member in enumerate((a, b)):
            member.store = member.sync.store = await SqliteMessageStore.open(
                tmp_path / f"{i}.db", max_bytes=None
            )
        try:
            have, extra = 0, 10**9
            for size in SESSION_SIZES:
                for s in (a.store, b.store):
                    await _fill(s, size, have, SESSION_ACCOUNTS)
                have = size
                figures[size] = {}
                for label, entries in (("bounded", bound), ("before", 10**9)):
                    monkeypatch.setattr(replication, "SYNC_ENTRIES", entries)
                    await _fill(a.store, extra + SESSION_ACCOUNTS, extra, SESSION_ACCOUNTS)
                    extra += SESSION_ACCOUNTS
                    tracemalloc.start()
                    try:
                        res = await a.sync.sync_with(b.node)
                        figures[size][label] = tracemalloc.get_traced_memory()[1]
                    finally:
                        tracemalloc.stop()
                    assert res is not None and res.accounts == SESSION_ACCOUNTS
                    assert res.pushed == SESSION_ACCOUNTS
        finally:
            for member in (a, b):
                await member.store.close()

    asyncio.run(main())
    print()
    for size, f in figures.items():
        print(
            f"{size:>7} messages, every account differing: session peak "
            f"{f['bounded'] / 1e6:.2f} MB in entry-bounded parts, "
            f"{f['before'] / 1e6:.2f} MB in parts of 256 accounts "
            f"({f['before'] / f['bounded']:.1f}x)"
        )
    small, big = figures[SESSION_SIZES[0]], figures[SESSION_SIZES[-1]]
    print(
        f"growth {SESSION_SIZES[0]}→{SESSION_SIZES[-1]}: entry-bounded "
        f"{big['bounded'] / small['bounded']:.2f}x, 256 accounts a part "
        f"{big['before'] / small['before']:.2f}x"
    )


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q", "-s"])
