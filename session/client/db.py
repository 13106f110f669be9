"""One identity's local state in SQLite (conversations, messages, contacts, node cache, paths,
outbox, poll cursors, seen hashes).

Encryption at rest (no SQLCipher: it is not on PyPI as a maintained wheel and would add a C
dependency): the *contents* — message bodies, display names, profile fields, queued ciphertext
payloads — are sealed per value with XChaCha20-Poly1305 under a key derived from the identity's
seed (``BLAKE2b-256(seed; key="SessionClientDB")``), via the native core's config encryption
(TV-24): ``config_crypto.encrypt(salt16 ‖ value, key, domain)`` where the 16 random salt bytes make
the otherwise deterministic nonce unique per write. What stays in clear, because SQLite needs it
for lookups and ordering: Session IDs of conversations/contacts, timestamps, flags, swarm hashes
and the public node list. See docs/client.md.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from session.errors import DecryptionError, StorageError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS contacts (
    session_id TEXT PRIMARY KEY,
    name BLOB,                    -- sealed display name
    approved INTEGER NOT NULL DEFAULT 0,     -- we accepted them (or wrote first)
    approved_me INTEGER NOT NULL DEFAULT 0,  -- they accepted us
    blocked INTEGER NOT NULL DEFAULT 0,
    exp_mode INTEGER NOT NULL DEFAULT 0,
    exp_seconds INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL,
    author TEXT NOT NULL,
    sent_ms INTEGER NOT NULL,
    outgoing INTEGER NOT NULL,
    body BLOB,                    -- sealed text
    hash TEXT,                    -- swarm hash of the stored copy (ours: recipient's copy)
    status TEXT NOT NULL,         -- pending | sent | failed | received | read
    read_ms INTEGER,
    exp_mode INTEGER NOT NULL DEFAULT 0,
    exp_seconds INTEGER NOT NULL DEFAULT 0,
    expires_at_ms INTEGER,        -- local deletion time (disappearing messages)
    UNIQUE (conversation, author, sent_ms)
);
CREATE INDEX IF NOT EXISTS messages_conv ON messages (conversation, sent_ms);
CREATE INDEX IF NOT EXISTS messages_exp ON messages (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS seen (hash TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (node TEXT, namespace INTEGER, last_hash TEXT,
                                    PRIMARY KEY (node, namespace));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,           -- message | sync | receipt | typing | control | config
    dest TEXT NOT NULL,           -- swarm owner (Session ID)
    namespace INTEGER NOT NULL,
    data BLOB NOT NULL,           -- sealed base64 payload, fixed at enqueue time
    timestamp_ms INTEGER NOT NULL,
    ttl_ms INTEGER NOT NULL,
    message_id INTEGER,
    state TEXT NOT NULL,          -- pending | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    hash TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, next_attempt_ms);
CREATE TABLE IF NOT EXISTS nodes (ed25519 TEXT PRIMARY KEY, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS swarms (owner TEXT PRIMARY KEY, members TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS paths (id INTEGER PRIMARY KEY, hops TEXT NOT NULL,
                                  failures INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS guards (ed25519 TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0);
"""


def derive_db_key(seed32: bytes) -> bytes:
    """The at-rest key: BLAKE2b-256 of the Ed25519 seed, keyed with ``SessionClientDB``."""
    from session import protocol

    return bytes(protocol.blake2b(seed32, key=b"SessionClientDB", digest_size=32))


class Sealer:
    """Seals single values (XChaCha20-Poly1305, per-value random salt; see module doc)."""

    DOMAIN = "session-client-db"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the database key must be 32 bytes")
        self._key = key

    def seal(self, value: bytes | str) -> bytes:
        from session import config_crypto

        raw = value.encode() if isinstance(value, str) else value
        return bytes(config_crypto.encrypt(os.urandom(16) + raw, self._key, self.DOMAIN))

    def open(self, blob: bytes) -> bytes:
        from session import config_crypto

        raw = bytes(config_crypto.decrypt(blob, self._key, self.DOMAIN))
        if len(raw) < 16:
            raise DecryptionError("sealed database value is truncated")
        return raw[16:]

    def open_str(self, blob: bytes | None) -> str | None:
        return None if blob is None else self.open(blob).decode()

    def __repr__(self) -> str:  # never show the key
        return "Sealer(<key>)"


