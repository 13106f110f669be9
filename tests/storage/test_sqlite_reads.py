"""Small reads of the SQLite store on the event loop's own thread (bounded, handed on to the
reader thread when they run long or would wait for a lock)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from session.errors import StorageError
from session.storage import SqliteMessageStore, StoredMessage
from session.storage import sqlite as sqlite_mod

OWNER = "05" + "ab" * 32


def msg(i: int, owner: str = OWNER) -> StoredMessage:
    now = int(time.time() * 1000)
    return StoredMessage(owner, 0, f"h{i:05d}", f"data {i}".encode(), now, now + 3_600_000)


@pytest.fixture
async def store(tmp_path):
    s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    yield s
    await s.close()


async def test_small_reads_run_on_the_loop_thread(store):
    for i in range(5):
        await store.store(msg(i))
    got, more = await store.retrieve(OWNER, max_count=3)
    assert [m.hash for m in got] == ["h00000", "h00001", "h00002"] and more
    assert await store.get_expiries(OWNER, ["h00001", "nope"]) == {"h00001": got[1].expiry_ms}
    found = await store.get_by_hash("h00004")
    assert found is not None and found.data == b"data 4"
    assert await store.subaccount_revoked(OWNER, b"\x01" * 36) is False
    assert store.inline_reads == 4 and store.inline_handed_on == 0


async def test_a_read_over_budget_is_handed_to_the_reader_thread(store, monkeypatch):
    await store.import_messages([msg(i) for i in range(300)])
    # A budget already spent: SQLite's progress handler interrupts the read at its first check.
    monkeypatch.setattr(sqlite_mod, "INLINE_READ_BUDGET_S", -1.0)
    got, more = await store.retrieve(OWNER)
    assert [m.hash for m in got] == [f"h{i:05d}" for i in range(300)] and not more
    assert store.inline_handed_on == 1 and store.inline_reads == 0
    # A read too small to reach a check of the budget still runs on the loop's thread.
    assert await store.get_by_hash("h00007") is not None
    assert store.inline_reads == 1


async def test_a_read_beside_an_open_write_sees_committed_data_without_waiting(store, tmp_path):
    await store.store(msg(1))
    token = b"\x02" * 32
    other = sqlite3.connect(tmp_path / "storage.db", isolation_level=None)
    try:
        # a write transaction left open by another connection: WAL readers do not wait for it
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO revoked_subaccounts (owner, token, timestamp) VALUES (?, ?, 1)",
            (bytes.fromhex(OWNER), token),
        )
        assert await store.subaccount_revoked(OWNER, token) is False
        got, _ = await store.retrieve(OWNER)
        assert [m.hash for m in got] == ["h00001"]
        assert store.inline_reads == 2 and store.inline_handed_on == 0
        other.execute("COMMIT")
        assert await store.subaccount_revoked(OWNER, token) is True
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize(
    "code",
    [
        sqlite3.SQLITE_BUSY,
        # what SQLite reports (Python's sqlite_errorcode is the extended code) when the
        # wal-index is being rebuilt, and for a shared-cache lock
        sqlite3.SQLITE_BUSY_RECOVERY,
        sqlite3.SQLITE_LOCKED_SHAREDCACHE,
    ],
)
async def test_a_read_that_would_wait_for_a_lock_is_handed_to_the_reader_thread(store, code):
    await store.store(msg(1))

    # SQLite answers SQLITE_BUSY at once on the loop's connection (busy_timeout 0) where the
    # reader thread's connection would wait; a WAL reader meets it only in rare moments (a
    # wal-index being rebuilt), so the loop's connection is made to meet it here.
    def op(conn: sqlite3.Connection) -> list[str]:
        if conn is store._inline:
            e = sqlite3.OperationalError("database is locked")
            e.sqlite_errorcode = code
            raise e
        return [r[0] for r in conn.execute("SELECT hash FROM messages")]

    assert await store._read_small(op) == ["h00001"]
    assert store.inline_handed_on == 1 and store.inline_reads == 0
    assert store._inline.execute("PRAGMA busy_timeout").fetchone()[0] == 0


async def test_an_inline_database_error_is_a_storage_error(store):
    with pytest.raises(StorageError, match="database error"):
        await store._read_small(lambda conn: conn.execute("SELECT nope FROM nowhere"))


async def test_the_inline_connection_is_read_only_and_closed_with_the_store(tmp_path):
    s = await SqliteMessageStore.open(tmp_path, max_bytes=None)
    with pytest.raises(StorageError, match="attempt to write a readonly database"):
        await s._read_small(lambda conn: conn.execute("DELETE FROM handoff_targets"))
    await s.close()
    with pytest.raises(StorageError, match="closed"):
        await s.retrieve(OWNER)
