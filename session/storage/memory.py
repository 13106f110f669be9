"""In-memory :class:`MessageStore` (tests, ephemeral devnet nodes).

Same semantics as the SQLite store; the size cap is explicit byte accounting (payload plus a
fixed per-message overhead).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from session.errors import StorageError, StorageFull
from session.proto.rpc.namespaces import is_public_outbox_namespace
from session.storage.base import (
    DEFAULT_MSG_OVERHEAD,
    MAX_REVOKED_PER_OWNER,
    MessageStore,
    StoredMessage,
    StoreResult,
    StoreStats,
    SyncApplied,
    SyncEntry,
    Tombstone,
    bucket_of,
    check_expiry_args,
    check_namespace,
    check_owner,
    digest_rows,
    newer_expiry,
    now_ms,
    sum_rows,
    take_page,
)

#: Bytes counted per message on top of its payload (hash, owner, integers, index entries).
ROW_OVERHEAD = 128


class _Row:
    __slots__ = ("data", "expiry", "hash", "id", "namespace", "owner", "timestamp", "updated")

    def __init__(self, id: int, m: StoredMessage) -> None:
        self.id = id
        self.owner = m.owner
        self.namespace = m.namespace
        self.hash = m.hash
        self.data = bytes(m.data)
        self.timestamp = m.timestamp_ms
        self.expiry = m.expiry_ms
        self.updated = m.updated_ms

    def message(self) -> StoredMessage:
        return StoredMessage(
            self.owner, self.namespace, self.hash, self.data, self.timestamp, self.expiry
        )

    @property
    def size(self) -> int:
        return len(self.data) + ROW_OVERHEAD


class MemoryMessageStore(MessageStore):
    """A :class:`MessageStore` kept in dictionaries."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self._by_hash: dict[str, _Row] = {}
        # owner -> namespace -> {hash: row} in insertion order (dicts keep order)
        self._by_owner: dict[str, dict[int, dict[str, _Row]]] = {}
        self._revoked: dict[str, dict[bytes, int]] = {}
        self._tombstones: dict[str, Tombstone] = {}
        self._handoff: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._bytes = 0
        self._closed = False

    # -- helpers ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the message store is closed")

    def _full(self, extra: int) -> bool:
        return self.max_bytes is not None and self._bytes + extra > self.max_bytes

    def _full_error(self) -> StorageFull:
        return StorageFull(
            f"message store is full ({self._bytes} of {self.max_bytes} bytes used); new "
            "messages are refused until old ones expire or are deleted"
        )

    def _insert(self, m: StoredMessage) -> None:
        row = _Row(next(self._ids), m)
        self._by_hash[m.hash] = row
        self._by_owner.setdefault(m.owner, {}).setdefault(m.namespace, {})[m.hash] = row
        self._bytes += row.size

    def _bury(self, rows: Iterable[_Row]) -> None:
        now = now_ms()
        for r in rows:
            self._tombstones.setdefault(r.hash, Tombstone(r.owner, r.hash, r.expiry, now))

    def _remove(self, row: _Row) -> None:
        del self._by_hash[row.hash]
        spaces = self._by_owner[row.owner]
        ns = spaces[row.namespace]
        del ns[row.hash]
        if not ns:
            del spaces[row.namespace]
            if not spaces:
                del self._by_owner[row.owner]
        self._bytes -= row.size

    def _owner_rows(self, owner: str, namespace: int | None) -> list[_Row]:
        spaces = self._by_owner.get(owner, {})
        if namespace is not None:
            return list(spaces.get(namespace, {}).values())
        rows = [r for ns in spaces.values() for r in ns.values()]
        rows.sort(key=lambda r: r.id)
        return rows

    # -- writes -------------------------------------------------------------------------

    async def store(self, msg: StoredMessage) -> StoreResult:
        return self.store_now(msg)

    def store_many_now(self, msgs: Sequence[StoredMessage]) -> list[StoreResult | StorageError]:
        """:meth:`store_now` of each, in order (this store never waits)."""
        for m in msgs:
            m.validate()
        out: list[StoreResult | StorageError] = []
        for m in msgs:
            try:
                out.append(self.store_now(m))
            except StorageError as e:
                out.append(e)
        return out

    def store_now(self, msg: StoredMessage) -> StoreResult:
        """:meth:`store` as it is: applied at once (this store never waits)."""
        self._check_open()
        msg.validate()
        existing = self._by_hash.get(msg.hash)
        if existing is None and self._full(len(msg.data) + ROW_OVERHEAD):
            # The outbox clear below could free space, but a refused store must change nothing.
            raise self._full_error()
        now = now_ms()
        if is_public_outbox_namespace(msg.namespace):
            for row in self._owner_rows(msg.owner, msg.namespace):
                if row.hash != msg.hash:
                    self._remove(row)
                    self._bury([row])
        if existing is not None:
            if existing.expiry < msg.expiry_ms:
                existing.expiry = msg.expiry_ms
                existing.updated = now
            return StoreResult(False, existing.expiry)
        self._tombstones.pop(msg.hash, None)
        self._insert(dataclasses.replace(msg, updated_ms=now))
        return StoreResult(True, msg.expiry_ms)

    async def settle(self) -> None:
        self._check_open()  # writes are applied inline: nothing is pending

    async def import_messages(self, msgs: Iterable[StoredMessage]) -> int:
        self._check_open()
        items = [m.validate() for m in msgs]
        fresh = self._fresh(items)
        if self._full(sum(len(m.data) + ROW_OVERHEAD for m in fresh)):
            raise self._full_error()
        for m in fresh:
            self._insert(m)
        return len(fresh)

    def _fresh(self, msgs: Iterable[StoredMessage]) -> list[StoredMessage]:
        """The messages neither stored nor tombstoned, first of each hash."""
        fresh: dict[str, StoredMessage] = {}
        for m in msgs:
            if m.hash not in self._by_hash and m.hash not in self._tombstones:
                fresh.setdefault(m.hash, m)
        return list(fresh.values())

    async def apply_sync(
        self,
        messages: Iterable[StoredMessage],
        tombstones: Iterable[Tombstone] = (),
        expiries: Iterable[SyncEntry] = (),
    ) -> SyncApplied:
        self._check_open()
        items = [m.validate() for m in messages]
        dead = [t.validate() for t in tombstones]
        exps = list(expiries)
        # All-or-nothing: check the cap before changing anything (deletions could free room,
        # but counting them first would need the same walk twice).
        dead_hashes = {t.hash for t in dead}
        fresh = [m for m in self._fresh(items) if m.hash not in dead_hashes]
        if self._full(sum(len(m.data) + ROW_OVERHEAD for m in fresh)):
            raise self._full_error()
        deleted = 0
        for t in dead:
            self._tombstones.setdefault(t.hash, t)
            row = self._by_hash.get(t.hash)
            if row is not None and row.owner == t.owner:
                self._remove(row)
                deleted += 1
        for m in fresh:
            self._insert(m)
        changed = 0
        for e in exps:
            row = self._by_hash.get(e.hash)
            if row is not None and newer_expiry(
                (row.updated, row.expiry), (e.updated_ms, e.expiry_ms)
            ):
                row.expiry, row.updated = e.expiry_ms, e.updated_ms
                changed += 1
        return SyncApplied(len(fresh), deleted, changed)

    async def delete_by_hash(self, owner: str, hashes: Sequence[str]) -> list[str]:
        self._check_open()
        check_owner(owner)
        deleted = []
        for h in dict.fromkeys(hashes):
            row = self._by_hash.get(h)
            if row is not None and row.owner == owner:
                self._remove(row)
                self._bury([row])
                deleted.append(h)
        return deleted

    async def delete_all(self, owner: str, namespace: int | None = None) -> list[tuple[int, str]]:
        self._check_open()
        check_owner(owner)
        rows = self._owner_rows(owner, None if namespace is None else check_namespace(namespace))
        for r in rows:
            self._remove(r)
        self._bury(rows)
        return [(r.namespace, r.hash) for r in rows]

    async def delete_before(
        self, owner: str, before_ms: int, namespace: int | None = None
    ) -> list[tuple[int, str]]:
        self._check_open()
        check_owner(owner)
        rows = [r for r in self._owner_rows(owner, namespace) if r.timestamp <= before_ms]
        for r in rows:
            self._remove(r)
        self._bury(rows)
        return [(r.namespace, r.hash) for r in rows]

    async def update_expiry(
        self,
        owner: str,
        hashes: Sequence[str],
        expiries: Sequence[int],
        *,
        extend_only: bool = False,
        shorten_only: bool = False,
    ) -> list[tuple[str, int]]:
        self._check_open()
        check_owner(owner)
        check_expiry_args(hashes, expiries, extend_only, shorten_only)
        out = []
        now = now_ms()
        for i, h in enumerate(hashes):
            exp = expiries[0] if len(expiries) == 1 else expiries[i]
            row = self._by_hash.get(h)
            if row is None or row.owner != owner:
                continue
            if extend_only and not row.expiry < exp:
                continue
            if shorten_only and not row.expiry > exp:
                continue
            row.expiry, row.updated = exp, now
            out.append((h, exp))
        return out

    async def update_all_expiries(
        self, owner: str, expiry_ms: int, namespace: int | None = None
    ) -> list[tuple[int, str]]:
        self._check_open()
        check_owner(owner)
        out = []
        now = now_ms()
        for r in self._owner_rows(owner, namespace):
            if r.expiry > expiry_ms:
                r.expiry, r.updated = expiry_ms, now
                out.append((r.namespace, r.hash))
        return out

    async def sweep_expired(self, now_ms: int) -> int:
        self._check_open()
        self._tombstones = {h: t for h, t in self._tombstones.items() if t.expiry_ms > now_ms}
        gone = [r for r in self._by_hash.values() if r.expiry <= now_ms]
        for r in gone:
            self._remove(r)
        return len(gone)

    async def drop_accounts(self, predicate: Callable[[str], bool]) -> int:
        self._check_open()
        n = 0
        for owner in [o for o in self._by_owner if predicate(o)]:
            for r in self._owner_rows(owner, None):
                self._remove(r)
                n += 1
        self._tombstones = {h: t for h, t in self._tombstones.items() if not predicate(t.owner)}
        return n

    async def revoke_subaccounts(self, owner: str, tokens: Sequence[bytes], now_ms: int) -> None:
        self._check_open()
        check_owner(owner)
        rev = self._revoked.setdefault(owner, {})
        for t in tokens:
            if rev.get(bytes(t), -1) < now_ms:
                rev[bytes(t)] = now_ms
        if len(rev) > MAX_REVOKED_PER_OWNER:
            keep = sorted(rev.items(), key=lambda kv: kv[1], reverse=True)[:MAX_REVOKED_PER_OWNER]
            self._revoked[owner] = dict(keep)

    async def unrevoke_subaccounts(self, owner: str, tokens: Sequence[bytes]) -> int:
        self._check_open()
        check_owner(owner)
        rev = self._revoked.get(owner, {})
        n = 0
        for t in dict.fromkeys(bytes(t) for t in tokens):
            if rev.pop(t, None) is not None:
                n += 1
        return n

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
        self._check_open()
        check_owner(owner)
        rows = list(self._by_owner.get(owner, {}).get(namespace, {}).values())
        if last_hash:
            last = self._by_hash.get(last_hash)
            if last is not None and last.owner == owner and last.namespace == namespace:
                rows = [r for r in rows if r.id > last.id]
        messages = (r.message() for r in rows)
        return take_page(messages, max_count, max_size, size_b64=size_b64, overhead=overhead)

    async def get_expiries(self, owner: str, hashes: Sequence[str]) -> dict[str, int]:
        self._check_open()
        check_owner(owner)
        out = {}
        for h in hashes:
            row = self._by_hash.get(h)
            if row is not None and row.owner == owner:
                out[h] = row.expiry
        return dict(sorted(out.items()))

    async def get_by_hash(self, hash: str) -> StoredMessage | None:
        self._check_open()
        row = self._by_hash.get(hash)
        return None if row is None else row.message()

    async def subaccount_revoked(self, owner: str, token: bytes) -> bool:
        self._check_open()
        return bytes(token) in self._revoked.get(owner, {})

    async def owners(self) -> list[str]:
        self._check_open()
        return sorted(self._by_owner)

    async def export(self, predicate: Callable[[str], bool]) -> list[StoredMessage]:
        self._check_open()
        rows = [r for r in self._by_hash.values() if predicate(r.owner)]
        rows.sort(key=lambda r: r.id)
        return [r.message() for r in rows]

    async def sync_index(self, predicate: Callable[[str], bool], after_ms: int) -> list[SyncEntry]:
        self._check_open()
        return [
            SyncEntry(r.owner, r.namespace, r.hash, r.expiry, r.updated)
            for owner in self._by_owner
            if predicate(owner)
            for r in self._owner_rows(owner, None)
            if r.expiry > after_ms
        ]

    def _digest_rows(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None,
        before_ts: int | None,
    ) -> Iterator[tuple[str, int, str, int]]:
        """``(owner, namespace, hash, expiry)`` of the messages a digest or sum covers."""
        wanted = None if buckets is None else set(buckets)
        return (
            (r.owner, r.namespace, r.hash, r.expiry)
            for owner in self._by_owner
            if (wanted is None or bucket_of(owner) in wanted) and predicate(owner)
            for r in self._owner_rows(owner, None)
            if r.expiry > after_ms and (before_ts is None or r.timestamp < before_ts)
        )

    async def account_digests(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None = None,
        *,
        before_ts: int | None = None,
    ) -> dict[str, bytes]:
        self._check_open()
        return digest_rows(self._digest_rows(predicate, after_ms, buckets, before_ts))

    async def account_sums(
        self,
        predicate: Callable[[str], bool],
        after_ms: int,
        buckets: Collection[str] | None = None,
        *,
        before_ts: int | None = None,
    ) -> dict[str, bytes]:
        # (from scratch every time: this store is for tests and short-lived nodes)
        self._check_open()
        return sum_rows(self._digest_rows(predicate, after_ms, buckets, before_ts))

    async def tombstones(self, predicate: Callable[[str], bool], after_ms: int) -> list[Tombstone]:
        self._check_open()
        return [
            t for t in self._tombstones.values() if t.expiry_ms > after_ms and predicate(t.owner)
        ]

    async def get_many(self, hashes: Sequence[str]) -> list[StoredMessage]:
        self._check_open()
        rows = (self._by_hash.get(h) for h in dict.fromkeys(hashes))
        return [
            dataclasses.replace(r.message(), updated_ms=r.updated) for r in rows if r is not None
        ]

    async def stats(self) -> StoreStats:
        self._check_open()
        by_ns: dict[int, int] = {}
        data = 0
        for r in self._by_hash.values():
            by_ns[r.namespace] = by_ns.get(r.namespace, 0) + 1
            data += len(r.data)
        return StoreStats(
            messages=len(self._by_hash),
            owners=len(self._by_owner),
            data_bytes=data,
            db_bytes=self._bytes,
            max_bytes=self.max_bytes,
            by_namespace=dict(sorted(by_ns.items())),
        )

    async def handoff_targets(self) -> dict[str, str]:
        self._check_open()
        return dict(self._handoff)

    async def set_handoff_target(self, ed25519: str, entry: str | None) -> None:
        self._check_open()
        if entry is None:
            self._handoff.pop(ed25519, None)
        else:
            self._handoff[ed25519] = entry

    async def close(self) -> None:
        self._closed = True
