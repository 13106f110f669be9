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

import dataclasses
from collections.abc import Sequence

from session.client.db import Database

MAX_BACKOFF_MS = 60_000
BASE_BACKOFF_MS = 250


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    kind: str
    dest: str
    namespace: int
    data: str
    timestamp_ms: int
    ttl_ms: int
    message_id: int | None
    attempts: int

    @property
    def expiry_ms(self) -> int:
        return self.timestamp_ms + self.ttl_ms


def backoff_ms(attempts: int) -> int:
    return int(min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** min(attempts, 20)))


class Outbox:
    """Queue of pending ``store`` requests persisted in the identity's database."""

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
        cur = self.db.conn.execute(
            "INSERT INTO outbox (kind, dest, namespace, data, timestamp_ms, ttl_ms, message_id, state)"
            " VALUES (?,?,?,?,?,?,?, 'pending')",
            (kind, dest, namespace, data.encode(), timestamp_ms, ttl_ms, message_id),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def due(self, now_ms: int, limit: int = 50) -> list[OutboxEntry]:
        rows = self.db.conn.execute(
            "SELECT * FROM outbox WHERE state='pending' AND next_attempt_ms<=? ORDER BY id LIMIT ?",
            (now_ms, limit),
        ).fetchall()
        return [
            OutboxEntry(
                r["id"], r["kind"], r["dest"], r["namespace"], bytes(r["data"]).decode(),
                r["timestamp_ms"], r["ttl_ms"], r["message_id"], r["attempts"],
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM outbox WHERE state='pending'").fetchone()[0])

    def next_due_ms(self) -> int | None:
        row = self.db.conn.execute(
            "SELECT MIN(next_attempt_ms) FROM outbox WHERE state='pending'"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def done(self, entry_id: int, msg_hash: str | None) -> None:
        self.db.conn.execute(
            "UPDATE outbox SET state='done', hash=?, error=NULL, data=x'' WHERE id=?", (msg_hash, entry_id)
        )

    def retry_later(self, entry: OutboxEntry, now_ms: int, error: str) -> bool:
        """Record a failed attempt; returns False (and marks the entry failed) once the message's
        TTL has run out."""
        attempts = entry.attempts + 1
        nxt = now_ms + backoff_ms(attempts)
        if nxt >= entry.expiry_ms - 10_000:
            self.db.conn.execute(
                "UPDATE outbox SET state='failed', attempts=?, error=? WHERE id=?",
                (attempts, error[:500], entry.id),
            )
            return False
        self.db.conn.execute(
            "UPDATE outbox SET attempts=?, next_attempt_ms=?, error=? WHERE id=?",
            (attempts, nxt, error[:500], entry.id),
        )
        return True

    def wake_all(self) -> None:
        """Make every pending entry due now (e.g. the network came back)."""
        self.db.conn.execute("UPDATE outbox SET next_attempt_ms=0 WHERE state='pending'")

    def entries_for_message(self, message_id: int) -> Sequence[tuple[str, str | None]]:
        return [
            (r[0], r[1])
            for r in self.db.conn.execute(
                "SELECT state, hash FROM outbox WHERE message_id=? ORDER BY id", (message_id,)
            )
        ]

    def last_error(self, message_id: int) -> str | None:
        """The last error of the first undelivered entry of ``message_id`` (None if none failed)."""
        row = self.db.conn.execute(
            "SELECT error FROM outbox WHERE message_id=? AND error IS NOT NULL ORDER BY id LIMIT 1",
            (message_id,),
        ).fetchone()
        return None if row is None else str(row[0])
