"""The community server's state: one SQLite database (WAL) and the room uploads on disk.

Members are known by the ID of their ``X-SOGS-Pubkey`` header: a 15-blinded ID (``15…``, the
only kind a server that requires blinding accepts), or ``05…`` derived from an unblinded
``00`` key. Moderators, bans and permission overrides are keyed by a *sign-free* form of the
blinded ID (:func:`member_key`): the sign bit of a 15-blinded key cannot be computed from a
Session ID, so an operator naming someone by their ``05`` ID (:func:`keys_for_id`) and the
member's own signed requests meet there. The database never holds the real Session ID of a
blinded member.

Every room has a message sequence counter: each post, edit, deletion and reaction change takes
the next value, so one ``messages/since/N`` poll returns all of them in order. Uploads live
``file_ttl`` seconds (1 h) unless a post references them, then ``posted_file_ttl`` (15 days);
direct messages ``dm_ttl`` (15 days); a request nonce until its request's timestamp is more
than a day old (then the request is refused for its timestamp anyway).

A server-wide budget (``max_storage_bytes``) bounds what members can make the server keep:
the bytes of live room files, post data and direct messages together. The store keeps that
total in memory (counted once with SQL, then added to on every insert and recounted after
anything that frees space), and refuses a new upload, post, edit or DM that would pass it with
:class:`~session.errors.StorageFull`, changing nothing.

Files are written to ``tmp/``, fsynced and renamed into ``files/<id>`` before their row is
committed; on start leftovers of a crash are removed.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from session.blinding import blinded15_ids_for_session_id
from session.errors import InvalidInput, InvalidSessionID, StorageError, StorageFull

#: A room token: what Session's apps accept in a join URL.
TOKEN_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,64}\Z")
ID_PATTERN = re.compile(r"(?:05|15)[0-9a-f]{64}\Z")
TOUCH_INTERVAL = 60.0  # seconds between updates of a member's last_active
GLOBAL = 0  # the room column of server-wide moderators and bans
DB_FILE = "community.db"  # the database's name in the store directory


def now() -> float:
    """The store's clock (Unix seconds); tests move it to expire files, DMs and bans."""
    return time.time()


class NotFound(StorageError):
    """No such room, message, file or member."""


class Forbidden(StorageError):
    """The member may not do this (not a moderator, banned, no permission)."""


class RateLimited(StorageError):
    """The member posted, uploaded or sent direct messages too often."""


class TooLarge(StorageError):
    """A post or upload is over its size limit."""


class NonceReused(StorageError):
    """The request nonce was used before by the same key."""


def check_token(token: str) -> str:
    """``token`` if it is a valid room token, else :class:`InvalidInput`."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise InvalidInput(
            "a room token is 1 to 64 letters, digits, '_' or '-' (no '/', '.', '%' or spaces)"
        )
    return token


def member_key(session_id: str) -> str:
    """The sign-free key of a ``15`` ID (sign bit of its last byte cleared); a ``05`` ID as is."""
    if session_id.startswith("15"):
        last = int(session_id[64:66], 16) & 0x7F
        return session_id[:64] + f"{last:02x}"
    return session_id


def check_id(sid: str) -> str:
    """``sid`` (lower case) if it is a ``05`` or ``15`` ID, else :class:`InvalidSessionID`."""
    if not isinstance(sid, str) or not ID_PATTERN.match(sid.lower()):
        raise InvalidSessionID("an ID is 66 hex digits starting with 05 or 15")
    return sid.lower()


def keys_for_id(sid: str, server_pk_hex: str, *, require_blind: bool) -> list[str]:
    """The member keys an operator's or moderator's ID stands for on this server: a ``15`` ID
    its own key; a ``05`` Session ID the key of its 15-blinded form (and itself too when the
    server also takes unblinded keys)."""
    sid = check_id(sid)
    if sid.startswith("15"):
        return [member_key(sid)]
    keys = [member_key(blinded15_ids_for_session_id(sid, server_pk_hex)[0])]
    if not require_blind:
        keys.append(sid)
    return keys


@dataclass(frozen=True, slots=True)
class Room:
    """One room's row."""

    id: int
    token: str
    name: str
    description: str | None
    image_id: int | None
    created: float
    info_updates: int
    message_sequence: int
    default_read: bool
    default_accessible: bool
    default_write: bool
    default_upload: bool


@dataclass(frozen=True, slots=True)
class User:
    """A member as the server knows it: row id, the ID it signs with, its member key, and
    when it was last seen (as read)."""

    id: int
    session_id: str
    key: str
    last_active: float = 0.0


