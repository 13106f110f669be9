"""MessageStore semantics, run against both back ends (SQLite and in-memory)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session.dbschema import split_sql
from session.errors import InvalidInput, StorageError, StorageFull
from session.node.replication import bucket_digests
from session.storage import MemoryMessageStore, SqliteMessageStore, StoredMessage
from session.storage.base import SyncEntry, Tombstone
from session.storage.sqlite import SCHEMA_VERSION

A = "05" + "11" * 32
B = "03" + "22" * 32


def msg(
    h: str, owner: str = A, ns: int = 0, data: bytes = b"d", ts: int = 1000, exp: int = 5000
) -> StoredMessage:
    return StoredMessage(owner, ns, h, data, ts, exp)


@pytest.fixture(params=["sqlite", "memory"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    else:
        s = MemoryMessageStore()
    yield s
    await s.close()


async def make_capped(kind: str, tmp_path, cap: int):
    if kind == "sqlite":
        return await SqliteMessageStore.open(tmp_path / "capped.db", max_bytes=cap)
    return MemoryMessageStore(max_bytes=cap)


async def test_store_is_idempotent_and_raises_expiry(store):
    r = await store.store(msg("h1", exp=5000))
    assert r.new and r.expiry_ms == 5000
    r = await store.store(msg("h1", exp=4000))
    assert not r.new and r.expiry_ms == 5000  # a shorter duplicate changes nothing
    r = await store.store(msg("h1", exp=9000))
    assert not r.new and r.expiry_ms == 9000
    msgs, more = await store.retrieve(A)
    assert [m.hash for m in msgs] == ["h1"] and msgs[0].expiry_ms == 9000 and not more
    assert (await store.stats()).messages == 1


async def test_retrieve_order_last_hash_and_namespaces(store):
    for i in range(5):
        await store.store(msg(f"a{i}", data=bytes([i])))
    await store.store(msg("other-ns", ns=3))
    await store.store(msg("other-owner", owner=B))
    msgs, more = await store.retrieve(A, 0)
    assert [m.hash for m in msgs] == [f"a{i}" for i in range(5)] and not more
    assert msgs[2].data == b"\x02" and msgs[2].owner == A and msgs[2].namespace == 0
    msgs, _ = await store.retrieve(A, 0, last_hash="a2")
    assert [m.hash for m in msgs] == ["a3", "a4"]
    # unknown last hash (or one of another namespace) → from the start
    assert len((await store.retrieve(A, 0, last_hash="nope"))[0]) == 5
    assert len((await store.retrieve(A, 0, last_hash="other-ns"))[0]) == 5
    assert [m.hash for m in (await store.retrieve(A, 3))[0]] == ["other-ns"]
    assert (await store.retrieve("05" + "99" * 32, 0)) == ([], False)


async def test_retrieve_limits(store):
    for i in range(6):
        await store.store(msg(f"h{i}", data=b"x" * 300))
    msgs, more = await store.retrieve(A, max_count=4)
    assert len(msgs) == 4 and more
    msgs, more = await store.retrieve(A, max_count=6)
    assert len(msgs) == 6 and not more
    msgs, more = await store.retrieve(A, max_count=0)  # at least one
    assert len(msgs) == 1 and more
    # each message counts 100 + 2 + 400 = 502 bytes
    msgs, more = await store.retrieve(A, max_size=1004)
    assert len(msgs) == 2 and more
    msgs, more = await store.retrieve(A, max_size=1003)
    assert len(msgs) == 1 and more
    msgs, more = await store.retrieve(A, max_size=1)  # the first message always fits
    assert len(msgs) == 1 and more


async def test_public_outbox_keeps_one_message(store):
    await store.store(msg("p1", ns=-21))
    await store.store(msg("p2", ns=-21))
    await store.store(msg("keep", ns=-20))
    assert [m.hash for m in (await store.retrieve(A, -21))[0]] == ["p2"]
    r = await store.store(msg("p2", ns=-21, exp=7000))  # duplicate: stays, expiry raised
    assert not r.new and r.expiry_ms == 7000
    assert [m.hash for m in (await store.retrieve(A, -20))[0]] == ["keep"]


async def test_deletes(store):
    for i in range(4):
        await store.store(msg(f"h{i}", ns=i % 2, ts=1000 + i))
    await store.store(msg("b0", owner=B))
    assert sorted(await store.delete_by_hash(A, ["h0", "b0", "zz", "h0"])) == ["h0"]
    assert await store.get_by_hash("b0") is not None  # another owner's hash is untouched
    assert await store.delete_before(A, 1002, 1) == [(1, "h1")]  # only namespace 1
    assert sorted(await store.delete_before(A, 1002)) == [(0, "h2")]  # h3 is later
    assert await store.delete_all(A, 1) == [(1, "h3")]
    assert await store.delete_all(A) == []
    assert await store.owners() == [B]
    assert await store.delete_all(B, 0) == [(0, "b0")]
    assert await store.owners() == []


async def test_expiry_updates(store):
    await store.store(msg("a", exp=5000))
    await store.store(msg("b", exp=8000))
    await store.store(msg("c", ns=2, exp=9000))
    assert await store.update_expiry(A, ["a", "b", "x"], [6000], extend_only=True) == [("a", 6000)]
    assert await store.update_expiry(A, ["a", "b"], [7000], shorten_only=True) == [("b", 7000)]
    assert await store.update_expiry(A, ["a", "b"], [100, 200]) == [("a", 100), ("b", 200)]
    assert await store.get_expiries(A, ["b", "a", "x"]) == {"a": 100, "b": 200}
    assert await store.get_expiries(B, ["a"]) == {}
    assert sorted(await store.update_all_expiries(A, 150)) == [(0, "b"), (2, "c")]
    assert await store.get_expiries(A, ["a", "b", "c"]) == {"a": 100, "b": 150, "c": 150}
    assert await store.update_all_expiries(A, 120, 2) == [(2, "c")]
    with pytest.raises(InvalidInput):
        await store.update_expiry(A, ["a", "b"], [1, 2, 3])
    with pytest.raises(InvalidInput):
        await store.update_expiry(A, ["a"], [1], extend_only=True, shorten_only=True)


async def test_sweep(store):
    for i in range(10):
        await store.store(msg(f"h{i}", exp=1000 + i))
    assert await store.sweep_expired(1004) == 5
    assert await store.sweep_expired(1004) == 0
    assert [m.hash for m in (await store.retrieve(A))[0]] == [f"h{i}" for i in range(5, 10)]


async def test_export_import_drop(store, tmp_path):
    for i in range(3):
        await store.store(msg(f"a{i}", ns=i))
    await store.store(msg("b0", owner=B, data=b"\x00\xff"))
    exported = await store.export(lambda o: o == B)
    assert exported == [msg("b0", owner=B, data=b"\x00\xff")]
    everything = await store.export(lambda o: True)
    assert [m.hash for m in everything] == ["a0", "a1", "a2", "b0"]

    other = MemoryMessageStore()
    assert await other.import_messages(everything) == 4
    assert await other.import_messages(everything) == 0  # conflicts ignored
    assert await other.export(lambda o: True) == everything

    assert await store.drop_accounts(lambda o: o.startswith("05")) == 3
    assert await store.owners() == [B]
    assert await store.import_messages(everything) == 3
    assert [m.hash for m in (await store.retrieve(A, 2))[0]] == ["a2"]


async def test_deletions_leave_tombstones_that_block_imports(store):
    for h in ("d1", "d2", "d3", "keep"):
        await store.store(msg(h, exp=9000))
    await store.store(msg("x1", ns=5, ts=500, exp=7000))
    await store.delete_by_hash(A, ["d1"])
    await store.delete_before(A, 600, 5)
    await store.delete_all(A, 0)
    dead = {t.hash: t for t in await store.tombstones(lambda o: o == A, 0)}
    assert set(dead) == {"d1", "d2", "d3", "keep", "x1"}
    assert dead["x1"].expiry_ms == 7000 and dead["d1"].owner == A
    assert await store.import_messages([msg("d1"), msg("fresh")]) == 1
    assert await store.get_by_hash("d1") is None
    # a client storing the same message again clears its tombstone
    assert (await store.store(msg("d2", exp=9000))).new
    assert "d2" not in {t.hash for t in await store.tombstones(lambda o: True, 0)}
    # tombstones expire with the messages they stand for
    await store.sweep_expired(8000)
    assert {t.hash for t in await store.tombstones(lambda o: True, 0)} == {"d1", "d3", "keep"}
    assert await store.tombstones(lambda o: True, 9000) == []
    await store.drop_accounts(lambda o: o == A)
    assert await store.tombstones(lambda o: True, 0) == []


async def test_public_outbox_replacement_leaves_a_tombstone(store):
    await store.store(msg("old", ns=-21))
    await store.store(msg("new", ns=-21))
    assert [t.hash for t in await store.tombstones(lambda o: True, 0)] == ["old"]
    assert await store.import_messages([msg("old", ns=-21)]) == 0


async def test_expiry_changes_are_stamped_and_sync_keeps_the_newest(store):
    await store.store(msg("h", exp=5000))
    (first,) = await store.sync_index(lambda o: True, 0)
    assert first.updated_ms > 0
    await store.update_expiry(A, ["h"], [6000])
    await store.update_all_expiries(A, 5500)
    (e,) = await store.sync_index(lambda o: True, 0)
    assert e.expiry_ms == 5500 and e.updated_ms >= first.updated_ms
    older = SyncEntry(A, 0, "h", 9999, e.updated_ms - 1)
    newer = SyncEntry(A, 0, "h", 4000, e.updated_ms + 1)
    assert (await store.apply_sync([], [], [older])).expiries == 0
    assert (await store.apply_sync([], [], [newer])).expiries == 1
    assert await store.get_expiries(A, ["h"]) == {"h": 4000}
    assert await store.sync_index(lambda o: True, 4000) == []  # expiring by the cutoff


async def test_apply_sync_imports_buries_and_get_many_carries_the_stamp(store):
    await store.store(msg("here"))
    r = await store.apply_sync(
        [StoredMessage(B, 3, "new", b"n", 10, 6000, 77), msg("here")],
        [Tombstone(A, "here", 5000, 1), Tombstone(A, "never-seen", 5000, 1)],
    )
    assert (r.imported, r.deleted, r.expiries) == (1, 1, 0)
    assert await store.get_by_hash("here") is None
    (got,) = await store.get_many(["new", "missing"])
    assert got == StoredMessage(B, 3, "new", b"n", 10, 6000, 77)
    with pytest.raises(InvalidInput):
        await store.apply_sync([], [Tombstone("zz", "h", 1, 1)])


async def test_revocations(store):
    toks = [bytes([3, 1, 0, 0]) + bytes([i]) * 32 for i in range(60)]
    await store.revoke_subaccounts(B, toks[:2], 1000)
    assert await store.subaccount_revoked(B, toks[0])
    assert not await store.subaccount_revoked(A, toks[0])
    assert await store.unrevoke_subaccounts(B, [toks[0], toks[0], toks[5]]) == 1
    assert not await store.subaccount_revoked(B, toks[0])
    for i, t in enumerate(toks):
        await store.revoke_subaccounts(B, [t], 2000 + i)
    # only the newest 50 are kept
    assert not await store.subaccount_revoked(B, toks[9])
    assert await store.subaccount_revoked(B, toks[10]) and await store.subaccount_revoked(
        B, toks[59]
    )


async def test_stats(store):
    await store.store(msg("a", data=b"12345"))
    await store.store(msg("b", ns=3, data=b"123"))
    await store.store(msg("c", owner=B, ns=3))
    s = await store.stats()
    assert (s.messages, s.owners, s.data_bytes) == (3, 2, 9)
    assert s.by_namespace == {0: 1, 3: 2}
    assert s.db_bytes > 0


async def test_bad_input_is_typed_and_changes_nothing(store):
    await store.store(msg("ok"))
    for bad in [
        msg("x", owner="05zz"),
        msg("x", ns=40000),
        msg("", owner=A),
        StoredMessage(A, 0, "x", "text", 1, 2),  # type: ignore[arg-type]
        msg("x", exp=-1),
    ]:
        with pytest.raises(InvalidInput):
            await store.store(bad)
    with pytest.raises(InvalidInput):
        await store.retrieve("nope")
    assert [m.hash for m in (await store.retrieve(A))[0]] == ["ok"]


async def test_closed_store_raises(store):
    await store.close()
    with pytest.raises(StorageError):
        await store.store(msg("x"))
    with pytest.raises(StorageError):
        await store.retrieve(A)


async def test_concurrent_writes_all_land(store):
    results = await asyncio.gather(
        *(store.store(msg(f"h{i}", data=bytes([i]))) for i in range(200))
    )
    assert all(r.new for r in results)
    msgs, _ = await store.retrieve(A, max_count=1000)
    assert len(msgs) == 200 and len({m.hash for m in msgs}) == 200


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_full_store_refuses_and_loses_nothing(kind, tmp_path):
    s = await make_capped(kind, tmp_path, 256 * 1024)
    stored = []
    with pytest.raises(StorageFull, match="full"):
        for i in range(1000):
            await s.store(msg(f"h{i}", data=bytes([i % 256]) * 4000))
            stored.append(f"h{i}")
    assert len(stored) > 10
    # concurrent writes beside a failing one: the successes are all kept
    res = await asyncio.gather(
        *(s.store(msg(f"z{i}", data=b"z" * 4000)) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, StorageFull) for r in res)
    # duplicates and deletes still work when full
    r = await s.store(msg("h0", data=bytes([0]) * 4000, exp=9999))
    assert not r.new and r.expiry_ms == 9999
    with pytest.raises(StorageFull):
        await s.import_messages([msg("imp1"), msg("imp2", data=b"y" * 100_000)])
    assert await s.get_by_hash("imp1") is None  # all-or-nothing
    got, _ = await s.retrieve(A, max_count=5000)
    assert [m.hash for m in got] == stored
    assert all(m.data == bytes([int(m.hash[1:]) % 256]) * 4000 for m in got)
    # freeing space lets new messages in again
    await s.delete_all(A)
    assert (await s.store(msg("after", data=b"a" * 4000))).new
    await s.close()


async def test_sqlite_persistence_and_schema(tmp_path):
    s = await SqliteMessageStore.open(tmp_path)
    await s.store(msg("p", data=b"persist", ns=-10))
    await s.revoke_subaccounts(B, [b"t" * 36], 5)
    await s.close()
    s = await SqliteMessageStore.open(tmp_path / "storage.db")
    assert (await s.get_by_hash("p")).data == b"persist"
    assert await s.subaccount_revoked(B, b"t" * 36)
    await s.close()
    conn = sqlite3.connect(tmp_path / "storage.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    idx = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"messages_expiry", "messages_owner"} <= idx
    assert any("messages" in i and "autoindex" in i for i in idx)  # UNIQUE(hash)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer than this session-node knows"):
        await SqliteMessageStore.open(tmp_path)


async def test_sqlite_migrates_a_version_1_database(tmp_path):
    from session.storage import sqlite as S

    conn = sqlite3.connect(tmp_path / "storage.db")
    for stmt in split_sql(S._MIGRATIONS[0]):
        conn.execute(stmt)
    conn.execute("INSERT INTO owners (type, pubkey) VALUES (5, ?)", (bytes.fromhex(A[2:]),))
    conn.execute(
        "INSERT INTO messages (owner, hash, namespace, timestamp, expiry, data)"
        " VALUES (1, 'v1', 0, 1, 5000, x'00')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    s = await SqliteMessageStore.open(tmp_path)
    assert [(e.hash, e.updated_ms) for e in await s.sync_index(lambda o: True, 0)] == [("v1", 0)]
    await s.delete_by_hash(A, ["v1"])
    assert [t.hash for t in await s.tombstones(lambda o: True, 0)] == ["v1"]
    await s.set_handoff_target("ab" * 32, '{"entry": 1}')  # v3: hand-off targets
    assert await s.handoff_targets() == {"ab" * 32: '{"entry": 1}'}
    await s.close()


async def test_sqlite_rejects_tiny_cap(tmp_path):
    with pytest.raises(InvalidInput):
        await SqliteMessageStore.open(tmp_path, max_bytes=1000)


# ---- differential: both back ends agree on random operation sequences ------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("store"), st.integers(0, 7), st.sampled_from([0, 1, -21]), st.integers(1, 50)
        ),
        st.tuples(st.just("delete"), st.integers(0, 7)),
        st.tuples(
            st.just("expire"),
            st.integers(0, 7),
            st.integers(1, 60),
            st.sampled_from(["", "extend", "shorten"]),
        ),
        st.tuples(st.just("sweep"), st.integers(0, 60)),
        st.tuples(st.just("expire_all"), st.integers(0, 60)),
    ),
    max_size=30,
)


@settings(max_examples=25)
@given(ops=_ops)
def test_backends_agree(ops, tmp_path_factory):
    async def run() -> None:
        d = tmp_path_factory.mktemp("diff")
        stores = [await SqliteMessageStore.open(d, max_bytes=None), MemoryMessageStore()]
        try:
            for op in ops:
                outs = []
                for s in stores:
                    if op[0] == "store":
                        _, i, ns, exp = op
                        outs.append(await s.store(msg(f"h{i}", ns=ns, exp=exp, data=bytes([i]))))
                    elif op[0] == "delete":
                        outs.append(await s.delete_by_hash(A, [f"h{op[1]}"]))
                    elif op[0] == "expire":
                        _, i, e, mode = op
                        outs.append(
                            await s.update_expiry(
                                A,
                                [f"h{i}"],
                                [e],
                                extend_only=mode == "extend",
                                shorten_only=mode == "shorten",
                            )
                        )
                    elif op[0] == "sweep":
                        outs.append(await s.sweep_expired(op[1]))
                    else:
                        outs.append(sorted(await s.update_all_expiries(A, op[1])))
                assert outs[0] == outs[1], op
            for ns in (0, 1, -21):
                assert (await stores[0].retrieve(A, ns)) == (await stores[1].retrieve(A, ns))
        finally:
            for s in stores:
                await s.close()

    asyncio.run(run())


async def test_account_digests_agree_across_back_ends(store):
    other = MemoryMessageStore()
    for s in (store, other):
        await s.store(msg("d1", exp=5000))
        await s.store(msg("d2", ns=3, exp=7000))
        await s.store(msg("d3", owner=B, exp=9000))
    mine = await store.account_digests(lambda o: True, 0)
    theirs = await other.account_digests(lambda o: True, 0)
    assert mine == theirs and set(mine) == {A, B}
    assert await store.account_digests(lambda o: o == B, 0) == {B: mine[B]}
    assert set(await store.account_digests(lambda o: True, 8000)) == {B}  # cutoff
    await other.update_expiry(A, ["d2"], [7001])
    assert (await other.account_digests(lambda o: True, 0))[A] != mine[A]


async def test_settle_returns_after_earlier_writes_committed(store):
    pending = asyncio.ensure_future(store.store(msg("s1")))
    await asyncio.sleep(0)  # the write is submitted, not necessarily committed
    await store.settle()
    assert pending.done() and (await store.get_by_hash("s1")) is not None


async def test_bucket_digests_stream_over_many_buckets_and_agree_across_back_ends(store):
    """Digests are computed one bucket (first pubkey byte) at a time: over accounts spread
    across every bucket they equal the whole-store computation, on both back ends."""
    other = MemoryMessageStore()
    owners = [f"{t:02x}{b:02x}" + f"{i:02x}" * 31 for b in range(256) for t, i in ((5, 1), (3, 2))]
    for s in (store, other):
        for n, o in enumerate(owners):
            await s.import_messages([msg(f"b{n}", owner=o, exp=5000 + n % 3)])
            if n % 7 == 0:
                await s.import_messages([msg(f"c{n}", owner=o, ns=n % 5, exp=4000)])
    whole = await store.account_digests(lambda o: True, 0)
    assert len(whole) == len(owners)
    assert whole == await other.account_digests(lambda o: True, 0)
    got = await store.bucket_digests(lambda o: True, 0)
    assert got == bucket_digests(whole) == await other.bucket_digests(lambda o: True, 0)
    assert len(got) == 256
    # a few buckets only; the predicate and the cutoff still apply
    part = await store.account_digests(lambda o: o.startswith("05"), 0, ["00", "ff"])
    assert part == {o: whole[o] for o in owners if o[:2] == "05" and o[2:4] in ("00", "ff")}
    late = await store.bucket_digests(lambda o: True, 4500)
    assert late != got and set(late) == set(got)  # the expiring c-messages left the digests


async def test_a_nonexistent_bucket_is_refused(tmp_path):
    q = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    try:
        with pytest.raises(ValueError, match="bucket"):
            await q.account_digests(lambda o: True, 0, ["zz0"])
    finally:
        await q.close()
    assert await MemoryMessageStore().account_digests(lambda o: True, 0, ["00"]) == {}


async def test_sync_index_and_tombstones_of_named_accounts(store):
    """The per-account look-ups a session plans from agree with the predicate scans."""
    await store.store(msg("n1", exp=5000))
    await store.store(msg("n2", owner=B, exp=9000))
    await store.store(msg("n3", owner=B, exp=9000))
    assert await store.delete_by_hash(B, ["n3"]) == ["n3"]
    absent = "05" + "77" * 32
    for owners in ([A], [B], [A, B, absent], [absent], []):
        for cutoff in (0, 6000):
            want = set(owners)
            assert sorted(
                await store.sync_index_of(owners, cutoff), key=lambda e: e.hash
            ) == sorted(await store.sync_index(want.__contains__, cutoff), key=lambda e: e.hash)
            assert sorted(await store.tombstones_of(owners, cutoff), key=lambda t: t.hash) == (
                sorted(await store.tombstones(want.__contains__, cutoff), key=lambda t: t.hash)
            )
    assert [t.hash for t in await store.tombstones_of([B], 0)] == ["n3"]


async def test_digests_before_a_timestamp_leave_recent_messages_out(store):
    """Periodic reconciliation compares messages older than a moment only: a message still
    travelling to the other members (newer timestamp) makes no account differ."""
    other = MemoryMessageStore()
    for s in (store, other):
        await s.store(msg("o1", ts=1000, exp=9000))
        await s.store(msg("o2", owner=B, ts=2000, exp=9000))
    await store.store(msg("new", ts=3000, exp=9000))  # on one member only, so far
    assert await store.account_digests(lambda o: True, 0) != await other.account_digests(
        lambda o: True, 0
    )
    for before in (3000, 2500):
        mine = await store.bucket_digests(lambda o: True, 0, before_ts=before)
        assert mine == await other.bucket_digests(lambda o: True, 0, before_ts=before)
        assert await store.account_digests(
            lambda o: True, 0, before_ts=before
        ) == await other.account_digests(lambda o: True, 0, before_ts=before)
    # the bound is strict, and applies to every message of the account
    assert set(await store.account_digests(lambda o: True, 0, before_ts=2000)) == {A}
    assert set(await store.account_digests(lambda o: True, 0, before_ts=3001)) == {A, B}
    assert await store.account_digests(lambda o: True, 0, before_ts=3001) == (
        await store.account_digests(lambda o: True, 0)
    )


async def test_sync_index_part_bounds_the_entries_by_messages(store):
    """A session takes accounts a part at a time, bounded by their entries: the first owners
    whose entries fit, always at least one (however many it has), in the order given."""
    c, d = "05" + "33" * 32, "05" + "44" * 32
    absent = "05" + "77" * 32
    for i in range(5):
        await store.store(msg(f"a{i}", exp=9000))
    for i in range(2):
        await store.store(msg(f"c{i}", owner=c, exp=9000))
    for i in range(3):
        await store.store(msg(f"d{i}", owner=d, ts=1000, exp=4000 if i == 0 else 9000))
    order = [A, absent, c, d]

    async def part(owners, n, cutoff=0):
        got, k = await store.sync_index_part(owners, cutoff, n)
        return sorted(e.hash for e in got), k

    # at least the first owner, though over; an owner without messages is covered too
    assert await part(order, 2) == ([f"a{i}" for i in range(5)], 2)
    assert await part(order, 7) == ([*(f"a{i}" for i in range(5)), "c0", "c1"], 3)
    a_c = [*(f"a{i}" for i in range(5)), "c0", "c1"]
    assert await part(order, 9) == (a_c, 3)  # d's 3 would make 10
    assert (await part(order, 10))[1] == 4
    assert await part(order, 8, cutoff=5000) == (a_c, 3)  # d0 expired by the cutoff
    assert await part(order, 9, cutoff=5000) == ([*a_c, "d1", "d2"], 4)
    assert await part([d, A], 1) == (["d0", "d1", "d2"], 1)
    assert await part([absent], 1) == ([], 1)
    assert await part([], 1) == ([], 0)


async def test_export_part_bounds_a_handoff_part_by_bytes(store):
    """Swarm handoff exports a part of the accounts at a time: the first owners whose data
    fits the bound, always at least one (however large), in the order given."""
    c, absent = "05" + "33" * 32, "05" + "77" * 32
    for i in range(3):
        await store.store(msg(f"a{i}", data=b"x" * 100))
    await store.store(msg("b0", owner=B, data=b"y" * 250))
    await store.store(msg("c0", owner=c, data=b"z" * 10))

    async def part(owners, n):
        got, k = await store.export_part(owners, n)
        return [m.hash for m in got], k

    assert await part([A, B, c], 50) == (["a0", "a1", "a2"], 1)  # one, though over
    assert await part([A, absent, B, c], 549) == (["a0", "a1", "a2"], 2)
    assert await part([A, absent, B, c], 550) == (["a0", "a1", "a2", "b0"], 3)
    assert await part([A, B, c], 560) == (["a0", "a1", "a2", "b0", "c0"], 3)
    assert await part([], 10) == ([], 0)
    whole = await store.export(lambda o: True)
    assert sorted(m.hash for m in whole) == ["a0", "a1", "a2", "b0", "c0"]
