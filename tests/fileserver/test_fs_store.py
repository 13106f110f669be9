"""The file store on its own: content-addressed IDs, expiry, the sweep, limits, and that a crash
at any point of a write leaves no partial file and loses nothing already stored."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from session.errors import InvalidInput, StorageFull
from session.fileserver.store import FileNotFound, FileStore, FileTooLarge, file_id

T0 = 1_800_000_000.0


def store(tmp_path: Path, *, max_size: int = 1000, quota: int = 5000) -> FileStore:
    return FileStore(tmp_path / "store", max_size=max_size, quota=quota)


def test_ids_are_44_char_blake2b_of_the_content(tmp_path: Path) -> None:
    blob = os.urandom(300)
    digest = hashlib.blake2b(blob, digest_size=33, salt=b"SessionFileSvr\x00\x00").digest()
    assert file_id(blob) == base64.urlsafe_b64encode(digest).decode()
    info = store(tmp_path).put(blob, 60, now=T0)
    assert len(info.id) == 44 and info.id == file_id(blob)
    assert (tmp_path / "store" / "files" / info.id).read_bytes() == blob


def test_put_read_info_extend_expire_sweep(tmp_path: Path) -> None:
    s = store(tmp_path)
    blob = b"\x00opaque\xff" * 10
    info = s.put(blob, 100, now=T0)
    assert (info.size, info.uploaded, info.expires) == (len(blob), T0, T0 + 100)
    assert s.read(info.id, now=T0 + 50) == blob
    # Re-uploading the same bytes refreshes the expiry, never shortens it, stores one copy.
    again = s.put(blob, 200, now=T0 + 10)
    assert again.id == info.id and again.expires == T0 + 210 and s.count() == 1
    assert s.extend(info.id, 1000, now=T0 + 20).expires == T0 + 1020
    assert s.extend(info.id, 1, now=T0 + 30).expires == T0 + 1020
    with pytest.raises(FileNotFound, match="expired"):
        s.read(info.id, now=T0 + 1020)
    assert s.sweep(now=T0 + 1019) == 0
    assert s.sweep(now=T0 + 1020) == 1
    assert not (tmp_path / "store" / "files" / info.id).exists() and s.count() == 0


def test_limits(tmp_path: Path) -> None:
    s = store(tmp_path, max_size=1000, quota=2500)
    with pytest.raises(FileTooLarge, match="1001 bytes, the limit is 1000 bytes"):
        s.put(b"x" * 1001, 60)
    with pytest.raises(InvalidInput, match="empty"):
        s.put(b"", 60)
    s.put(b"a" * 1000, 60)
    s.put(b"b" * 1000, 60)
    with pytest.raises(StorageFull, match="full"):
        s.put(b"c" * 1000, 60)
    s.put(b"a" * 1000, 60)  # already stored: a refresh costs no space
    assert s.used_bytes() == 2000
    with pytest.raises(InvalidInput, match="44 characters"):
        s.read("../files.db")


def test_a_crash_mid_write_leaves_no_partial_file_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(tmp_path)
    kept = s.put(b"kept" * 50, 3600)

    def die(*_: object) -> None:
        raise KeyboardInterrupt  # the process is being killed between write and rename

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        s.put(b"new" * 50, 3600)
    monkeypatch.undo()
    s.close()
    # A leftover temp file (a SIGKILL skips the cleanup) and a renamed file that never got
    # its row (killed between rename and commit) are both dropped on the next start.
    (tmp_path / "store" / "tmp" / "partial").write_bytes(b"half")
    orphan = file_id(b"orphan")
    (tmp_path / "store" / "files" / orphan).write_bytes(b"orphan")
    s = store(tmp_path)
    assert sorted(p.name for p in (tmp_path / "store" / "files").iterdir()) == [kept.id]
    assert not list((tmp_path / "store" / "tmp").iterdir())
    assert s.read(kept.id) == b"kept" * 50
    with pytest.raises(FileNotFound):
        s.read(file_id(b"new" * 50))


def test_the_database_is_wal_and_holds_only_id_size_times(tmp_path: Path) -> None:
    store(tmp_path).put(b"x", 60)
    db = sqlite3.connect(tmp_path / "store" / "files.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in db.execute("PRAGMA table_info(files)")]
    assert cols == ["id", "size", "uploaded", "expires"]
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["files"]


def test_an_upload_in_pieces_is_hashed_on_the_way_and_leaves_no_temp_file(tmp_path: Path) -> None:
    s = store(tmp_path, max_size=100_000, quota=500_000)
    blob = os.urandom(90_000)
    up = s.begin()
    for i in range(0, len(blob), 10_000):
        up.write(blob[i : i + 10_000])
    assert up.path.stat().st_size >= 80_000  # on disk while it arrives (a buffer's worth aside)
    info = s.commit(up, 60)
    assert info.id == file_id(blob) and s.read(info.id) == blob
    again = s.begin()
    again.write(blob)
    assert s.commit(again, 60).id == info.id  # already stored: only refreshed
    over = s.begin()
    over.write(b"x" * 100_000)
    with pytest.raises(FileTooLarge, match="over the limit of 100000 bytes"):
        over.write(b"x")
    over.abort()
    with pytest.raises(InvalidInput, match="empty"):
        s.commit(s.begin(), 60)
    assert not list((tmp_path / "store" / "tmp").iterdir())
    assert [p.name for p in (tmp_path / "store" / "files").iterdir()] == [info.id]
