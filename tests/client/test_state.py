"""Identity store, encrypted database, outbox, config sync encoding (no network)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from session.client import sync as S
from session.client.db import SCHEMA_VERSION, Contact, Database, Sealer, derive_db_key
from session.client.identity_store import (
    IdentityNotFound,
    IdentityStore,
    ed25519_seed32,
)
from session.client.outbox import Outbox, backoff_ms
from session.errors import DecryptionError, StorageError
from session.groups.config import ConfigMessage, seal
from session.identity import Identity


def test_identity_store_several_identities(tmp_path: Path) -> None:
    st = IdentityStore(tmp_path / "p")
    a = st.create()
    b = st.create()
    assert st.list() == sorted([a.session_id, b.session_id])
    assert st.current == a.session_id  # the first one became current
    st.use(b.session_id)
    assert st.load().session_id == b.session_id
    key = st.dir_of(a.session_id) / "key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "p").stat().st_mode) == 0o700
    # restore from the phrase gives the same identity (idempotent)
    st2 = IdentityStore(tmp_path / "q")
    r = st2.restore(a.mnemonic)
    assert r.session_id == a.session_id and st2.load().session_id == a.session_id
    with pytest.raises(IdentityNotFound):
        st.load("05" + "00" * 32)
    os.chmod(key, 0o644)
    with pytest.raises(StorageError):
        st.load(a.session_id)
    st.remove(b.session_id)
    assert st.list() == [a.session_id] and st.current is None


def _db(tmp_path: Path, ident: Identity) -> Database:
    return Database(tmp_path / "state.db", Sealer(derive_db_key(ed25519_seed32(ident))))


def test_db_contents_are_sealed(tmp_path: Path) -> None:
    ident = Identity.generate()
    db = _db(tmp_path, ident)
    db.upsert_contact("05" + "ab" * 32, name="Secret Name", approved=1)
    mid = db.add_message(
        conversation="05" + "ab" * 32,
        author="05" + "ab" * 32,
        sent_ms=5,
        outgoing=False,
        body="very secret body",
        status="received",
    )
    assert mid is not None
    assert (
        db.add_message(
            conversation="05" + "ab" * 32,
            author="05" + "ab" * 32,
            sent_ms=5,
            outgoing=False,
            body="dup",
            status="received",
        )
        is None
    )
    db.put_secret("display_name", "My Name")
    assert db.message(mid).body == "very secret body"
    assert db.contact("05" + "ab" * 32).name == "Secret Name"
    assert db.get_secret("display_name") == "My Name"
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (b"very secret body", b"Secret Name", b"My Name"):
        assert secret not in raw
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o600
    # another identity's key cannot open it
    with pytest.raises(DecryptionError):
        _db(tmp_path, Identity.generate())
    db2 = _db(tmp_path, ident)
    assert db2.message(mid).body == "very secret body"


def test_sealer_tamper_and_uniqueness() -> None:
    s = Sealer(b"k" * 32)
    a, b = s.seal("same"), s.seal("same")
    assert a != b  # random salt: equal values do not look equal at rest
    assert s.open(a) == b"same"
    bad = bytearray(a)
    bad[3] ^= 1
    with pytest.raises(DecryptionError):
        s.open(bytes(bad))
    with pytest.raises(ValueError):
        Sealer(b"short")


def test_seen_and_cursors(tmp_path: Path) -> None:
    db = _db(tmp_path, Identity.generate())
    assert db.mark_seen(["a", "b"]) == {"a", "b"}
    assert db.mark_seen(["b", "c"]) == {"c"}
    assert db.is_seen("a") and not db.is_seen("z")
    assert db.last_hash("n1", 0) == ""
    db.set_last_hash("n1", 0, "h")
    db.set_last_hash("n1", 0, "h2")
    assert db.last_hash("n1", 0) == "h2" and db.last_hash("n1", 2) == ""


def test_a_cursor_reaches_the_disk_with_the_next_transaction(tmp_path: Path) -> None:
    """A poll's cursor is committed with the messages it skips past (marked seen in one
    transaction), not before them on its own; close() writes what is left."""
    ident = Identity.generate()
    db = _db(tmp_path, ident)
    disk = sqlite3.connect(tmp_path / "state.db")

    def on_disk() -> list[tuple[str, int, str]]:
        return disk.execute("SELECT node, namespace, last_hash FROM cursors").fetchall()

    db.set_last_hash("n1", 0, "h1")
    assert db.last_hash("n1", 0) == "h1" and on_disk() == []
    with db.tx():
        db.mark_seen(["m1"])
    assert on_disk() == [("n1", 0, "h1")]
    assert disk.execute("SELECT hash FROM seen").fetchall() == [("m1",)]
    # a transaction that fails writes nothing; the cursor goes with the next one
    db.set_last_hash("n1", 0, "h2")
    with pytest.raises(RuntimeError), db.tx():
        db.mark_seen(["m2"])
        raise RuntimeError("apply failed")
    assert on_disk() == [("n1", 0, "h1")] and not db.is_seen("m2")
    with db.tx():
        db.mark_seen(["m2"])
    assert on_disk() == [("n1", 0, "h2")]
    # set inside a transaction: written with it
    with db.tx():
        db.set_last_hash("n1", 2, "g1")
    assert ("n1", 2, "g1") in on_disk()
    db.set_last_hash("n1", 0, "h3")
    db.close()
    assert ("n1", 0, "h3") in on_disk()
    disk.close()
    db = _db(tmp_path, ident)
    assert db.last_hash("n1", 0) == "h3" and db.last_hash("n1", 2) == "g1"
    db.close()


def test_outbox_is_durable_and_backs_off(tmp_path: Path) -> None:
    ident = Identity.generate()
    db = _db(tmp_path, ident)
    ob = Outbox(db)
    with db.tx():
        i1 = ob.enqueue(
            kind="message",
            dest="05" + "11" * 32,
            namespace=0,
            data="QUJD",
            timestamp_ms=1_000_000,
            ttl_ms=3_600_000,
            message_id=None,
        )
    db.close()
    # reopened (e.g. after a crash/restart): the entry is still there, unchanged
    db = _db(tmp_path, ident)
    ob = Outbox(db)
    (e,) = ob.due(1_000_000)
    assert (e.id, e.data, e.expiry_ms) == (i1, "QUJD", 4_600_000)
    assert ob.retry_later(e, 1_000_000, "guard down")
    assert ob.due(1_000_000) == []  # backing off
    assert ob.due(1_000_000 + backoff_ms(1))[0].attempts == 1
    ob.done(e.id, "hash1")
    assert ob.due(10**13) == [] and ob.pending_count() == 0
    # an entry whose TTL runs out is given up
    with db.tx():
        ob.enqueue(
            kind="typing",
            dest="05" + "11" * 32,
            namespace=0,
            data="eA==",
            timestamp_ms=0,
            ttl_ms=20_000,
        )
    (t,) = ob.due(10**13)
    assert not ob.retry_later(t, 15_000, "offline")
    assert ob.pending_count() == 0
    with pytest.raises(ValueError):
        ob.enqueue(kind="x", dest="d", namespace=0, data="", timestamp_ms=0, ttl_ms=5)
    assert backoff_ms(0) == 250 and backoff_ms(100) == 60_000


def test_outbox_rolls_back_with_its_message(tmp_path: Path) -> None:
    db = _db(tmp_path, Identity.generate())
    ob = Outbox(db)
    with pytest.raises(RuntimeError):
        with db.tx():
            db.add_message(
                conversation="c", author="a", sent_ms=1, outgoing=True, body="x", status="pending"
            )
            ob.enqueue(
                kind="message", dest="d", namespace=0, data="eA==", timestamp_ms=1, ttl_ms=60_000
            )
            raise RuntimeError("crash before commit")
    assert ob.pending_count() == 0 and db.messages("c") == []


def test_tv25_empty_config_message() -> None:
    # TV-25: the empty seqno-0 message libsession builds (hash ea17…c965 is over these bytes).
    empty = ConfigMessage(0)
    assert empty.serialize() == b"d1:#i0e1:&de1:<le1:=dee"
    assert empty.hash.hex() == "ea173b57beca8af18c3519a7bbf69c3e7a05d1c049fa9558341d8ebb48b0c965"


def test_config_round_trip_and_padding() -> None:
    ident = Identity.generate()
    seed = ed25519_seed32(ident)
    bob = Contact(
        "05" + "cd" * 32, name="Bob", approved=True, blocked=True, exp_mode=1, exp_seconds=300
    )
    msg = ConfigMessage(3).increment()
    S.set_contacts(msg.data, [bob, Contact(ident.session_id, name="me")], ident.session_id)
    blob = seal(msg.serialize(), seed, S.DOMAINS[S.NS_CONTACTS])
    assert len(blob) % 256 == 0  # padded to libsession's buckets (incl. 40 bytes overhead)
    got = ConfigMessage.parse(S.open_config(S.NS_CONTACTS, blob, seed))
    assert got.seqno == 4
    assert S.contacts_of(got.data) == {
        bob.session_id: {
            "name": "Bob",
            "approved": 1,
            "approved_me": 0,
            "blocked": 1,
            "exp_mode": 1,
            "exp_seconds": 300,
        }
    }  # never our own Session ID
    # another account's seed, or the wrong namespace's domain, cannot read it
    with pytest.raises(DecryptionError):
        S.open_config(S.NS_CONTACTS, blob, ed25519_seed32(Identity.generate()))
    with pytest.raises(DecryptionError):
        S.open_config(S.NS_USER_PROFILE, blob, seed)
    p = ConfigMessage(0).increment()
    S.set_display_name(p.data, "Al")
    raw = S.open_config(
        S.NS_USER_PROFILE, seal(p.serialize(), seed, S.DOMAINS[S.NS_USER_PROFILE]), seed
    )
    assert S.display_name(ConfigMessage.parse(raw).data) == "Al"


def test_sqlite_file_has_no_plaintext_of_config(tmp_path: Path) -> None:
    # sanity: sqlite3 itself can read the db (no custom page encryption)
    ident = Identity.generate()
    db = _db(tmp_path, ident)
    db.put("x", 1)
    db.close()
    assert (
        sqlite3.connect(tmp_path / "state.db").execute("SELECT count(*) FROM kv").fetchone()[0] >= 1
    )


def test_db_from_before_versioning_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    ident = Identity.generate()
    sealer = Sealer(derive_db_key(ed25519_seed32(ident)))
    path = tmp_path / "state.db"
    # a file as an early client left it: no user_version, some tables, a contact
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB);"
        "CREATE TABLE contacts (session_id TEXT PRIMARY KEY, name BLOB,"
        " approved INTEGER NOT NULL DEFAULT 0, approved_me INTEGER NOT NULL DEFAULT 0,"
        " blocked INTEGER NOT NULL DEFAULT 0, exp_mode INTEGER NOT NULL DEFAULT 0,"
        " exp_seconds INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL DEFAULT 0);"
    )
    old.execute("INSERT INTO kv VALUES ('schema_version', '1')")
    old.execute("INSERT INTO contacts (session_id, approved) VALUES (?, 1)", (ident.session_id,))
    old.commit()
    old.close()

    db = Database(path, sealer)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert db.contact(ident.session_id).approved  # kept
    db.put("probe", 1)  # and the tables it lacked exist now
    assert db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    db.close()

    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version = 99")
    newer.commit()
    newer.close()
    with pytest.raises(StorageError, match="schema version 99, newer than this session knows"):
        Database(path, sealer)


def test_a_refetchable_transaction_skips_the_fsync_and_only_it(tmp_path: Path) -> None:
    """``tx(refetchable=True)`` commits with synchronous=NORMAL (1), every other transaction
    with FULL (2), also after a refetchable one that failed; what it wrote is committed."""
    db = _db(tmp_path, Identity.generate())

    def sync_level() -> int:
        return int(db.conn.execute("PRAGMA synchronous").fetchone()[0])

    with db.tx():
        assert sync_level() == 2
    with db.tx(refetchable=True):
        assert sync_level() == 1
        db.mark_seen(["m1"])
    assert sync_level() == 2
    with pytest.raises(RuntimeError), db.tx(refetchable=True):
        db.mark_seen(["m2"])
        raise RuntimeError("apply failed")
    assert sync_level() == 2
    db.close()
    disk = sqlite3.connect(tmp_path / "state.db")
    assert disk.execute("SELECT hash FROM seen").fetchall() == [("m1",)]
    disk.close()


async def test_applying_a_poll_commits_refetchable_and_an_outbox_entry_durably(
    tmp_path: Path,
) -> None:
    """A poll's messages (Receiver.apply_unseen) are committed without an fsync, since the
    swarm gives them back; a message the user sends (its outbox entry) is committed with
    one: the statements SQLite ran say which."""
    import hashlib

    from session.client import Client
    from session.client import messages as M

    bob = Identity.generate()
    c = Client.open(tmp_path / "c", background=False)
    try:
        ran: list[str] = []
        c.db.conn.set_trace_callback(ran.append)
        t = 1_700_000_000_000
        data = M.seal(bob, c.session_id, M.text("hello", sent_ms=t), t)
        got = c.process_stored([(hashlib.sha256(data.encode()).hexdigest(), data, 0)])
        assert [i.content.dataMessage.body for i in got] == ["hello"]
        begin = ran.index("BEGIN IMMEDIATE")
        assert ran[begin - 1] == "PRAGMA synchronous=NORMAL"
        assert ran[ran.index("COMMIT", begin) + 1] == "PRAGMA synchronous=FULL"
        ran.clear()
        await c.send(bob.session_id, "hi")
        assert "BEGIN IMMEDIATE" in ran and not any("synchronous" in s for s in ran)
        assert int(c.db.conn.execute("PRAGMA synchronous").fetchone()[0]) == 2
    finally:
        c.db.conn.set_trace_callback(None)
        await c.close()


def test_read_on_another_device_starts_a_delete_after_read_timer(tmp_path: Path) -> None:
    db = _db(tmp_path, Identity.generate())
    conv = "05" + "ab" * 32
    after_read = db.add_message(
        conversation=conv, author=conv, sent_ms=1_000, outgoing=False, body="vanishes",
        status="received", exp_mode=1, exp_seconds=300,
    )  # fmt: skip
    plain = db.add_message(
        conversation=conv, author=conv, sent_ms=2_000, outgoing=False, body="stays",
        status="received",
    )  # fmt: skip
    later = db.add_message(
        conversation=conv, author=conv, sent_ms=9_000, outgoing=False, body="not read yet",
        status="received", exp_mode=1, exp_seconds=300,
    )  # fmt: skip
    assert db.mark_read_until(conv, 5_000) == 2
    got = {m.id: m for m in db.messages(conv)}
    assert got[after_read].status == "read" and got[after_read].expires_at_ms == 305_000
    assert got[plain].status == "read" and got[plain].expires_at_ms is None
    assert got[later].status == "received" and got[later].expires_at_ms is None
