"""Attachment pointers through the message layer (no network): a received DataMessage with
pointers is stored with its message (sealed: pointers hold keys), listed on the message, shown
by the CLI's listing with sanitised sender-chosen names, deleted with the message; our own
send path puts the same pointers into the message and its sync copy."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from session import attachments
from session.cli.client.base import attachment_lines, message_doc
from session.client import attachments as ca
from session.client import messages as M
from session.client.attachments import MAX_ATTACHMENTS
from session.client.configsync import ConfigSync
from session.client.db import Database, Sealer, derive_db_key
from session.client.events import EventHub, MessageReceived
from session.client.files import Uploaded
from session.client.identity_store import ed25519_seed32
from session.client.network import NetworkClock
from session.client.outbox import Outbox
from session.client.receive import Receiver
from session.identity import Identity
from session.proto import session_pb2 as pb

PEER = Identity.generate()
UP = Uploaded("F" * 44, "http://127.0.0.1:9/file/" + "F" * 44 + "#p=" + "cd" * 32, None)


def _receiver(tmp_path: Path) -> tuple[Receiver, Database]:
    me = Identity.generate()
    db = Database(tmp_path / "state.db", Sealer(derive_db_key(ed25519_seed32(me))))
    clock, hub = NetworkClock(), EventHub()
    config = ConfigSync(db, Outbox(db), me, ed25519_seed32(me), clock, hub)
    # handle() needs no poller: this test applies messages directly
    rx = Receiver(db, me, clock, hub, None, config)  # type: ignore[arg-type]
    return rx, db


def _pointer(name: str, **kw: Any) -> pb.AttachmentPointer:
    sealed = attachments.Sealed(os.urandom(64), os.urandom(32), 3000, 0)
    return ca.pointer(sealed, UP, file_name=name, **kw)


def test_received_pointers_are_stored_and_listed(tmp_path: Path) -> None:
    rx, db = _receiver(tmp_path)
    now = int(time.time() * 1000)
    evil = _pointer("../../.bashrc\x1b[2J", caption="look \x1b]0;x\x07")
    photo = _pointer("cat.jpg", width=600, height=400)
    voice = _pointer("note.m4a", voice=True)
    content = M.text("", sent_ms=now, attachments=[evil, photo, voice])
    inc = M.Incoming("h1", PEER.session_id, now, content)
    with db.tx():
        out = rx.handle(inc)
    assert any(isinstance(e, MessageReceived) for e in out)
    (msg,) = db.messages(PEER.session_id)
    assert [a.file_name for a in msg.attachments] == [
        "../../.bashrc\x1b[2J",
        "cat.jpg",
        "note.m4a",
    ]
    a0 = msg.attachments[0]
    assert (a0.key, a0.digest, a0.size, a0.url) == (evil.key, evil.digest, 3000, evil.url)
    assert msg.attachments[1].width == 600 and msg.attachments[2].voice
    assert db.attachment(a0.id) == a0
    # listing: sanitised, no escape sequences, keys never in the doc
    doc = message_doc(msg)
    assert all("key" not in a and "digest" not in a for a in doc["attachments"])
    lines = attachment_lines(doc)
    assert len(lines) == 3 and "\x1b" not in "".join(lines) and "\x07" not in "".join(lines)
    assert f"[file #{a0.id}] bashrc" in lines[0] and "../" not in lines[0]
    assert "600×400" in lines[1] and "voice note" in lines[2]
    # pointers are sealed at rest
    raw = (tmp_path / "state.db").read_bytes()
    assert evil.key not in raw and b"cat.jpg" not in raw
    db.delete_message(msg.id)
    assert db.attachment(a0.id) is None


def test_pointer_count_is_bounded(tmp_path: Path) -> None:
    rx, db = _receiver(tmp_path)
    now = int(time.time() * 1000)
    many = [_pointer(f"f{i}") for i in range(MAX_ATTACHMENTS + 5)]
    with db.tx():
        rx.handle(
            M.Incoming("h2", PEER.session_id, now, M.text("x", sent_ms=now, attachments=many))
        )
    (msg,) = db.messages(PEER.session_id)
    assert len(msg.attachments) == MAX_ATTACHMENTS


def test_text_content_carries_pointers() -> None:
    p = _pointer("a.pdf")
    c = M.text("caption", sent_ms=1, attachments=[p], sync_target=PEER.session_id)
    back = pb.Content.FromString(c.SerializeToString())
    assert back.dataMessage.body == "caption" and list(back.dataMessage.attachments) == [p]
    assert not pb.Content.FromString(
        M.text("", sent_ms=1, attachments=[p]).SerializeToString()
    ).dataMessage.HasField("body")


def test_chat_shows_attachments_of_live_messages(tmp_path: Path) -> None:
    from session.cli.client.chat import _Chat

    rx, db = _receiver(tmp_path)
    now = int(time.time() * 1000)
    content = M.text("", sent_ms=now, attachments=[_pointer("../x\x1b.png", width=4, height=3)])
    with db.tx():
        [ev] = [
            e
            for e in rx.handle(M.Incoming("h3", PEER.session_id, now, content))
            if isinstance(e, MessageReceived)
        ]

    class Client:  # what _Chat reads of a client
        session_id = rx.me

        def contact(self, sid: str) -> Any:
            return db.contact(sid)

        def message(self, mid: int) -> Any:
            return db.message(mid)

    chat = _Chat(Client(), PEER.session_id)  # type: ignore[arg-type]
    described = chat._describe(ev)
    assert described is not None
    _, text, fields = described
    assert "[file #" in text and "x.png" in text and "\x1b" not in text and "../" not in text
    assert fields["attachments"][0]["width"] == 4 and "key" not in fields["attachments"][0]
