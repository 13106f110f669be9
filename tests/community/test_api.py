"""The community API (client spec §4.4) driven over HTTP and as a v4 onion destination:
posting and polling in one sequence, reactions, edits and deletions, pins, files, moderation,
permissions and direct messages."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session.blinding import sogs_auth_headers
from session.community.server import RunningCommunity, start
from session.community.store import CommunityStore, Room, member_key
from session.protocol import pad
from session.service.onion import V4Request, V4Response
from session.service.tls import ensure_certificate
from session.testing.community import Member, community_config
from session.testing.http import one_hop_v4


async def test_capabilities(server: RunningCommunity, member: Callable[[], Member]) -> None:
    m = member()
    assert await m.call("GET", "/capabilities", signed=False) == (
        200,
        {"capabilities": ["blind", "reactions", "sogs"]},
    )
    status, doc = await m.call("GET", "/capabilities?required=sogs,teleport", signed=False)
    assert status == 412 and doc["missing"] == ["teleport"]


async def test_post_poll_react_edit_delete_in_one_sequence(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    alice, bob = member(), member()
    first = await alice.post(b"hello")
    assert first["session_id"] == alice.id and first["seqno"] == 1
    assert base64.b64decode(first["data"]) == pad(b"hello")  # padded, as posted
    second = await bob.post(b"hi alice")
    status, recent = await bob.call("GET", "/room/lobby/messages/recent?limit=10")
    assert status == 200 and [m["id"] for m in recent] == [second["id"], first["id"]]
    assert recent[1]["signature"] == first["signature"]
    seq = second["seqno"]
    # A reaction, an edit and a deletion: each takes the next seqno.
    status, doc = await bob.call("PUT", f"/room/lobby/reaction/{first['id']}/👍🏽", {})
    assert status == 200 and doc == {"added": True, "seqno": seq + 1}
    edit = alice.post_doc(b"hello, edited")
    assert (await alice.call("PUT", f"/room/lobby/message/{first['id']}", edit))[0] == 200
    assert (await bob.call("DELETE", f"/room/lobby/message/{second['id']}"))[0] == 200
    status, since = await alice.call("GET", f"/room/lobby/messages/since/{seq}?t=r&reactors=5")
    assert status == 200
    by_id = {m["id"]: m for m in since}
    assert [m["seqno"] for m in since] == [seq + 2, seq + 3]
    assert by_id[first["id"]]["data"] == edit["data"] and "edited" in by_id[first["id"]]
    assert by_id[first["id"]]["reactions"] == {
        "👍🏽": {"index": 0, "count": 1, "reactors": [bob.id]}
    }
    assert by_id[second["id"]]["deleted"] is True and by_id[second["id"]]["data"] is None
    # A reaction-only update after that: id and seqno and the reactions, no data.
    status, doc = await alice.call("PUT", f"/room/lobby/reaction/{first['id']}/👍🏽", {})
    assert doc["added"] is True
    status, since2 = await alice.call("GET", f"/room/lobby/messages/since/{seq + 3}?t=r")
    assert since2 == [
        {
            "id": first["id"],
            "seqno": seq + 4,
            "reactions": {
                "👍🏽": {"index": 0, "count": 2, "you": True, "reactors": [bob.id, alice.id]}
            },
        }
    ]
    # Without t=r reaction-only updates are left out.
    assert (await alice.call("GET", f"/room/lobby/messages/since/{seq + 3}"))[1] == []
    status, reactors = await alice.call("GET", f"/room/lobby/reactors/{first['id']}/👍🏽")
    assert [r[0] for r in reactors] == [bob.id, alice.id]
    status, doc = await bob.call("DELETE", f"/room/lobby/reaction/{first['id']}/👍🏽")
    assert doc == {"removed": True, "seqno": seq + 5}
    status, single = await bob.call("GET", f"/room/lobby/message/{first['id']}")
    assert single["reactions"]["👍🏽"]["count"] == 1
    assert (await bob.call("GET", f"/room/lobby/message/{second['id']}"))[0] == 404
    # Someone else's post: 403.
    assert (await bob.call("DELETE", f"/room/lobby/message/{first['id']}"))[0] == 403


async def test_room_info_and_poll_info(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    m = member()
    await m.post(b"x")
    status, room = await m.call("GET", "/room/lobby")
    assert status == 200
    assert room["token"] == "lobby" and room["name"] == "Lobby"
    assert room["description"] == "Say hello" and room["message_sequence"] == 1
    assert room["read"] and room["write"] and room["upload"]
    assert "moderator" not in room and room["active_users"] == 1
    status, rooms = await m.call("GET", "/rooms", signed=False)
    assert [r["token"] for r in rooms] == ["lobby"]
    status, poll = await m.call("GET", f"/room/lobby/pollInfo/{room['info_updates']}")
    assert status == 200 and "details" not in poll and poll["token"] == "lobby"
    status, poll = await m.call("GET", "/room/lobby/pollInfo/999")
    assert poll["details"]["token"] == "lobby"
    assert (await m.call("GET", "/room/nowhere"))[0] == 404


async def onion_call(
    server: RunningCommunity,
    http: aiohttp.ClientSession,
    method: str,
    endpoint: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes]:
    return await one_hop_v4(
        http, server.url, bytes(server.identity.x25519_public), method, endpoint, body, headers
    )


async def test_sequence_poll_through_an_onion_layer(
    server: RunningCommunity, member: Callable[[], Member], http: aiohttp.ClientSession
) -> None:
    m = member()
    await m.post(b"through the onion")
    subs: list[dict[str, Any]] = [
        {"method": "GET", "path": "/capabilities"},
        {"method": "GET", "path": "/room/lobby/pollInfo/0"},
        {"method": "GET", "path": "/room/lobby/messages/since/0?t=r&reactors=4"},
        {"method": "GET", "path": "/inbox/since/0"},
        {"method": "GET", "path": "/outbox"},
    ]
    body = json.dumps(subs).encode()
    headers = sogs_auth_headers(m.identity, m.pk, "POST", "/sequence", body)
    status, payload = await onion_call(server, http, "POST", "/sequence", body, headers)
    assert status == 200
    answers = json.loads(payload)
    assert [a["code"] for a in answers] == [200, 200, 200, 304]  # sequence stops at the 304
    assert answers[2]["body"][0]["session_id"] == m.id
    # /batch runs them all.
    body = json.dumps(subs).encode()
    headers = sogs_auth_headers(m.identity, m.pk, "POST", "/batch", body)
    status, payload = await onion_call(server, http, "POST", "/batch", body, headers)
    assert [a["code"] for a in json.loads(payload)] == [200, 200, 200, 304, 200]
    # A signed POST inside the onion: the signature covers the inner body.
    post = json.dumps(m.post_doc(b"onion post")).encode()
    headers = sogs_auth_headers(m.identity, m.pk, "POST", "/room/lobby/message", post)
    status, payload = await onion_call(server, http, "POST", "/room/lobby/message", post, headers)
    assert status == 201 and json.loads(payload)["session_id"] == m.id


async def test_logs_and_database_hold_no_session_id(
    server: RunningCommunity, member: Callable[[], Member], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob, admin = member(), member(), member()
    server.service.store.set_moderator([member_key(admin.id)], None, admin=True, visible=True)
    post = await alice.post(b"hello")
    await bob.call("PUT", f"/room/lobby/reaction/{post['id']}/👍", {})
    await bob.call("POST", "/room/lobby/file", body=b"a file")
    # The admin names alice and bob by their Session IDs.
    doc = {"rooms": ["lobby"], "moderator": True}
    assert (await admin.call("POST", f"/user/{alice.identity.session_id}/moderator", doc))[0] == 200
    ban = {"rooms": ["lobby"], "timeout": 60}
    assert (await admin.call("POST", f"/user/{bob.identity.session_id}/ban", ban))[0] == 200
    status, info = await admin.call("GET", "/room/lobby")
    assert status == 200 and alice.id in info["moderators"]
    assert (await bob.call("GET", "/room/lobby/messages/recent"))[0] == 403
    await alice.call("POST", f"/inbox/{admin.id}", {"message": base64.b64encode(b"x").decode()})
    server.service.store.db.execute("PRAGMA wal_checkpoint(FULL)")
    stored = b"".join(p.read_bytes() for p in (server.service.store.root).rglob("*") if p.is_file())
    for m in (alice, bob, admin):
        secrets = (
            m.identity.session_id,
            m.identity.session_id[2:],
            bytes(m.identity.ed25519_public).hex(),
        )
        for s in secrets:
            assert s not in caplog.text
            assert s.encode() not in stored and bytes.fromhex(s[-64:]) not in stored


async def test_https_and_loopback_metrics(tmp_path: Path) -> None:
    ensure_certificate(tmp_path)
    cfg = community_config(tmp_path)
    cfg = replace(cfg, network=replace(cfg.network, tls=True, admin_port=0))
    store = CommunityStore(tmp_path / "store")
    store.add_room("lobby", "Lobby")
    store.close()
    running = await start(cfg)
    try:
        assert running.url.startswith("https://") and running.admin_url
        await running.service.sweep()  # sets the rooms gauge
        connector = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(f"{running.url}/capabilities") as r:
                assert r.status == 200 and "sogs" in (await r.json())["capabilities"]
            async with http.get(f"{running.admin_url}/metrics") as r:
                text = await r.text()
        assert 'community_requests_total{status="2xx"} 1.0' in text
        assert "community_rooms 1.0" in text
    finally:
        await running.close()


async def test_a_cancelled_request_keeps_the_store_until_its_thread_is_done(
    server: RunningCommunity, member: Callable[[], Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler's thread cannot be stopped: when its request is cancelled (a shutdown, a
    timeout) nobody else enters the store until that thread is done, so two threads never
    share one transaction."""
    service = server.service
    entered, release = threading.Event(), threading.Event()
    real_rooms = service.store.rooms

    def slow_rooms() -> list[Room]:
        entered.set()
        release.wait(60)
        return real_rooms()

    monkeypatch.setattr(service.store, "rooms", slow_rooms)
    found = service.routes.resolve("GET", "/rooms")
    assert not isinstance(found, V4Response)
    task = asyncio.ensure_future(found[0](V4Request("GET", "/rooms")))
    assert await asyncio.to_thread(entered.wait, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service._lock.locked()
    monkeypatch.setattr(service.store, "rooms", real_rooms)
    release.set()
    status, rooms = await member().call("GET", "/rooms")
    assert status == 200 and [r["token"] for r in rooms] == ["lobby"]


async def test_posts_and_reactions_at_once_take_unique_increasing_seqnos(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    """Many members posting and reacting at the same moment: every change gets its own seqno,
    and one since-poll returns each post once, in seqno order."""
    members = [member() for _ in range(8)]
    first = await members[0].post(b"react to me")
    posted = await asyncio.gather(*(m.post(b"at once %d" % i) for i, m in enumerate(members)))
    reacted = await asyncio.gather(
        *(m.call("PUT", f"/room/lobby/reaction/{first['id']}/👍", {}) for m in members)
    )
    seqnos = [p["seqno"] for p in posted] + [doc["seqno"] for _, doc in reacted]
    assert len(set(seqnos)) == len(seqnos) == 16
    assert sorted(seqnos) == list(range(2, 18))
    status, since = await members[0].call("GET", "/room/lobby/messages/since/0?t=r&limit=256")
    assert status == 200 and [m["seqno"] for m in since] == sorted(m["seqno"] for m in since)
    assert len({m["id"] for m in since}) == len(since) == 9
    assert next(m for m in since if m["id"] == first["id"])["reactions"]["👍"]["count"] == 8
