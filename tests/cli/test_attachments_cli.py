"""Attachments end to end on a devnet through the CLI (issue 10): ``session send --file`` and
``session save``. A 3 MB file reaches the other side byte-identical through onion paths; the
file server's disk holds only ciphertext of the padded bucket size; a tampered blob is
refused and writes nothing; an existing file is never replaced without --force; a file over
the limit is refused before anything is uploaded."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from session import _core, attachments
from session.cli.client import main

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not hasattr(_core, "AttachmentEncryptor") or not hasattr(_core, "profile_pic_encrypt"),
        reason="session/_core.abi3.so predates attachments: rebuild it (maturin build)",
    ),
]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=5)
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("SESSION_HOME", "SESSION_NETWORK"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def run(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(main, ["--home", str(home), *args])


def js(r: Result) -> Any:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def error_line(r: Result) -> str:
    assert r.exit_code == 1, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def stored_blobs(net: Any) -> list[Path]:
    return sorted(p for p in (net.dir / "fileserver").rglob("files/*") if p.is_file())


def test_file_a_to_b(runner: CliRunner, tmp_path: Path, devnet: Any) -> None:
    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a = js(run(runner, ha, "id", "new", "--json"))["session_id"]
    b = js(run(runner, hb, "id", "new", "--json"))["session_id"]
    data = os.urandom(3_000_000)
    src = tmp_path / "holiday photos.bin"
    src.write_bytes(data)

    sent = js(
        run(
            runner,
            ha,
            "--network",
            nodes,
            "send",
            b,
            "--file",
            str(src),
            "--caption",
            "for you",
            "--json",
        )
    )
    assert sent["status"] == "sent"

    # the server holds one opaque blob of exactly the padded, encrypted size
    [blob_path] = stored_blobs(devnet)
    blob = blob_path.read_bytes()
    assert len(blob) == attachments.encrypted_size(len(data))
    assert data[:64] not in blob and b"holiday" not in blob

    js(run(runner, hb, "--network", nodes, "inbox", "--json"))
    hist = js(run(runner, hb, "history", a, "--json"))
    [msg] = hist["messages"]
    [att] = msg["attachments"]
    assert msg["body"] == "for you"
    assert (att["file_name"], att["size"]) == ("holiday photos.bin", len(data))
    assert "key" not in att
    listing = run(runner, hb, "history", a).stdout
    assert f"[file #{att['id']}] holiday photos.bin (3,000,000 bytes" in listing

    out = tmp_path / "downloads"
    out.mkdir()
    saved = js(run(runner, hb, "save", str(att["id"]), "--to", str(out), "--json"))
    assert Path(saved["path"]) == out / "holiday photos.bin"
    assert (out / "holiday photos.bin").read_bytes() == data

    # never over an existing file without --force
    (out / "holiday photos.bin").write_bytes(b"mine")
    assert "already exists" in error_line(run(runner, hb, "save", str(att["id"]), "--to", str(out)))
    assert (out / "holiday photos.bin").read_bytes() == b"mine"
    js(run(runner, hb, "save", str(att["id"]), "--to", str(out), "--force", "--json"))
    assert (out / "holiday photos.bin").read_bytes() == data

    # a tampered blob on the server is refused and leaves nothing behind
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0x01
    blob_path.write_bytes(bytes(bad))
    other = tmp_path / "other"
    other.mkdir()
    line = error_line(run(runner, hb, "save", str(att["id"]), "--to", str(other)))
    assert "MAC" in line or "digest" in line
    assert list(other.iterdir()) == []

    # over the limit: refused before anything is encrypted or uploaded
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(10_000_001)
    line = error_line(run(runner, ha, "send", b, "--file", str(big)))
    assert "10,000,000" in line
    assert stored_blobs(devnet) == [blob_path]


def test_file_in_a_closed_group(runner: CliRunner, tmp_path: Path, devnet: Any) -> None:
    from PIL import Image

    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    js(run(runner, ha, "id", "new", "--json"))
    b = js(run(runner, hb, "id", "new", "--json"))["session_id"]
    gid = js(run(runner, ha, "--network", nodes, "group", "create", "Files", b, "--json"))[
        "group_id"
    ]
    assert js(run(runner, hb, "--network", nodes, "group", "accept", gid, "--json"))["status"] == (
        "joined"
    )
    data = os.urandom(200_000)
    src = tmp_path / "notes.pdf"
    src.write_bytes(data)
    a = js(run(runner, ha, "id", "show", "--json"))["session_id"]
    img = tmp_path / "me.png"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(img)
    js(run(runner, ha, "id", "avatar", str(img), "--json"))
    sent = js(run(runner, ha, "group", "send", gid, "read this", "--file", str(src), "--json"))
    assert sent["group_id"] == gid
    hist = js(run(runner, hb, "group", "history", gid, "--json"))["messages"]
    [att] = [a for m in hist for a in m.get("attachments", [])]
    assert (att["file_name"], att["content_type"], att["size"]) == (
        "notes.pdf",
        "application/pdf",
        len(data),
    )
    (tmp_path / "in").mkdir()
    saved = js(run(runner, hb, "save", str(att["id"]), "--to", str(tmp_path / "in"), "--json"))
    assert Path(saved["path"]).read_bytes() == data
    # the group message carried Alice's profile picture (same Content profile fields as 1:1)
    pic = js(run(runner, hb, "id", "avatar", "--of", a, "--to", str(tmp_path / "in"), "--json"))
    with Image.open(pic["path"]) as got:
        assert got.size == (50, 40)


def test_avatar_reaches_the_other_side(runner: CliRunner, tmp_path: Path, devnet: Any) -> None:
    from PIL import Image

    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a = js(run(runner, ha, "id", "new", "--json"))["session_id"]
    b = js(run(runner, hb, "id", "new", "--json"))["session_id"]
    img = tmp_path / "me.png"
    Image.new("RGB", (1200, 800), (10, 120, 200)).save(img)
    before = set(stored_blobs(devnet))
    doc = js(run(runner, ha, "--network", nodes, "id", "avatar", str(img), "--json"))
    assert doc["avatar"].startswith("https://127.0.0.1:")
    [new_blob] = set(stored_blobs(devnet)) - before
    assert b"PNG" not in new_blob.read_bytes()[:64] and b"JFIF" not in new_blob.read_bytes()

    js(run(runner, ha, "send", b, "see my picture", "--json"))
    js(run(runner, hb, "--network", nodes, "inbox", "--json"))
    out = tmp_path / "pics"
    out.mkdir()
    got = js(run(runner, hb, "id", "avatar", "--of", a, "--to", str(out), "--json"))
    assert got["path"] == str(out / f"{a}.jpg")  # named by its format (RGB: sent as JPEG)
    assert stat.S_IMODE(Path(got["path"]).stat().st_mode) == 0o600  # as saved attachments
    with Image.open(got["path"]) as pic:
        assert pic.size == (600, 400)
    # kept alive: once a day a command that goes online extends the file on the server
    fs_db = next((devnet.dir / "fileserver").rglob("*.db"))
    fid = new_blob.name

    def expires() -> float:
        with sqlite3.connect(fs_db) as conn:
            return float(conn.execute("SELECT expires FROM files WHERE id=?", (fid,)).fetchone()[0])

    first = expires()
    [state] = [p for p in ha.rglob("*.db") if p.name == "state.db"]
    with sqlite3.connect(state) as conn:  # pretend the last extension was long ago
        conn.execute("UPDATE kv SET value='0' WHERE key='avatar_extended_ms'")
    js(run(runner, ha, "inbox", "--json"))
    assert expires() > first
    # a second device of Alice's (restored from her phrase) gets the picture through her
    # UserProfile config, and later its removal
    phrase = js(run(runner, ha, "id", "show", "--phrase", "--json"))["mnemonic"]
    ha2 = tmp_path / "alice2"
    js(run(runner, ha2, "id", "restore", *phrase.split(), "--json"))
    js(run(runner, ha2, "--network", nodes, "inbox", "--json"))
    out2 = tmp_path / "pics2"
    out2.mkdir()
    mine = js(run(runner, ha2, "id", "avatar", "--of", a, "--to", str(out2), "--json"))
    assert Path(mine["path"]).read_bytes() == Path(got["path"]).read_bytes()
    # removing it, and the command's argument check
    assert js(run(runner, ha, "id", "avatar", "--remove", "--json"))["queued"] == 0
    js(run(runner, ha2, "inbox", "--json"))
    assert "has not sent" in error_line(
        run(runner, ha2, "id", "avatar", "--of", a, "--to", str(out2), "--json")
    )
    assert "--of" in error_line(run(runner, ha, "id", "avatar"))
