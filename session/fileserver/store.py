"""Blobs on disk, metadata in SQLite.

A blob lives at ``files/<id>`` where ``id`` is the 44-character URL-safe base64 of
BLAKE2b-264(blob, salt ``SessionFileSvr\\0\\0``) (client spec §5.5): the same bytes always get
the same ID, and uploading them again only refreshes their expiry. ``files.db`` (WAL) holds one
row per blob: id, size, uploaded, expires. Nothing else: the server never learns a Session ID,
a file name or a content type.

Writing is crash-safe: a blob is written to ``tmp/``, fsynced, renamed into ``files/`` and
only then recorded. On start, leftovers in ``tmp/`` are removed, and a file without a row (a
crash between rename and commit) is removed too; a stored blob is never touched.
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


def file_id(blob: bytes) -> str:
    """The content-addressed ID of ``blob`` (44 URL-safe base64 characters)."""
    digest = hashlib.blake2b(blob, digest_size=33, salt=ID_SALT).digest()
    return base64.urlsafe_b64encode(digest).decode()


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
        now = time.time() if now is None else now
        fid = file_id(blob)
        existing = self._row(fid)
        if existing is None:
            if self.used_bytes() + len(blob) > self.quota:
                raise StorageFull("the file server is full; try again later")
            self._write(fid, blob)
        self.db.execute(
            "INSERT INTO files (id, size, uploaded, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET uploaded = excluded.uploaded,"
            " expires = MAX(files.expires, excluded.expires)",
            (fid, len(blob), now, now + ttl),
        )
        info = self._row(fid)
        assert info is not None  # just written
        return info

    def _write(self, fid: str, blob: bytes) -> None:
        fd, name = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, self.files / fid)
        finally:
            Path(name).unlink(missing_ok=True)  # only left when something above failed
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


__all__ = ["FileInfo", "FileNotFound", "FileStore", "FileTooLarge", "check_id", "file_id"]
