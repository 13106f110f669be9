"""Running sync digests ("sums", :func:`session.storage.base.sum_rows`): the SQLite store keeps
each account's sum up to date as it writes (schema v4 triggers) instead of reading every message
per reconciliation; whatever the writes, the kept sums must equal a from-scratch computation
over the rows the store holds, and the in-memory store's (which computes them from scratch)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session.dbschema import split_sql
from session.storage import MemoryMessageStore, SqliteMessageStore, StoredMessage
from session.storage.base import (
    ALL_BUCKETS,
    MessageStore,
    SyncEntry,
    Tombstone,
    bucket_of,
    bucket_sums,
    sum_line,
    sum_rows,
    xor_sum,
)

#: accounts in three buckets (two share one), two network prefixes
OWNERS = ["05" + "11" * 32, "05" + "11" * 31 + "12", "03" + "22" * 32, "05" + "ee" * 32]


def msg(i: int, owner: int, ns: int = 0, ts: int = 1000, exp: int = 50) -> StoredMessage:
    return StoredMessage(OWNERS[owner], ns, f"h{i}", bytes([i]), ts, exp)


async def from_scratch(
    s: MessageStore, after_ms: int, before_ts: int | None, pred: Any = None
) -> dict[str, bytes]:
    """The sums recomputed from every row the store holds (what the triggers must keep)."""
    rows = await s.export(pred or (lambda o: True))
    return sum_rows(
        (m.owner, m.namespace, m.hash, m.expiry_ms)
        for m in rows
        if m.expiry_ms > after_ms and (before_ts is None or m.timestamp_ms < before_ts)
    )


def test_sum_helpers() -> None:
    a, b = sum_line(0, "x", 5), sum_line(0, "y", 5)
    assert len(a) == 16 and a != b and sum_line(0, "x", 6) != a and sum_line(1, "x", 5) != a
    assert xor_sum(a, a) == bytes(16) and xor_sum(None, a) == a == xor_sum(a, b, b)
    rows = [(OWNERS[0], 0, "x", 5), (OWNERS[2], 0, "y", 5), (OWNERS[0], 1, "z", 7)]
    got = sum_rows(rows)
    assert got == sum_rows(reversed(rows)) and got[OWNERS[2]] == b  # order does not matter
    assert bucket_sums(got) == {"11": got[OWNERS[0]], "22": got[OWNERS[2]]}


_op = st.one_of(
    st.tuples(
        st.just("store"),
        st.integers(0, 11),
        st.integers(0, 3),
        st.sampled_from([0, 1, -21]),
        st.integers(1, 60),
        st.integers(1, 40),
    ),
    st.tuples(st.just("import"), st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3)))),
    st.tuples(st.just("delete"), st.integers(0, 11), st.integers(0, 3)),
    st.tuples(st.just("delete_all"), st.integers(0, 3), st.sampled_from([None, 0, 1])),
    st.tuples(st.just("delete_before"), st.integers(0, 3), st.integers(0, 40)),
    st.tuples(
        st.just("expire"),
        st.integers(0, 11),
        st.integers(0, 3),
        st.integers(1, 60),
        st.sampled_from(["", "extend", "shorten"]),
    ),
    st.tuples(st.just("expire_all"), st.integers(0, 3), st.integers(0, 60)),
    st.tuples(st.just("sweep"), st.integers(0, 60)),
    st.tuples(st.just("drop"), st.integers(0, 3)),
    st.tuples(
        st.just("sync"),
        st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3)), max_size=3),
        st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3)), max_size=2),
        st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3), st.integers(1, 60)), max_size=2),
    ),
)


async def _apply(s: MessageStore, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "store":
        _, i, o, ns, exp, ts = op
        await s.store(msg(i, o, ns, ts, exp))
    elif kind == "import":
        await s.import_messages([msg(i, o, ts=i) for i, o in op[1]])
    elif kind == "delete":
        await s.delete_by_hash(OWNERS[op[2]], [f"h{op[1]}"])
    elif kind == "delete_all":
        await s.delete_all(OWNERS[op[1]], op[2])
    elif kind == "delete_before":
        await s.delete_before(OWNERS[op[1]], op[2])
    elif kind == "expire":
        _, i, o, e, mode = op
        await s.update_expiry(
            OWNERS[o], [f"h{i}"], [e], extend_only=mode == "extend", shorten_only=mode == "shorten"
        )
    elif kind == "expire_all":
        await s.update_all_expiries(OWNERS[op[1]], op[2])
    elif kind == "sweep":
        await s.sweep_expired(op[1])
    elif kind == "drop":
        await s.drop_accounts(lambda o: o == OWNERS[op[1]])
    else:
        _, new, dead, exps = op
        await s.apply_sync(
            [msg(i, o, ts=2 * i) for i, o in new],
            [Tombstone(OWNERS[o], f"h{i}", 60, 5) for i, o in dead],
            [SyncEntry(OWNERS[o], 0, f"h{i}", e, 10**13 + e) for i, o, e in exps],
        )


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(_op, max_size=25))
def test_kept_sums_equal_a_from_scratch_computation(ops, tmp_path_factory):
    """Any sequence of writes, deletions, expiry changes, sweeps, drops and applied syncs: the
    SQLite store's kept sums (all accounts, some buckets, a predicate, cutoffs, a settle
    bound) equal the sums computed from its rows, and the in-memory store's."""

    async def run() -> None:
        d = tmp_path_factory.mktemp("sums")
        sq = await SqliteMessageStore.open(d, max_bytes=None)
        mem = MemoryMessageStore()
        try:
            for op in ops:
                for s in (sq, mem):
                    await _apply(s, op)
            for after, before in ((0, None), (25, None), (0, 20), (30, 15), (0, 1)):
                want = await from_scratch(sq, after, before)
                got = await sq.account_sums(lambda o: True, after, before_ts=before)
                assert (
                    got == want == await mem.account_sums(lambda o: True, after, before_ts=before)
                )
                assert await sq.bucket_sums(lambda o: True, after, before_ts=before) == (
                    bucket_sums(want)
                )
                some = ["11", "ee"]
                assert await sq.account_sums(lambda o: True, after, some, before_ts=before) == {
                    o: v for o, v in want.items() if bucket_of(o) in some
                }
                pred = OWNERS[2].__ne__
                assert await sq.account_sums(pred, after, before_ts=before) == await from_scratch(
                    sq, after, before, pred
                )
        finally:
            await sq.close()

    asyncio.run(run())


