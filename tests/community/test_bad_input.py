"""Bad input to every endpoint gets a clear 4xx, never a 500, and loses nothing: malformed JSON,
bad base64, oversized bodies, room tokens with path characters, emoji edge cases, a batch of
10,000 subrequests; and the post rate limit and size cap."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session.community.server import RunningCommunity, start
from session.community.store import member_key
from session.testing.community import Member, community_config
from session.testing.hostile import ANSWER_WITHIN, CONTENT_ENCODINGS, hostile_bodies


async def test_rate_limit_and_size_cap(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    alice, admin = member(), member()
    for i in range(5):
        await alice.post(b"post %d" % i)
    status, msg = await alice.call("POST", "/room/lobby/message", alice.post_doc(b"one more"))
    assert status == 429 and b"Rate limited: at most 5 posts per 16 seconds" in msg
    store = server.service.store
    store.set_moderator([member_key(admin.id)], store.room("lobby"), admin=True, visible=True)
    for i in range(7):
        await admin.post(b"admin %d" % i)  # admins are not limited
    status, msg = await admin.call("POST", "/room/lobby/message", admin.post_doc(b"x" * 70_000))
    assert status == 413 and b"post too large" in msg
    status, recent = await alice.call("GET", "/room/lobby/messages/recent?limit=256")
    assert len(recent) == 12


async def test_malformed_bodies_and_paths(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    alice = member()
    post = await alice.post(b"keep me")
    good = alice.post_doc(b"x")
    for body in (
        b"{not json",
        b"[1,2]",
        json.dumps({**good, "data": "not base64!"}).encode(),
        json.dumps({**good, "signature": "AAAA"}).encode(),
        json.dumps({**good, "data": ""}).encode(),
        json.dumps({**good, "files": ["a"]}).encode(),
        json.dumps({**good, "files": [True]}).encode(),
        json.dumps({**good, "whisper_to": "nobody"}).encode(),
        json.dumps(alice.post_doc(b"x") | {"data": good["data"][:-4] + "AAAA"}).encode(),
        b"\xff\xfe",
    ):
        status, msg = await alice.call("POST", "/room/lobby/message", body=body)
        assert status == 400, (body[:60], msg)
    for path in (
        "/room/..%2F..%2Fetc/messages/recent",
        "/room/a.b/messages/recent",
        "/room/%2e%2e/messages/recent",
        "/room/" + "a" * 65,
        "/room/lob by",
        "/room/lobby%00/messages/recent",
        "/room/lobby/messages/since/-1",
        "/room/lobby/messages/since/99999999999999999999",
        "/room/lobby/messages/before/x",
        "/room/lobby/messages/recent?limit=lots",
        "/room/lobby/message/1e3",
        "/room/lobby/pollInfo/abc",
        "/inbox/since/x",
        "/room/lobby/file/%FF",
    ):
        status, msg = await alice.call("GET", path)
        assert status in (400, 404), (path, status, msg)
    # Nothing lost, still serving.
    status, recent = await alice.call("GET", "/room/lobby/messages/recent")
    assert status == 200 and [m["id"] for m in recent] == [post["id"]]


@pytest.mark.parametrize(
    "emoji",
    ["👍", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇳", "🏳️‍🌈", "❤️", "e\u0301", "x" * 12, "中文"],
)
async def test_reactions_accept_any_short_emoji(
    server: RunningCommunity, member: Callable[[], Member], emoji: str
) -> None:
    alice = member()
    post = await alice.post(b"react to me")
    status, doc = await alice.call("PUT", f"/room/lobby/reaction/{post['id']}/{emoji}", {})
    assert status == 200 and doc["added"] is True
    status, msg = await alice.call("GET", f"/room/lobby/message/{post['id']}")
    assert list(msg["reactions"]) == [emoji]


@pytest.mark.parametrize("emoji", ["x" * 13, "👍\x01", "a b\x7f" * 5])
async def test_reactions_refuse_bad_emoji(
    server: RunningCommunity, member: Callable[[], Member], emoji: str
) -> None:
    alice = member()
    post = await alice.post(b"react to me")
    status, _ = await alice.call("PUT", f"/room/lobby/reaction/{post['id']}/{emoji}", {})
    assert status in (400, 404)
    assert (await alice.call("PUT", "/room/lobby/reaction/999/👍", {}))[0] == 404


@pytest.mark.parametrize("raw", ["%ED%A0%80", "%FF", "%F0%9F", "%00"])
async def test_paths_that_are_not_utf8(
    server: RunningCommunity, http: aiohttp.ClientSession, raw: str
) -> None:
    url = yarl.URL(f"{server.url}/room/lobby/reaction/1/{raw}", encoded=True)
    async with http.put(url, data=b"{}") as r:
        assert r.status in (400, 401, 404)


async def test_batches(server: RunningCommunity, member: Callable[[], Member]) -> None:
    alice = member()
    post = await alice.post(b"batched")
    huge = [{"method": "GET", "path": "/capabilities"}] * 10_000
    status, msg = await alice.call("POST", "/batch", huge)
    assert status == 400 and b"at most 64 subrequests, not 10000" in msg
    status, msg = await alice.call("POST", "/sequence", [{"method": "GET"}])
    assert status == 400 and b"subrequest 0" in msg
    for bad in (
        {"not": "a list"},
        [{"method": "PATCH", "path": "/rooms"}],
        [{"method": "GET", "path": "rooms"}],
        [{"method": "POST", "path": "/room/lobby/message"}],
        [{"method": "GET", "path": "/rooms", "json": {}}],
        [{"method": "POST", "path": "/x", "json": {}, "b64": ""}],
        [{"method": "POST", "path": "/x", "b64": "!!"}],
        [{"method": "GET", "path": "/rooms", "headers": {"a": 1}}],
    ):
        assert (await alice.call("POST", "/batch", bad))[0] == 400, bad
    subs: list[dict[str, Any]] = [
        {"method": "GET", "path": "/room/lobby"},
        {"method": "POST", "path": "/batch", "json": []},
        {"method": "GET", "path": "/room/nowhere"},
        {"method": "PUT", "path": f"/room/lobby/reaction/{post['id']}/🎉", "json": {}},
        {"method": "GET", "path": f"/room/lobby/file/{post['id']}"},
    ]
    status, answers = await alice.call("POST", "/batch", subs)
    assert status == 200
    assert [a["code"] for a in answers] == [200, 400, 404, 200, 404]
    assert answers[3]["body"]["added"] is True
    status, answers = await alice.call("POST", "/sequence", subs)
    assert [a["code"] for a in answers] == [200, 400]
    # Percent-encoded subrequest paths are decoded before routing.
    enc = [{"method": "DELETE", "path": f"/room/lobby/reaction/{post['id']}/%F0%9F%8E%89"}]
    status, answers = await alice.call("POST", "/sequence", enc)
    assert answers[0]["body"]["removed"] is True
    # Anonymous batches run anonymously.
    status, answers = await alice.call(
        "POST", "/batch", [{"method": "GET", "path": "/inbox"}], signed=False
    )
    assert answers[0]["code"] == 401


async def test_oversized_body_is_refused_before_it_is_read(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    alice = member()
    status, _ = await alice.call("POST", "/room/lobby/file", body=b"x" * 14_000_000)
    assert status == 413
    assert (await alice.call("GET", "/capabilities"))[0] == 200


class Fired:
    """A server and a client on their own loop, shared by the hypothesis examples."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, server: RunningCommunity, http: aiohttp.ClientSession
    ) -> None:
        self.loop = loop
        self.server = server
        self.member = Member(server, http)
        self.routes = [
            ("POST", "/room/lobby/message"),
            ("PUT", "/room/lobby/message/1"),
            ("PUT", "/room/lobby/reaction/1/👍"),
            ("POST", "/room/lobby/file"),
            ("PUT", "/room/lobby"),
            ("POST", "/room/lobby/permissions/" + self.member.id),
            ("POST", f"/user/{self.member.id}/ban"),
            ("POST", f"/user/{self.member.id}/moderator"),
            ("POST", f"/inbox/{self.member.id}"),
            ("POST", "/batch"),
            ("POST", "/sequence"),
            ("POST", "/oxen/v4/lsrpc"),
        ]


