"""Blobs on disk, metadata in SQLite.

A blob lives at ``files/<id>`` where ``id`` is the 44-character URL-safe base64 of
BLAKE2b-264(blob, salt ``SessionFileSvr\\0\\0``) (client spec §5.5): the same bytes always get
the same ID, and uploading them again only refreshes their expiry. ``files.db`` (WAL) holds one
row per blob: id, size, uploaded, expires. Nothing else: the server never learns a Session ID,
a file name or a content type.

Writing is crash-safe: a blob is written to ``tmp/`` as it arrives (:class:`Upload`, hashed on
the way, so a plain HTTPS upload is never held in memory whole), fsynced, renamed into
``files/`` and only then recorded. On start, leftovers in ``tmp/`` are removed, and a file
without a row (a crash between rename and commit) is removed too; a stored blob is never
touched.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from session.errors import FileTooLarge, InvalidInput, StorageError, StorageFull

#: Salt of the content-addressed file ID (16 bytes, as the reference server uses).
ID_SALT = b"SessionFileSvr\0\0"
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{44}\Z")


class FileNotFound(StorageError):
    """No such file, or it expired."""


def _id_hash() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=33, salt=ID_SALT)


def file_id(blob: bytes) -> str:
    """The content-addressed ID of ``blob`` (44 URL-safe base64 characters)."""
    h = _id_hash()
    h.update(blob)
    return base64.urlsafe_b64encode(h.digest()).decode()


def check_id(fid: str) -> str:
    """``fid`` if it has the shape of a file ID, else :class:`InvalidInput`."""
    if not ID_PATTERN.match(fid):
        raise InvalidInput("a file id is 44 characters of URL-safe base64")
    return fid


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What the server knows about one file."""

    id: str
    size: int
    uploaded: float
    expires: float

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "size": self.size,
            "uploaded": self.uploaded,
            "expires": self.expires,
        }