async def test_sums_survive_a_restart_and_a_bad_bucket_is_refused(tmp_path):
    s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    await s.import_messages([msg(i, i % 4, exp=100 + i) for i in range(12)])
    before = await s.account_sums(lambda o: True, 0)
    await s.close()
    s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    try:
        assert await s.account_sums(lambda o: True, 0) == before == await from_scratch(s, 0, None)
        with pytest.raises(ValueError, match="bucket"):
            await s.account_sums(lambda o: True, 0, ["zz0"])
        assert set(await s.bucket_sums(lambda o: True, 0)) <= set(ALL_BUCKETS)
    finally:
        await s.close()


async def test_a_version_3_database_gets_its_sums_on_upgrade(tmp_path):
    """Messages stored before schema v4 (no kept sums) are summed by the migration."""
    from session.storage import sqlite as S

    conn = sqlite3.connect(tmp_path / "storage.db")
    for script in S._MIGRATIONS[:3]:
        for stmt in split_sql(script):
            conn.execute(stmt)
    for k, o in enumerate(OWNERS[:3]):
        conn.execute(
            "INSERT INTO owners (type, pubkey) VALUES (?, ?)",
            (int(o[:2], 16), bytes.fromhex(o[2:])),
        )
        for j in range(3):
            conn.execute(
                "INSERT INTO messages (owner, hash, namespace, timestamp, expiry, data)"
                " VALUES (?, ?, ?, 1, ?, x'00')",
                (k + 1, f"v{k}-{j}", j % 2, 100 + j),
            )
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    try:
        got = await s.account_sums(lambda o: True, 0)
        assert set(got) == set(OWNERS[:3]) and got == await from_scratch(s, 0, None)
        await s.delete_by_hash(OWNERS[0], ["v0-1"])  # and the triggers keep them from there
        assert await s.account_sums(lambda o: True, 0) == await from_scratch(s, 0, None)
    finally:
        await s.close()
