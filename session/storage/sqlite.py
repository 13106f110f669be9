"""SQLite :class:`MessageStore`.

* One dedicated writer thread owns the write connection. Writes are queued and committed in
  groups (several operations per transaction, each inside its own SAVEPOINT so one failing
  operation never undoes another); a caller's future resolves only after its transaction
  committed. If SQLite rolls a whole group back (it may, for ``SQLITE_FULL``), every operation of
  the group is re-run alone in its own transaction, so each caller gets its own exact outcome.
* Small writes (a message store: a few rows) skip the hand-off when the writer thread has
  nothing to do: the event loop's thread commits them itself on the writer's connection
  (:meth:`_DbThread.run_inline`), in the same kind of group, with the writer held off by a lock.
  At a replica's pace (one forwarded write every few milliseconds) the hand-off cost two thread
  wake-ups a write (the writer's, then the loop's for the result), more than the write itself.
  Only when no earlier write is still queued or running, so writes stay in order. The write
  connection's ``busy_timeout`` is 0 at rest, so such a commit never waits for another
  process's write lock (it is left to the writer thread, whose ``BEGIN`` alone waits up to
  :data:`BUSY_TIMEOUT_MS`: :meth:`_DbThread.begin`). Commits never
  checkpoint on their own (``wal_autocheckpoint`` off): every :data:`CHECKPOINT_COMMITS` commits
  or :data:`CHECKPOINT_ROWS` changed rows, whichever comes first (an import of thousands of
  messages is one commit), a checkpoint thread with its own connection copies the WAL into the
  database file while writes go on (:class:`_Checkpointer`), so that no write waits for a
  checkpoint's copy and fsyncs, and the WAL is reused instead of growing. A checkpoint on the
  writer's connection held every write of the node back for tens of milliseconds, and all the
  members of a swarm, writing the same messages, reached theirs at the same moment: every store
  then waited (the p99 of a 12-node devnet at 100 messages/s was 41-70 ms with it, 18 ms
  without). After its first round, which copies nearly all while writes go on, it copies what
  was written meanwhile holding writes back (the writer's lock, taken when free, waited for
  in the last of :data:`CHECKPOINT_ROUNDS`), so the WAL is all copied and restarts from its
  start at the next write whatever the write pattern. Without that thread (it could not open
  the file) the writer thread checkpoints, holding writes back, as before. A WAL file that grew
  is cut back to :data:`WAL_SIZE_LIMIT_BYTES` when it restarts (``journal_size_limit``).
* A second thread owns a read-only connection (WAL lets it read while the writer writes).
* Small indexed reads on a client's request path (``retrieve``, ``get_expiries``,
  ``get_by_hash``, ``subaccount_revoked``) run on the event loop's own thread with a third,
  read-only connection: handing a read of ten messages to the reader thread and its answer back
  costs two thread wake-ups and two GIL hand-offs, several times the query itself. Such a read
  is bounded: SQLite's progress handler interrupts it once it has run for
  :data:`INLINE_READ_BUDGET_S`, it never waits for a lock (``busy_timeout = 0``), and an
  interrupted or locked-out read is run again on the reader thread, so a slow query cannot stall
  the loop for longer than the budget (reads have no side effects: running one again is safe).
* Pragmas: WAL, ``synchronous=NORMAL``, ``foreign_keys=ON``; the size cap is ``max_page_count``
  (an insert that would grow the file past it fails with ``SQLITE_FULL`` → :class:`StorageFull`).
* Schema versioned with ``PRAGMA user_version`` and a list of migrations
  (:mod:`session.dbschema`): an older file is migrated on open, a newer one refused.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from session.dbschema import migrate
from session.errors import InvalidInput, StorageError, StorageFull
from session.proto.rpc.namespaces import is_public_outbox_namespace
from session.storage.base import (
    ALL_BUCKETS,
    DEFAULT_MSG_OVERHEAD,
    MAX_REVOKED_PER_OWNER,
    MessageStore,
    StoredMessage,
    StoreResult,
    StoreStats,
    SyncApplied,
    SyncEntry,
    Tombstone,
    check_expiry_args,
    check_namespace,
    check_owner,
    digest_rows,
    newer_expiry,
    now_ms,
    sum_line,
    take_page,
    xor_sum,
)

T = TypeVar("T")

#: File name inside the node's data directory (the same name Session's storage server uses).
DB_FILENAME = "storage.db"

#: Default cap, as Session's storage server: 3.5 GiB.
DEFAULT_MAX_BYTES = 3584 * 1024 * 1024

#: Most write operations committed in one transaction.
MAX_GROUP = 256
#: Most small writes of one loop iteration the loop's thread commits itself (more go to the
#: writer thread: a loop iteration is not held up by a long group).
MAX_INLINE = 8
#: Commits between two WAL checkpoints (by the writer thread; SQLite's automatic checkpoint,
#: every 1,000 WAL pages, is off, see the module docstring). A store commits ~4 pages.
CHECKPOINT_COMMITS = 250
#: Rows changed (inserted, updated, deleted; triggers' included) between two WAL checkpoints,
#: whatever the number of commits: a reconciliation import or a bulk import writes thousands
#: of rows in one commit, and counting commits alone let the WAL grow by gigabytes.
CHECKPOINT_ROWS = 2000
#: Rounds of one background checkpoint: the first while writes go on, the next ones (each
#: copying what was written during the one before) under the writer's lock if it is free,
#: the last waiting for it, so that the WAL is all copied and restarts at the next write.
CHECKPOINT_ROUNDS = 3
#: What a restarted WAL file is cut back to (``journal_size_limit``): one burst of writes does
#: not leave a large file behind for good.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
#: How long the writer thread waits for another connection's write lock (milliseconds).
BUSY_TIMEOUT_MS = 15000

#: Longest a read may run on the event loop's thread before it is interrupted and handed to the
#: reader thread instead (seconds of wall-clock time; an indexed read of a page of messages
#: takes tens of microseconds).
INLINE_READ_BUDGET_S = 0.002

#: SQLite virtual-machine steps between two checks of that budget.
_INLINE_CHECK_STEPS = 1000

_MIGRATIONS: list[str] = [
    # v1
    f"""