@dataclass(frozen=True, slots=True)
class Perms:
    """What one member (or an anonymous reader) may do in one room."""

    read: bool
    accessible: bool
    write: bool
    upload: bool
    moderator: bool = False
    admin: bool = False
    banned: bool = False
    visible_mod: bool = True


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One room upload."""

    id: int
    room: int
    size: int
    uploaded: float
    expiry: float
    filename: str | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT,
    image_id INTEGER, created REAL NOT NULL, info_updates INTEGER NOT NULL DEFAULT 0,
    message_sequence INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 1, accessible INTEGER NOT NULL DEFAULT 1,
    write INTEGER NOT NULL DEFAULT 1, upload INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, key TEXT NOT NULL,
    created REAL NOT NULL, last_active REAL NOT NULL);
CREATE INDEX IF NOT EXISTS users_key ON users(key);
CREATE TABLE IF NOT EXISTS room_users (
    room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE, user INTEGER NOT NULL,
    last_active REAL NOT NULL, PRIMARY KEY (room, user));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user INTEGER NOT NULL, posted REAL NOT NULL, edited REAL, data BLOB, signature BLOB,
    seqno INTEGER NOT NULL, seqno_data INTEGER NOT NULL, seqno_reactions INTEGER NOT NULL,
    seqno_creation INTEGER NOT NULL, whisper_to INTEGER, whisper_mods INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS messages_seqno ON messages(room, seqno);
CREATE INDEX IF NOT EXISTS messages_user ON messages(room, user, posted);
CREATE TABLE IF NOT EXISTS reactions (
    message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE, reaction TEXT NOT NULL,
    user INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (message, reaction, user));
CREATE TABLE IF NOT EXISTS pinned (
    room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    pinned_by INTEGER NOT NULL, pinned_at REAL NOT NULL, PRIMARY KEY (room, message));
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    uploader INTEGER NOT NULL, size INTEGER NOT NULL, uploaded REAL NOT NULL,
    expiry REAL NOT NULL, filename TEXT, message INTEGER);
CREATE INDEX IF NOT EXISTS files_expiry ON files(expiry);
CREATE INDEX IF NOT EXISTS files_uploader ON files(uploader, uploaded);
CREATE TABLE IF NOT EXISTS moderators (
    room INTEGER NOT NULL, key TEXT NOT NULL, admin INTEGER NOT NULL,
    visible INTEGER NOT NULL, PRIMARY KEY (room, key));
CREATE TABLE IF NOT EXISTS bans (
    room INTEGER NOT NULL, key TEXT NOT NULL, expires REAL, PRIMARY KEY (room, key));
CREATE TABLE IF NOT EXISTS permissions (
    room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE, key TEXT NOT NULL,
    read INTEGER, accessible INTEGER, write INTEGER, upload INTEGER, PRIMARY KEY (room, key));
CREATE TABLE IF NOT EXISTS dms (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sender INTEGER NOT NULL, recipient INTEGER NOT NULL,
    data BLOB NOT NULL, posted_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dms_recipient ON dms(recipient, id);
CREATE INDEX IF NOT EXISTS dms_sender ON dms(sender, id);
CREATE INDEX IF NOT EXISTS dms_sender_time ON dms(sender, posted_at);
CREATE TABLE IF NOT EXISTS nonces (
    pubkey TEXT NOT NULL, nonce BLOB NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (pubkey, nonce));
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces(expires);
"""

_ROOM_COLS = (
    "id, token, name, description, image_id, created, info_updates, message_sequence,"
    " read, accessible, write, upload"
)


def _room(row: Any) -> Room:
    return Room(
        int(row[0]), row[1], row[2], row[3], row[4], float(row[5]), int(row[6]), int(row[7]),
        bool(row[8]), bool(row[9]), bool(row[10]), bool(row[11]),
    )  # fmt: skip