class Upload:
    """A blob being received: each piece is hashed and appended to a file in ``tmp/``;
    :meth:`FileStore.commit` moves it into place, :meth:`abort` drops it (once over, the temp
    file is gone either way)."""

    def __init__(self, tmp_dir: Path, max_size: int) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = _id_hash()
        self.max_size = max_size
        self.size = 0

    def write(self, piece: bytes) -> None:
        """Append ``piece``; :class:`FileTooLarge` once the blob is over the limit."""
        self.size += len(piece)
        if self.size > self.max_size:
            raise FileTooLarge(f"file too large: over the limit of {self.max_size} bytes")
        self._hash.update(piece)
        self._file.write(piece)

    def finish(self) -> str:
        """Flush and fsync the temp file; the blob's ID."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return base64.urlsafe_b64encode(self._hash.digest()).decode()

    def abort(self) -> None:
        """Drop the temp file (idempotent)."""
        self._file.close()
        self.path.unlink(missing_ok=True)


class FileStore:
    """The files of one data directory (single process; calls are short and synchronous)."""

    def __init__(self, root: str | os.PathLike[str], *, max_size: int, quota: int) -> None:
        self.root = Path(root)
        self.files = self.root / "files"
        self.tmp = self.root / "tmp"
        self.max_size = max_size
        self.quota = quota
        for d in (self.root, self.files, self.tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            self.root / "files.db", isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, size INTEGER NOT NULL,"
            " uploaded REAL NOT NULL, expires REAL NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS files_expires ON files(expires)")
        self._recover()

    def close(self) -> None:
        self.db.close()

    def _recover(self) -> None:
        """Drop what a crash left half-done; never a stored blob."""
        for p in self.tmp.iterdir():
            p.unlink(missing_ok=True)
        known = {r[0] for r in self.db.execute("SELECT id FROM files")}
        for p in self.files.iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)
        for fid in known:
            if not (self.files / fid).exists():
                self.db.execute("DELETE FROM files WHERE id = ?", (fid,))

    def used_bytes(self) -> int:
        """Bytes of all stored blobs."""
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM files").fetchone()[0])

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def put(self, blob: bytes, ttl: float, now: float | None = None) -> FileInfo:
        """Store ``blob`` for ``ttl`` seconds (or refresh it if already stored)."""
        if not blob:
            raise InvalidInput("the upload is empty: send the file's bytes as the request body")
        if len(blob) > self.max_size:
            raise FileTooLarge(
                f"file too large: {len(blob)} bytes, the limit is {self.max_size} bytes"
            )
        up = self.begin()
        try:
            up.write(blob)
            return self.commit(up, ttl, now)
        finally:
            up.abort()  # (a no-op once committed)

    def begin(self) -> Upload:
        """Start receiving a blob piece by piece (then :meth:`commit` or ``abort`` it)."""
        return Upload(self.tmp, self.max_size)

    def commit(self, up: Upload, ttl: float, now: float | None = None) -> FileInfo:
        """Store the blob ``up`` received for ``ttl`` seconds (or refresh it if already stored):
        fsynced, renamed into place, then recorded. Raises InvalidInput for an empty one and
        StorageFull over the quota; the temp file is gone afterwards whatever happens."""
        try:
            if up.size == 0:
                raise InvalidInput("the upload is empty: send the file's bytes as the request body")
            fid = up.finish()
            now = time.time() if now is None else now
            if self._row(fid) is None:
                if self.used_bytes() + up.size > self.quota:
                    raise StorageFull("the file server is full; try again later")
                os.replace(up.path, self.files / fid)
                self._sync_dir()
        finally:
            up.abort()  # only left when the blob was already stored or something failed
        self.db.execute(
            "INSERT INTO files (id, size, uploaded, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET uploaded = excluded.uploaded,"
            " expires = MAX(files.expires, excluded.expires)",
            (fid, up.size, now, now + ttl),
        )
        info = self._row(fid)
        assert info is not None  # just written
        return info

    def _sync_dir(self) -> None:
        dfd = os.open(self.files, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _row(self, fid: str) -> FileInfo | None:
        row = self.db.execute(
            "SELECT id, size, uploaded, expires FROM files WHERE id = ?", (fid,)
        ).fetchone()
        return None if row is None else FileInfo(row[0], int(row[1]), row[2], row[3])

    def info(self, fid: str, now: float | None = None) -> FileInfo:
        """The file's metadata; :class:`FileNotFound` if missing or expired."""
        now = time.time() if now is None else now
        info = self._row(check_id(fid))
        if info is None or info.expires <= now:
            raise FileNotFound("no such file: it never existed or it expired")
        return info

    def read(self, fid: str, now: float | None = None) -> bytes:
        """The blob; :class:`FileNotFound` if missing or expired."""
        self.info(fid, now)
        try:
            return (self.files / fid).read_bytes()
        except FileNotFoundError:
            raise FileNotFound("no such file: it never existed or it expired") from None

    def extend(self, fid: str, ttl: float, now: float | None = None) -> FileInfo:
        """Keep the file ``ttl`` more seconds from now (never shortens it)."""
        now = time.time() if now is None else now
        self.info(fid, now)
        self.db.execute("UPDATE files SET expires = MAX(expires, ?) WHERE id = ?", (now + ttl, fid))
        return self.info(fid, now)

    def sweep(self, now: float | None = None) -> int:
        """Delete expired files; returns how many."""
        now = time.time() if now is None else now
        gone = [r[0] for r in self.db.execute("SELECT id FROM files WHERE expires <= ?", (now,))]
        for fid in gone:
            self.db.execute("DELETE FROM files WHERE id = ? AND expires <= ?", (fid, now))
            (self.files / fid).unlink(missing_ok=True)
        return len(gone)


__all__ = [
    "FileInfo",
    "FileNotFound",
    "FileStore",
    "FileTooLarge",
    "Upload",
    "check_id",
    "file_id",
]
