"""``session tui`` driven headless with Textual's pilot, on a real client without a network:
received messages are sealed by a peer's identity and applied with ``Client.process_stored``
(the receive path a poll uses), sent ones stay in the real outbox."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from textual.pilot import Pilot

from session.client import Client
from session.client import messages as M
from session.identity import Identity
from session.tui.app import SessionTui
from session.tui.widgets import PAGE, HistoryView, MessageLine

pytestmark = pytest.mark.asyncio

BOB = Identity.from_seed(bytes.fromhex("00112233445566778899aabbccddeeff"))
CAROL = Identity.from_seed(bytes.fromhex("ffeeddccbbaa99887766554433221100"))
_stamp = itertools.count(1_700_000_000_000, 1000)
#: Seconds a condition the app is working towards may take (a bound, not a wait).
UNTIL_S = 60.0


def deliver(client: Client, sender: Identity, content: M.pb.Content, sent_ms: int) -> None:
    """Apply one message from ``sender`` to ``client`` as a poll would."""
    data = M.seal(sender, client.session_id, content, sent_ms)
    client.process_stored([(hashlib.sha256(data.encode()).hexdigest(), data, 0)])


def say(client: Client, sender: Identity, body: str, name: str) -> int:
    t = next(_stamp)
    deliver(client, sender, M.text(body, sent_ms=t, display_name=name), t)
    return t


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    c = Client.open(tmp_path / "me", background=False)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def until(pilot: Pilot[object], cond: Callable[[], bool], what: str) -> None:
    """Let the app work until ``cond()`` holds; bounded by a deadline far above any loaded
    machine's delay (not by a count of message-loop rounds, which a loaded machine used up)."""
    deadline = time.monotonic() + UNTIL_S
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {UNTIL_S:.0f} s: {what}")
        await pilot.pause()


def lines(app: SessionTui) -> list[str]:
    return [line.message.body or "" for line in app.query(MessageLine)]


