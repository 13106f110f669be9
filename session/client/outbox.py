"""The durable outbox: every store the client makes goes through it.

Exactly-once delivery rests on two facts:

1. The payload is encrypted **once**, when the message is written, and the final base64 bytes
   (and the store ``timestamp``) are committed to SQLite in the same transaction as the
   message row. A message written offline is therefore already complete; it waits for the
   network.
2. A swarm identifies a stored message by ``hash = BLAKE2b(pubkey ‖ namespace ‖ data)``. A retry
   sends byte-identical data, so if an earlier attempt did reach the swarm (e.g. the reply was
   lost when the guard died) the node answers ``already`` and keeps one copy; receivers also
   dedupe by hash. Nothing is ever re-encrypted, so nothing can arrive twice.

Retries back off ``min(60 s, 0.25 s · 2^attempts)``; an entry gives up only when its TTL has
passed (the swarm would reject it then).
"""

from __future__ import annotations

from session.client.db import Database, OutboxEntry, OutboxState

__all__ = [
    "BASE_BACKOFF_MS",
    "MAX_BACKOFF_MS",
    "Outbox",
    "OutboxEntry",
    "OutboxState",
    "backoff_ms",
]

MAX_BACKOFF_MS = 60_000
BASE_BACKOFF_MS = 250
#: Longest error text kept per entry.
MAX_ERROR_CHARS = 500


def backoff_ms(attempts: int) -> int:
    return int(min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** min(attempts, 20)))


class Outbox:
    """Queue of pending ``store`` requests persisted in the identity's database (the rows and
    their SQL are the database's; this class holds the queueing and retry rules)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(
        self,
        *,
        kind: str,
        dest: str,
        namespace: int,
        data: str,
        timestamp_ms: int,
        ttl_ms: int,
        message_id: int | None = None,
    ) -> int:
        """Queue one store (call inside the transaction that writes the message row)."""
        if ttl_ms < 10_000:
            raise ValueError("a stored message needs a TTL of at least 10 seconds")
        return self.db.add_outbox(
            kind=kind,
            dest=dest,
            namespace=namespace,
            data=data,
            timestamp_ms=timestamp_ms,
            ttl_ms=ttl_ms,
            message_id=message_id,
        )

    def due(self, now_ms: int, limit: int = 50) -> list[OutboxEntry]:
        return self.db.outbox_due(now_ms, limit)

    def pending_count(self) -> int:
        return self.db.outbox_pending_count()

    def next_due_ms(self) -> int | None:
        return self.db.outbox_next_due_ms()

    def done(self, entry_id: int, msg_hash: str | None) -> None:
        self.db.outbox_done(entry_id, msg_hash)

    def retry_later(self, entry: OutboxEntry, now_ms: int, error: str) -> bool:
        """Record a failed attempt; returns False (and marks the entry failed) once the message's
        TTL has run out."""
        attempts = entry.attempts + 1
        nxt = now_ms + backoff_ms(attempts)
        if nxt >= entry.expiry_ms - 10_000:
            self.db.outbox_failed(entry.id, attempts, error[:MAX_ERROR_CHARS])
            return False
        self.db.outbox_retry_at(entry.id, attempts, nxt, error[:MAX_ERROR_CHARS])
        return True

    def wake_all(self) -> None:
        """Make every pending entry due now (e.g. the network came back)."""
        self.db.outbox_wake_all()

    def entries_for_message(self, message_id: int) -> list[OutboxState]:
        return self.db.outbox_states(message_id)

    def last_error(self, message_id: int) -> str | None:
        """The last error of the first undelivered entry of ``message_id`` (None if none failed)."""
        return self.db.outbox_last_error(message_id)
