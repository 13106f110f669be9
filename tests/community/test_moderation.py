"""Moderators, admins, bans and permission overrides through the API: what each may do, what
members see afterwards, and that a ban or a deletion reaches everyone's next poll."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from session.community import store as store_mod
from session.community.server import RunningCommunity
from session.community.store import member_key
from session.testing.community import Member


def make_mod(
    server: RunningCommunity,
    m: Member,
    *,
    admin: bool = False,
    room: bool = True,
    visible: bool = True,
) -> None:
    store = server.service.store
    store.set_moderator(
        [member_key(m.id)], store.room("lobby") if room else None, admin=admin, visible=visible
    )


async def test_moderator_deletes_a_post_and_it_disappears_for_everyone(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    alice, bob, mod = member(), member(), member()
    make_mod(server, mod)
    post = await alice.post(b"spam")
    seq = post["seqno"]
    assert (await bob.call("DELETE", f"/room/lobby/message/{post['id']}"))[0] == 403
    assert (await mod.call("DELETE", f"/room/lobby/message/{post['id']}"))[0] == 200
    for who in (alice, bob):
        status, since = await who.call("GET", f"/room/lobby/messages/since/{seq}")
        assert since == [
            {
                "id": post["id"],
                "session_id": alice.id,
                "posted": post["posted"],
                "seqno": seq + 1,
                "data": None,
                "deleted": True,
            }
        ]
        assert (await who.call("GET", "/room/lobby/messages/recent"))[1] == []
    # Mod info in the room, visible to all; the mod sees the room's defaults.
    status, info = await mod.call("GET", "/room/lobby")
    assert status == 200
    assert info["moderators"] == [mod.id] and info["moderator"] is True
    assert info["default_write"] is True
    _status, info = await bob.call("GET", "/room/lobby")
    assert info["moderators"] == [mod.id] and "moderator" not in info


async def test_room_ban_then_unban_and_timed_ban(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    bob, mod = member(), member()
    make_mod(server, mod)
    await bob.post(b"before")
    status, _ = await mod.call("POST", f"/user/{bob.id}/ban", {"rooms": ["lobby"]})
    assert status == 200
    status, _ = await bob.call("POST", "/room/lobby/message", bob.post_doc(b"after"))
    assert status == 403  # as SOGS answers: every permission is gone
    status, msg = await bob.call("GET", "/room/lobby/messages/recent")
    assert status == 403 and msg == b"You are banned from this room"
    assert (await bob.call("GET", "/room/lobby"))[0] == 404  # the room is hidden from him
    assert (await bob.call("POST", f"/user/{mod.id}/ban", {"rooms": ["lobby"]}))[0] == 403
    status, _ = await mod.call("POST", f"/user/{bob.id}/unban", {"rooms": ["lobby"]})
    assert status == 200
    await bob.post(b"back")
    # A timed ban lifts by itself.
    status, _ = await mod.call("POST", f"/user/{bob.id}/ban", {"rooms": ["*"], "timeout": 60})
    assert status == 200
    assert (await bob.call("GET", "/room/lobby/messages/recent"))[0] == 403
    real = store_mod.now
    monkeypatch.setattr(store_mod, "now", lambda: real() + 61)
    assert (await bob.call("GET", "/room/lobby/messages/recent"))[0] == 200
    # A room moderator cannot ban server-wide; a global moderator can (403 on every request).
    assert (await mod.call("POST", f"/user/{bob.id}/ban", {"global": True}))[0] == 403
    make_mod(server, mod, room=False)
    assert (await mod.call("POST", f"/user/{bob.id}/ban", {"global": True}))[0] == 200
    assert (await bob.call("GET", "/capabilities")) == (403, b"Banned")


async def test_bad_moderation_requests(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    bob, mod = member(), member()
    make_mod(server, mod)
    for body in (
        {},
        {"rooms": ["lobby"], "global": True},
        {"rooms": "lobby"},
        {"rooms": ["*", "lobby"]},
        {"rooms": ["lobby"], "timeout": "soon"},
        {"rooms": ["lobby"], "timeout": -5},
        [1, 2],
    ):
        status, msg = await mod.call("POST", f"/user/{bob.id}/ban", body)
        assert status == 400, (body, msg)
    assert (await mod.call("POST", "/user/05zz/ban", {"rooms": ["lobby"]}))[0] == 400
    assert (await mod.call("POST", f"/user/{bob.id}/ban", {"rooms": ["nowhere"]}))[0] == 404


async def test_admin_pins_promotes_and_updates_the_room(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    admin, bob, carol = member(), member(), member()
    make_mod(server, admin, admin=True)
    post = await bob.post(b"pin me")
    await carol.call("GET", "/capabilities")  # the server learns carol's key
    status, info = await admin.call("GET", "/room/lobby")
    before = info["info_updates"]
    assert (await bob.call("POST", f"/room/lobby/pin/{post['id']}"))[0] == 403
    status, doc = await admin.call("POST", f"/room/lobby/pin/{post['id']}")
    assert status == 200 and doc["info_updates"] > before
    status, info = await bob.call("GET", "/room/lobby")
    assert [p["id"] for p in info["pinned_messages"]] == [post["id"]]
    assert info["pinned_messages"][0]["pinned_by"] == admin.id
    status, doc = await admin.call("POST", "/room/lobby/unpin/all")
    assert doc["unpinned"] == 1
    # Promote carol to a hidden moderator: mods see her in hidden_moderators, others not.
    body = {"rooms": ["lobby"], "moderator": True, "visible": False}
    assert (await bob.call("POST", f"/user/{carol.id}/moderator", body))[0] == 403
    status, doc = await admin.call("POST", f"/user/{carol.id}/moderator", body)
    assert status == 200 and "lobby" in doc["info_updates"]
    status, info = await admin.call("GET", "/room/lobby")
    assert info["hidden_moderators"] == [carol.id] and info["admins"] == [admin.id]
    status, info = await bob.call("GET", "/room/lobby")
    assert "hidden_moderators" not in info and carol.id not in info["moderators"]
    status, info = await carol.call("GET", "/room/lobby")
    assert info["moderator"] is True and "admin" not in info
    # Room update.
    upd = {"name": "The Lobby", "description": "New\x00 words", "default_upload": False}
    assert (await carol.call("PUT", "/room/lobby", upd))[0] == 403
    status, doc = await admin.call("PUT", "/room/lobby", upd)
    assert status == 200
    status, info = await bob.call("GET", "/room/lobby")
    assert info["name"] == "The Lobby" and info["description"] == "New words"
    assert info["upload"] is False and info["info_updates"] == doc["info_updates"]
    assert (await admin.call("PUT", "/room/lobby", {}))[0] == 400
    assert (await admin.call("PUT", "/room/lobby", {"name": 5}))[0] == 400


async def test_permission_overrides(server: RunningCommunity, member: Callable[[], Member]) -> None:
    bob, mod = member(), member()
    make_mod(server, mod)
    await bob.post(b"hi")
    status, perms = await mod.call("POST", f"/room/lobby/permissions/{bob.id}", {"write": False})
    assert status == 200 and perms["write"] is False and perms["read"] is True
    status, _ = await bob.call("POST", "/room/lobby/message", bob.post_doc(b"muted"))
    assert status == 403
    assert (await bob.call("GET", "/room/lobby/messages/recent"))[0] == 200
    status, table = await mod.call("GET", "/room/lobby/permissions")
    assert table == {bob.id: {"write": False}}
    status, one = await mod.call("GET", f"/room/lobby/permissions/{bob.id}")
    assert one["write"] is False
    assert (await bob.call("GET", "/room/lobby/permissions"))[0] == 403
    status, perms = await mod.call(
        "POST", f"/room/lobby/permissions/{bob.id}", {"default_write": True}
    )
    assert perms["write"] is True
    await bob.post(b"unmuted")
    assert (await mod.call("POST", f"/room/lobby/permissions/{bob.id}", {}))[0] == 400
    bad = {"write": True, "default_write": True}
    assert (await mod.call("POST", f"/room/lobby/permissions/{bob.id}", bad))[0] == 400


async def test_delete_all_of_a_member_and_whispers(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    alice, bob, mod = member(), member(), member()
    make_mod(server, mod, admin=True)  # admins are not rate limited
    for i in range(3):
        await bob.post(b"spam %d" % i)
    keep = await alice.post(b"keep")
    status, doc = await mod.call("DELETE", f"/room/lobby/all/{bob.id}")
    assert status == 200 and doc == {"messages_deleted": 3}
    status, recent = await alice.call("GET", "/room/lobby/messages/recent")
    assert [m["id"] for m in recent] == [keep["id"]]
    assert (await alice.call("DELETE", f"/room/lobby/all/{bob.id}"))[0] == 403
    # A whisper to alice: she and the mods see it, bob does not; members may not whisper.
    w = await mod.post(b"psst", whisper_to=alice.id)
    assert w["whisper"] is True and w["whisper_to"] == alice.id
    ids = lambda msgs: [m["id"] for m in msgs]  # noqa: E731
    assert w["id"] in ids((await alice.call("GET", "/room/lobby/messages/recent"))[1])
    assert w["id"] not in ids((await bob.call("GET", "/room/lobby/messages/recent"))[1])
    assert w["id"] not in ids(
        (await bob.call("GET", "/room/lobby/messages/recent", signed=False))[1]
    )
    status, _ = await bob.call("POST", "/room/lobby/message", bob.post_doc(b"x", whisper_mods=True))
    assert status == 403
    status, doc = await mod.call("DELETE", f"/rooms/all/{alice.id}")
    assert doc == {"messages_deleted": 1}


async def test_who_may_ban_whom(server: RunningCommunity, member: Callable[[], Member]) -> None:
    """SOGS's rules: a moderator bans neither themselves, another room moderator nor a global
    moderator; a room admin may ban a room moderator, who stops moderating there."""
    gmod, gadmin, admin, mod, other_mod, bob = (member() for _ in range(6))
    store = server.service.store
    store.set_moderator([member_key(gmod.id)], None, admin=False, visible=False)
    store.set_moderator([member_key(gadmin.id)], None, admin=True, visible=False)
    make_mod(server, admin, admin=True)
    make_mod(server, mod)
    make_mod(server, other_mod)
    room = {"rooms": ["lobby"]}
    for who, target, body in (
        (mod, mod, room),
        (mod, other_mod, room),
        (admin, gmod, room),
        (gmod, gadmin, {"global": True}),
        (gadmin, gmod, {"global": True}),
    ):
        status, msg = await who.call("POST", f"/user/{target.id}/ban", body)
        assert status == 403, (msg, body)
    assert store.db.execute("SELECT COUNT(*) FROM bans").fetchone()[0] == 0
    assert (await gadmin.call("GET", "/room/lobby"))[0] == 200
    status, _ = await admin.call("POST", f"/user/{other_mod.id}/ban", room)
    assert status == 200
    status, msg = await other_mod.call("GET", "/room/lobby/messages/recent")
    assert status == 403 and b"banned" in msg
    status, info = await admin.call("GET", "/room/lobby")
    assert other_mod.id not in info["moderators"]
    assert (await mod.call("POST", f"/user/{bob.id}/ban", room))[0] == 200


async def test_who_may_delete_all_posts_of_whom(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    """SOGS's rules: a member may delete all of their own posts; a moderator anyone's but an
    admin's; an admin an admin's."""
    admin, mod, alice = member(), member(), member()
    make_mod(server, admin, admin=True)
    make_mod(server, mod)
    await admin.post(b"from the admin")
    await alice.post(b"one")
    await alice.post(b"two")
    for path in (f"/room/lobby/all/{admin.id}", f"/rooms/all/{admin.id}"):
        status, doc = await mod.call("DELETE", path)
        assert status == 403 if path.startswith("/room/") else doc == {"messages_deleted": 0}
    status, doc = await alice.call("DELETE", f"/room/lobby/all/{alice.id}")
    assert status == 200 and doc == {"messages_deleted": 2}
    await mod.post(b"from the mod")
    status, doc = await admin.call("DELETE", f"/rooms/all/{mod.id}")
    assert doc == {"messages_deleted": 1}
    status, recent = await alice.call("GET", "/room/lobby/messages/recent")
    assert [m["data"] is not None for m in recent] == [True]