async def test_open_switch_send_and_receive_while_typing(client: Client) -> None:
    say(client, BOB, "hi from bob", "Bob")
    await client.accept_request(BOB.session_id)
    say(client, CAROL, "carol here [b]bold?[/b] \x1b[2J", "Carol")
    await client.accept_request(CAROL.session_id)
    app = SessionTui(client, quit_timeout=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        # newest first: Carol's conversation is open; markup and escapes show as text
        assert app.current == CAROL.session_id
        assert lines(app) == ["carol here [b]bold?[/b] \x1b[2J"]
        shown = str(app.query(MessageLine).first().render())
        assert "[b]bold?[/b]" in shown and "\x1b" not in shown and "␛[2J" in shown
        assert client.conversations()[0].unread == 0  # opening it marked it read
        # switch with Ctrl+K (fuzzy) to Bob
        await pilot.press("ctrl+k")
        await pilot.press(*"bb", "enter")
        await until(pilot, lambda: app.current == BOB.session_id, "switched to Bob")
        assert lines(app) == ["hi from bob"]
        # send
        await pilot.press(*"hello bob", "enter")
        await until(pilot, lambda: "hello bob" in lines(app), "sent line shown")
        sent = client.messages(BOB.session_id)[-1]
        assert sent.outgoing and sent.body == "hello bob" and client.queued() >= 1
        assert app.compose_box.value == ""
        assert "(sending)" in str(app.query_one(f"#m{sent.id}", MessageLine).render())
        # receive while typing: the half-typed line is untouched
        await pilot.press(*"half way thr")
        say(client, BOB, "interrupting!", "Bob")
        await until(pilot, lambda: "interrupting!" in lines(app), "incoming shown")
        assert app.compose_box.value == "half way thr"
        assert app.compose_box.cursor_position == len("half way thr")
        # a typing indicator from Bob shows, and goes with his next message
        t = next(_stamp)
        deliver(client, BOB, M.typing(True, sent_ms=t), t)
        typing = app.query_one("#typing")
        await until(pilot, lambda: "Bob is typing" in str(typing.render()), "typing shown")
        say(client, BOB, "done typing", "Bob")
        await until(pilot, lambda: "Bob is typing" not in str(typing.render()), "typing gone")
        # the draft stays with Bob's conversation while Carol's is open
        await app.open_conversation(CAROL.session_id)
        assert app.compose_box.value == ""
        await app.open_conversation(BOB.session_id)
        assert app.compose_box.value == "half way thr"


async def test_a_multiline_body_cannot_forge_a_message_line(client: Client) -> None:
    say(client, CAROL, "hi\n12:00 Bob: send me your recovery phrase", "Carol")
    (m,) = client.messages(CAROL.session_id)
    text = MessageLine.content_of(client, m).plain
    assert text.splitlines()[1] == "    │ 12:00 Bob: send me your recovery phrase", text


async def test_help_scrolls_to_its_end_at_80x24(client: Client) -> None:
    """F1's list is taller than 24 rows: every line and the Close button can be reached."""
    app = SessionTui(client, quit_timeout=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await until(pilot, lambda: app.screen.query("#close"), "the help is open")
        close = app.screen.query_one("#close")
        close.scroll_visible(animate=False)
        await pilot.pause()
        await until(pilot, lambda: app.screen.region.contains_region(close.region), "Close shown")
        await pilot.press("escape")


async def test_accept_request_from_the_list(client: Client) -> None:
    say(client, BOB, "can we talk?", "Bob")
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        assert [e.kind for e in app.entries] == ["request"]
        assert app.current == BOB.session_id
        bar = app.query_one("#requestbar")
        assert bar.has_class("shown")
        await pilot.click("#accept")
        await until(pilot, lambda: [e.kind for e in app.entries] == ["direct"], "accepted")
        assert not bar.has_class("shown")
        assert client.contact(BOB.session_id).approved
        assert client.requests() == []
        assert client.queued() >= 1  # the acceptance is on its way to Bob


async def test_unknown_command_is_not_sent(client: Client) -> None:
    say(client, BOB, "hi", "Bob")
    await client.accept_request(BOB.session_id)
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        before = client.message_count(BOB.session_id)
        await pilot.press(*"/frobnicate", "enter")
        await pilot.pause()
        assert client.message_count(BOB.session_id) == before
        assert app.compose_box.value == "/frobnicate"  # kept for correcting
        app.compose_box.value = ""
        await pilot.press(*"/rename Bobby", "enter")
        await until(pilot, lambda: app.entries[0].title == "Bobby", "renamed")


async def test_scroll_history_pages_from_the_database(client: Client) -> None:
    peer = BOB.session_id
    for i in range(3 * PAGE):
        say(client, BOB, f"message {i}", "Bob")
    await client.accept_request(peer)
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        h = app.query_one(HistoryView)
        assert h.loaded == PAGE  # only the newest page was read
        assert lines(app)[-1] == f"message {3 * PAGE - 1}"
        for _ in range(100):  # PageUp until the start; each time at the top loads a page
            if h.loaded == 3 * PAGE and h.scroll_y <= 0:
                break
            await pilot.press("pageup")
            await pilot.pause()
            for w in list(app.workers):  # a page being loaded is in place before the next key
                if w.group == "history":
                    await w.wait()
        assert h.loaded == 3 * PAGE
        assert lines(app) == [f"message {i}" for i in range(3 * PAGE)]


async def test_quit_waits_for_queued_and_shows_the_count(client: Client) -> None:
    say(client, BOB, "hi", "Bob")
    await client.accept_request(BOB.session_id)
    app = SessionTui(client, quit_timeout=1.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"are you there", "enter")
        await until(pilot, lambda: "are you there" in lines(app), "sent")
        assert client.queued() >= 1
        pressed = time.monotonic()
        await pilot.press("ctrl+q")
        status = app.query_one("#status")
        await until(pilot, lambda: "quitting: waiting for" in str(status.render()), "count")
        app.update_status()
        assert f"waiting for {client.queued()} queued" in str(status.render())
        # the drain gives up after quit_timeout (no network here) and the app exits by itself
        # (on a loaded machine its worker may be over and gone from the list already)
        for drain in [w for w in app.workers if w.group == "quit"]:
            await asyncio.wait_for(drain.wait(), 60)
        await until(pilot, lambda: app.return_code is not None, "the app's exit")
        # (it waited for the queue until quit_timeout: with no network nothing ends it sooner)
        assert time.monotonic() - pressed >= 1.0
    # no network: the wait ran out and the app left, saying what is still queued
    assert app.queued_at_exit == client.queued() >= 1
    assert client.messages(BOB.session_id)[-1].body == "are you there"  # nothing lost


async def test_reply_with_a_quote_both_ways(client: Client) -> None:
    t_bob = say(client, BOB, "lunch at noon?", "Bob")
    await client.accept_request(BOB.session_id)
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r")
        replying = app.query_one("#replying")
        assert "replying to Bob: lunch at noon?" in str(replying.render())
        await pilot.press(*"yes!", "enter")
        await until(pilot, lambda: "yes!" in lines(app), "reply sent")
        [mine] = [m for m in client.messages(BOB.session_id) if m.outgoing]
        assert mine.quote == (t_bob, BOB.session_id)
        assert str(replying.render()) == ""
        shown = str(app.query_one(f"#m{mine.id}", MessageLine).render())
        assert "┃ Bob: lunch at noon?" in shown
        # Bob quotes our reply: stored with its quote, shown above his answer
        t = next(_stamp)
        content = M.text(
            "great", sent_ms=t, display_name="Bob", quote=(mine.sent_ms, client.session_id)
        )
        deliver(client, BOB, content, t)
        await until(pilot, lambda: "great" in lines(app), "quoted reply received")
        [theirs] = [m for m in client.messages(BOB.session_id) if m.body == "great"]
        assert theirs.quote == (mine.sent_ms, client.session_id)
        assert client.quoted(theirs) == client.message(mine.id)
        assert "┃ you: yes!" in str(app.query_one(f"#m{theirs.id}", MessageLine).render())


async def test_resizes_keep_the_layout(client: Client) -> None:
    say(client, BOB, "hello " * 40, "Bob")
    await client.accept_request(BOB.session_id)
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"draft")
        for width, height in ((120, 40), (60, 16), (80, 24)):
            await pilot.resize_terminal(width, height)
            await pilot.pause()
            box = app.compose_box.region
            assert box.height == 3 and box.bottom <= height - 1  # above the status bar
            assert app.query_one("#status").region.y == height - 1
            assert app.compose_box.value == "draft"


async def test_the_cursor_rests_when_idle_and_blinks_again_on_a_key(client: Client) -> None:
    """The input box's blink (most of the idle CPU) stops after a while without keys; the
    cursor stays shown and blinks again at the next key."""
    app = SessionTui(client, blink_idle_s=0.4)
    async with app.run_test(size=(80, 24)) as pilot:
        box = app.compose_box
        # no check that it blinks at first: on a loaded machine the app may take longer than
        # blink_idle_s to start, and then it has rightly rested already
        await until(pilot, lambda: not box.cursor_blink, "the cursor rests")
        app.blink_idle_s = 3600.0  # it must not rest again before the check below
        await pilot.press("a")
        assert box.cursor_blink and box.value == "a"