@pytest.fixture(scope="module")
def fired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fired]:
    tmp: Path = tmp_path_factory.mktemp("community-fired")
    loop = asyncio.new_event_loop()

    async def begin() -> tuple[Fired, aiohttp.ClientSession]:
        server = await start(community_config(tmp, rate_limit_posts=0))
        store = server.service.store
        store.add_room("lobby", "Lobby")
        http = aiohttp.ClientSession()
        f = Fired(loop, server, http)
        store.set_moderator([member_key(f.member.id)], None, admin=True, visible=True)
        await f.member.post(b"the first post")
        return f, http

    f, http = loop.run_until_complete(begin())
    yield f
    loop.run_until_complete(http.close())
    loop.run_until_complete(f.server.close())
    loop.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=hostile_bodies(
        [],
        [
            "data",
            "signature",
            "files",
            "rooms",
            "global",
            "timeout",
            "message",
            "method",
            "path",
            "json",
            "b64",
            "name",
            "read",
            "write",
            "moderator",
            "admin",
        ],
    ),
    route=st.integers(0, 11),
    coding=CONTENT_ENCODINGS,
    signed=st.booleans(),
)
def test_any_signed_body_at_any_endpoint_gets_an_answer(
    fired: Fired,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    route: int,
    coding: str | None,
    signed: bool,
) -> None:
    caplog.clear()
    method, path = fired.routes[route]
    headers = {} if coding is None else {"Content-Encoding": coding}

    async def go() -> tuple[int, float]:
        t0 = fired.loop.time()
        status, _ = await fired.member.call(method, path, body=body, signed=signed, headers=headers)
        return status, fired.loop.time() - t0

    status, took = fired.loop.run_until_complete(go())
    assert status != 500 and status < 600, (path, body[:200])
    assert took < ANSWER_WITHIN * 3, (path, took)
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    # Nothing lost.
    status, first = fired.loop.run_until_complete(fired.member.call("GET", "/room/lobby/message/1"))
    assert status == 200 and first["id"] == 1


