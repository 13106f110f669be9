"""Where SqliteMessageStore's writes run: small ones (a message store) on the event loop's
thread while the writer thread is idle, everything else, and anything behind a queued write,
on the writer thread; the WAL checkpointed by a thread of its own while writes go on, by the
writer thread (holding writes back) only when that thread cannot."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest

import session.storage.sqlite as S
from session.errors import InvalidInput
from session.storage import SqliteMessageStore, StoredMessage
from session.storage.base import StoreResult
from session.storage.memory import MemoryMessageStore
from session.testing.waits import until

A = "05" + "11" * 32


def msg(h: str, data: bytes = b"d") -> StoredMessage:
    return StoredMessage(A, 0, h, data, 1000, 10**13)


async def writer_idle(store: SqliteMessageStore) -> None:
    """Until every write handed to the writer thread has reported back and the thread let go
    of the connection (what the loop's thread checks before committing a write itself)."""
    w = store._writer
    assert w is not None
    await until(lambda: store._queued == 0 and not w.busy.locked())


@pytest.fixture
async def store(tmp_path):
    s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    yield s
    await s.close()


async def test_a_store_with_the_writer_idle_commits_on_the_loop_thread(store):
    r = await store.store(msg("a"))
    assert r.new
    assert (store.inline_groups, store.queued_groups) == (1, 0)
    # committed: the reader thread's own connection sees it
    assert (await store.get_by_hash("a")).data == b"d"
    # several stores of one loop iteration: one group, one commit
    res = await asyncio.gather(*(store.store(msg(f"b{i}")) for i in range(5)))
    assert all(x.new for x in res)
    assert store.inline_groups == 2
    # more than MAX_INLINE at once go to the writer thread
    await asyncio.gather(*(store.store(msg(f"c{i}")) for i in range(S.MAX_INLINE + 1)))
    assert store.queued_groups == 1
    got, _ = await store.retrieve(A, max_count=100)
    assert len(got) == 1 + 5 + S.MAX_INLINE + 1


async def test_a_store_behind_a_queued_write_waits_its_turn(store):
    await store.store(msg("old"))
    # a large write (not small) goes to the writer thread; a store issued while it is still
    # queued or running must not overtake it: it is queued behind it
    delete = asyncio.ensure_future(store.delete_all(A))
    await asyncio.sleep(0)  # the delete's loop iteration ends: handed to the writer
    later = asyncio.ensure_future(store.store(msg("new")))
    gone = await delete
    assert [h for _, h in gone] == ["old"]
    assert (await later).new
    assert store.queued_groups >= 1
    got, _ = await store.retrieve(A)
    assert [m.hash for m in got] == ["new"]  # the store ran after the delete, as issued


async def test_another_connection_holding_the_write_lock_never_blocks_the_loop(store, tmp_path):
    other = sqlite3.connect(tmp_path / "storage.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing into the file
    try:
        pending = asyncio.ensure_future(store.store(msg("x")))
        # the loop's thread did not wait for the lock: it handed the write to the writer
        # thread (which waits for it), and this loop keeps running meanwhile
        await until(lambda: store.queued_groups == 1)
        assert not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    assert (await pending).new
    assert store.inline_groups == 0
    # the lock is free again: once the writer reported back, a store commits on this thread
    await writer_idle(store)
    await store.store(msg("y"))
    assert store.inline_groups == 1
    # (the writer's connection waits for no lock at rest; only the writer thread's BEGIN does)
    assert store._writer.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0


async def checkpointed(store: SqliteMessageStore) -> None:
    """Until the checkpoints asked for so far have run."""
    cp = store._checkpointer
    assert cp is not None
    await until(lambda: not cp.pending)


async def test_the_checkpoint_thread_copies_the_wal(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "CHECKPOINT_COMMITS", 5)
    # what the checkpoint thread's connection runs: PASSIVE checkpoints only (FULL, RESTART
    # and TRUNCATE wait for writers)
    statements: list[str] = []
    connect = SqliteMessageStore._connect_checkpointer

    def traced(self: SqliteMessageStore) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(SqliteMessageStore, "_connect_checkpointer", traced)
    store = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    try:
        db = tmp_path / "storage.db"
        size0 = db.stat().st_size
        for i in range(5):
            await store.store(msg(f"k{i}", data=bytes(3000)))
        assert store.inline_groups == 5
        # the fifth commit asked the checkpoint thread: the pages reach the main file while
        # the store stays open, and nothing was handed to the writer thread for it
        await until(lambda: db.stat().st_size > size0 + 5 * 3000)
        await checkpointed(store)
        cp, w = store._checkpointer, store._writer
        assert cp is not None and cp.caught_up == cp.runs == 1
        assert w is not None and w.commits == 0 and w.held_checkpoints == 0
        assert store.queued_groups == 0 and store._queued == 0
        checkpoints = [s for s in statements if "wal_checkpoint" in s]
        assert checkpoints and set(checkpoints) == {"PRAGMA wal_checkpoint(PASSIVE)"}
        # all of it was copied, so the next write restarted the WAL: it holds that write alone
        # (five writes of 3 KB held ~50 frames)
        await store.store(msg("after"))
        assert store.inline_groups == 6
        assert wal_frames(db) < 10
    finally:
        await store.close()


async def test_writes_go_on_while_a_checkpoint_runs(tmp_path, monkeypatch):
    """The first round of a checkpoint (here one whose PRAGMA does not return until released:
    a slow disk's fsync) holds no write back: the writer's connection and lock are free
    meanwhile. (Were that round run under the writer's lock, these stores would wait.)"""
    monkeypatch.setattr(S, "CHECKPOINT_COMMITS", 2)
    release, started = threading.Event(), threading.Event()

    class Stalling(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if "wal_checkpoint" in sql and not started.is_set():
                started.set()
                release.wait(30)
            return super().execute(sql, *args)

    def stalling(self: SqliteMessageStore) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, factory=Stalling
        )

    monkeypatch.setattr(SqliteMessageStore, "_connect_checkpointer", stalling)
    store = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    try:
        cp = store._checkpointer
        assert cp is not None
        await store.store(msg("a"))
        await store.store(msg("b"))  # the second commit asks for a checkpoint
        await until(started.is_set)
        try:
            for i in range(6):  # three more checkpoints due meanwhile: asked, not waited for
                assert (await store.store(msg(f"during{i}"))).new
            assert store.inline_groups == 8 and store.queued_groups == 0
            assert store._writer is not None and store._writer.held_checkpoints == 0
            assert cp.pending and cp.held == 0
        finally:
            release.set()
        await checkpointed(store)
        got, _more = await store.retrieve(A, 0)
        assert len(got) == 8
    finally:
        await store.close()


async def test_without_its_checkpoint_thread_the_writer_checkpoints(store, tmp_path, monkeypatch):
    """The checkpoint thread gone (it could not open the file): the writer thread checkpoints,
    holding writes back, so the WAL still restarts."""
    monkeypatch.setattr(S, "CHECKPOINT_COMMITS", 3)
    cp, w = store._checkpointer, store._writer
    assert cp is not None and w is not None
    cp.stop()
    await asyncio.to_thread(cp.join)
    db = tmp_path / "storage.db"
    size0 = db.stat().st_size
    for i in range(3):
        await store.store(msg(f"k{i}", data=bytes(3000)))
    # the loop's thread never checkpoints: it queued the writer thread a job that does
    await until(lambda: w.held_checkpoints == 1)
    await until(lambda: db.stat().st_size > size0 + 3 * 3000)
    assert store.inline_groups == 3


async def test_the_last_round_holds_writes_back(store, tmp_path, monkeypatch):
    """After the first round, which copies while writes go on, a round holds them back (the
    writer's lock) for what is left: the WAL is then all copied."""
    monkeypatch.setattr(S, "CHECKPOINT_COMMITS", 2)
    monkeypatch.setattr(S, "CHECKPOINT_ROUNDS", 2)  # (the second round is the last: it waits)
    cp, w = store._checkpointer, store._writer
    assert cp is not None and w is not None
    taken = []
    real = cp._checkpoint

    def watched(conn: sqlite3.Connection) -> None:
        real(conn)
        taken.append(cp.held)

    monkeypatch.setattr(cp, "_checkpoint", watched)
    await store.store(msg("a", data=bytes(3000)))
    await store.store(msg("b", data=bytes(3000)))
    await checkpointed(store)
    assert taken == [1] and cp.caught_up == 1 and w.held_checkpoints == 0
    assert not w.busy.locked()
    await writer_idle(store)
    await store.store(msg("after"))  # (the WAL restarts: it holds this write alone)
    assert wal_frames(tmp_path / "storage.db") < 10


async def test_back_to_back_imports_keep_the_wal_short(store, tmp_path):
    """Imports committed one after another, never waiting for a checkpoint: each checkpoint's
    rounds end with all copied, so the WAL restarts instead of holding every import (a
    checkpoint that only copied what it could grew it to 150 MB). What it holds at most is the
    imports between two checkpoints (2,000 changed rows: 2.5 of these) and those committed
    while one runs (about three here)."""
    batch, imports = 400, 30
    sizes = []
    for b in range(imports):
        items = [msg(f"b{b}-{i}", data=bytes(1000)) for i in range(batch)]
        assert await store.import_messages(items) == batch
        sizes.append((tmp_path / "storage.db-wal").stat().st_size)
    await checkpointed(store)
    cp = store._checkpointer
    assert cp is not None and cp.runs >= 2
    # one import's pages are about sizes[0]: the file never held more than half of them
    assert max(sizes) < imports // 2 * sizes[0], sizes


def wal_frames(db) -> int:
    """Frames in the WAL, by another connection (a PASSIVE checkpoint reports them)."""
    conn = sqlite3.connect(db)
    try:
        _busy, frames, _done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)
    finally:
        conn.close()


async def test_large_imports_are_checkpointed_though_they_are_few_commits(store, tmp_path):
    """An import of thousands of messages is one commit: the WAL is checkpointed by changed
    rows too, so it is reused instead of holding every import since the last 250 commits
    (a bulk fill grew it to gigabytes)."""
    db = tmp_path / "storage.db"
    batch = 1500
    sizes = []
    for b in range(6):
        items = [msg(f"b{b}-{i}", data=bytes(300)) for i in range(batch)]
        assert await store.import_messages(items) == batch
        await writer_idle(store)
        await checkpointed(store)
        sizes.append((tmp_path / "storage.db-wal").stat().st_size)
    assert store._writer is not None and store._writer.commits < S.CHECKPOINT_COMMITS
    # each import's pages were checkpointed after it and the WAL restarted from its start by
    # the next: the file stays about one import long (six imports without it)
    assert sizes[-1] < 2 * sizes[0], sizes
    assert wal_frames(db) * 4096 <= 2 * sizes[0]


async def test_a_group_lost_whole_on_the_loop_thread_is_rerun_by_the_writer(store):
    """SQLite may roll a whole transaction back (SQLITE_FULL, an I/O error): an inline group it
    loses is handed to the writer thread, which re-runs each write alone, rather than re-run
    on the loop's thread, where a write waits for the lock with the writer's busy timeout."""

    def lost(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # what SQLite does to the transaction on such an error
        raise sqlite3.OperationalError("database or disk is full")

    await writer_idle(store)
    kept, gone = await asyncio.gather(
        store.store(msg("kept")), store._write(lost, small=True), return_exceptions=True
    )
    assert not isinstance(kept, BaseException) and kept.new
    assert isinstance(gone, S.StorageError)
    assert (store.inline_groups, store.queued_groups) == (0, 1)
    got, _ = await store.retrieve(A, max_count=10)
    assert [m.hash for m in got] == ["kept"]


async def test_several_stores_commit_together_now_or_not_at_all(store):
    """``store_many_now`` (a forwarded batch's stores): one transaction on the loop's thread,
    each message's own outcome (a duplicate is not new); None with nothing written when a
    write is queued before them or they are more than MAX_INLINE; InvalidInput, nothing
    written, for a message that is not valid. The memory store does the same at once."""
    await writer_idle(store)
    before = store.inline_groups
    out = store.store_many_now([msg("m1"), msg("m2"), msg("m1")])
    assert out is not None
    assert [r.new for r in out if isinstance(r, StoreResult)] == [True, True, False]
    assert store.inline_groups == before + 1  # one commit for the three
    assert (await store.get_by_hash("m2")) is not None
    assert store.store_many_now([msg(f"x{i}") for i in range(S.MAX_INLINE + 1)]) is None
    delete = asyncio.ensure_future(store.delete_all(A))
    await asyncio.sleep(0)  # (handed to the writer thread)
    assert store.store_many_now([msg("y")]) is None
    await delete
    bad = StoredMessage("05" + "zz" * 32, 0, "z", b"d", 1000, 10**13)
    with pytest.raises(InvalidInput):
        store.store_many_now([msg("z1"), bad])
    for h in ("x0", "y", "z1"):
        assert await store.get_by_hash(h) is None
    mem = MemoryMessageStore()
    got = mem.store_many_now([msg("m1"), msg("m1")])
    assert [r.new for r in got if isinstance(r, StoreResult)] == [True, False]
    with pytest.raises(InvalidInput):
        mem.store_many_now([msg("z1"), bad])
    assert await mem.get_by_hash("z1") is None


async def test_an_open_that_fails_leaves_no_thread_behind(tmp_path, monkeypatch):
    """open() fails after its writer and checkpoint threads started (here the loop thread's
    read-only connection): the error is the caller's, and neither thread is left running with
    the file open."""

    def refuse(self: SqliteMessageStore) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(SqliteMessageStore, "_connect_inline", refuse)
    before = set(threading.enumerate())  # (other tests' stores are theirs to close)
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await SqliteMessageStore.open(tmp_path, max_bytes=None)
    names = ("store-writer", "store-reader", "store-checkpoint")
    await until(lambda: not [t for t in set(threading.enumerate()) - before if t.name in names])