class CommunityStore:
    """The database and uploads of one data directory (single process; calls are short and
    synchronous: the server runs them one at a time off the event loop)."""

    def __init__(
        self, root: str | os.PathLike[str], *, max_storage_bytes: int | None = None
    ) -> None:
        self.root = Path(root)
        #: The budget of live files, post data and DMs together (None: unbounded).
        self.max_storage_bytes = max_storage_bytes
        self._used: int | None = None  # the running total; None: count again
        self.files = self.root / "files"
        self.tmp = self.root / "tmp"
        for d in (self.root, self.files, self.tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(
                self.root / DB_FILE, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StorageError(f"the community database cannot be opened: {e}") from None
        self._touched: dict[tuple[int, int], float] = {}
        self._recover()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        done = False
        try:
            yield self.db
            done = True
        finally:
            self.db.execute("COMMIT" if done else "ROLLBACK")

    def _recover(self) -> None:
        """Drop what a crash left half-done; never a stored upload."""
        for p in self.tmp.iterdir():
            p.unlink(missing_ok=True)
        known = {str(r[0]) for r in self.db.execute("SELECT id FROM files")}
        for p in self.files.iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)

    # -- the storage budget -----------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes of room files, post data and DMs stored now (what the budget counts)."""
        if self._used is None:
            self._used = int(
                self.db.execute(
                    "SELECT (SELECT COALESCE(SUM(size), 0) FROM files)"
                    " + (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM messages)"
                    " + (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM dms)"
                ).fetchone()[0]
            )
        return self._used

    def _reserve(self, size: int, what: str) -> None:
        """Refuse (:class:`StorageFull`) storing ``size`` more bytes past the budget."""
        budget = self.max_storage_bytes
        if budget is not None and self.used_bytes() + size > budget:
            raise StorageFull(
                f"the community server is out of storage space for this {what}; try again later"
            )

    def _added(self, size: int) -> None:
        if self._used is not None:
            self._used += size

    def _freed(self) -> None:
        """Something was deleted or replaced: count again at the next check."""
        self._used = None

    @staticmethod
    def _check_rate(
        db: sqlite3.Connection,
        sql: str,
        args: tuple[Any, ...],
        limit: tuple[int, float] | None,
        what: str,
        where: str = "",
    ) -> None:
        """:class:`RateLimited` when ``sql`` (a COUNT of the member's recent rows since the
        last argument, ``now - limit[1]`` appended) reaches ``limit[0]``."""
        if limit is None or limit[0] <= 0:
            return
        recent = db.execute(sql, (*args, now() - limit[1])).fetchone()[0]
        if recent >= limit[0]:
            raise RateLimited(
                f"Rate limited: at most {limit[0]} {what} per {limit[1]:g} seconds{where};"
                " try again shortly"
            )

    # -- rooms ------------------------------------------------------------------------------
    def add_room(self, token: str, name: str, description: str | None = None) -> Room:
        check_token(token)
        if not name or len(name) > 100:
            raise InvalidInput("a room name is 1 to 100 characters")
        try:
            self.db.execute(
                "INSERT INTO rooms (token, name, description, created) VALUES (?, ?, ?, ?)",
                (token, name, description, now()),
            )
        except sqlite3.IntegrityError:
            raise InvalidInput(f"a room {token!r} already exists") from None
        return self.room(token)

    def delete_room(self, token: str) -> None:
        room = self.room(token)
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM files WHERE room = ?", (room.id,))]
            db.execute("DELETE FROM moderators WHERE room = ?", (room.id,))
            db.execute("DELETE FROM bans WHERE room = ?", (room.id,))
            db.execute("DELETE FROM rooms WHERE id = ?", (room.id,))
        self._freed()
        for fid in ids:
            (self.files / str(fid)).unlink(missing_ok=True)

    def room(self, token: str) -> Room:
        check_token(token)
        row = self.db.execute(
            f"SELECT {_ROOM_COLS} FROM rooms WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no room {token!r} on this server")
        return _room(row)

    def rooms(self) -> list[Room]:
        return [_room(r) for r in self.db.execute(f"SELECT {_ROOM_COLS} FROM rooms ORDER BY id")]

    def update_room(self, room: Room, **fields: Any) -> Room:
        """Set ``name``/``description``/``image_id``/``read``/… and bump ``info_updates``."""
        allowed = {"name", "description", "image_id", "read", "accessible", "write", "upload"}
        sets = {k: v for k, v in fields.items() if k in allowed}
        if sets:
            cols = ", ".join(f"{k} = ?" for k in sets)
            self.db.execute(
                f"UPDATE rooms SET {cols}, info_updates = info_updates + 1 WHERE id = ?",
                (*sets.values(), room.id),
            )
        return self.room(room.token)

    def _bump_info(self, db: sqlite3.Connection, room_ids: Iterable[int]) -> None:
        for rid in room_ids:
            db.execute("UPDATE rooms SET info_updates = info_updates + 1 WHERE id = ?", (rid,))

    def active_users(self, room: Room, cutoff: float) -> int:
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM room_users WHERE room = ? AND last_active > ?",
                (room.id, now() - cutoff),
            ).fetchone()[0]
        )

    def touch_room(self, room: Room, user: User) -> None:
        """Count the member as active in the room (written at most once a minute per member
        and room; the sweep forgets what it remembered)."""
        t = now()
        if t - self._touched.get((room.id, user.id), 0.0) < TOUCH_INTERVAL:
            return
        self._touched[(room.id, user.id)] = t
        self.db.execute(
            "INSERT INTO room_users (room, user, last_active) VALUES (?, ?, ?)"
            " ON CONFLICT(room, user) DO UPDATE SET last_active = excluded.last_active",
            (room.id, user.id, t),
        )

    # -- members ----------------------------------------------------------------------------
    def user(self, session_id: str, *, create: bool = True) -> User | None:
        """The member signing as ``session_id`` (created on first sight when ``create``)."""
        t = now()
        row = self.db.execute(
            "SELECT id, session_id, key, last_active FROM users WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            if not create:
                return None
            cur = self.db.execute(
                "INSERT INTO users (session_id, key, created, last_active) VALUES (?, ?, ?, ?)",
                (session_id, member_key(session_id), t, t),
            )
            return User(int(cur.lastrowid or 0), session_id, member_key(session_id), t)
        return User(int(row[0]), row[1], row[2], float(row[3]))

    def user_by_key(self, key: str) -> User | None:
        """The most recently active member with this member key."""
        row = self.db.execute(
            "SELECT id, session_id, key FROM users WHERE key = ? ORDER BY last_active DESC",
            (key,),
        ).fetchone()
        return None if row is None else User(int(row[0]), row[1], row[2])

    def touch_user(self, user: User) -> None:
        """Note that the member was active (at most once a minute: a write per poll would be
        most of a poll's cost)."""
        t = now()
        if t - user.last_active >= TOUCH_INTERVAL:
            self.db.execute("UPDATE users SET last_active = ? WHERE id = ?", (t, user.id))

    def use_nonce(self, pubkey: str, nonce: bytes, expires: float) -> None:
        """Remember a request nonce until ``expires`` (when its request could no longer be
        accepted); :class:`NonceReused` if this key used it before."""
        try:
            self.db.execute(
                "INSERT INTO nonces (pubkey, nonce, expires) VALUES (?, ?, ?)",
                (pubkey, nonce, expires),
            )
        except sqlite3.IntegrityError:
            raise NonceReused("X-SOGS-Nonce cannot be reused") from None

    # -- moderators, bans, permissions --------------------------------------------------------
    def _mod_row(self, room_id: int, key: str) -> tuple[bool, bool] | None:
        """(admin, visible) of the strongest moderator entry for ``key`` in the room or global."""
        row = self.db.execute(
            "SELECT MAX(admin), MAX(visible) FROM moderators WHERE key = ? AND room IN (?, ?)",
            (key, GLOBAL, room_id),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return bool(row[0]), bool(row[1])

    def role(self, room: Room, key: str) -> tuple[bool, bool] | None:
        """(admin, visible) if ``key`` moderates ``room`` (there or server-wide), else None."""
        return self._mod_row(room.id, key)

    def banned(self, key: str, room_id: int = GLOBAL) -> bool:
        """True if ``key`` is banned server-wide or (``room_id``) in that room."""
        row = self.db.execute(
            "SELECT 1 FROM bans WHERE key = ? AND room IN (?, ?) AND (expires IS NULL"
            " OR expires > ?)",
            (key, GLOBAL, room_id, now()),
        ).fetchone()
        return row is not None

    def is_global_mod(self, key: str) -> tuple[bool, bool]:
        """(moderator, admin) server-wide."""
        row = self.db.execute(
            "SELECT MAX(admin) FROM moderators WHERE key = ? AND room = ?", (key, GLOBAL)
        ).fetchone()
        if row is None or row[0] is None:
            return False, False
        return True, bool(row[0])

    def perms(self, room: Room, user: User | None) -> Perms:
        """What ``user`` (``None``: an anonymous reader) may do in ``room``."""
        defaults = Perms(
            room.default_read, room.default_accessible, room.default_write, room.default_upload
        )
        if user is None:
            return defaults
        mod = self._mod_row(room.id, user.key)
        if mod is not None:
            return Perms(True, True, True, True, True, mod[0], False, mod[1])
        if self.banned(user.key, room.id):
            return Perms(False, False, False, False, banned=True)
        row = self.db.execute(
            "SELECT read, accessible, write, upload FROM permissions WHERE room = ? AND key = ?",
            (room.id, user.key),
        ).fetchone()
        if row is None:
            return defaults
        base = (defaults.read, defaults.accessible, defaults.write, defaults.upload)
        vals = [d if v is None else bool(v) for v, d in zip(row, base, strict=True)]
        return Perms(*vals)

    def set_moderator(
        self, keys: Iterable[str], room: Room | None, *, admin: bool, visible: bool
    ) -> None:
        rid = GLOBAL if room is None else room.id
        with self._tx() as db:
            for key in keys:
                db.execute(
                    "INSERT INTO moderators (room, key, admin, visible) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(room, key) DO UPDATE SET admin = excluded.admin,"
                    " visible = excluded.visible",
                    (rid, key, int(admin), int(visible)),
                )
            self._bump_info(db, [rid] if rid else [r.id for r in self.rooms()])

    def remove_moderator(
        self, keys: Iterable[str], room: Room | None, *, admin_only: bool = False
    ) -> int:
        rid = GLOBAL if room is None else room.id
        n = 0
        with self._tx() as db:
            for key in keys:
                if admin_only:
                    cur = db.execute(
                        "UPDATE moderators SET admin = 0 WHERE room = ? AND key = ?", (rid, key)
                    )
                else:
                    cur = db.execute(
                        "DELETE FROM moderators WHERE room = ? AND key = ?", (rid, key)
                    )
                n += cur.rowcount
            self._bump_info(db, [rid] if rid else [r.id for r in self.rooms()])
        return n

    def moderators(self, room: Room) -> list[tuple[str, bool, bool, bool]]:
        """(member ID, admin, visible, global) of the room's moderators; the ID is the member's
        own (signed) ID when the server has seen them, else the sign-free key."""
        out = []
        for key, admin, visible, rid in self.db.execute(
            "SELECT key, admin, visible, room FROM moderators WHERE room IN (?, ?)"
            " ORDER BY room DESC, key",
            (GLOBAL, room.id),
        ):
            u = self.user_by_key(key)
            out.append((u.session_id if u else key, bool(admin), bool(visible), rid == GLOBAL))
        return out

    def ban(self, keys: Iterable[str], room: Room | None, timeout: float | None) -> None:
        """Ban ``keys`` from ``room`` (``None``: the server); a room ban also ends their
        moderator status in that room (a moderator's permissions would outrank the ban)."""
        rid = GLOBAL if room is None else room.id
        expires = None if timeout is None else now() + timeout
        with self._tx() as db:
            for key in keys:
                if (
                    rid != GLOBAL
                    and db.execute(
                        "DELETE FROM moderators WHERE room = ? AND key = ?", (rid, key)
                    ).rowcount
                ):
                    self._bump_info(db, [rid])
                db.execute(
                    "INSERT INTO bans (room, key, expires) VALUES (?, ?, ?)"
                    " ON CONFLICT(room, key) DO UPDATE SET expires = excluded.expires",
                    (rid, key, expires),
                )

    def unban(self, keys: Iterable[str], room: Room | None) -> int:
        rid = GLOBAL if room is None else room.id
        n = 0
        with self._tx() as db:
            for key in keys:
                n += db.execute("DELETE FROM bans WHERE room = ? AND key = ?", (rid, key)).rowcount
        return n

    def set_permissions(self, room: Room, key: str, perms: dict[str, bool | None]) -> None:
        """Override (``True``/``False``) or reset to the room's default (``None``)."""
        cols = [c for c in ("read", "accessible", "write", "upload") if c in perms]
        if not cols:
            return
        vals = [None if perms[c] is None else int(bool(perms[c])) for c in cols]
        self.db.execute(
            f"INSERT INTO permissions (room, key, {', '.join(cols)})"
            f" VALUES (?, ?, {', '.join('?' for _ in cols)})"
            f" ON CONFLICT(room, key) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in cols),
            (room.id, key, *vals),
        )

    def permission_overrides(self, room: Room) -> dict[str, dict[str, bool]]:
        out: dict[str, dict[str, bool]] = {}
        for key, *vals in self.db.execute(
            "SELECT key, read, accessible, write, upload FROM permissions WHERE room = ?",
            (room.id,),
        ):
            u = self.user_by_key(key)
            names = ("read", "accessible", "write", "upload")
            d = {n: bool(v) for n, v in zip(names, vals, strict=True) if v is not None}
            if d:
                out[u.session_id if u else key] = d
        return out

    # -- messages -----------------------------------------------------------------------------
    def _next_seqno(self, db: sqlite3.Connection, room_id: int) -> int:
        db.execute(
            "UPDATE rooms SET message_sequence = message_sequence + 1 WHERE id = ?", (room_id,)
        )
        return int(
            db.execute("SELECT message_sequence FROM rooms WHERE id = ?", (room_id,)).fetchone()[0]
        )

    def add_post(
        self,
        room: Room,
        user: User,
        data: bytes,
        signature: bytes,
        *,
        whisper_to: User | None = None,
        whisper_mods: bool = False,
        files: list[int] = (),  # type: ignore[assignment]  # read-only default
        rate_limit: tuple[int, float] | None = None,
        file_ttl: float = 0.0,
    ) -> int:
        """Store a post; returns its id. ``rate_limit`` (posts, seconds): :class:`RateLimited`
        when the member already made that many posts in the room within that time."""
        t = now()
        with self._tx() as db:
            self._check_rate(
                db, "SELECT COUNT(*) FROM messages WHERE room = ? AND user = ? AND posted >= ?",
                (room.id, user.id), rate_limit, "posts", " in one room",
            )  # fmt: skip
            self._reserve(len(data), "post")
            seq = self._next_seqno(db, room.id)
            cur = db.execute(
                "INSERT INTO messages (room, user, posted, data, signature, seqno, seqno_data,"
                " seqno_reactions, seqno_creation, whisper_to, whisper_mods)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    room.id, user.id, t, data, signature, seq, seq, 0, seq,
                    whisper_to.id if whisper_to else None, int(whisper_mods),
                ),
            )  # fmt: skip
            msg_id = int(cur.lastrowid or 0)
            self._own_files(db, room, user, msg_id, files, t + file_ttl)
        self._added(len(data))
        return msg_id

    def _own_files(
        self,
        db: sqlite3.Connection,
        room: Room,
        user: User,
        msg_id: int,
        files: Iterable[int],
        expiry: float,
    ) -> None:
        """Files the poster uploaded to this room and no post owns yet now live until
        ``expiry`` and belong to the post (others' or foreign files are left alone)."""
        for fid in files:
            db.execute(
                "UPDATE files SET message = ?, expiry = MAX(expiry, ?) WHERE id = ? AND room = ?"
                " AND uploader = ? AND message IS NULL",
                (msg_id, expiry, fid, room.id, user.id),
            )

    def _message_row(self, room: Room, msg_id: int) -> Any:
        return self.db.execute(
            "SELECT id, user, data FROM messages WHERE room = ? AND id = ?", (room.id, msg_id)
        ).fetchone()

    def edit_post(
        self,
        room: Room,
        user: User,
        msg_id: int,
        data: bytes,
        signature: bytes,
        files: list[int],
        file_ttl: float,
    ) -> None:
        row = self._message_row(room, msg_id)
        if row is None or row[2] is None:
            raise NotFound(f"no message {msg_id} in this room")
        if row[1] != user.id:
            raise Forbidden("only the author of a post may edit it")
        t = now()
        with self._tx() as db:
            self._reserve(len(data) - len(row[2]), "edit")
            seq = self._next_seqno(db, room.id)
            db.execute(
                "UPDATE messages SET data = ?, signature = ?, edited = ?, seqno = ?,"
                " seqno_data = ? WHERE id = ?",
                (data, signature, t, seq, seq, msg_id),
            )
            self._own_files(db, room, user, msg_id, files, t + file_ttl)
        self._added(len(data) - len(row[2]))

    def delete_posts(self, room: Room, msg_ids: Iterable[int]) -> int:
        """Turn posts into deletion markers (no data, reactions, pins or files)."""
        n = 0
        with self._tx() as db:
            for mid in msg_ids:
                row = db.execute(
                    "SELECT data FROM messages WHERE room = ? AND id = ?", (room.id, mid)
                ).fetchone()
                if row is None or row[0] is None:
                    continue
                seq = self._next_seqno(db, room.id)
                db.execute(
                    "UPDATE messages SET data = NULL, signature = NULL, seqno = ?,"
                    " seqno_data = ?, edited = NULL WHERE id = ?",
                    (seq, seq, mid),
                )
                db.execute("DELETE FROM reactions WHERE message = ?", (mid,))
                if db.execute("DELETE FROM pinned WHERE message = ?", (mid,)).rowcount:
                    self._bump_info(db, [room.id])
                db.execute("UPDATE files SET expiry = 0 WHERE message = ?", (mid,))
                n += 1
        self._freed()
        return n

    def delete_post(self, room: Room, user: User, msg_id: int, *, moderator: bool) -> None:
        row = self._message_row(room, msg_id)
        if row is None or row[2] is None:
            raise NotFound(f"no message {msg_id} in this room")
        if row[1] != user.id and not moderator:
            raise Forbidden("only the author or a moderator may delete a post")
        self.delete_posts(room, [msg_id])

    def posts_of(self, room: Room, key: str) -> list[int]:
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT m.id FROM messages m JOIN users u ON m.user = u.id"
                " WHERE m.room = ? AND u.key = ? AND m.data IS NOT NULL",
                (room.id, key),
            )
        ]

    def messages(
        self,
        room: Room,
        user: User | None,
        moderator: bool,
        *,
        since: int | None = None,
        before: int | None = None,
        recent: bool = False,
        single: int | None = None,
        limit: int = 100,
        reaction_updates: bool = False,
        reactors: int = 4,
    ) -> list[dict[str, Any]]:
        """Message objects (client spec §4.4), newest first for ``recent``/``before``, in
        update order for ``since`` (with deletions, edits and, when ``reaction_updates``,
        reaction-only updates)."""
        where = ["m.room = :room"]
        order = "ORDER BY m.id DESC LIMIT :limit"
        if since is not None:
            where.append("m.seqno > :since")
            where.append("(m.data IS NOT NULL OR m.seqno_creation <= :since)")
            if not reaction_updates:
                where.append("m.seqno_data > :since")
            order = "ORDER BY m.seqno ASC LIMIT :limit"
        else:
            where.append("m.data IS NOT NULL")
            if before is not None:
                where.append("m.id < :before")
            elif single is not None:
                where.append("m.id = :single")
        uid = user.id if user else None
        if moderator:
            where.append(
                "(m.whisper_mods OR m.whisper_to = :uid OR m.user = :uid OR m.whisper_to IS NULL)"
            )
        elif user is not None:
            where.append(
                "(m.whisper_to = :uid OR m.user = :uid"
                " OR (m.whisper_to IS NULL AND NOT m.whisper_mods))"
            )
        else:
            where.append("m.whisper_to IS NULL AND NOT m.whisper_mods")
        rows = self.db.execute(
            "SELECT m.id, u.session_id, m.posted, m.edited, m.seqno, m.seqno_data, m.data,"
            " m.signature, m.whisper_to, m.whisper_mods,"
            " (SELECT session_id FROM users WHERE id = m.whisper_to)"
            f" FROM messages m JOIN users u ON m.user = u.id WHERE {' AND '.join(where)} {order}",
            {
                "room": room.id, "since": since, "before": before, "single": single,
                "limit": limit, "uid": uid,
            },
        ).fetchall()  # fmt: skip
        out: list[dict[str, Any]] = []
        for mid, sid, posted, edited, seqno, seqno_data, data, sig, wto, wmods, wto_id in rows:
            if since is not None and seqno_data <= since:  # only its reactions changed
                out.append({"id": mid, "seqno": seqno})
                continue
            msg: dict[str, Any] = {"id": mid, "session_id": sid, "posted": posted, "seqno": seqno}
            if data is None:
                msg["data"] = None
                msg["deleted"] = True
            else:
                msg["data"] = data
                msg["signature"] = sig
            if edited is not None:
                msg["edited"] = edited
            if wto is not None or wmods:
                msg["whisper"] = True
                msg["whisper_mods"] = bool(wmods)
                if wto is not None:
                    msg["whisper_to"] = wto_id
            out.append(msg)
        live = [m["id"] for m in out if m.get("data", b"") is not None]
        reacts = self.reactions([int(i) for i in live], user, reactors)
        for m in out:
            if m.get("data", b"") is not None:
                m["reactions"] = reacts.get(m["id"], {})
        return out

    # -- reactions ----------------------------------------------------------------------------
    def reactions(
        self, msg_ids: list[int], user: User | None, reactor_limit: int
    ) -> dict[int, dict[str, dict[str, Any]]]:
        if not msg_ids:
            return {}
        out: dict[int, dict[str, dict[str, Any]]] = {}
        marks = ",".join("?" for _ in msg_ids)
        rows = self.db.execute(
            "SELECT r.message, r.reaction, u.session_id, r.user FROM reactions r"
            f" JOIN users u ON r.user = u.id WHERE r.message IN ({marks})"
            " ORDER BY r.message, r.rowid",
            msg_ids,
        )
        for mid, emoji, sid, uid in rows:
            per = out.setdefault(mid, {})
            val = per.get(emoji)
            if val is None:
                val = per[emoji] = {"index": len(per), "count": 0}
                if reactor_limit > 0:
                    val["reactors"] = []
            val["count"] += 1
            if reactor_limit > 0 and len(val["reactors"]) < reactor_limit:
                val["reactors"].append(sid)
            if user is not None and uid == user.id:
                val["you"] = True
        return out

    def _live_message(self, room: Room, msg_id: int) -> None:
        row = self.db.execute(
            "SELECT 1 FROM messages WHERE room = ? AND id = ? AND data IS NOT NULL"
            " AND whisper_to IS NULL AND NOT whisper_mods",
            (room.id, msg_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"no message {msg_id} in this room")

    def _reaction_seqno(self, db: sqlite3.Connection, room: Room, msg_id: int) -> int:
        seq = self._next_seqno(db, room.id)
        db.execute(
            "UPDATE messages SET seqno = ?, seqno_reactions = ? WHERE id = ?", (seq, seq, msg_id)
        )
        return seq

    def _seqno_of(self, msg_id: int) -> int:
        return int(
            self.db.execute("SELECT seqno FROM messages WHERE id = ?", (msg_id,)).fetchone()[0]
        )

    def add_reaction(self, room: Room, user: User, msg_id: int, emoji: str) -> tuple[bool, int]:
        """(added, seqno): False when the member had already reacted so."""
        self._live_message(room, msg_id)
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO reactions (message, reaction, user, at) VALUES (?, ?, ?, ?)",
                (msg_id, emoji, user.id, now()),
            )
            if cur.rowcount:
                return True, self._reaction_seqno(db, room, msg_id)
        return False, self._seqno_of(msg_id)

    def remove_reactions(
        self, room: Room, msg_id: int, emoji: str | None, user: User | None
    ) -> tuple[int, int]:
        """(removed, seqno): the member's reaction, or (``user`` None) everyone's ``emoji`` or
        every reaction."""
        self._live_message(room, msg_id)
        sql = "DELETE FROM reactions WHERE message = ?"
        args: list[Any] = [msg_id]
        if emoji is not None:
            sql += " AND reaction = ?"
            args.append(emoji)
        if user is not None:
            sql += " AND user = ?"
            args.append(user.id)
        with self._tx() as db:
            n = db.execute(sql, args).rowcount
            if n:
                return n, self._reaction_seqno(db, room, msg_id)
        return 0, self._seqno_of(msg_id)

    def reactors(self, room: Room, msg_id: int, emoji: str, limit: int | None) -> list[list[Any]]:
        self._live_message(room, msg_id)
        sql = (
            "SELECT u.session_id, r.at FROM reactions r JOIN users u ON r.user = u.id"
            " WHERE r.message = ? AND r.reaction = ? ORDER BY r.at"
        )
        args: list[Any] = [msg_id, emoji]
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [[sid, at] for sid, at in self.db.execute(sql, args)]

    # -- pins -----------------------------------------------------------------------------------
    def pin(self, room: Room, user: User, msg_id: int) -> int:
        self._live_message(room, msg_id)
        with self._tx() as db:
            db.execute(
                "INSERT INTO pinned (room, message, pinned_by, pinned_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(room, message) DO UPDATE SET pinned_at = excluded.pinned_at,"
                " pinned_by = excluded.pinned_by",
                (room.id, msg_id, user.id, now()),
            )
            self._bump_info(db, [room.id])
        return self.room(room.token).info_updates

    def unpin(self, room: Room, msg_id: int | None) -> tuple[int, int]:
        """(unpinned, info_updates); ``msg_id`` None unpins all."""
        with self._tx() as db:
            if msg_id is None:
                n = db.execute("DELETE FROM pinned WHERE room = ?", (room.id,)).rowcount
            else:
                n = db.execute(
                    "DELETE FROM pinned WHERE room = ? AND message = ?", (room.id, msg_id)
                ).rowcount
            if n:
                self._bump_info(db, [room.id])
        return n, self.room(room.token).info_updates

    def pinned(self, room: Room) -> list[dict[str, Any]]:
        return [
            {"id": mid, "pinned_at": at, "pinned_by": sid}
            for mid, at, sid in self.db.execute(
                "SELECT p.message, p.pinned_at, u.session_id FROM pinned p JOIN users u"
                " ON p.pinned_by = u.id WHERE p.room = ? ORDER BY p.pinned_at",
                (room.id,),
            )
        ]

    # -- files --------------------------------------------------------------------------------
    def put_file(
        self,
        room: Room,
        user: User,
        blob: bytes,
        filename: str | None,
        ttl: float,
        *,
        rate_limit: tuple[int, float] | None = None,
    ) -> int:
        """Store an upload for ``ttl`` seconds; returns its id. ``rate_limit`` (uploads,
        seconds): :class:`RateLimited` when the member already uploaded that many files
        (anywhere on the server) within that time; :class:`StorageFull` past the budget."""
        with self._tx() as db:  # refuse before writing anything
            self._check_rate(
                db, "SELECT COUNT(*) FROM files WHERE uploader = ? AND uploaded >= ?",
                (user.id,), rate_limit, "uploads",
            )  # fmt: skip
            self._reserve(len(blob), "upload")
        t = now()
        fd, name = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO files (room, uploader, size, uploaded, expiry, filename)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (room.id, user.id, len(blob), t, t + ttl, filename),
                )
                fid = int(cur.lastrowid or 0)
                os.replace(name, self.files / str(fid))
        finally:
            Path(name).unlink(missing_ok=True)  # only left when something above failed
        self._added(len(blob))
        return fid

    def file(self, room: Room, fid: int) -> tuple[StoredFile, bytes]:
        row = self.db.execute(
            "SELECT id, room, size, uploaded, expiry, filename FROM files"
            " WHERE id = ? AND room = ? AND expiry > ?",
            (fid, room.id, now()),
        ).fetchone()
        if row is None:
            raise NotFound("no such file: it never existed or it expired")
        try:
            blob = (self.files / str(fid)).read_bytes()
        except FileNotFoundError:
            raise NotFound("no such file: it never existed or it expired") from None
        return StoredFile(*row), blob

    def keep_file(self, fid: int) -> None:
        """Keep a file for good (a room's image), even when a post that used it is deleted."""
        self.db.execute("UPDATE files SET expiry = 1e15, message = NULL WHERE id = ?", (fid,))

    def expire_file(self, fid: int, ttl: float) -> None:
        """Let a kept file (a replaced room image) expire ``ttl`` seconds from now."""
        self.db.execute("UPDATE files SET expiry = ? WHERE id = ?", (now() + ttl, fid))

    # -- direct messages ----------------------------------------------------------------------
    def send_dm(
        self,
        sender: User,
        recipient: User,
        data: bytes,
        ttl: float,
        *,
        rate_limit: tuple[int, float] | None = None,
    ) -> dict[str, Any]:
        """Store a direct message for ``ttl`` seconds. ``rate_limit`` (messages, seconds):
        :class:`RateLimited` when ``sender`` already sent that many within that time;
        :class:`StorageFull` past the budget."""
        t = now()
        with self._tx() as db:
            self._check_rate(
                db, "SELECT COUNT(*) FROM dms WHERE sender = ? AND posted_at >= ?",
                (sender.id,), rate_limit, "direct messages",
            )  # fmt: skip
            self._reserve(len(data), "message")
            cur = db.execute(
                "INSERT INTO dms (sender, recipient, data, posted_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (sender.id, recipient.id, data, t, t + ttl),
            )
        self._added(len(data))
        return {
            "id": int(cur.lastrowid or 0),
            "posted_at": t,
            "expires_at": t + ttl,
            "sender": sender.session_id,
            "recipient": recipient.session_id,
        }

    def dms(
        self, user: User, *, outbox: bool, since: int | None, limit: int
    ) -> list[dict[str, Any]]:
        mine = "d.sender" if outbox else "d.recipient"
        rows = self.db.execute(
            "SELECT d.id, d.posted_at, d.expires_at, s.session_id, r.session_id, d.data"
            " FROM dms d JOIN users s ON d.sender = s.id JOIN users r ON d.recipient = r.id"
            f" WHERE {mine} = ? AND d.id > ? AND d.expires_at > ? ORDER BY d.id LIMIT ?",
            (user.id, since or 0, now(), limit),
        )
        return [
            {
                "id": i, "posted_at": p, "expires_at": e, "sender": s, "recipient": r,
                "message": data,
            }
            for i, p, e, s, r, data in rows
        ]  # fmt: skip

    def delete_inbox(self, user: User) -> int:
        self._freed()
        return self.db.execute("DELETE FROM dms WHERE recipient = ?", (user.id,)).rowcount

    # -- upkeep -------------------------------------------------------------------------------
    def sweep(self) -> tuple[int, int, int]:
        """Delete expired files, DMs and old nonces; returns how many of each."""
        t = now()
        self._touched.clear()
        gone = [r[0] for r in self.db.execute("SELECT id FROM files WHERE expiry <= ?", (t,))]
        for fid in gone:
            self.db.execute("DELETE FROM files WHERE id = ? AND expiry <= ?", (fid, t))
            (self.files / str(fid)).unlink(missing_ok=True)
        dms = self.db.execute("DELETE FROM dms WHERE expires_at <= ?", (t,)).rowcount
        nonces = self.db.execute("DELETE FROM nonces WHERE expires <= ?", (t,)).rowcount
        self.db.execute("DELETE FROM bans WHERE expires IS NOT NULL AND expires <= ?", (t,))
        self._freed()
        return len(gone), dms, nonces


__all__ = [
    "DB_FILE",
    "GLOBAL",
    "CommunityStore",
    "Forbidden",
    "NonceReused",
    "NotFound",
    "Perms",
    "RateLimited",
    "Room",
    "StoredFile",
    "TooLarge",
    "User",
    "check_id",
    "check_token",
    "keys_for_id",
    "member_key",
]
