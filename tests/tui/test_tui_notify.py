"""Desktop notifications of ``session tui`` through a real ``notify-send`` code path: a
stand-in ``notify-send`` on PATH (a script in a temporary directory that records its argv)
is run by the app through subprocess, as the real one would be. Off by default; "sender
only" never passes message text; untrusted text arrives sanitised, escaped and cut; with no
notify-send the status bar says so once."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from click.testing import CliRunner
from textual.widgets import Select

from session.cli.client.tui import tui
from session.client import Client
from session.tui.app import SessionTui
from session.tui.notify import MAX_BODY, MAX_TITLE, arguments
from tests.tui.test_tui_pilot import BOB, CAROL, say, until

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["NOTIFY_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


@pytest.fixture
def fake_notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notify-send first on PATH that appends its arguments (one JSON list a line) to the
    returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "notify-send"
    exe.write_text(RECORDER.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "notify.log"
    monkeypatch.setenv("NOTIFY_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    c = Client.open(tmp_path / "me", background=False)
    await c.start()
    say(c, BOB, "hi", "Bob")
    await c.accept_request(BOB.session_id)
    say(c, CAROL, "hello", "Carol")
    await c.accept_request(CAROL.session_id)
    try:
        yield c
    finally:
        await c.close()


async def test_preview_sanitised_escaped_and_cut(client: Client, fake_notify: Path) -> None:
    app = SessionTui(client, notifications="preview")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_conversation(CAROL.session_id)
        nasty = "look <b>here</b> & \x1b]0;pwned\x07\u202eevil\n" + "x" * 500
        say(client, BOB, nasty, "Bob\x1b[31m")
        await until(pilot, lambda: len(calls(fake_notify)) == 1, "one notification")
        [argv] = calls(fake_notify)
        assert argv[:2] == ["--app-name=Session", "--"]
        title, body = argv[2:]
        assert title.startswith("Bob") and "\x1b" not in title and len(title) <= MAX_TITLE
        assert body.startswith("look &lt;b&gt;here&lt;/b&gt; &amp; ")
        assert not any(ch in body for ch in "\x1b\x07\u202e\n")
        assert len(body) <= MAX_BODY + 20  # cut before escaping: a few entities longer
        # a message in the open conversation is not notified
        say(client, CAROL, "in view", "Carol")
        await until(pilot, lambda: client.messages(CAROL.session_id)[-1].body == "in view", "got")
        await pilot.pause()
        say(client, BOB, "second", "Bob")
        await until(pilot, lambda: len(calls(fake_notify)) == 2, "second notification")
        assert [c[3] for c in calls(fake_notify)][1] == "second"


async def test_sender_only_never_passes_the_text(client: Client, fake_notify: Path) -> None:
    app = SessionTui(client, notifications="sender")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_conversation(CAROL.session_id)
        say(client, BOB, "the secret plan", "Bob")
        await until(pilot, lambda: len(calls(fake_notify)) == 1, "one notification")
    [argv] = calls(fake_notify)
    assert argv == ["--app-name=Session", "--", "Bob", "New message"]
    assert not any("secret" in a for a in argv)


async def test_off_by_default_and_chosen_in_settings(client: Client, fake_notify: Path) -> None:
    app = SessionTui(client)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_conversation(CAROL.session_id)
        say(client, BOB, "not notified", "Bob")
        await until(pilot, lambda: client.messages(BOB.session_id)[-1].body == "not notified", "")
        await pilot.pause()
        assert calls(fake_notify) == []
        # F3: choose "sender and preview"; it is used at once and saved
        await pilot.press("f3")
        await until(pilot, lambda: bool(app.screen.query("#notify")), "settings open")
        app.screen.query_one("#notify", Select).value = "preview"
        await until(pilot, lambda: app.notifier.mode == "preview", "mode chosen")
        assert client.preference("tui.notifications") == "preview"
        await pilot.press("escape")
        say(client, BOB, "now notified", "Bob")
        await until(pilot, lambda: len(calls(fake_notify)) == 1, "notified")
        assert calls(fake_notify)[0][3] == "now notified"


async def test_unavailable_is_said_once(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    app = SessionTui(client, notifications="sender")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_conversation(CAROL.session_id)
        status = app.query_one("#status")
        unavailable = "desktop notifications unavailable (notify-send not found)"
        assert unavailable in str(status.render())
        app._notice = ""  # the note has passed
        say(client, BOB, "hi again", "Bob")
        await until(pilot, lambda: client.messages(BOB.session_id)[-1].body == "hi again", "got")
        for w in list(app.workers):
            if w.group == "notify":
                await w.wait()
        app.update_status()
        assert unavailable not in str(status.render())  # said once, not on every message


def test_modes_and_arguments() -> None:
    with pytest.raises(ValueError, match="sender, preview"):
        arguments("off", "Bob", "hi")
    assert arguments("sender", "", "hi")[2:] == ["Someone", "New message"]
    assert arguments("preview", "-rf", "--help")[1:] == ["--", "-rf", "--help"]


def test_cli_offers_the_flags() -> None:
    out = CliRunner().invoke(tui, ["--help"])
    assert "--notify [off|sender|preview]" in out.output and "--bell / --no-bell" in out.output


async def test_a_message_another_device_had_read_is_not_notified(
    client: Client, fake_notify: Path
) -> None:
    """A message stored read (our other device's read mark, synced, covers it) rings no bell
    and sends no notice; the next one after the mark does."""
    from session.client import sync as S

    app = SessionTui(client, notifications="preview")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_conversation(CAROL.session_id)
        t = say(client, BOB, "unread, notified", "Bob")
        await until(pilot, lambda: len(calls(fake_notify)) == 1, "the first notice")
        with client.db.tx():  # (another device read up to here)
            client.config.edit(
                S.NS_CONVO_INFO, lambda d: S.set_last_read(d, BOB.session_id, t + 1000)
            )
        read = say(client, BOB, "read elsewhere", "Bob")
        assert read == t + 1000  # (covered by the mark)
        await until(pilot, lambda: client.messages(BOB.session_id)[-1].body == "read elsewhere", "")
        assert client.messages(BOB.session_id)[-1].status == "read"
        say(client, BOB, "new again", "Bob")
        await until(pilot, lambda: len(calls(fake_notify)) == 2, "the next notice")
        assert [c[3] for c in calls(fake_notify)] == ["unread, notified", "new again"]
