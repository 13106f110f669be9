"""The message store interface shared by the SQLite and in-memory back ends.

A message belongs to an *owner* (the 66-hex account id, prefix included), lives in a namespace
(int16) and is identified by its hash (43-char unpadded base64, unique across the store). All
operations are ``async``: the SQLite store runs them on its own threads so the event loop never
blocks; the in-memory store runs them inline.

Semantics follow Session's storage server (``oxenss/storage/database.cpp``):

* ``store``: an existing hash is never re-inserted; its expiry is raised to the new value if that
  is later. Storing to a public-outbox namespace first deletes the owner's other messages there.
* ``retrieve``: insertion order within (owner, namespace), strictly after ``last_hash`` (unknown
  hash: from the start); a size budget counts ``overhead + len(hash) + len(data)*4//3`` per message
  and always lets the first message through.
* ``update_expiry`` (client ``expire``): set each hash's expiry, optionally only extending or only
  shortening; ``update_all_expiries`` (client ``expire_all``) only shortens.
* ``sweep_expired(now)``: deletes every message with ``expiry <= now`` (and expired tombstones).

Swarm reconciliation (``session/node/replication.py``, docs/design.md) needs three more things:

* every message records ``updated_ms``, the wall-clock time its expiry was last set (by a store
  or an expire), so two members that disagree on an expiry keep the newest one;
* a client deletion (``delete``, ``delete_all``, ``delete_before``, the public-outbox
  replacement) leaves a :class:`Tombstone` that lives until the deleted message would have
  expired; a tombstoned hash is never imported again (a member that missed the deletion cannot
  bring the message back), but a client store of the same hash clears it;
* ``sync_index``/``tombstones``/``get_many``/``apply_sync`` read and apply what members compare.

A full store raises :class:`session.errors.StorageFull` and leaves everything already stored
untouched.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from session.errors import InvalidInput, StorageError
from session.proto.rpc.namespaces import NAMESPACE_MAX, NAMESPACE_MIN

#: Per-message overhead the retrieve size budget allows for (JSON keys, timestamps, ...).
DEFAULT_MSG_OVERHEAD = 100

#: Newest revoked subaccount tokens kept per owner.
MAX_REVOKED_PER_OWNER = 50

_HEX = frozenset("0123456789abcdef")


def check_owner(owner: str) -> bytes:
    """The 33 raw bytes of a 66-lowercase-hex account id (raises :class:`InvalidInput`)."""
    if not isinstance(owner, str) or len(owner) != 66 or not set(owner) <= _HEX:
        raise InvalidInput("account id must be 66 lowercase hex characters (33 bytes)")
    return bytes.fromhex(owner)


def check_namespace(ns: int) -> int:
    if isinstance(ns, bool) or not isinstance(ns, int) or not NAMESPACE_MIN <= ns <= NAMESPACE_MAX:
        raise InvalidInput(f"namespace must be an integer from {NAMESPACE_MIN} to {NAMESPACE_MAX}")
    return ns


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message."""

    owner: str  # 66 lowercase hex characters, prefix byte included
    namespace: int
    hash: str
    data: bytes
    timestamp_ms: int
    expiry_ms: int
    #: when the expiry was last set (ms); 0 when unknown. Only swarm reconciliation reads it.
    updated_ms: int = 0

    def validate(self) -> StoredMessage:
        check_owner(self.owner)
        check_namespace(self.namespace)
        if not isinstance(self.hash, str) or not 0 < len(self.hash) <= 128:
            raise InvalidInput("message hash must be a non-empty string of at most 128 chars")
        if not isinstance(self.data, bytes | bytearray | memoryview):
            raise InvalidInput("message data must be bytes")
        for name in ("timestamp_ms", "expiry_ms", "updated_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise InvalidInput(f"{name} must be a non-negative 64-bit integer")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class StoreResult:
    """Outcome of :meth:`MessageStore.store`."""

    new: bool  # False: the hash was already stored (the request was idempotent)
    expiry_ms: int  # the message's expiry after the call (an existing one may be later)


@dataclasses.dataclass(frozen=True, slots=True)
class SyncEntry:
    """What reconciliation compares of one stored message (no data)."""

    owner: str
    namespace: int
    hash: str
    expiry_ms: int
    updated_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Tombstone:
    """A client deletion, kept until the deleted message would have expired."""

    owner: str
    hash: str
    expiry_ms: int
    deleted_ms: int

    def validate(self) -> Tombstone:
        check_owner(self.owner)
        if not isinstance(self.hash, str) or not 0 < len(self.hash) <= 128:
            raise InvalidInput("tombstone hash must be a non-empty string of at most 128 chars")
        for v in (self.expiry_ms, self.deleted_ms):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise InvalidInput("tombstone times must be non-negative 64-bit integers")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class SyncApplied:
    """Outcome of :meth:`MessageStore.apply_sync`."""

    imported: int  # messages added
    deleted: int  # messages removed by tombstones
    expiries: int  # expiries replaced by newer ones


def now_ms() -> int:
    """Wall-clock milliseconds (the ``updated_ms`` and ``deleted_ms`` stamps)."""
    return time.time_ns() // 1_000_000


def newer_expiry(mine: tuple[int, int], theirs: tuple[int, int]) -> bool:
    """Whether ``theirs`` (updated_ms, expiry_ms) wins over ``mine``: the later update, and on
    a tie the later expiry (so every member settles on the same value)."""
    return theirs > mine


def digest_rows(rows: Iterable[tuple[str, int, str, int]]) -> dict[str, bytes]:
    """owner → digest of its (namespace, hash, expiry) set, from ``(owner, namespace, hash,
    expiry)`` rows in any order: what two members compare to find the accounts they disagree
    on (16 bytes of BLAKE2b over the sorted ``namespace:hash:expiry`` lines)."""
    lines: dict[str, list[str]] = {}
    for owner, ns, h, exp in rows:
        lines.setdefault(owner, []).append(f"{ns}:{h}:{exp}\n")
    return {
        o: hashlib.blake2b("".join(sorted(ls)).encode(), digest_size=16).digest()
        for o, ls in lines.items()
    }


def bucket_of(owner: str) -> str:
    """The reconciliation digest bucket of an account: its first pubkey byte (hex) after the
    network prefix (256 buckets)."""
    return owner[2:4]


#: Every bucket :func:`bucket_of` can give, in order.
ALL_BUCKETS: tuple[str, ...] = tuple(f"{b:02x}" for b in range(256))


def bucket_digest(accounts: Mapping[str, bytes]) -> bytes:
    """The digest of one bucket from its accounts' digests (16 bytes of BLAKE2b over the sorted
    ``owner:digest`` lines)."""
    lines = sorted(f"{o}:{d.hex()}\n" for o, d in accounts.items())
    return hashlib.blake2b("".join(lines).encode(), digest_size=16).digest()


# Running digests ("sums"): what members compare since sync digests are kept up to date as
# writes happen. An account's sum is the XOR of one 16-byte line digest per message, so a
# store adds a message's line and a deletion or an expiry change takes it out again without
# reading the account's other messages; a bucket's sum is the XOR of its accounts' sums. The
# sorted-lines digests above are what members from before this compare (and still answer).

#: The sum of nothing (an account or bucket without a message).
ZERO_SUM = bytes(16)


def sum_line(namespace: int, hash: str, expiry_ms: int) -> bytes:
    """One message's share of its account's sum: 16 bytes of BLAKE2b over
    ``namespace:hash:expiry`` (the message hash already names the account)."""
    return hashlib.blake2b(f"{namespace}:{hash}:{expiry_ms}".encode(), digest_size=16).digest()


def xor_sum(*parts: bytes | None) -> bytes:
    """XOR of 16-byte sums (None counts as :data:`ZERO_SUM`)."""
    acc = 0
    for p in parts:
        if p is not None:
            acc ^= int.from_bytes(p, "big")
    return acc.to_bytes(16, "big")


def sum_rows(rows: Iterable[tuple[str, int, str, int]]) -> dict[str, bytes]:
    """owner → sum of its messages, from scratch, from ``(owner, namespace, hash, expiry)``
    rows (accounts whose sum is zero left out, as accounts without messages)."""
    acc: dict[str, int] = {}
    for owner, ns, h, exp in rows:
        acc[owner] = acc.get(owner, 0) ^ int.from_bytes(sum_line(ns, h, exp), "big")
    return {o: v.to_bytes(16, "big") for o, v in acc.items() if v}


def bucket_sums(accounts: Mapping[str, bytes]) -> dict[str, bytes]:
    """bucket → XOR of its accounts' sums (zero buckets left out)."""
    acc: dict[str, int] = {}
    for o, d in accounts.items():
        b = bucket_of(o)
        acc[b] = acc.get(b, 0) ^ int.from_bytes(d, "big")
    return {b: v.to_bytes(16, "big") for b, v in sorted(acc.items()) if v}


@dataclasses.dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts for metrics and status lines."""

    messages: int
    owners: int
    data_bytes: int  # sum of message payload sizes
    db_bytes: int  # bytes the store occupies (SQLite: pages in use; memory: estimate)
    max_bytes: int | None  # the configured cap
    by_namespace: dict[int, int]


class MessageStore(abc.ABC):
    """Persistent storage of swarm messages (see the module docstring for semantics)."""

    max_bytes: int | None

    # -- writes -------------------------------------------------------------------------

    @abc.abstractmethod
    async def store(self, msg: StoredMessage) -> StoreResult:
        """Insert ``msg`` (idempotent on its hash). Raises StorageFull when the cap is hit."""

    def store_now(self, msg: StoredMessage) -> StoreResult | None:
        """:meth:`store` without a coroutine, when the store can commit ``msg`` on the calling
        (event-loop) thread at once and after every write submitted before it: its outcome
        (raising what :meth:`store` raises). None: nothing was written; use :meth:`store`.
        This default never can."""
        return None

    def store_then(self, msg: StoredMessage, done: Callable[[bool, Any], None]) -> None:
        """:meth:`store` with its outcome handed to ``done(ok, value)`` on the event loop's
        thread (a StoreResult, or the exception :meth:`store` raised) instead of awaited: a
        client's store answered without a task (``session.node.rpc``). Raises InvalidInput at
        once, nothing written, for a message that is not valid. ``done`` may be called before
        this returns, and must not raise (stores of one group are handed their outcomes one
        after another: the RPC's callback guards itself, ``RpcLater.end_with``). This default
        commits at once where :meth:`store_now` can, else runs :meth:`store` in a task; a
        store that groups its writes overrides it."""
        try:
            now = self.store_now(msg)
        except StorageError as e:
            done(False, e)
            return
        if now is not None:
            done(True, now)
            return
        task = asyncio.ensure_future(self.store(msg))
        _STORING.add(task)  # (the loop holds tasks only weakly)
        task.add_done_callback(_STORING.discard)
        task.add_done_callback(lambda t: _task_outcome(t, done))

    def store_many_now(
        self, msgs: Sequence[StoredMessage]
    ) -> list[StoreResult | StorageError] | None:
        """:meth:`store_now` for several messages, committed together (one transaction where
        the store has them) in order: each one's outcome, a StorageError for one refused or
        failed (the others kept); or None, nothing written. Raises InvalidInput, nothing
        written, for a message that is not valid. This default never can."""
        return None

    @abc.abstractmethod
    async def import_messages(self, msgs: Iterable[StoredMessage]) -> int:
        """Bulk insert (swarm handoff), ignoring hashes already present or tombstoned; returns
        how many were new. All-or-nothing: on StorageFull nothing of this batch is kept."""

    @abc.abstractmethod
    async def delete_by_hash(self, owner: str, hashes: Sequence[str]) -> list[str]:
        """Delete the owner's messages with these hashes; returns the deleted hashes."""

    @abc.abstractmethod
    async def delete_all(self, owner: str, namespace: int | None = None) -> list[tuple[int, str]]:
        """Delete the owner's messages (one namespace, or all if None); returns (ns, hash)."""

    @abc.abstractmethod
    async def delete_before(
        self, owner: str, before_ms: int, namespace: int | None = None
    ) -> list[tuple[int, str]]:
        """Delete the owner's messages with ``timestamp <= before_ms``; returns (ns, hash)."""

    @abc.abstractmethod
    async def update_expiry(
        self,
        owner: str,
        hashes: Sequence[str],
        expiries: Sequence[int],
        *,
        extend_only: bool = False,
        shorten_only: bool = False,
    ) -> list[tuple[str, int]]:
        """Set expiries (one value for all hashes, or one per hash). ``extend_only`` touches only
        messages whose expiry is lower, ``shorten_only`` only higher. Returns (hash, new expiry)
        of the updated messages, in request order."""

    @abc.abstractmethod
    async def update_all_expiries(
        self, owner: str, expiry_ms: int, namespace: int | None = None
    ) -> list[tuple[int, str]]:
        """Shorten every expiry above ``expiry_ms`` to it; returns (ns, hash) of those updated."""

    @abc.abstractmethod
    async def sweep_expired(self, now_ms: int) -> int:
        """Delete messages with ``expiry <= now_ms``; returns how many."""

    @abc.abstractmethod
    async def drop_accounts(self, predicate: Callable[[str], bool]) -> int:
        """Delete every message of owners for which ``predicate(owner)`` is true (accounts this
        node no longer stores); returns the number of messages removed."""

    @abc.abstractmethod
    async def revoke_subaccounts(self, owner: str, tokens: Sequence[bytes], now_ms: int) -> None:
        """Record revoked subaccount tokens (the newest 50 per owner are kept)."""

    @abc.abstractmethod
    async def unrevoke_subaccounts(self, owner: str, tokens: Sequence[bytes]) -> int:
        """Remove tokens from the revocation list; returns how many were removed."""

    @abc.abstractmethod
    async def apply_sync(
        self,
        messages: Iterable[StoredMessage],
        tombstones: Iterable[Tombstone] = (),
        expiries: Iterable[SyncEntry] = (),
    ) -> SyncApplied:
        """Apply what a swarm peer has and we lack, in one transaction: record ``tombstones``
        and delete their messages; import ``messages`` (not tombstoned, not present); replace
        an expiry when the peer's ``(updated_ms, expiry_ms)`` is newer (:func:`newer_expiry`).
        All-or-nothing on StorageFull."""

    @abc.abstractmethod
    async def settle(self) -> None:
        """Return once every write submitted before this call is committed (and visible to
        reads). Reconciliation calls it before taking a snapshot, so a write accepted while a
        peer was thought down is in what that peer is shown."""

    # -- reads --------------------------------------------------------------------------

    @abc.abstractmethod
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
        """Messages after ``last_hash`` in insertion order, and whether more remain."""

    @abc.abstractmethod
    async def get_expiries(self, owner: str, hashes: Sequence[str]) -> dict[str, int]:
        """hash -> expiry of the owner's messages among ``hashes``."""

    @abc.abstractmethod
    async def get_by_hash(self, hash: str) -> StoredMessage | None:
        """The message with this hash, if stored."""

    @abc.abstractmethod
    async def subaccount_revoked(self, owner: str, token: bytes) -> bool:
        """Whether ``token`` is on the owner's revocation list."""

    # Reads without a coroutine: the value at once when the store can read on the calling
    # (event-loop) thread without waiting, otherwise a coroutine (to be awaited once) that reads
    # as the async method does. Either way the same outcome, raising what the method raises.
    # A client's retrieve answered without a task (session.node.rpc, RpcHandler.respond_now).
    # These defaults always hand back the async method's coroutine.

    def retrieve_now(
        self,
        owner: str,
        namespace: int = 0,
        last_hash: str | None = None,
        max_count: int | None = None,
        max_size: int | None = None,
    ) -> tuple[list[StoredMessage], bool] | Coroutine[Any, Any, tuple[list[StoredMessage], bool]]:
        """:meth:`retrieve` (default size accounting) now, or its coroutine."""
        return self.retrieve(owner, namespace, last_hash, max_count, max_size)

    def get_expiries_now(
        self, owner: str, hashes: Sequence[str]
    ) -> dict[str, int] | Coroutine[Any, Any, dict[str, int]]:
        """:meth:`get_expiries` now, or its coroutine."""
        return self.get_expiries(owner, hashes)

    def subaccount_revoked_now(self, owner: str, token: bytes) -> bool | Coroutine[Any, Any, bool]:
        """:meth:`subaccount_revoked` now, or its coroutine."""
        return self.subaccount_revoked(owner, token)

    @abc.abstractmethod
    async def owners(self) -> list[str]:
        """Every account id with at least one stored message, sorted."""

    @abc.abstractmethod
    async def export(self, predicate: Callable[[str], bool]) -> list[StoredMessage]:
        """Every message of owners for which ``predicate(owner)`` is true (swarm handoff), in
        insertion order."""

    async def export_part(
        self, owners: Sequence[str], max_bytes: int
    ) -> tuple[list[StoredMessage], int]:
        """:meth:`export` of the first ``k`` of ``owners`` (in the given order) whose messages'
        data together stay within ``max_bytes`` (at least the first owner's); returns the
        messages and ``k``. Swarm handoff goes through a store a part at a time with it, so a
        node holding a million messages never holds them all in memory at once."""
        out: list[StoredMessage] = []
        size = 0
        for k, owner in enumerate(owners):
            got = await self.export(owner.__eq__)
            n = sum(len(m.data) for m in got)
            if k and n and size + n > max_bytes:
                return out, k
            out.extend(got)
            size += n
        return out, len(owners)

    @abc.abstractmethod
    async def sync_index(self, predicate: Callable[[str], bool], after_ms: int) -> list[SyncEntry]:
        """Every message of owners for which ``predicate(owner)`` is true that expires after
        ``after_ms``, grouped by owner."""

    @abc.abstractmethod
    async def account_digests(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None = None,
        *,
        before_ts: int | None = None,
    ) -> dict[str, bytes]:
        """:func:`digest_rows` of the messages :meth:`sync_index` would list (computed where
        the rows are, without building an entry per message), for the accounts of ``buckets``
        (:func:`bucket_of`; None: every bucket). ``before_ts``: only messages whose (client)
        timestamp is earlier, so writes still travelling to the swarm's members do not make
        accounts differ (every member holds the same timestamp for a message)."""

    async def sync_index_of(self, owners: Collection[str], after_ms: int) -> list[SyncEntry]:
        """:meth:`sync_index` of the accounts ``owners`` (a back end may look them up instead
        of going through every account)."""
        wanted = set(owners)
        return await self.sync_index(wanted.__contains__, after_ms)

    async def sync_index_part(
        self, owners: Sequence[str], after_ms: int, max_entries: int
    ) -> tuple[list[SyncEntry], int]:
        """:meth:`sync_index_of` of the first ``k`` of ``owners`` (in the given order) whose
        entries together stay within ``max_entries`` (at least the first owner's, however many
        it has); returns the entries and ``k``. Bounds what a reconciliation session holds at
        a time by messages, not by accounts."""
        out: list[SyncEntry] = []
        for k, owner in enumerate(owners):
            got = await self.sync_index_of((owner,), after_ms)
            if k and got and len(out) + len(got) > max_entries:
                return out, k
            out.extend(got)
        return out, len(owners)

    async def tombstones_of(self, owners: Collection[str], after_ms: int) -> list[Tombstone]:
        """:meth:`tombstones` of the accounts ``owners``."""
        wanted = set(owners)
        return await self.tombstones(wanted.__contains__, after_ms)

    @abc.abstractmethod
    async def account_sums(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None = None,
        *,
        before_ts: int | None = None,
    ) -> dict[str, bytes]:
        """owner → :func:`sum_rows` of the messages :meth:`account_digests` covers (same
        arguments), accounts whose sum is zero left out. A back end that keeps the sums up
        to date as it writes answers this without reading each message: only those that
        expire by ``after_ms`` or are stamped at or after ``before_ts`` are taken out."""

    async def bucket_sums(
        self, predicate: Callable[[str], bool], after_ms: int, *, before_ts: int | None = None
    ) -> dict[str, bytes]:
        """bucket → :func:`bucket_sums` of :meth:`account_sums` over every bucket."""
        return bucket_sums(await self.account_sums(predicate, after_ms, before_ts=before_ts))

    async def bucket_digests(
        self, predicate: Callable[[str], bool], after_ms: int, *, before_ts: int | None = None
    ) -> dict[str, bytes]:
        """bucket → :func:`bucket_digest` of its accounts' digests (buckets without a message
        left out; ``before_ts`` as in :meth:`account_digests`). One bucket at a time, so memory
        stays that of one bucket's accounts however large the store grows."""
        out: dict[str, bytes] = {}
        for b in ALL_BUCKETS:
            accounts = await self.account_digests(predicate, after_ms, (b,), before_ts=before_ts)
            if accounts:
                out[b] = bucket_digest(accounts)
        return out

    @abc.abstractmethod
    async def tombstones(self, predicate: Callable[[str], bool], after_ms: int) -> list[Tombstone]:
        """The tombstones of owners for which ``predicate(owner)`` is true that expire after
        ``after_ms``."""

    @abc.abstractmethod
    async def get_many(self, hashes: Sequence[str]) -> list[StoredMessage]:
        """The stored messages among ``hashes`` (with ``updated_ms``), in no particular order."""

    @abc.abstractmethod
    async def stats(self) -> StoreStats:
        """Counts and sizes for metrics."""

    # -- hand-off state --------------------------------------------------------------------

    @abc.abstractmethod
    async def handoff_targets(self) -> dict[str, str]:
        """New swarm members still owed a copy of our accounts: Ed25519 key (hex) → their
        node-list entry (JSON text), kept so the hand-off retries survive a restart."""

    @abc.abstractmethod
    async def set_handoff_target(self, ed25519: str, entry: str | None) -> None:
        """Remember (``entry``: JSON text) or forget (None) a member owed a copy."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release resources; later calls raise StorageError."""

    async def __aenter__(self) -> MessageStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def take_page(
    messages: Iterable[StoredMessage],
    max_count: int | None,
    max_size: int | None,
    *,
    size_b64: bool,
    overhead: int,
) -> tuple[list[StoredMessage], bool]:
    """One ``retrieve`` page, the rule both back ends share: the first ``messages`` within
    ``max_count`` (at least 1) and ``max_size`` (each message counts ``overhead`` + its hash +
    its data, base64-sized when ``size_b64``; the first always fits), and whether more remain.
    ``messages`` is consumed lazily, at most one past the page."""
    if max_count is not None:
        max_count = max(max_count, 1)
    out: list[StoredMessage] = []
    used = 0
    for m in messages:
        if max_count is not None and len(out) >= max_count:
            return out, True
        if max_size is not None:
            n = len(m.data)
            used += overhead + len(m.hash) + (n * 4 // 3 if size_b64 else n)
            if out and used > max_size:
                return out, True
        out.append(m)
    return out, False


def check_expiry_args(hashes: Sequence[str], expiries: Sequence[int], extend: bool, shorten: bool):
    if len(expiries) not in (1, len(hashes)):
        raise InvalidInput("expiries must hold one value, or one per hash")
    if extend and shorten:
        raise InvalidInput("cannot both only-extend and only-shorten expiries")


#: stores run in tasks by :meth:`MessageStore.store_then`, held until they end
_STORING: set[asyncio.Task[Any]] = set()


def _task_outcome(task: asyncio.Future[Any], done: Callable[[bool, Any], None]) -> None:
    """A finished store task's outcome to ``done`` (a cancelled one: the loop is closing)."""
    if task.cancelled():
        done(False, StorageError("the message store is closed"))
        return
    e = task.exception()
    if e is not None:
        done(False, e)
    else:
        done(True, task.result())
