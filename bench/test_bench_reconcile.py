"""Memory of a reconciliation digest pass as the store grows: ``bucket_digests`` (one bucket
at a time from SQLite) beside, in the same run, the whole-store pass it replaced (every row of
the swarm turned into Python objects at once). Peaks of Python allocations (tracemalloc)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from session.node.replication import bucket_digests
from session.storage import SqliteMessageStore, StoredMessage
from session.storage.base import digest_rows
from session.swarm import message_hash

ACCOUNTS = 2000  # as bench.load's store-scale fills a swarm
SIZES = (10_000, 40_000)


def _owner(i: int) -> str:
    return "05" + hashlib.blake2b(i.to_bytes(4, "big"), digest_size=32).hexdigest()


async def _fill(store: SqliteMessageStore, upto: int, start: int) -> None:
    owners = [_owner(i) for i in range(ACCOUNTS)]
    batch = []
    for n in range(start, upto):
        o = owners[n % ACCOUNTS]
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


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q", "-s"])
