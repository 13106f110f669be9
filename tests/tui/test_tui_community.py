"""Community rooms in ``session tui`` (Textual's pilot) against a real community server on
127.0.0.1: the client signs every request as over the network and
:class:`session.testing.community.DirectRoute` carries it to the server without onion hops.
Older posts page in from the server once the client's stored ones run out, and quoted replies
go both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from textual.pilot import Pilot

from session.client import Client
from session.client import community as C
from session.community.server import RunningCommunity, start
from session.testing.community import DirectRoute, Member, community_config
from session.tui.app import SessionTui
from session.tui.widgets import PAGE, ROOM_FETCH, HistoryView, PostLine
from tests.tui.test_tui_pilot import until

pytestmark = pytest.mark.asyncio

#: More posts than the first poll brings (SOGS's 256) and than one page of the view.
POSTS = ROOM_FETCH + PAGE // 2


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningCommunity]:
    running = await start(community_config(tmp_path / "server", rate_limit_posts=10_000))
    running.service.store.add_room("lobby", "Lobby", "Say hello")
    try:
        yield running
    finally:
        await running.close()


@pytest_asyncio.fixture
async def carol(server: RunningCommunity) -> AsyncIterator[Member]:
    async with aiohttp.ClientSession() as http:
        yield Member(server, http)


@pytest_asyncio.fixture
async def member(
    tmp_path: Path, server: RunningCommunity
) -> AsyncIterator[tuple[Client, DirectRoute]]:
    c = Client.open(tmp_path / "me", [], background=False)
    route = DirectRoute(server)
    route.install(c)
    await c.start()
    await c.set_display_name("Me")
    try:
        yield c, route
    finally:
        await c.close()


async def carol_says(
    carol: Member, body: str, sent_ms: int, quote: tuple[int, str, str | None] | None = None
) -> int:
    content = C.post_content(body, sent_ms=sent_ms, display_name="Carol", quote=quote)
    doc = await carol.post(content.SerializeToString())
    return int(doc["id"])


def shown(app: SessionTui) -> list[str]:
    return [line.post.body or "" for line in app.query(PostLine)]


async def settle_history(pilot: Pilot[object], app: SessionTui) -> None:
    """A page being loaded (from the store or the server) is in place before the next key."""
    await pilot.pause()
    for w in list(app.workers):
        if w.group == "history":
            await w.wait()


async def test_room_history_pages_from_the_server(
    server: RunningCommunity, carol: Member, member: tuple[Client, DirectRoute]
) -> None:
    client, route = member
    for i in range(POSTS):
        await carol_says(carol, f"post {i}", 1_700_000_000_000 + i * 1000)
    room = await client.communities.join(f"{server.url}/lobby?public_key={server.pubkey_hex}")
    key = f"{room.base_url}/{room.token}"
    assert len(client.communities.posts(key, limit=1000)) == ROOM_FETCH  # the first poll's
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current == key
        h = app.query_one(HistoryView)
        assert h.loaded == PAGE and shown(app)[-1] == f"post {POSTS - 1}"
        for _ in range(100):  # PageUp to the start; the last pages come from the server
            if h.exhausted and h.scroll_y <= 0:
                break
            await pilot.press("pageup")
            await settle_history(pilot, app)
        assert shown(app) == [f"post {i}" for i in range(POSTS)]
        assert h.exhausted
    older = [r for r in route.requests if "/messages/before/" in r]
    assert len(older) == 1, older  # one page of the server's brought the rest
    # kept by the client: the whole room reads from its database now
    assert [p.body for p in client.communities.posts(key, limit=1000)] == [
        f"post {i}" for i in range(POSTS)
    ]


async def test_room_history_when_the_server_is_gone(
    tmp_path: Path, carol: Member, member: tuple[Client, DirectRoute], server: RunningCommunity
) -> None:
    """The stored posts page in, the failed request is said once, nothing stored is lost."""
    client, route = member
    for i in range(POSTS):
        await carol_says(carol, f"post {i}", 1_700_000_000_000 + i * 1000)
    room = await client.communities.join(f"{server.url}/lobby?public_key={server.pubkey_hex}")
    key = f"{room.base_url}/{room.token}"
    await server.served.close()  # the server stops answering (its store stays for teardown)
    app = SessionTui(client)
    said: set[str] = set()
    async with app.run_test(size=(80, 24)) as pilot:
        h = app.query_one(HistoryView)
        for _ in range(100):
            said |= {str(n.message) for n in app._notifications}
            if h.loaded == ROOM_FETCH and any("/messages/before/" in r for r in route.requests):
                break
            await pilot.press("pageup")
            await settle_history(pilot, app)
        said |= {str(n.message) for n in app._notifications}
        assert shown(app) == [f"post {i}" for i in range(POSTS - ROOM_FETCH, POSTS)]
        assert not h.exhausted  # the server may still have older posts: PageUp asks again
    assert any(m.startswith("Older posts not loaded: ") for m in said), said
    assert len(client.communities.posts(key, limit=1000)) == ROOM_FETCH


async def test_quoted_replies_in_a_room_both_ways(
    server: RunningCommunity, carol: Member, member: tuple[Client, DirectRoute]
) -> None:
    client, _ = member
    asked = await carol_says(carol, "lunch at noon? [b]x[/b]", 1_700_000_000_000)
    room = await client.communities.join(f"{server.url}/lobby?public_key={server.pubkey_hex}")
    key = f"{room.base_url}/{room.token}"
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r")
        replying = app.query_one("#replying")
        assert "replying to Carol: lunch at noon? [b]x[/b]" in str(replying.render())
        await pilot.press(*"yes!", "enter")
        await until(pilot, lambda: "yes!" in shown(app), "reply posted")
        assert str(replying.render()) == ""
        mine = client.communities.posts(key)[-1]
        theirs = client.communities.post_by_id(key, asked)
        assert mine.mine and mine.quote == {
            "id": theirs.sent_ms,
            "author": theirs.author,
            "text": "lunch at noon? [b]x[/b]",
        }
        assert client.communities.quoted(mine) == theirs
        [line] = [ln for ln in app.query(PostLine) if ln.post.id == mine.id]
        assert "┃ Carol: lunch at noon? [b]x[/b]" in str(line.render())
        # Carol quotes our reply: the client's poll brings it, the room redraws with the quote
        await carol_says(carol, "great", 1_700_000_100_000, (mine.sent_ms, mine.author, mine.body))
        await client.communities.poll(room.base_url)
        await until(pilot, lambda: "great" in shown(app), "quoted reply received")
        [line] = [ln for ln in app.query(PostLine) if ln.post.body == "great"]
        assert "┃ you: yes!" in str(line.render())