async def test_lone_surrogates_are_refused(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    admin = member()
    store = server.service.store
    store.set_moderator([member_key(admin.id)], None, admin=True, visible=True)
    status, msg = await admin.call("PUT", "/room/lobby", body=b'{"name": "\\ud800"}')
    assert status == 400 and b"not valid Unicode" in msg
    batch = b'[{"method": "PUT", "path": "/room/lobby", "json": {"name": "\\udc80x"}}]'
    status, msg = await admin.call("POST", "/batch", body=batch)
    assert status == 400 and b"not valid Unicode" in msg
    assert store.room("lobby").name == "Lobby"


async def test_numbers_nobody_can_store_are_refused(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    """Non-ASCII digits in paths and timestamps, ids beyond SQLite's 64 bits, and ban timeouts
    that are NaN or beyond a float: a 400 each, never a 500 or a ban without end."""
    admin, alice = member(), member()
    store = server.service.store
    store.set_moderator([member_key(admin.id)], None, admin=True, visible=True)
    await alice.post(b"hello")
    for path in ("/room/lobby/message/\u00b2", "/room/lobby/messages/since/\u0661\u0662"):
        status, msg = await alice.call("GET", path)
        assert status == 400 and b"non-negative whole number" in msg, (path, msg)
    status, msg = await admin.call("PUT", "/room/lobby", {"image": 2**70})
    assert status == 400 and b"image must be a file id" in msg
    doc = admin.post_doc(b"x", files=[2**64])
    status, msg = await admin.call("POST", "/room/lobby/message", doc)
    assert status == 400 and b"files must be a file id" in msg
    ban = f"/user/{alice.id}/ban"
    for raw in (b"NaN", b"Infinity", b"1e400", str(10**400).encode(), b"0", b"-5"):
        body = b'{"rooms": ["lobby"], "timeout": ' + raw + b"}"
        status, msg = await admin.call("POST", ban, body=body)
        assert status == 400 and b"timeout must be a positive number" in msg, (raw, msg)
    assert store.db.execute("SELECT COUNT(*) FROM bans").fetchone()[0] == 0
    status, _ = await admin.call("POST", ban, {"rooms": ["lobby"], "timeout": 3600})
    assert status == 200
    (expires,) = store.db.execute("SELECT expires FROM bans").fetchone()
    assert expires is not None
    h = alice.headers("GET", "/capabilities")
    h["X-SOGS-Timestamp"] = "\u00b2"
    status, msg = await alice.call("GET", "/capabilities", signed=False, headers=h)
    assert status == 400 and b"not a valid timestamp" in msg


@pytest.mark.parametrize("limits", [{"max_file_size": 100_000}])
async def test_a_batch_answer_stays_within_one_request_size(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    """A batch of downloads of the largest file answers 413 for those past what one request
    may carry, instead of building a reply many times that size."""
    alice = member()
    status, doc = await alice.call("POST", "/room/lobby/file", body=b"f" * 60_000)
    assert status == 201
    subs = [{"method": "GET", "path": f"/room/lobby/file/{doc['id']}"}] * 5
    status, answers = await alice.call("POST", "/batch", subs)
    assert status == 200
    assert [a["code"] for a in answers] == [200, 200, 200, 413, 413]
    assert base64.b64decode(answers[0]["body"]) == b"f" * 60_000
    assert b"too large together" in base64.b64decode(answers[3]["body"])
    status, answers = await alice.call("POST", "/sequence", subs)
    assert [a["code"] for a in answers] == [200, 200, 200, 413]


async def test_the_reactor_list_is_bounded(
    server: RunningCommunity, member: Callable[[], Member]
) -> None:
    """SOGS lists every reactor when no limit is given; here at most 10,000 (any limit asked)."""
    alice = member()
    post = await alice.post(b"popular")
    db = server.service.store.db
    db.executemany(
        "INSERT INTO users (id, session_id, key, created, last_active) VALUES (?, ?, ?, 0, 0)",
        [(1000 + i, f"15{i:064x}", f"15{i:064x}") for i in range(10_001)],
    )
    db.executemany(
        "INSERT INTO reactions (message, reaction, user, at) VALUES (?, 'x', ?, ?)",
        [(post["id"], 1000 + i, i) for i in range(10_001)],
    )
    for query in ("", "?limit=0", "?limit=99999999"):
        status, got = await alice.call("GET", f"/room/lobby/reactors/{post['id']}/x{query}")
        assert status == 200 and len(got) == 10_000, query
    status, got = await alice.call("GET", f"/room/lobby/reactors/{post['id']}/x?limit=3")
    assert [r[1] for r in got] == [0, 1, 2]