CREATE TABLE owners (
    id INTEGER PRIMARY KEY,
    type INTEGER NOT NULL,
    pubkey BLOB NOT NULL,
    UNIQUE(pubkey, type)
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    owner INTEGER NOT NULL REFERENCES owners(id),
    namespace INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    expiry INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX messages_expiry ON messages(expiry);
CREATE INDEX messages_owner ON messages(owner, namespace, id);
CREATE TRIGGER owner_autoclean AFTER DELETE ON messages FOR EACH ROW
    WHEN NOT EXISTS (SELECT 1 FROM messages WHERE owner = old.owner)
    BEGIN DELETE FROM owners WHERE id = old.owner; END;
CREATE TABLE revoked_subaccounts (
    owner BLOB NOT NULL,
    token BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY(owner, token)
) WITHOUT ROWID;
CREATE TRIGGER revoked_autoclean AFTER INSERT ON revoked_subaccounts
    WHEN (SELECT COUNT(*) FROM revoked_subaccounts WHERE owner = NEW.owner)
        > {MAX_REVOKED_PER_OWNER}
    BEGIN
        DELETE FROM revoked_subaccounts WHERE owner = NEW.owner AND token NOT IN (
            SELECT token FROM revoked_subaccounts WHERE owner = NEW.owner
            ORDER BY timestamp DESC LIMIT {MAX_REVOKED_PER_OWNER});
    END;
""",
    # v2: swarm reconciliation (when each expiry was set; client deletions as tombstones)
    """
ALTER TABLE messages ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
CREATE TABLE tombstones (
    hash TEXT PRIMARY KEY,
    owner BLOB NOT NULL,
    expiry INTEGER NOT NULL,
    deleted INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tombstones_owner ON tombstones(owner);
CREATE INDEX tombstones_expiry ON tombstones(expiry);
""",
    # v3: hand-off retries that survive a restart (new swarm members still owed a copy)
    """
CREATE TABLE handoff_targets (
    ed25519 TEXT PRIMARY KEY,
    entry TEXT NOT NULL
) WITHOUT ROWID;
""",
    # v4: each account's running sync digest (base.sum_rows), kept by triggers as messages are
    # written, deleted or change expiry (sync_toggle, sync_sum: Python functions the writer
    # connection registers); the timestamp index finds the recent messages a settled
    # comparison leaves out
    """
ALTER TABLE owners ADD COLUMN digest BLOB;
CREATE INDEX messages_timestamp ON messages(timestamp);
UPDATE owners SET digest = (
    SELECT sync_sum(namespace, hash, expiry) FROM messages WHERE owner = owners.id);
CREATE TRIGGER messages_digest_insert AFTER INSERT ON messages BEGIN
    UPDATE owners SET digest = sync_toggle(digest, NEW.namespace, NEW.hash, NEW.expiry)
        WHERE id = NEW.owner;
END;
CREATE TRIGGER messages_digest_delete AFTER DELETE ON messages BEGIN
    UPDATE owners SET digest = sync_toggle(digest, OLD.namespace, OLD.hash, OLD.expiry)
        WHERE id = OLD.owner;
END;
CREATE TRIGGER messages_digest_update AFTER UPDATE OF owner, namespace, hash, expiry ON messages
BEGIN
    UPDATE owners SET digest = sync_toggle(digest, OLD.namespace, OLD.hash, OLD.expiry)
        WHERE id = OLD.owner;
    UPDATE owners SET digest = sync_toggle(digest, NEW.namespace, NEW.hash, NEW.expiry)
        WHERE id = NEW.owner;
END;
""",
]

#: The schema version this code writes.
SCHEMA_VERSION = len(_MIGRATIONS)

#: A timestamp later than any message's (``account_digests`` without ``before_ts``).
_NO_TS = 2**63 - 1

_SEL = "SELECT o.type, o.pubkey, m.namespace, m.hash, m.data, m.timestamp, m.expiry"
_FROM = " FROM messages m JOIN owners o ON m.owner = o.id"


def _msg(row: tuple[Any, ...]) -> StoredMessage:
    t, pk, ns, h, data, ts, exp = row
    return StoredMessage(bytes([t]).hex() + bytes(pk).hex(), ns, h, bytes(data), ts, exp)


def _owner_key(owner: str) -> tuple[int, bytes]:
    raw = check_owner(owner)
    return raw[0], raw[1:]


class _SumAgg:
    """``sync_sum(namespace, hash, expiry)``: XOR of :func:`sum_line` over rows (migration v4)."""

    def __init__(self) -> None:
        self.acc = 0

    def step(self, ns: int, h: str, exp: int) -> None:
        self.acc ^= int.from_bytes(sum_line(ns, h, exp), "big")

    def finalize(self) -> bytes:
        return self.acc.to_bytes(16, "big")


def _toggle(digest: bytes | None, ns: int, h: str, exp: int) -> bytes:
    """``sync_toggle(digest, namespace, hash, expiry)``: ``digest`` with the message's line
    added, or taken out if it was in (XOR)."""
    return xor_sum(digest, sum_line(ns, h, exp))


def _digest_functions(conn: sqlite3.Connection) -> None:
    """Register the functions the digest triggers call (on every connection that writes)."""
    conn.create_function("sync_toggle", 4, _toggle, deterministic=True)
    # (typeshed knows only one-argument aggregates)
    conn.create_aggregate("sync_sum", 3, _SumAgg)  # type: ignore[arg-type]


def _bucket_range(bucket: str) -> tuple[str, tuple[bytes, ...]]:
    """SQL condition (on ``o.pubkey``) and arguments selecting the owners of a digest bucket."""
    if len(bucket) != 2:
        raise ValueError(f"not a digest bucket: {bucket!r}")
    b = int(bucket, 16)
    lo = bytes([b])
    if b == 255:
        return "o.pubkey >= ?", (lo,)
    return "o.pubkey >= ? AND o.pubkey < ?", (lo, bytes([b + 1]))


def _is_full(e: BaseException) -> bool:
    return (
        isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )


class _Job:
    __slots__ = ("done", "fn", "fut", "loop", "small")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        loop,
        fut,
        small: bool = False,
        done: Callable[[bool, Any], None] | None = None,
    ) -> None:
        self.fn = fn
        self.loop = loop
        #: where the outcome goes: this future, or (``fut`` None) the ``done`` callback
        self.fut = fut
        #: a few rows: may be committed on the loop's thread (see SqliteMessageStore._flush)
        self.small = small
        #: called on the loop's thread with (ok, value or exception) instead of a future
        self.done = done


def _deliver(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _deliver_job(job: _Job, ok: bool, value: Any) -> None:
    """A job's outcome to its future, or to its ``done`` callback (on the loop's thread)."""
    if job.done is not None:
        job.done(ok, value)
    elif job.fut is not None:
        _deliver(job.fut, ok, value)


def _no_op(conn: sqlite3.Connection) -> None:
    """A write that writes nothing: queued to have the writer thread checkpoint (it does after
    any batch once one is due)."""


def _retrieved(fut: asyncio.Future[Any]) -> None:
    """(a future nobody awaits) read its outcome, so an error is not reported as lost"""
    if not fut.cancelled():
        fut.exception()


class _Checkpointer(threading.Thread):
    """Copies the WAL's committed pages into the database file (PASSIVE checkpoints) on its own
    connection when asked, while the writer goes on committing (module docstring).

    A PASSIVE checkpoint copies what the WAL held when it began; frames written meanwhile stay
    in the WAL, which restarts from its start only if all of it was copied when a write
    transaction begins. So one request runs rounds: the first, which copies nearly all, while
    writes go on; the next ones, which copy what was written meanwhile (a round with nothing
    to copy does no I/O), under ``hold``, the writer's lock, when it is free, and the last of
    :data:`CHECKPOINT_ROUNDS` waits for it. A round under the lock that copies all ends the
    request: no write was under way, so the next one restarts the WAL. (The loop's thread only
    tries that lock and gives its writes to the writer thread when it is taken: it never waits
    for a checkpoint.)"""

    def __init__(self, connect: Callable[[], sqlite3.Connection], hold: threading.Lock) -> None:
        super().__init__(name="store-checkpoint", daemon=True)
        self._connect = connect
        self._hold = hold
        self._wake = threading.Event()
        self._stopping = False
        #: requests made (by whoever holds the writer's ``busy``), and the last one a finished
        #: checkpoint began after
        self.requested = 0
        self.served = 0
        #: checkpoints finished; those that left the WAL entirely copied; those whose last
        #: round held writes back
        self.runs = 0
        self.caught_up = 0
        self.held = 0

    def request(self) -> None:
        self.requested += 1
        self._wake.set()

    @property
    def pending(self) -> bool:
        """A checkpoint was asked for that has not run yet (or is running)."""
        return self.served < self.requested

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error:
            # (not alive: the writer thread checkpoints itself, maybe_checkpoint)
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                asked = self.requested
                self._checkpoint(conn)
                self.served = asked
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        for n in range(1, CHECKPOINT_ROUNDS + 1):
            # Round 1, the long one, never holds writes back. Later rounds copy what was
            # written meanwhile, under the writer's lock when it is free (the last one waits
            # for it): only a round under the lock knows no write is under way, so only then
            # is the WAL known to restart at the next write.
            held = n > 1 and self._hold.acquire(blocking=n == CHECKPOINT_ROUNDS)
            try:
                if held:
                    self.held += 1
                row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                break  # (I/O trouble: the next request tries again; nothing is lost)
            finally:
                if held:
                    self._hold.release()
            busy, frames, copied = row
            if frames < 0:  # (not in WAL mode: nothing to do)
                break
            # (busy: a reader still uses older frames; a later round or request copies them)
            if held and not busy and copied >= frames:
                self.caught_up += 1
                break
        self.runs += 1


def _post(job: _Job, ok: bool, value: Any) -> None:
    """Hand a result back to the job's event loop (ignored if that loop is already closed)."""
    try:
        job.loop.call_soon_threadsafe(_deliver_job, job, ok, value)
    except RuntimeError:
        pass


class _DbThread(threading.Thread):
    """A thread owning one connection; runs jobs from a queue (grouped if ``group``)."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection], group: bool) -> None:
        super().__init__(name=name, daemon=True)
        self._connect = connect
        self._group = group
        # A list is the jobs one event-loop iteration wrote (see SqliteMessageStore._write).
        self._q: queue.SimpleQueue[_Job | list[_Job] | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.conn: sqlite3.Connection | None = None
        self.max_page_count = 0
        self.page_size = 4096
        #: held while jobs run on the connection: by this thread for each batch, by the loop's
        #: thread for :meth:`run_inline`
        self.busy = threading.Lock()
        #: commits since the last WAL checkpoint (changed under ``busy`` only)
        self.commits = 0
        #: the connection's ``total_changes`` at the last WAL checkpoint
        self.changes_at_checkpoint = 0
        #: checkpoints while writes go on (writer only; None: the writer checkpoints itself)
        self.checkpointer: _Checkpointer | None = None
        #: checkpoints the writer thread ran itself, holding writes back
        self.held_checkpoints = 0
        #: called (from this thread) after each batch's results were posted, with the batch
        self.on_batch_done: Callable[[list[_Job]], None] | None = None

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._q.put(_Job(fn, loop, fut))
        return fut

    def submit_many(self, jobs: list[_Job]) -> None:
        """Queue ``jobs`` (in order) with one hand-off to the thread."""
        self._q.put(jobs)

    def stop(self) -> None:
        self._q.put(None)

    def run(self) -> None:
        try:
            self.conn = self._connect()
        except BaseException as e:  # reported to the opener
            self._start_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                job = self._q.get()
                if job is None:
                    break
                batch = job if isinstance(job, list) else [job]
                stop = False
                while self._group and len(batch) < MAX_GROUP:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.extend(nxt if isinstance(nxt, list) else [nxt])
                with self.busy:
                    results = (
                        self._run_group(batch)
                        if self._group
                        else [self._run_read(j) for j in batch]
                    )
                    for j, (ok, value) in zip(batch, results, strict=True):
                        _post(j, ok, value)
                    if self.on_batch_done is not None:
                        self.on_batch_done(batch)
                    if self._group:
                        self.maybe_checkpoint()
                if stop:
                    break
        finally:
            self.conn.close()
            # Anything still queued after a stop gets a clear error instead of hanging.
            while True:
                try:
                    left = self._q.get_nowait()
                except queue.Empty:
                    break
                for j in left if isinstance(left, list) else [left] if left else []:
                    _post(j, False, StorageError("the message store is closed"))

    def _translate(self, e: BaseException) -> BaseException:
        if _is_full(e):
            return StorageFull(
                f"message store is full (cap {self.max_page_count * self.page_size} bytes); "
                "new messages are refused until old ones expire or are deleted"
            )
        if isinstance(e, sqlite3.Error):
            return StorageError(f"database error: {e}")
        return e

    def run_inline(self, jobs: list[_Job]) -> tuple[list[tuple[bool, Any]], bool] | None:
        """Run ``jobs`` as one group on the calling thread, if this thread is not running a
        batch at this moment (None: it is; queue them instead); their results, and whether
        the writer thread should checkpoint (:meth:`maybe_checkpoint`). The caller makes sure
        nothing it queued earlier is still waiting to run (the order of writes)."""
        conn = self.conn
        if conn is None or not self.busy.acquire(blocking=False):
            return None
        try:
            # Never wait here for another connection's write lock (another process writing
            # into the file: the bench's bulk fill, an operator's tool): the connection's
            # busy_timeout is 0 at rest; the writer thread waits (begin). Any failure to begin
            # leaves the jobs to the writer thread, which reports it.
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                return None
            # A group SQLite loses whole is not re-run here (that would wait for the lock with
            # the writer's busy timeout on the loop's thread): the writer thread re-runs it.
            try:
                results = self._run_group(jobs, begun=True, rerun=False)
            except _GroupLost:
                return None
            return results, self.maybe_checkpoint(here=False)
        finally:
            self.busy.release()

    def begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE`` on the writer thread: waits up to :data:`BUSY_TIMEOUT_MS` for
        another process's write lock (the connection's busy_timeout is 0 at rest, for
        :meth:`run_inline`). Once begun, a write transaction in WAL mode takes no other lock
        that could be busy, and a PASSIVE checkpoint never waits."""
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def checkpoint_due(self) -> bool:
        """Enough commits, or enough changed rows, since the last checkpoint."""
        conn = self.conn
        return self.commits >= CHECKPOINT_COMMITS or (
            conn is not None and conn.total_changes - self.changes_at_checkpoint >= CHECKPOINT_ROWS
        )

    def maybe_checkpoint(self, here: bool = True) -> bool:
        """Under ``busy``, after commits: when a checkpoint is due, ask the checkpoint thread
        for one; without that thread, run one on this thread, holding writes back (``here``:
        this is the writer thread), or return True: the writer thread should (the caller is
        the loop's thread, which never waits for a checkpoint's fsyncs)."""
        if not self.checkpoint_due():
            return False
        assert self.conn is not None
        background = self.checkpointer is not None and self.checkpointer.is_alive()
        if not background and not here:
            return True
        self.commits = 0
        self.changes_at_checkpoint = self.conn.total_changes
        if background:
            assert self.checkpointer is not None
            self.checkpointer.request()
            return False
        # No write of this store runs meanwhile (``busy``), so this copies the whole WAL and
        # the next write restarts it from its start.
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # (busy or I/O trouble: the next checkpoint tries again; nothing is lost)
        self.held_checkpoints += 1
        return False

    def _run_read(self, job: _Job) -> tuple[bool, Any]:
        assert self.conn is not None
        try:
            return True, job.fn(self.conn)
        except BaseException as e:
            return False, self._translate(e)

    def _run_group(
        self, batch: list[_Job], begun: bool = False, rerun: bool = True
    ) -> list[tuple[bool, Any]]:
        """Run ``batch`` in one transaction (each job in its savepoint). If SQLite loses the
        group as a whole, each job is re-run alone, or, with ``rerun`` False, :class:`_GroupLost`
        is raised (nothing was committed: the caller hands the jobs to the writer thread)."""
        conn = self.conn
        assert conn is not None
        if len(batch) == 1:  # its own transaction: no savepoint needed to keep others' work
            return [self._run_alone(batch[0], begun)]
        results: list[tuple[bool, Any]] = []
        try:
            if not begun:
                self.begin(conn)
            for job in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = job.fn(conn)
                except BaseException as e:
                    if not conn.in_transaction:
                        raise _GroupLost from e
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((False, self._translate(e)))
                else:
                    conn.execute("RELEASE op")
                    results.append((True, value))
            conn.execute("COMMIT")
            self.commits += 1
            return results
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
        # The group was lost as a whole: re-run each operation alone.
        if not rerun:
            raise _GroupLost
        return [self._run_alone(job) for job in batch]

    def _run_alone(self, job: _Job, begun: bool = False) -> tuple[bool, Any]:
        conn = self.conn
        assert conn is not None
        try:
            if not begun:
                self.begin(conn)
            value = job.fn(conn)
            conn.execute("COMMIT")
            self.commits += 1
            return True, value
        except BaseException as e:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            return False, self._translate(e)


class _GroupLost(Exception):
    pass


class SqliteMessageStore(MessageStore):
    """A :class:`MessageStore` in one SQLite file. Open with :meth:`open`."""

    def __init__(self, path: Path, max_bytes: int | None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._writer: _DbThread | None = None
        self._reader: _DbThread | None = None
        self._checkpointer: _Checkpointer | None = None
        self._closed = False
        #: writes of this event-loop iteration, handed to the writer together at its end
        self._pending: list[_Job] = []
        #: the read-only connection of the event loop's thread (see the module's docstring)
        self._inline: sqlite3.Connection | None = None
        self._inline_thread = 0
        self._inline_deadline = 0.0
        #: reads answered on the loop's thread, and those handed on to the reader thread
        self.inline_reads = 0
        self.inline_handed_on = 0
        #: writes handed to the writer thread whose results have not reached the loop yet
        #: (only the loop's thread changes it)
        self._queued = 0
        #: how each flushed group of writes ran: on the loop's thread, or by the writer
        self.inline_groups = 0
        self.queued_groups = 0

    @classmethod
    async def open(
        cls, path: str | Path, *, max_bytes: int | None = DEFAULT_MAX_BYTES
    ) -> SqliteMessageStore:
        """Open (creating and migrating) the database file at ``path`` (a directory means
        ``<dir>/storage.db``; ``":memory:"`` is not supported: use MemoryMessageStore)."""
        p = Path(path)
        if p.is_dir():
            p = p / DB_FILENAME
        if max_bytes is not None and max_bytes < 64 * 1024:
            raise InvalidInput("max_bytes must be at least 64 KiB")
        self = cls(p, max_bytes)
        opened = False
        try:
            self._writer = _DbThread("store-writer", self._connect_writer, group=True)
            self._writer.on_batch_done = self._batch_done
            await asyncio.to_thread(self._writer.start_and_wait)
            # (after the writer: its connection created the file, set WAL and migrated)
            self._checkpointer = _Checkpointer(self._connect_checkpointer, self._writer.busy)
            self._checkpointer.start()
            self._writer.checkpointer = self._checkpointer
            self._reader = _DbThread("store-reader", self._connect_reader, group=False)
            await asyncio.to_thread(self._reader.start_and_wait)
            self._inline = self._connect_inline()
            self._inline_thread = threading.get_ident()
            opened = True
        finally:
            if not opened:
                # whatever stopped it (a connection that cannot open or migrate, a thread
                # that cannot start, open() cancelled) goes on to the caller; the threads
                # started so far, and their connections, are closed first
                await self.close()
        return self

    # -- connections --------------------------------------------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # (see the module docstring)
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        if conn.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise StorageError("this SQLite build lacks foreign key support")
        _digest_functions(conn)
        self._migrate(conn)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        assert self._writer is not None
        self._writer.page_size = page_size
        if self.max_bytes is not None:
            pages = max(self.max_bytes // page_size, 1)
            self._writer.max_page_count = conn.execute(
                f"PRAGMA max_page_count = {int(pages)}"
            ).fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")  # at rest (see _DbThread.begin)
        return conn

    def _connect_checkpointer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # (the WAL's fsync before a copy and the file's after it, as the writer's NORMAL)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 0")  # (a PASSIVE checkpoint never waits anyway)
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 15000")
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _connect_inline(self) -> sqlite3.Connection:
        # check_same_thread=False: close() may run on another thread than open(); _read_small
        # uses it only on the thread that opened it.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA query_only = ON")
        conn.set_progress_handler(self._inline_over_budget, _INLINE_CHECK_STEPS)
        return conn

    def _inline_over_budget(self) -> bool:
        return time.perf_counter() > self._inline_deadline

    def _migrate(self, conn: sqlite3.Connection) -> None:
        migrate(conn, _MIGRATIONS, what=f"database {self.path}", program="session-node")

    # -- plumbing -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self._writer is None or self._reader is None:
            raise StorageError("the message store is closed")

    async def _write(self, fn: Callable[[sqlite3.Connection], T], small: bool = False) -> T:
        # Writes are collected for the rest of this event-loop iteration and handed to the
        # writer thread with one queue put (a batch of forwarded stores, or the stores of
        # several requests, costs one thread wake-up instead of one each); the writer still
        # runs them in order, each in its own savepoint of one transaction. A few ``small``
        # ones, with the writer idle, are committed right here instead (module docstring).
        self._check_open()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._collect(_Job(fn, loop, fut, small), loop)
        return await fut

    def _collect(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        """Add ``job`` to this loop iteration's writes (flushed at its end: :meth:`_flush`)."""
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(job)

    def _flush(self) -> None:
        """Run the writes collected in this loop iteration: small ones here when nothing is
        queued before them and the writer is idle, otherwise on the writer thread."""
        jobs, self._pending = self._pending, []
        if not jobs:
            return
        if self._writer is None or self._closed:
            for j in jobs:
                _deliver_job(j, False, StorageError("the message store is closed"))
            return
        if not self._queued and len(jobs) <= MAX_INLINE and all(j.small for j in jobs):
            results = self._run_inline(jobs, jobs[0].loop)
            if results is not None:
                for j, (ok, value) in zip(jobs, results, strict=True):
                    _deliver_job(j, ok, value)
                return
        self.queued_groups += 1
        self._queued += len(jobs)
        self._writer.submit_many(jobs)

    def _run_inline(
        self, jobs: list[_Job], loop: asyncio.AbstractEventLoop
    ) -> list[tuple[bool, Any]] | None:
        """Commit ``jobs`` on this thread (:meth:`_DbThread.run_inline`); None when the writer
        thread is running a batch. The caller checked that nothing is queued before them.
        A checkpoint due is asked for there (:meth:`_DbThread.maybe_checkpoint`), or given to
        the writer thread when it must hold writes back."""
        assert self._writer is not None
        ran = self._writer.run_inline(jobs)
        if ran is None:
            return None
        results, writer_should = ran
        self.inline_groups += 1
        if writer_should:
            fut = loop.create_future()
            fut.add_done_callback(_retrieved)
            self._writer.submit_many([_Job(_no_op, loop, fut)])
            self._queued += 1
        return results

    def _batch_done(self, batch: list[_Job]) -> None:
        """(writer thread) The results of ``batch`` were posted to the loop: count them off
        there, after them (so ``_queued`` is 0 only once every queued write's result arrived)."""
        try:
            batch[0].loop.call_soon_threadsafe(self._count_done, len(batch))
        except RuntimeError:
            pass  # the loop is closed

    def _count_done(self, n: int) -> None:
        self._queued -= n

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        assert self._reader is not None
        return await self._reader.submit(fn)

    async def _read_small(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` (a small read) on this thread's read-only connection, within
        :data:`INLINE_READ_BUDGET_S`; if SQLite interrupts it for running longer, or it would
        have to wait for a lock, run it again on the reader thread (:meth:`_read_now`)."""
        got = self._read_now(fn)
        if isinstance(got, Coroutine):  # (a read's value is never a coroutine)
            return await got
        return got

    def _read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T | Coroutine[Any, Any, T]:
        """:meth:`_read_small` without a coroutine: ``fn``'s value when it ran on this thread
        within the budget, else a coroutine that runs it again on the reader thread."""
        self._check_open()
        conn = self._inline
        if conn is None or threading.get_ident() != self._inline_thread:
            return self._read(fn)
        self._inline_deadline = time.perf_counter() + INLINE_READ_BUDGET_S
        try:
            value = fn(conn)
        except sqlite3.Error as e:
            # interrupted, or locked out (by the primary code: SQLITE_BUSY_RECOVERY while the
            # wal-index is being rebuilt is a busy too): handed on below; anything else fails
            code = getattr(e, "sqlite_errorcode", None) or 0
            if code & 0xFF not in (
                sqlite3.SQLITE_INTERRUPT,
                sqlite3.SQLITE_BUSY,
                sqlite3.SQLITE_LOCKED,
            ):
                raise StorageError(f"database error: {e}") from e
        else:
            self.inline_reads += 1
            return value
        self.inline_handed_on += 1
        return self._read(fn)

    @staticmethod
    def _owner_id(conn: sqlite3.Connection, owner: str, create: bool) -> int | None:
        t, pk = _owner_key(owner)
        return SqliteMessageStore._owner_id_of(conn, t, pk, create)

    @staticmethod
    def _owner_id_of(conn: sqlite3.Connection, t: int, pk: bytes, create: bool) -> int | None:
        """The owners row of (type byte, 32-byte key), created if ``create``; None if absent."""
        row = conn.execute(
            "SELECT id FROM owners WHERE pubkey = ? AND type = ?", (pk, t)
        ).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        cur = conn.execute("INSERT INTO owners (type, pubkey) VALUES (?, ?)", (t, pk))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    # -- writes -------------------------------------------------------------------------

    async def store(self, msg: StoredMessage) -> StoreResult:
        return await self._write(self._store_op(msg), small=True)

    def store_then(self, msg: StoredMessage, done: Callable[[bool, Any], None]) -> None:
        """:meth:`store` with no future: the write joins this loop iteration's group commit
        (as :meth:`store`'s does) and ``done(ok, value)`` gets its outcome on the loop's
        thread, a StoreResult or the StorageError (a client's store answered without a task:
        :meth:`session.node.rpc.RpcHandler.respond_later`)."""
        op = self._store_op(msg)
        self._check_open()
        loop = asyncio.get_running_loop()
        self._collect(_Job(op, loop, None, True, done), loop)

    def store_now(self, msg: StoredMessage) -> StoreResult | None:
        """:meth:`store` committed on this (the event loop's) thread at once, when no write is
        collected, queued or running before it and small writes may be committed here
        (:data:`MAX_INLINE`); None otherwise, with nothing written. A forwarded replica write
        answered without a task (``session.node.forwarded``)."""
        out = self.store_many_now([msg])
        if out is None:
            return None
        if isinstance(out[0], StorageError):
            raise out[0]
        return out[0]

    def store_many_now(
        self, msgs: Sequence[StoredMessage]
    ) -> list[StoreResult | StorageError] | None:
        """:meth:`store_now` for several messages in one transaction (each in its savepoint):
        a forwarded batch's writes answered without a task, one commit for all. None when a
        write is collected, queued or running before them, or they are more than
        :data:`MAX_INLINE`."""
        ops = [self._store_op(m) for m in msgs]
        self._check_open()
        if self._pending or self._queued or len(ops) > MAX_INLINE:
            return None
        loop = asyncio.get_running_loop()
        results = self._run_inline([_Job(op, loop, None, True) for op in ops], loop)
        if results is None:
            return None
        out: list[StoreResult | StorageError] = []
        for ok, value in results:
            if not ok and not isinstance(value, StorageError):
                raise value  # a bug: surfaces
            out.append(value)
        return out

    def _store_op(self, msg: StoredMessage) -> Callable[[sqlite3.Connection], StoreResult]:
        """The write of :meth:`store` (``msg`` validated first: raises InvalidInput). A new
        message (the common case) is inserted at once; only a hash already stored is looked
        up, to keep the later of the two expiries."""
        msg.validate()
        data = bytes(msg.data)
        raw = bytes.fromhex(msg.owner)  # (validated: 66 lowercase hex)
        t, pk = raw[0], raw[1:]

        def op(conn: sqlite3.Connection) -> StoreResult:
            now = now_ms()
            if is_public_outbox_namespace(msg.namespace):
                old = self._owner_id_of(conn, t, pk, False)
                if old is not None:
                    gone = conn.execute(
                        "DELETE FROM messages WHERE owner = ? AND namespace = ? AND hash != ?"
                        " RETURNING hash, expiry",
                        (old, msg.namespace, msg.hash),
                    ).fetchall()
                    _bury(conn, msg.owner, gone, now)
            # (after the outbox clear: removing an owner's last message drops its owners row)
            oid = self._owner_id_of(conn, t, pk, True)
            inserted = conn.execute(
                "INSERT INTO messages (owner, hash, namespace, timestamp, expiry, data, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
                (oid, msg.hash, msg.namespace, msg.timestamp_ms, msg.expiry_ms, data, now),
            ).rowcount
            if inserted:
                conn.execute("DELETE FROM tombstones WHERE hash = ?", (msg.hash,))
                return StoreResult(True, msg.expiry_ms)
            mid, exp = conn.execute(
                "SELECT id, expiry FROM messages WHERE hash = ?", (msg.hash,)
            ).fetchone()
            if exp < msg.expiry_ms:
                conn.execute(
                    "UPDATE messages SET expiry = ?, updated = ? WHERE id = ?",
                    (msg.expiry_ms, now, mid),
                )
                exp = msg.expiry_ms
            return StoreResult(False, exp)

        return op

    async def settle(self) -> None:
        # The writer runs jobs in order: this one commits after every earlier write.
        await self._write(lambda conn: None)

    async def import_messages(self, msgs: Iterable[StoredMessage]) -> int:
        items = [m.validate() for m in msgs]
        return await self._write(lambda conn: self._import(conn, items))

    def _import(self, conn: sqlite3.Connection, items: list[StoredMessage]) -> int:
        owners: dict[str, int] = {}
        n = 0
        for m in items:
            if conn.execute("SELECT 1 FROM tombstones WHERE hash = ?", (m.hash,)).fetchone():
                continue  # deleted by its owner: a member that missed that must not revive it
            oid = owners.get(m.owner)
            if oid is None:
                oid = owners[m.owner] = self._owner_id(conn, m.owner, True)  # type: ignore[assignment]
            cur = conn.execute(
                "INSERT INTO messages (owner, hash, namespace, timestamp, expiry, data, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    oid,
                    m.hash,
                    m.namespace,
                    m.timestamp_ms,
                    m.expiry_ms,
                    bytes(m.data),
                    m.updated_ms,
                ),
            )
            n += cur.rowcount
        return n

    async def apply_sync(
        self,
        messages: Iterable[StoredMessage],
        tombstones: Iterable[Tombstone] = (),
        expiries: Iterable[SyncEntry] = (),
    ) -> SyncApplied:
        items = [m.validate() for m in messages]
        dead = [t.validate() for t in tombstones]
        exps = list(expiries)

        def op(conn: sqlite3.Connection) -> SyncApplied:
            deleted = 0
            for t in dead:
                conn.execute(
                    "INSERT INTO tombstones (hash, owner, expiry, deleted) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (t.hash, check_owner(t.owner), t.expiry_ms, t.deleted_ms),
                )
                oid = self._owner_id(conn, t.owner, False)
                if oid is not None:
                    deleted += conn.execute(
                        "DELETE FROM messages WHERE hash = ? AND owner = ?", (t.hash, oid)
                    ).rowcount
            imported = self._import(conn, items)
            changed = 0
            for e in exps:
                row = conn.execute(
                    "SELECT id, updated, expiry FROM messages WHERE hash = ?", (e.hash,)
                ).fetchone()
                if row is not None and newer_expiry((row[1], row[2]), (e.updated_ms, e.expiry_ms)):
                    conn.execute(
                        "UPDATE messages SET expiry = ?, updated = ? WHERE id = ?",
                        (e.expiry_ms, e.updated_ms, row[0]),
                    )
                    changed += 1
            return SyncApplied(imported, deleted, changed)

        return await self._write(op)

    async def delete_by_hash(self, owner: str, hashes: Sequence[str]) -> list[str]:
        check_owner(owner)
        hs = list(dict.fromkeys(hashes))

        def op(conn: sqlite3.Connection) -> list[str]:
            oid = self._owner_id(conn, owner, False)
            if oid is None:
                return []
            gone = []
            for h in hs:
                r = conn.execute(
                    "DELETE FROM messages WHERE owner = ? AND hash = ? RETURNING hash, expiry",
                    (oid, h),
                ).fetchone()
                if r is not None:
                    gone.append(r)
            _bury(conn, owner, gone, now_ms())
            return [h for h, _ in gone]

        return await self._write(op)

    async def _owner_rows(
        self,
        owner: str,
        statement: str,
        params: dict[str, Any],
        namespace: int | None,
        *,
        bury: bool = False,
    ) -> list[tuple[int, str]]:
        """Run ``statement`` (a DELETE/UPDATE of the rows of ``:owner``, the owner's row id) on
        one namespace or all of them; returns ``(namespace, hash)`` of every row it touched.
        ``bury``: the statement deletes, so leave tombstones for the deleted rows."""
        check_owner(owner)
        if namespace is not None:
            statement += " AND namespace = :ns"
        statement += " RETURNING namespace, hash, expiry"

        def op(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            oid = self._owner_id(conn, owner, False)
            if oid is None:
                return []
            now = now_ms()
            rows = conn.execute(statement, {**params, "owner": oid, "ns": namespace, "now": now})
            out = [(int(a), str(b), int(c)) for a, b, c in rows]
            if bury:
                _bury(conn, owner, [(h, e) for _, h, e in out], now)
            return [(ns, h) for ns, h, _ in out]

        return await self._write(op)

    async def delete_all(self, owner: str, namespace: int | None = None) -> list[tuple[int, str]]:
        if namespace is not None:
            check_owner(owner)  # owner errors first, as the memory store reports them
            check_namespace(namespace)
        return await self._owner_rows(
            owner, "DELETE FROM messages WHERE owner = :owner", {}, namespace, bury=True
        )

    async def delete_before(
        self, owner: str, before_ms: int, namespace: int | None = None
    ) -> list[tuple[int, str]]:
        return await self._owner_rows(
            owner,
            "DELETE FROM messages WHERE owner = :owner AND timestamp <= :before",
            {"before": before_ms},
            namespace,
            bury=True,
        )

    async def update_expiry(
        self,
        owner: str,
        hashes: Sequence[str],
        expiries: Sequence[int],
        *,
        extend_only: bool = False,
        shorten_only: bool = False,
    ) -> list[tuple[str, int]]:
        check_owner(owner)
        check_expiry_args(hashes, expiries, extend_only, shorten_only)
        cond = " AND expiry < ?1" if extend_only else " AND expiry > ?1" if shorten_only else ""
        hs, exps = list(hashes), list(expiries)

        def op(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            oid = self._owner_id(conn, owner, False)
            if oid is None:
                return []
            out = []
            now = now_ms()
            q = (
                "UPDATE messages SET expiry = ?1, updated = ?4 WHERE hash = ?2 AND owner = ?3"
                + cond
            )
            for i, h in enumerate(hs):
                e = exps[0] if len(exps) == 1 else exps[i]
                if conn.execute(q, (e, h, oid, now)).rowcount > 0:
                    out.append((h, e))
            return out

        return await self._write(op)

    async def update_all_expiries(
        self, owner: str, expiry_ms: int, namespace: int | None = None
    ) -> list[tuple[int, str]]:
        return await self._owner_rows(
            owner,
            "UPDATE messages SET expiry = :expiry, updated = :now"
            " WHERE expiry > :expiry AND owner = :owner",
            {"expiry": expiry_ms},
            namespace,
        )

    async def sweep_expired(self, now_ms: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM tombstones WHERE expiry <= ?", (now_ms,))
            return conn.execute("DELETE FROM messages WHERE expiry <= ?", (now_ms,)).rowcount

        return await self._write(op)

    async def drop_accounts(self, predicate: Callable[[str], bool]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            n = 0
            for oid, t, pk in conn.execute("SELECT id, type, pubkey FROM owners").fetchall():
                if predicate(bytes([t]).hex() + bytes(pk).hex()):
                    n += conn.execute("DELETE FROM messages WHERE owner = ?", (oid,)).rowcount
            for (raw,) in conn.execute("SELECT DISTINCT owner FROM tombstones").fetchall():
                if predicate(bytes(raw).hex()):
                    conn.execute("DELETE FROM tombstones WHERE owner = ?", (raw,))
            return n

        return await self._write(op)

    async def revoke_subaccounts(self, owner: str, tokens: Sequence[bytes], now_ms: int) -> None:
        raw = check_owner(owner)
        toks = [bytes(t) for t in tokens]

        def op(conn: sqlite3.Connection) -> None:
            for t in toks:
                conn.execute(
                    "INSERT INTO revoked_subaccounts (owner, token, timestamp) VALUES (?, ?, ?)"
                    " ON CONFLICT(owner, token) DO UPDATE SET timestamp = excluded.timestamp"
                    " WHERE revoked_subaccounts.timestamp < excluded.timestamp",
                    (raw, t, now_ms),
                )

        await self._write(op)

    async def unrevoke_subaccounts(self, owner: str, tokens: Sequence[bytes]) -> int:
        raw = check_owner(owner)
        toks = list(dict.fromkeys(bytes(t) for t in tokens))

        def op(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute(
                    "DELETE FROM revoked_subaccounts WHERE owner = ? AND token = ?", (raw, t)
                ).rowcount
                for t in toks
            )

        return await self._write(op)

    # -- reads --------------------------------------------------------------------------

    async def retrieve(
        self,
        owner: str,
        namespace: int = 0,
        last_hash: str | None = None,
        max_count: int | None = None,
        max_size: int | None = None,
        *,
        size_b64: bool = True,
        overhead: int = DEFAULT_MSG_OVERHEAD,
    ) -> tuple[list[StoredMessage], bool]:
        return await self._read_small(
            self._retrieve_op(owner, namespace, last_hash, max_count, max_size, size_b64, overhead)
        )

    def retrieve_now(
        self,
        owner: str,
        namespace: int = 0,
        last_hash: str | None = None,
        max_count: int | None = None,
        max_size: int | None = None,
    ) -> tuple[list[StoredMessage], bool] | Coroutine[Any, Any, tuple[list[StoredMessage], bool]]:
        return self._read_now(
            self._retrieve_op(
                owner, namespace, last_hash, max_count, max_size, True, DEFAULT_MSG_OVERHEAD
            )
        )

    def _retrieve_op(
        self,
        owner: str,
        namespace: int,
        last_hash: str | None,
        max_count: int | None,
        max_size: int | None,
        size_b64: bool,
        overhead: int,
    ) -> Callable[[sqlite3.Connection], tuple[list[StoredMessage], bool]]:
        """The read of :meth:`retrieve` (``owner`` checked first: raises InvalidInput)."""
        check_owner(owner)

        def op(conn: sqlite3.Connection) -> tuple[list[StoredMessage], bool]:
            oid = self._owner_id(conn, owner, False)
            if oid is None:
                return [], False
            after = 0
            if last_hash:
                r = conn.execute(
                    "SELECT id FROM messages WHERE owner = ? AND namespace = ? AND hash = ?",
                    (oid, namespace, last_hash),
                ).fetchone()
                if r is not None:
                    after = r[0]
            limit = max(max_count, 1) + 1 if max_count is not None else -1
            cur = conn.execute(
                "SELECT hash, data, timestamp, expiry FROM messages"
                " WHERE owner = ? AND namespace = ? AND id > ? ORDER BY id LIMIT ?",
                (oid, namespace, after, limit),
            )
            messages = (
                StoredMessage(owner, namespace, h, bytes(data), ts, exp) for h, data, ts, exp in cur
            )
            return take_page(messages, max_count, max_size, size_b64=size_b64, overhead=overhead)

        return op

    async def get_expiries(self, owner: str, hashes: Sequence[str]) -> dict[str, int]:
        return await self._read_small(self._expiries_op(owner, hashes))

    def get_expiries_now(
        self, owner: str, hashes: Sequence[str]
    ) -> dict[str, int] | Coroutine[Any, Any, dict[str, int]]:
        return self._read_now(self._expiries_op(owner, hashes))

    def _expiries_op(
        self, owner: str, hashes: Sequence[str]
    ) -> Callable[[sqlite3.Connection], dict[str, int]]:
        """The read of :meth:`get_expiries` (``owner`` checked first)."""
        check_owner(owner)
        hs = list(dict.fromkeys(hashes))

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            oid = self._owner_id(conn, owner, False)
            if oid is None:
                return {}
            out = {}
            for h in hs:
                r = conn.execute(
                    "SELECT expiry FROM messages WHERE owner = ? AND hash = ?", (oid, h)
                ).fetchone()
                if r is not None:
                    out[h] = int(r[0])
            return dict(sorted(out.items()))

        return op

    async def get_by_hash(self, hash: str) -> StoredMessage | None:
        def op(conn: sqlite3.Connection) -> StoredMessage | None:
            r = conn.execute(_SEL + _FROM + " WHERE m.hash = ?", (hash,)).fetchone()
            return None if r is None else _msg(r)

        return await self._read_small(op)

    async def subaccount_revoked(self, owner: str, token: bytes) -> bool:
        return await self._read_small(self._revoked_op(owner, token))

    def subaccount_revoked_now(self, owner: str, token: bytes) -> bool | Coroutine[Any, Any, bool]:
        return self._read_now(self._revoked_op(owner, token))

    def _revoked_op(self, owner: str, token: bytes) -> Callable[[sqlite3.Connection], bool]:
        """The read of :meth:`subaccount_revoked` (``owner`` checked first)."""
        raw = check_owner(owner)
        return lambda conn: (
            conn.execute(
                "SELECT 1 FROM revoked_subaccounts WHERE owner = ? AND token = ?",
                (raw, bytes(token)),
            ).fetchone()
            is not None
        )

    async def owners(self) -> list[str]:
        rows = await self._read(
            lambda conn: conn.execute("SELECT type, pubkey FROM owners").fetchall()
        )
        return sorted(bytes([t]).hex() + bytes(pk).hex() for t, pk in rows)

    async def export(self, predicate: Callable[[str], bool]) -> list[StoredMessage]:
        def op(conn: sqlite3.Connection) -> list[StoredMessage]:
            wanted = [
                oid
                for oid, t, pk in conn.execute("SELECT id, type, pubkey FROM owners").fetchall()
                if predicate(bytes([t]).hex() + bytes(pk).hex())
            ]
            out: list[StoredMessage] = []
            for oid in wanted:
                out.extend(
                    _msg(r)
                    for r in conn.execute(_SEL + _FROM + " WHERE m.owner = ? ORDER BY m.id", (oid,))
                )
            return out

        return await self._read(op)

    async def export_part(
        self, owners: Sequence[str], max_bytes: int
    ) -> tuple[list[StoredMessage], int]:
        todo = list(owners)

        def op(conn: sqlite3.Connection) -> tuple[list[StoredMessage], int]:
            out: list[StoredMessage] = []
            size = 0
            for k, owner in enumerate(todo):
                oid = self._owner_id(conn, owner, False)
                if oid is None:
                    continue
                (n,) = conn.execute(
                    "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM messages WHERE owner = ?", (oid,)
                ).fetchone()
                if k and n and size + n > max_bytes:
                    return out, k
                out.extend(
                    _msg(r)
                    for r in conn.execute(_SEL + _FROM + " WHERE m.owner = ? ORDER BY m.id", (oid,))
                )
                size += n
            return out, len(todo)

        return await self._read(op)

    def _owner_ids(
        self, conn: sqlite3.Connection, predicate: Callable[[str], bool]
    ) -> list[tuple[int, str]]:
        rows = conn.execute("SELECT id, type, pubkey FROM owners ORDER BY id").fetchall()
        return [
            (oid, o) for oid, t, pk in rows if predicate(o := bytes([t]).hex() + bytes(pk).hex())
        ]

    async def sync_index(self, predicate: Callable[[str], bool], after_ms: int) -> list[SyncEntry]:
        def op(conn: sqlite3.Connection) -> list[SyncEntry]:
            out: list[SyncEntry] = []
            for oid, owner in self._owner_ids(conn, predicate):
                out.extend(
                    SyncEntry(owner, ns, h, exp, upd)
                    for ns, h, exp, upd in conn.execute(
                        "SELECT namespace, hash, expiry, updated FROM messages"
                        " WHERE owner = ? AND expiry > ?",
                        (oid, after_ms),
                    )
                )
            return out

        return await self._read(op)

    async def account_digests(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None = None,
        *,
        before_ts: int | None = None,
    ) -> dict[str, bytes]:
        # One bucket a read (a range of the owners' (pubkey, type) index, then each owner's
        # rows by the messages' owner index): a bucket's rows at a time, never the whole store,
        # and retrieves get the reader between buckets.
        def op(bucket: str) -> Callable[[sqlite3.Connection], dict[str, bytes]]:
            where, args = _bucket_range(bucket)

            def run(conn: sqlite3.Connection) -> dict[str, bytes]:
                names: dict[int, str | None] = {}
                rows = []
                for oid, t, pk, ns, h, e in conn.execute(
                    "SELECT o.id, o.type, o.pubkey, m.namespace, m.hash, m.expiry"
                    " FROM owners o JOIN messages m ON m.owner = o.id"
                    f" WHERE {where} AND m.expiry > ? AND m.timestamp < ?",
                    (*args, after_ms, _NO_TS if before_ts is None else before_ts),
                ):
                    name = names.get(oid, "")
                    if name == "":
                        o = bytes([t]).hex() + bytes(pk).hex()
                        name = names[oid] = o if predicate(o) else None
                    if name is not None:
                        rows.append((name, ns, h, e))
                return digest_rows(rows)

            return run

        wanted = ALL_BUCKETS if buckets is None else sorted(set(buckets))
        out: dict[str, bytes] = {}
        for bucket in wanted:
            out.update(await self._read(op(bucket)))
        return out

    async def account_sums(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None = None,
        *,
        before_ts: int | None = None,
    ) -> dict[str, bytes]:
        # The owners' running digests (kept by the v4 triggers), then, in the same snapshot,
        # the few messages the comparison leaves out taken back out: those expiring by
        # ``after_ms`` (expired but not yet swept, or about to) and, for a settled comparison,
        # those stamped at or after ``before_ts`` (the last seconds' writes). Reads one row per
        # account plus those messages, never the store's every message.
        ranges = None if buckets is None else [_bucket_range(b) for b in sorted(set(buckets))]

        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            conn.execute("BEGIN")  # (one snapshot for the digests and the corrections)
            try:
                q = "SELECT o.id, o.type, o.pubkey, o.digest FROM owners o"
                rows = (
                    conn.execute(q).fetchall()
                    if ranges is None
                    else [
                        r
                        for where, args in ranges
                        for r in conn.execute(f"{q} WHERE {where}", args)
                    ]
                )
                sums: dict[int, list[Any]] = {}
                for oid, t, pk, d in rows:
                    o = bytes([t]).hex() + bytes(pk).hex()
                    if predicate(o):
                        sums[oid] = [o, 0 if d is None else int.from_bytes(d, "big")]
                # (by the expiry and timestamp indexes, streamed: the rows are not held, and
                # those of accounts not asked about cost only their index step)
                left_out = [
                    conn.execute(
                        "SELECT owner, namespace, hash, expiry FROM messages WHERE expiry <= ?",
                        (after_ms,),
                    )
                ]
                if before_ts is not None:
                    left_out.append(
                        conn.execute(
                            "SELECT owner, namespace, hash, expiry FROM messages"
                            " WHERE timestamp >= ? AND expiry > ?",
                            (before_ts, after_ms),
                        )
                    )
                for cursor in left_out:
                    for oid, ns, h, exp in cursor:
                        s = sums.get(oid)
                        if s is not None:
                            s[1] ^= int.from_bytes(sum_line(ns, h, exp), "big")
            finally:
                conn.execute("COMMIT")
            return {o: v.to_bytes(16, "big") for o, v in sums.values() if v}

        return await self._read(run)

    async def sync_index_of(self, owners: Collection[str], after_ms: int) -> list[SyncEntry]:
        wanted = sorted(set(owners))

        def op(conn: sqlite3.Connection) -> list[SyncEntry]:
            out: list[SyncEntry] = []
            for owner in wanted:
                oid = self._owner_id(conn, owner, False)
                if oid is None:
                    continue
                out.extend(
                    SyncEntry(owner, ns, h, exp, upd)
                    for ns, h, exp, upd in conn.execute(
                        "SELECT namespace, hash, expiry, updated FROM messages"
                        " WHERE owner = ? AND expiry > ?",
                        (oid, after_ms),
                    )
                )
            return out

        return await self._read(op)

    async def sync_index_part(
        self, owners: Sequence[str], after_ms: int, max_entries: int
    ) -> tuple[list[SyncEntry], int]:
        todo = list(owners)

        def op(conn: sqlite3.Connection) -> tuple[list[SyncEntry], int]:
            out: list[SyncEntry] = []
            for k, owner in enumerate(todo):
                oid = self._owner_id(conn, owner, False)
                if oid is None:
                    continue
                rows = conn.execute(
                    "SELECT namespace, hash, expiry, updated FROM messages"
                    " WHERE owner = ? AND expiry > ? LIMIT ?",
                    (oid, after_ms, max(max_entries - len(out), 0) + 1 if k else -1),
                ).fetchall()
                if k and len(out) + len(rows) > max_entries:
                    return out, k
                out.extend(SyncEntry(owner, ns, h, exp, upd) for ns, h, exp, upd in rows)
            return out, len(todo)

        return await self._read(op)

    async def tombstones_of(self, owners: Collection[str], after_ms: int) -> list[Tombstone]:
        wanted = sorted(set(owners))

        def op(conn: sqlite3.Connection) -> list[Tombstone]:
            out: list[Tombstone] = []
            for owner in wanted:
                out.extend(
                    Tombstone(owner, h, exp, deleted)
                    for h, exp, deleted in conn.execute(
                        "SELECT hash, expiry, deleted FROM tombstones"
                        " WHERE owner = ? AND expiry > ?",
                        (check_owner(owner), after_ms),
                    )
                )
            return out

        return await self._read(op)

    async def tombstones(self, predicate: Callable[[str], bool], after_ms: int) -> list[Tombstone]:
        def op(conn: sqlite3.Connection) -> list[Tombstone]:
            rows = conn.execute(
                "SELECT owner, hash, expiry, deleted FROM tombstones WHERE expiry > ?", (after_ms,)
            ).fetchall()
            out = []
            for raw, h, exp, deleted in rows:
                owner = bytes(raw).hex()
                if predicate(owner):
                    out.append(Tombstone(owner, h, exp, deleted))
            return out

        return await self._read(op)

    async def get_many(self, hashes: Sequence[str]) -> list[StoredMessage]:
        hs = list(dict.fromkeys(hashes))

        def op(conn: sqlite3.Connection) -> list[StoredMessage]:
            out = []
            for h in hs:
                r = conn.execute(
                    _SEL + ", m.updated" + _FROM + " WHERE m.hash = ?", (h,)
                ).fetchone()
                if r is not None:
                    t, pk, ns, hh, data, ts, exp, upd = r
                    out.append(
                        StoredMessage(
                            bytes([t]).hex() + bytes(pk).hex(), ns, hh, bytes(data), ts, exp, upd
                        )
                    )
            return out

        return await self._read(op)

    async def stats(self) -> StoreStats:
        def op(conn: sqlite3.Connection) -> StoreStats:
            ((n, data),) = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM messages"
            )
            owners = conn.execute("SELECT COUNT(*) FROM owners").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            psize = conn.execute("PRAGMA page_size").fetchone()[0]
            by_ns = dict(
                conn.execute(
                    "SELECT namespace, COUNT(*) FROM messages GROUP BY namespace ORDER BY namespace"
                ).fetchall()
            )
            return StoreStats(n, owners, data, (pages - free) * psize, self.max_bytes, by_ns)

        return await self._read(op)

    async def handoff_targets(self) -> dict[str, str]:
        def op(conn: sqlite3.Connection) -> dict[str, str]:
            return dict(conn.execute("SELECT ed25519, entry FROM handoff_targets").fetchall())

        return await self._read(op)

    async def set_handoff_target(self, ed25519: str, entry: str | None) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if entry is None:
                conn.execute("DELETE FROM handoff_targets WHERE ed25519 = ?", (ed25519,))
            else:
                conn.execute(
                    "INSERT INTO handoff_targets VALUES (?, ?)"
                    " ON CONFLICT(ed25519) DO UPDATE SET entry = excluded.entry",
                    (ed25519, entry),
                )

        await self._write(op)

    async def close(self) -> None:
        if self._closed:
            return
        self._flush()  # writes accepted before close still run
        self._closed = True
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        for th in (self._reader, self._writer, self._checkpointer):
            if th is not None and th.ident is not None:  # (started: open() may have failed)
                th.stop()
                await asyncio.to_thread(th.join)


def _bury(conn: sqlite3.Connection, owner: str, gone: Iterable[tuple[str, int]], now: int) -> None:
    """Leave a tombstone for each client-deleted ``(hash, expiry)`` of ``owner``."""
    raw = check_owner(owner)
    conn.executemany(
        "INSERT INTO tombstones (hash, owner, expiry, deleted) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [(h, raw, exp, now) for h, exp in gone],
    )