class Database:
    """SQLite state of one identity. Not thread-safe: use it from the client's event loop."""

    def __init__(self, path: Path | str, sealer: Sealer) -> None:
        self.path = Path(path)
        self.sealer = sealer
        new = not self.path.exists()
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open client database {self.path}: {e}") from None
        if new:
            os.chmod(self.path, 0o600)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # the outbox must survive a crash
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(_SCHEMA)
        if self.get("schema_version") is None:
            self.put("schema_version", SCHEMA_VERSION)
        self._check_key()

    def _check_key(self) -> None:
        probe = self.conn.execute("SELECT value FROM kv WHERE key='key_check'").fetchone()
        if probe is None:
            self.conn.execute(
                "INSERT INTO kv VALUES ('key_check', ?)", (self.sealer.seal(b"session-client"),)
            )
            return
        try:
            ok = self.sealer.open(probe[0]) == b"session-client"
        except DecryptionError:
            ok = False
        if not ok:
            raise DecryptionError("the client database belongs to another identity (wrong key)")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ kv (JSON values)

    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value)),
        )

    def get_secret(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key=?", ("s:" + key,)).fetchone()
        return None if row is None else self.sealer.open(row[0]).decode()

    def put_secret(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            ("s:" + key, self.sealer.seal(value)),
        )

    # ------------------------------------------------------------------ contacts

    def contact(self, session_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM contacts WHERE session_id=?", (session_id,)).fetchone()
        return None if row is None else self._contact(row)

    def _contact(self, row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["name"] = self.sealer.open_str(d["name"])
        return d

    def contacts(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM contacts ORDER BY session_id").fetchall()
        return [self._contact(r) for r in rows]

    def upsert_contact(self, session_id: str, **fields: Any) -> dict[str, Any]:
        """Create the contact if needed and set ``fields`` (name is sealed)."""
        allowed = {"name", "approved", "approved_me", "blocked", "exp_mode", "exp_seconds", "updated_ms"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown contact fields: {sorted(bad)}")
        self.conn.execute("INSERT OR IGNORE INTO contacts (session_id) VALUES (?)", (session_id,))
        if fields:
            vals = {
                k: (self.sealer.seal(v) if k == "name" and v is not None else v)
                for k, v in fields.items()
            }
            sets = ", ".join(f"{k}=?" for k in vals)
            self.conn.execute(
                f"UPDATE contacts SET {sets} WHERE session_id=?", (*vals.values(), session_id)
            )
        c = self.contact(session_id)
        assert c is not None
        return c

    # ------------------------------------------------------------------ messages

    def add_message(
        self,
        *,
        conversation: str,
        author: str,
        sent_ms: int,
        outgoing: bool,
        body: str | None,
        status: str,
        hash: str | None = None,
        exp_mode: int = 0,
        exp_seconds: int = 0,
        expires_at_ms: int | None = None,
    ) -> int | None:
        """Insert a message; returns its id, or None if (conversation, author, sent_ms) exists."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO messages (conversation, author, sent_ms, outgoing, body, hash,"
            " status, exp_mode, exp_seconds, expires_at_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                conversation,
                author,
                sent_ms,
                int(outgoing),
                None if body is None else self.sealer.seal(body),
                hash,
                status,
                exp_mode,
                exp_seconds,
                expires_at_ms,
            ),
        )
        return cur.lastrowid if cur.rowcount else None

    def _message(self, row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["body"] = self.sealer.open_str(d["body"])
        d["outgoing"] = bool(d["outgoing"])
        return d

    def message(self, message_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
        return None if row is None else self._message(row)

    def find_message(self, conversation: str, author: str, sent_ms: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM messages WHERE conversation=? AND author=? AND sent_ms=?",
            (conversation, author, sent_ms),
        ).fetchone()
        return None if row is None else self._message(row)

    def messages(self, conversation: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM (SELECT * FROM messages WHERE conversation=? ORDER BY sent_ms DESC, id DESC"
            " LIMIT ?) ORDER BY sent_ms, id",
            (conversation, limit),
        ).fetchall()
        return [self._message(r) for r in rows]

    def conversations(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT conversation, MAX(sent_ms) AS last_ms, COUNT(*) AS count,"
            " SUM(CASE WHEN outgoing=0 AND status='received' THEN 1 ELSE 0 END) AS unread"
            " FROM messages GROUP BY conversation ORDER BY last_ms DESC"
        ).fetchall()
        return [dict(r) for r in rows]

    def update_message(self, message_id: int, **fields: Any) -> None:
        allowed = {"status", "hash", "read_ms", "expires_at_ms", "body"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown message fields: {sorted(bad)}")
        vals = {
            k: (self.sealer.seal(v) if k == "body" and v is not None else v) for k, v in fields.items()
        }
        sets = ", ".join(f"{k}=?" for k in vals)
        self.conn.execute(f"UPDATE messages SET {sets} WHERE id=?", (*vals.values(), message_id))

    def delete_message(self, message_id: int) -> None:
        self.conn.execute("DELETE FROM messages WHERE id=?", (message_id,))

    def expired_messages(self, now_ms: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE expires_at_ms IS NOT NULL AND expires_at_ms<=?", (now_ms,)
        ).fetchall()
        return [self._message(r) for r in rows]

    # ------------------------------------------------------------------ dedupe and cursors

    def mark_seen(self, hashes: Sequence[str]) -> set[str]:
        """Record ``hashes``; return the subset that was new."""
        new: set[str] = set()
        now = int(time.time() * 1000)
        for h in hashes:
            cur = self.conn.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (h, now))
            if cur.rowcount:
                new.add(h)
        return new

    def is_seen(self, h: str) -> bool:
        return self.conn.execute("SELECT 1 FROM seen WHERE hash=?", (h,)).fetchone() is not None

    def last_hash(self, node: str, namespace: int) -> str:
        row = self.conn.execute(
            "SELECT last_hash FROM cursors WHERE node=? AND namespace=?", (node, namespace)
        ).fetchone()
        return "" if row is None else str(row[0])

    def set_last_hash(self, node: str, namespace: int, h: str) -> None:
        self.conn.execute(
            "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(node, namespace)"
            " DO UPDATE SET last_hash=excluded.last_hash",
            (node, namespace, h),
        )

    # ------------------------------------------------------------------ node cache

    def save_nodes(self, entries: Sequence[dict[str, Any]]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM nodes")
            c.executemany(
                "INSERT INTO nodes VALUES (?, ?)",
                [(e["pubkey_ed25519"], json.dumps(e)) for e in entries],
            )
            c.execute(
                "INSERT INTO kv VALUES ('nodes_ms', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (json.dumps(int(time.time() * 1000)),),
            )

    def load_nodes(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT entry FROM nodes")]

    def save_paths(self, paths: Sequence[Sequence[str]]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM paths")
            c.executemany("INSERT INTO paths (hops) VALUES (?)", [(json.dumps(list(p)),) for p in paths])

    def load_paths(self) -> list[list[str]]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT hops FROM paths ORDER BY id")]

    def save_guards(self, guards: Sequence[str]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM guards")
            c.executemany("INSERT INTO guards (ed25519) VALUES (?)", [(g,) for g in guards])

    def load_guards(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT ed25519 FROM guards")]
