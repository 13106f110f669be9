"""Room files (upload with Content-Disposition, 1 h unless a post references them, then 15
days) and blinded direct messages (inbox/outbox, since with 304, delete, 15-day expiry)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import pytest

from session.community import store as store_mod
from session.community.server import RunningCommunity
from session.community.store import member_key
from session.testing.community import Member

DAY = 86_400


async def test_upload_download_and_expiry(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = member(), member()
    blob = os.urandom(50_000)
    disposition = {"Content-Disposition": "attachment; filename*=UTF-8''my%20%F0%9F%8E%82.jpg"}
    status, doc = await alice.call("POST", "/room/lobby/file", body=blob, headers=disposition)
    assert status == 201
    fid = doc["id"]
    kept = await alice.call("POST", "/room/lobby/file", body=b"kept")
    dropped = await alice.call("POST", "/room/lobby/file", body=b"dropped")
    assert kept[0] == dropped[0] == 201
    status, got = await bob.call("GET", f"/room/lobby/file/{fid}")
    assert status == 200 and got == blob
    status, got = await bob.call("GET", f"/room/lobby/file/{fid}/my%20cake.jpg", signed=False)
    assert status == 200 and got == blob
    # Bob cannot claim Alice's upload; Alice's post keeps hers for 15 days.
    await bob.post(b"mine now?", files=[kept[1]["id"]])
    await alice.post(b"with a file", files=[fid])
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 2 * 3600)
    assert await server.service.sweep() == (2, 0, 0)  # "kept" (unclaimed) and "dropped"
    assert (await bob.call("GET", f"/room/lobby/file/{kept[1]['id']}"))[0] == 404
    assert (await bob.call("GET", f"/room/lobby/file/{fid}"))[1] == blob
    monkeypatch.setattr(store_mod, "now", lambda: real() + 16 * DAY)
    assert (await server.service.sweep())[:2] == (1, 0)  # (and the nonces of a day ago)
    assert (await bob.call("GET", f"/room/lobby/file/{fid}"))[0] == 404
    assert not any((server.service.store.files).iterdir())


async def test_upload_refusals(server: RunningCommunity, member: Callable[[], Member]) -> None:
    alice, mod = member(), member()
    status, msg = await alice.call("POST", "/room/lobby/file", body=b"x" * 10_000_001)
    assert status == 413 and b"too large" in msg
    assert (await alice.call("POST", "/room/lobby/file", body=b""))[0] == 400
    assert (await alice.call("POST", "/room/lobby/file", body=b"x", signed=False))[0] == 401
    store = server.service.store
    store.set_moderator([member_key(mod.id)], store.room("lobby"), admin=False, visible=True)
    await mod.call("POST", f"/room/lobby/permissions/{alice.id}", {"upload": False})
    assert (await alice.call("POST", "/room/lobby/file", body=b"x"))[0] == 403
    assert (await alice.call("GET", "/room/lobby/file/99999"))[0] == 404
    assert (await alice.call("GET", "/room/lobby/file/abc"))[0] == 400


async def test_direct_messages(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = member(), member()
    box = base64.b64encode(b"\x00sealed for bob").decode()
    # Bob is unknown to the server until he makes a request: 404.
    assert (await alice.call("POST", f"/inbox/{bob.id}", {"message": box}))[0] == 404
    assert (await bob.call("GET", "/inbox"))[1] == []
    status, sent = await alice.call("POST", f"/inbox/{bob.id}", {"message": box})
    assert status == 201
    assert sent["sender"] == alice.id and sent["recipient"] == bob.id and "message" not in sent
    assert round(sent["expires_at"] - sent["posted_at"]) == 15 * DAY
    status, inbox = await bob.call("GET", "/inbox")
    assert status == 200 and [(m["id"], m["message"], m["sender"]) for m in inbox] == [
        (sent["id"], box, alice.id)
    ]
    assert (await bob.call("GET", f"/inbox/since/{sent['id']}"))[0] == 304
    status, outbox = await alice.call("GET", "/outbox/since/0")
    assert status == 200 and outbox[0]["recipient"] == bob.id
    assert (await alice.call("GET", "/inbox/since/0"))[0] == 304
    # Addressed by the other sign of bob's blinded key: still bob.
    flipped = bob.id[:64] + f"{int(bob.id[64:], 16) ^ 0x80:02x}"
    status, again = await alice.call("POST", f"/inbox/{flipped}", {"message": box})
    assert status == 201 and again["recipient"] == bob.id
    for bad in ({"message": "***"}, {"message": ""}, {}, ["x"]):
        assert (await alice.call("POST", f"/inbox/{bob.id}", bad))[0] == 400, bad
    assert (await alice.call("GET", "/inbox", signed=False))[0] == 401
    status, doc = await bob.call("DELETE", "/inbox")
    assert doc == {"deleted": 2}
    await alice.call("POST", f"/inbox/{bob.id}", {"message": box})
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 16 * DAY)
    assert (await bob.call("GET", "/inbox"))[1] == []
    assert (await server.service.sweep())[:2] == (0, 1)


async def test_room_image_outlives_its_post_and_a_replaced_one_expires(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image set from a post's attachment stays when the post is deleted; the image it
    replaces expires (as in SOGS); a name of control characters only is refused."""
    admin = member()
    store = server.service.store
    store.set_moderator([member_key(admin.id)], None, admin=True, visible=True)
    _, first = await admin.call("POST", "/room/lobby/file", body=b"first image")
    post = await admin.post(b"look", files=[first["id"]])
    assert (await admin.call("PUT", "/room/lobby", {"image": first["id"]}))[0] == 200
    assert (await admin.call("DELETE", f"/room/lobby/message/{post['id']}"))[0] == 200
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 2 * 3600)
    await server.service.sweep()
    assert (await admin.call("GET", f"/room/lobby/file/{first['id']}"))[0] == 200
    _, second = await admin.call("POST", "/room/lobby/file", body=b"second image")
    assert (await admin.call("PUT", "/room/lobby", {"image": second["id"]}))[0] == 200
    monkeypatch.setattr(store_mod, "now", lambda: real() + 2 * 3600 + 16 * DAY)
    await server.service.sweep()
    assert (await admin.call("GET", f"/room/lobby/file/{second['id']}"))[0] == 200
    assert (await admin.call("GET", f"/room/lobby/file/{first['id']}"))[0] == 404
    monkeypatch.setattr(store_mod, "now", real)
    status, msg = await admin.call("PUT", "/room/lobby", {"name": "\x01\x1b"})
    assert status == 400 and b"name must be" in msg
    assert store.room("lobby").name == "Lobby"
