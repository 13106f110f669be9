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

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from session import config_crypto, protocol
from session.dbschema import migrate
from session.errors import DecryptionError, StorageError
from session.proto import session_pb2 as pb

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
CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,         -- position in the message
    pointer BLOB NOT NULL,        -- sealed AttachmentPointer (it holds the file's key)
    UNIQUE (message_id, idx)
);
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

#: The client database's migrations (``PRAGMA user_version``, run on open by
#: :func:`session.dbschema.migrate`; a file of a newer version is refused). Version 1 is
#: the layout from before versioning (``IF NOT EXISTS``: a file from then has most of it and
#: gets what it lacks); a change appends a migration and never edits one.
_MIGRATIONS: list[str] = [
    _SCHEMA,
    # 2: the message a message quotes (a reply): its sent time and author
    "ALTER TABLE messages ADD COLUMN quote_ms INTEGER;"
    " ALTER TABLE messages ADD COLUMN quote_author TEXT;",
]
SCHEMA_VERSION = len(_MIGRATIONS)


# ---------------------------------------------------------------------------- typed rows


@dataclasses.dataclass(frozen=True, slots=True)
class Contact:
    """A person we know of: a contact, a message request, or someone we blocked."""

    session_id: str
    name: str | None = None
    approved: bool = False  # we accepted them (or wrote first)
    approved_me: bool = False  # they accepted us
    blocked: bool = False
    exp_mode: int = 0  # disappearing messages: ExpirationMode
    exp_seconds: int = 0
    updated_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (flags as 0/1, as config sync and ``--json`` output use them)."""
        d = dataclasses.asdict(self)
        for k in ("approved", "approved_me", "blocked"):
            d[k] = int(d[k])
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    """One file attached to a stored message, from its AttachmentPointer (§5.4).

    ``key`` and ``digest`` decrypt and check the blob at ``url``; ``to_dict`` leaves them out.
    Everything but ``id``/``message_id``/``index`` was chosen by the sender: pass names through
    :func:`session.client.attachments.safe_filename` and text through ``session.text``.
    """

    id: int
    message_id: int
    index: int
    file_name: str | None
    content_type: str
    size: int
    url: str
    key: bytes
    digest: bytes | None
    width: int | None = None
    height: int | None = None
    voice: bool = False
    caption: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        del d["key"], d["digest"]
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One stored message of a conversation (ours or theirs)."""

    id: int
    conversation: str
    author: str
    sent_ms: int
    outgoing: bool
    body: str | None
    hash: str | None  # swarm hash of the stored copy (ours: the recipient's copy)
    status: str  # pending | sent | failed | received | read
    read_ms: int | None = None
    exp_mode: int = 0
    exp_seconds: int = 0
    expires_at_ms: int | None = None  # local deletion time (disappearing messages)
    attachments: tuple[Attachment, ...] = ()
    quote: tuple[int, str] | None = None  # a reply: (sent_ms, author) of the quoted message

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["attachments"] = [a.to_dict() for a in self.attachments]
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation's last message time, message count and unread count."""

    conversation: str
    last_ms: int
    count: int
    unread: int


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One queued ``store`` (the payload is fixed when it is queued)."""

    id: int
    kind: str  # message | sync | receipt | typing | control | config
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


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxState:
    """Delivery state of one outbox entry: ``pending``, ``done`` or ``failed``."""

    state: str
    hash: str | None


def derive_db_key(seed32: bytes) -> bytes:
    """The at-rest key: BLAKE2b-256 of the Ed25519 seed, keyed with ``SessionClientDB``."""
    return bytes(protocol.blake2b(seed32, key=b"SessionClientDB", digest_size=32))


class Sealer:
    """Seals single values (XChaCha20-Poly1305, per-value random salt; see module doc)."""

    DOMAIN = "session-client-db"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the database key must be 32 bytes")
        self._key = key

    def seal(self, value: bytes | str) -> bytes:
        raw = value.encode() if isinstance(value, str) else value
        return bytes(config_crypto.encrypt(os.urandom(16) + raw, self._key, self.DOMAIN))

    def open(self, blob: bytes) -> bytes:
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
        try:
            migrate(self.conn, _MIGRATIONS, what=f"client database {self.path}", program="session")
        except StorageError:
            self.conn.close()
            raise
        self._check_key()
        #: poll cursors read or set, (node, namespace) → last hash; those set and not yet
        #: written are also in ``_dirty_cursors`` (see :meth:`set_last_hash`)
        self._cursors: dict[tuple[str, int], str] = {}
        self._dirty_cursors: dict[tuple[str, int], str] = {}

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
        if self._dirty_cursors:
            with self.tx():
                pass  # (a transaction writes the cursors not yet written)
        self.conn.close()

    @contextmanager
    def tx(self, *, refetchable: bool = False) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (poll cursors set since the last one go with it).

        A transaction commits with ``synchronous=FULL``: it is on the disk when the block
        ends (the outbox must survive a power loss). ``refetchable=True`` is for one whose
        every write the network gives back if a power loss (not a crash of the program: the
        WAL is already the operating system's then) undoes it: a poll's messages, their seen
        hashes and the cursor past them, which the swarm keeps until the messages expire. It
        commits with ``synchronous=NORMAL`` (WAL order is kept: an undone commit takes every
        later one with it, the cursor included, so the next poll fetches those messages
        again), which saves an fsync: ~170 µs of CPU and ~2.5 ms with the event loop blocked
        per poll on the build machine. The next FULL commit makes it durable too."""
        if refetchable:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            done = False
            try:
                yield self.conn
                self._write_cursors()
                done = True
            finally:  # whatever ended the block early (an error, a cancellation), nothing is kept
                self.conn.execute("COMMIT" if done else "ROLLBACK")
        finally:
            if refetchable:
                self.conn.execute("PRAGMA synchronous=FULL")

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

    def avatar(self, session_id: str | None = None) -> tuple[str, bytes] | None:
        """A profile picture as (file URL, 32-byte profile key): ours (``session_id`` None) or
        the one a contact last sent or our other devices synced; None when there is none."""
        saved = self.get_secret("avatar" if session_id is None else f"avatar:{session_id}")
        doc = None if saved is None else json.loads(saved)
        return None if not doc else (str(doc["url"]), bytes.fromhex(doc["key"]))

    def put_avatar(self, session_id: str | None, pic: tuple[str, bytes] | None) -> None:
        """Records a profile picture (ours for ``session_id`` None); None records "none"."""
        doc = None if pic is None else {"url": pic[0], "key": pic[1].hex()}
        self.put_secret("avatar" if session_id is None else f"avatar:{session_id}", json.dumps(doc))

    # ------------------------------------------------------------------ config state

    def config_state(self, namespace: int) -> bytes | None:
        """This device's current serialized config message of a user config namespace (the
        merged state it last pushed or adopted), or None before the first one."""
        row = self.conn.execute(
            "SELECT value FROM kv WHERE key=?", (f"s:config_state_{namespace}",)
        ).fetchone()
        return None if row is None else self.sealer.open(row[0])

    def put_config_state(self, namespace: int, message: bytes) -> None:
        """Stores (sealed) this device's serialized config message of ``namespace``."""
        self.conn.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (f"s:config_state_{namespace}", self.sealer.seal(message)),
        )

    # ------------------------------------------------------------------ contacts

    def contact(self, session_id: str) -> Contact | None:
        row = self.conn.execute(
            "SELECT * FROM contacts WHERE session_id=?", (session_id,)
        ).fetchone()
        return None if row is None else self._contact(row)

    def _contact(self, row: sqlite3.Row) -> Contact:
        return Contact(
            session_id=row["session_id"],
            name=self.sealer.open_str(row["name"]),
            approved=bool(row["approved"]),
            approved_me=bool(row["approved_me"]),
            blocked=bool(row["blocked"]),
            exp_mode=int(row["exp_mode"]),
            exp_seconds=int(row["exp_seconds"]),
            updated_ms=int(row["updated_ms"]),
        )

    def contacts(self) -> list[Contact]:
        rows = self.conn.execute("SELECT * FROM contacts ORDER BY session_id").fetchall()
        return [self._contact(r) for r in rows]

    def upsert_contact(self, session_id: str, **fields: Any) -> Contact:
        """Create the contact if needed and set ``fields`` (name is sealed)."""
        allowed = {
            "name",
            "approved",
            "approved_me",
            "blocked",
            "exp_mode",
            "exp_seconds",
            "updated_ms",
        }
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

    def delete_request(self, session_id: str) -> None:
        """Forget a sender we never accepted (no-op for an accepted contact)."""
        self.conn.execute("DELETE FROM contacts WHERE session_id=? AND approved=0", (session_id,))

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
        quote: tuple[int, str] | None = None,
    ) -> int | None:
        """Insert a message; returns its id, or None if (conversation, author, sent_ms) exists."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO messages (conversation, author, sent_ms, outgoing, body, hash,"
            " status, exp_mode, exp_seconds, expires_at_ms, quote_ms, quote_author)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
                None if quote is None else quote[0],
                None if quote is None else quote[1],
            ),
        )
        return cur.lastrowid if cur.rowcount else None

    def _message(self, row: sqlite3.Row) -> Message:
        return Message(
            id=int(row["id"]),
            conversation=row["conversation"],
            author=row["author"],
            sent_ms=int(row["sent_ms"]),
            outgoing=bool(row["outgoing"]),
            body=self.sealer.open_str(row["body"]),
            hash=row["hash"],
            status=row["status"],
            read_ms=row["read_ms"],
            exp_mode=int(row["exp_mode"]),
            exp_seconds=int(row["exp_seconds"]),
            expires_at_ms=row["expires_at_ms"],
            attachments=tuple(self.attachments(int(row["id"]))),
            quote=(
                None
                if row["quote_ms"] is None
                else (int(row["quote_ms"]), str(row["quote_author"]))
            ),
        )

    def add_attachments(self, message_id: int, pointers: Sequence[bytes]) -> None:
        """Store the serialized AttachmentPointers of a message (sealed: they hold keys)."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO attachments (message_id, idx, pointer) VALUES (?,?,?)",
            [(message_id, i, self.sealer.seal(p)) for i, p in enumerate(pointers)],
        )

    def _attachment(self, row: sqlite3.Row) -> Attachment:
        p = pb.AttachmentPointer.FromString(self.sealer.open(row["pointer"]))
        return Attachment(
            id=int(row["id"]),
            message_id=int(row["message_id"]),
            index=int(row["idx"]),
            file_name=p.fileName if p.HasField("fileName") else None,
            content_type=p.contentType or "application/octet-stream",
            size=p.size,
            url=p.url,
            key=p.key,
            digest=p.digest if p.HasField("digest") else None,
            width=p.width or None,
            height=p.height or None,
            voice=bool(p.flags & pb.AttachmentPointer.VOICE_MESSAGE),
            caption=p.caption if p.HasField("caption") else None,
        )

    def attachments(self, message_id: int) -> list[Attachment]:
        """The attachments of one message, in their order."""
        rows = self.conn.execute(
            "SELECT * FROM attachments WHERE message_id=? ORDER BY idx", (message_id,)
        ).fetchall()
        return [self._attachment(r) for r in rows]

    def attachment(self, attachment_id: int) -> Attachment | None:
        """One attachment by its local id."""
        row = self.conn.execute("SELECT * FROM attachments WHERE id=?", (attachment_id,)).fetchone()
        return None if row is None else self._attachment(row)

    def message(self, message_id: int) -> Message | None:
        row = self.conn.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
        return None if row is None else self._message(row)

    def find_message(self, conversation: str, author: str, sent_ms: int) -> Message | None:
        row = self.conn.execute(
            "SELECT * FROM messages WHERE conversation=? AND author=? AND sent_ms=?",
            (conversation, author, sent_ms),
        ).fetchone()
        return None if row is None else self._message(row)

    def messages_by(self, author: str, sent_ms: int) -> list[Message]:
        """Messages of ``author`` sent at ``sent_ms`` in any conversation (unsend requests)."""
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE author=? AND sent_ms=?", (author, sent_ms)
        ).fetchall()
        return [self._message(r) for r in rows]

    def messages(
        self, conversation: str, limit: int = 1000, before: tuple[int, int] | None = None
    ) -> list[Message]:
        """The last ``limit`` messages of a conversation (oldest first); with ``before`` =
        (sent_ms, id), only those ordered before that message (one page further back; the
        ``messages_conv`` index makes each page one index range scan)."""
        args: tuple[str | int, ...]
        if before is None:
            where, args = "conversation=?", (conversation,)
        else:
            where = "conversation=? AND (sent_ms < ? OR (sent_ms = ? AND id < ?))"
            args = (conversation, before[0], before[0], before[1])
        rows = self.conn.execute(
            f"SELECT * FROM (SELECT * FROM messages WHERE {where}"
            " ORDER BY sent_ms DESC, id DESC LIMIT ?) ORDER BY sent_ms, id",
            (*args, limit),
        ).fetchall()
        return [self._message(r) for r in rows]

    def message_count(self, conversation: str) -> int:
        """How many messages a conversation holds."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM messages WHERE conversation=?", (conversation,)
        ).fetchone()
        return int(row[0])

    def has_messages(self, conversation: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM messages WHERE conversation=? LIMIT 1", (conversation,)
        )
        return row.fetchone() is not None

    def conversations(self) -> list[ConversationSummary]:
        rows = self.conn.execute(
            "SELECT conversation, MAX(sent_ms) AS last_ms, COUNT(*) AS count,"
            " SUM(CASE WHEN outgoing=0 AND status='received' THEN 1 ELSE 0 END) AS unread"
            " FROM messages GROUP BY conversation ORDER BY last_ms DESC"
        ).fetchall()
        return [
            ConversationSummary(
                r["conversation"], int(r["last_ms"]), int(r["count"]), int(r["unread"])
            )
            for r in rows
        ]

    def update_message(self, message_id: int, **fields: Any) -> None:
        allowed = {"status", "hash", "read_ms", "expires_at_ms", "body"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown message fields: {sorted(bad)}")
        vals = {
            k: (self.sealer.seal(v) if k == "body" and v is not None else v)
            for k, v in fields.items()
        }
        sets = ", ".join(f"{k}=?" for k in vals)
        self.conn.execute(f"UPDATE messages SET {sets} WHERE id=?", (*vals.values(), message_id))

    def mark_read_until(self, conversation: str, read_ms: int) -> int:
        """Mark received messages of ``conversation`` sent up to ``read_ms`` read (another
        device read them; a delete-after-read timer starts at ``read_ms``); returns how many
        changed."""
        cur = self.conn.execute(
            "UPDATE messages SET status='read', read_ms=?,"
            " expires_at_ms=CASE WHEN exp_mode=1 THEN ? + exp_seconds * 1000"  # (1: after read)
            " ELSE expires_at_ms END"
            " WHERE conversation=? AND outgoing=0 AND status='received' AND sent_ms<=?",
            (read_ms, read_ms, conversation, read_ms),
        )
        return cur.rowcount

    def wrote_since(self, conversation: str, author: str, sent_ms: int) -> bool:
        """Whether ``author`` has a message in ``conversation`` sent after ``sent_ms``."""
        row = self.conn.execute(
            "SELECT 1 FROM messages WHERE conversation=? AND author=? AND sent_ms>? LIMIT 1",
            (conversation, author, sent_ms),
        ).fetchone()
        return row is not None

    def delete_message(self, message_id: int) -> None:
        self.conn.execute("DELETE FROM messages WHERE id=?", (message_id,))

    def expired_messages(self, now_ms: int) -> list[Message]:
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE expires_at_ms IS NOT NULL AND expires_at_ms<=?", (now_ms,)
        ).fetchall()
        return [self._message(r) for r in rows]

    # ------------------------------------------------------------------ outbox rows

    def add_outbox(
        self,
        *,
        kind: str,
        dest: str,
        namespace: int,
        data: str,
        timestamp_ms: int,
        ttl_ms: int,
        message_id: int | None,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO outbox"
            " (kind, dest, namespace, data, timestamp_ms, ttl_ms, message_id, state)"
            " VALUES (?,?,?,?,?,?,?, 'pending')",
            (kind, dest, namespace, data.encode(), timestamp_ms, ttl_ms, message_id),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxEntry]:
        """Pending entries whose next attempt is due by ``now_ms``, oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM outbox WHERE state='pending' AND next_attempt_ms<=? ORDER BY id LIMIT ?",
            (now_ms, limit),
        ).fetchall()
        return [
            OutboxEntry(
                r["id"],
                r["kind"],
                r["dest"],
                r["namespace"],
                bytes(r["data"]).decode(),
                r["timestamp_ms"],
                r["ttl_ms"],
                r["message_id"],
                r["attempts"],
            )
            for r in rows
        ]

    def outbox_pending_count(self) -> int:
        return int(
            self.conn.execute("SELECT COUNT(*) FROM outbox WHERE state='pending'").fetchone()[0]
        )

    def outbox_next_due_ms(self) -> int | None:
        row = self.conn.execute(
            "SELECT MIN(next_attempt_ms) FROM outbox WHERE state='pending'"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def outbox_done(self, entry_id: int, msg_hash: str | None) -> None:
        """Mark an entry delivered (its payload is dropped: nothing needs it any more)."""
        self.conn.execute(
            "UPDATE outbox SET state='done', hash=?, error=NULL, data=x'' WHERE id=?",
            (msg_hash, entry_id),
        )

    def outbox_failed(self, entry_id: int, attempts: int, error: str) -> None:
        self.conn.execute(
            "UPDATE outbox SET state='failed', attempts=?, error=? WHERE id=?",
            (attempts, error, entry_id),
        )

    def outbox_retry_at(self, entry_id: int, attempts: int, next_ms: int, error: str) -> None:
        self.conn.execute(
            "UPDATE outbox SET attempts=?, next_attempt_ms=?, error=? WHERE id=?",
            (attempts, next_ms, error, entry_id),
        )

    def outbox_wake_all(self) -> None:
        self.conn.execute("UPDATE outbox SET next_attempt_ms=0 WHERE state='pending'")

    def outbox_states(self, message_id: int) -> list[OutboxState]:
        """Delivery state of every outbox entry of one message, in queue order."""
        rows = self.conn.execute(
            "SELECT state, hash FROM outbox WHERE message_id=? ORDER BY id", (message_id,)
        )
        return [OutboxState(r[0], r[1]) for r in rows]

    def outbox_last_error(self, message_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT error FROM outbox WHERE message_id=? AND error IS NOT NULL ORDER BY id LIMIT 1",
            (message_id,),
        ).fetchone()
        return None if row is None else str(row[0])

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
        key = (node, namespace)
        h = self._cursors.get(key)
        if h is None:
            row = self.conn.execute(
                "SELECT last_hash FROM cursors WHERE node=? AND namespace=?", (node, namespace)
            ).fetchone()
            h = self._cursors[key] = "" if row is None else str(row[0])
        return h

    def set_last_hash(self, node: str, namespace: int, h: str) -> None:
        """Move a poll cursor. It is written with the next transaction (or at :meth:`close`),
        not on its own: a poll's cursor then reaches the disk together with the messages it
        skips past, which the caller marks seen in one transaction (``Receiver.apply_unseen``),
        instead of before them, and a poll costs one synchronous commit instead of two. A
        cursor lost in a crash only makes the next poll fetch again what ``seen`` dedupes."""
        key = (node, namespace)
        self._cursors[key] = h
        self._dirty_cursors[key] = h
        if self.conn.in_transaction:
            self._write_cursors()

    def _write_cursors(self) -> None:
        if not self._dirty_cursors:
            return
        self.conn.executemany(
            "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(node, namespace)"
            " DO UPDATE SET last_hash=excluded.last_hash",
            [(n, ns, h) for (n, ns), h in self._dirty_cursors.items()],
        )
        self._dirty_cursors.clear()

    # ------------------------------------------------------------------ node cache

    def save_nodes(self, entries: Sequence[dict[str, Any]]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM nodes")
            c.executemany(
                "INSERT INTO nodes VALUES (?, ?)",
                [(e["pubkey_ed25519"], json.dumps(e)) for e in entries],
            )
            c.execute(
                "INSERT INTO kv VALUES ('nodes_ms', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (json.dumps(int(time.time() * 1000)),),
            )

    def load_nodes(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT entry FROM nodes")]

    def save_paths(self, paths: Sequence[Sequence[str]]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM paths")
            c.executemany(
                "INSERT INTO paths (hops) VALUES (?)", [(json.dumps(list(p)),) for p in paths]
            )

    def load_paths(self) -> list[list[str]]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT hops FROM paths ORDER BY id")]

    def save_guards(self, guards: Sequence[str]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM guards")
            c.executemany("INSERT INTO guards (ed25519) VALUES (?)", [(g,) for g in guards])

    def load_guards(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT ed25519 FROM guards")]
