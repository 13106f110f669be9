"""The ``session`` CLI as a new user meets it (issue 15), without a network: `id name` shows the
name, `id list` shows names, `id remove` asks and guards the only copy of a key, `inbox | head`
is quiet, `requests accept` of nobody says so, dates on older messages, blank sends refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from session.cli.client import main
from session.cli.client.base import attachment_lines, clock, errors, shown
from session.client import Client
from session.errors import GroupError
from session.identity import Identity

PEER = "05" + "ab" * 32


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("SESSION_HOME", "SESSION_NETWORK"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def run(runner: CliRunner, home: Path, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, ["--home", str(home), *args], input=input)


def js(r: Result) -> Any:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def one_error(r: Result, *words: str) -> str:
    assert r.exit_code == 1, r.output
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    for w in words:
        assert w in line, line
    return line


def test_id_name_shows_and_list_shows_names(runner: CliRunner, tmp_path: Path) -> None:
    a = js(run(runner, tmp_path, "id", "new", "--json"))["session_id"]
    b = js(run(runner, tmp_path, "id", "new", "--json"))["session_id"]
    assert "no display name set" in run(runner, tmp_path, "id", "name").stdout
    js(run(runner, tmp_path, "id", "name", "Alice", "--json"))
    assert run(runner, tmp_path, "id", "name").stdout.strip() == "display name: Alice"
    listed = run(runner, tmp_path, "id", "list").stdout.splitlines()
    assert f"* {a}  Alice" in listed and f"  {b}" in listed
    doc = js(run(runner, tmp_path, "id", "list", "--json"))
    assert {i["session_id"]: i["display_name"] for i in doc["identities"]} == {
        a: "Alice",
        b: None,
    }


def test_id_remove_needs_force_and_confirmation(runner: CliRunner, tmp_path: Path) -> None:
    a = js(run(runner, tmp_path, "id", "new", "--json"))["session_id"]
    one_error(run(runner, tmp_path, "id", "remove", a), "only copy", "--force", "--phrase")
    r = run(runner, tmp_path, "id", "remove", a, "--force", input="n\n")
    assert r.exit_code == 1 and "Delete identity" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: nothing was removed"
    assert a in run(runner, tmp_path, "id", "list").stdout
    r = run(runner, tmp_path, "id", "remove", a, "--force", input="y\n")
    assert r.exit_code == 0 and f"removed {a}" in r.stdout
    assert "no identity" in run(runner, tmp_path, "id", "list").stdout
    one_error(run(runner, tmp_path, "id", "remove", a, "--force", "--yes"), "no identity")


def test_requests_accept_without_a_request(runner: CliRunner, tmp_path: Path) -> None:
    js(run(runner, tmp_path, "id", "new", "--json"))
    one_error(run(runner, tmp_path, "requests", "accept", PEER), "no message request", "nothing")


def test_blank_send_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    js(run(runner, tmp_path, "id", "new", "--json"))
    one_error(run(runner, tmp_path, "send", PEER, " ", " "), "empty", "nothing was sent")
    one_error(run(runner, tmp_path, "send", PEER, "-", input="\n  \n"), "empty")
    # offline (no network known): fails before queueing, and says nothing was sent
    one_error(run(runner, tmp_path, "send", PEER, "hi"), "no network", "nothing was sent")


def test_clock_shows_dates_before_today() -> None:
    now = int(time.time() * 1000)
    assert len(clock(now)) == len("12:34:56")
    old = clock(now - 3 * 86_400_000)
    assert old.count("-") == 2 and ":" in old


def test_inbox_into_head_is_quiet(tmp_path: Path) -> None:
    c = Client.open(tmp_path, background=False)
    with c.db.tx():
        c.db.upsert_contact(PEER, name="Bob", approved=1)
        for i in range(200):  # ~200 kB of output: far more than a pipe holds
            c.db.add_message(
                conversation=PEER,
                author=PEER,
                sent_ms=1_700_000_000_000 + i,
                outgoing=False,
                body=f"{i} " + "x" * 1000,
                status="received",
            )
    c.db.close()
    env = {k: v for k, v in os.environ.items() if k not in ("SESSION_HOME", "SESSION_NETWORK")}
    cmd = f"{sys.executable} -c 'from session.cli.client import main; main()'"
    out = subprocess.run(
        f"{cmd} --home {tmp_path} inbox --offline | head -3; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.stderr == "" and out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3


def test_inbox_mark_read(runner: CliRunner, tmp_path: Path) -> None:
    c = Client.open(tmp_path, background=False)
    with c.db.tx():
        c.db.upsert_contact(PEER, name="Bob", approved=1)
        c.db.add_message(
            conversation=PEER,
            author=PEER,
            sent_ms=1_700_000_000_000,
            outgoing=False,
            body="unread one",
            status="received",
        )
    c.db.close()
    [conv] = js(run(runner, tmp_path, "inbox", "--offline", "--json"))["conversations"]
    assert conv["unread"] == 1  # listing alone keeps it unread
    shown = run(runner, tmp_path, "inbox", "--offline", "--mark-read")
    assert "unread one" in shown.stdout and "Bob (05abab" in shown.stdout
    [conv] = js(run(runner, tmp_path, "inbox", "--offline", "--json"))["conversations"]
    assert conv["unread"] == 0


def test_an_error_ending_in_a_quote_keeps_it(capsys: pytest.CaptureFixture[str]) -> None:
    """Only a bare KeyError loses the quotes its str() adds; a sentence ending in a quoted
    name keeps its closing quote."""

    @errors
    def no_group() -> None:
        raise GroupError("no group is named or identified by 'nosuch'")

    @errors
    def missing_key() -> None:
        raise KeyError("no such thing")

    for fn, line in (
        (no_group, "error: no group is named or identified by 'nosuch'"),
        (missing_key, "error: no such thing"),
    ):
        with click.Context(main), pytest.raises(SystemExit) as exited:
            fn()
        assert exited.value.code == 1
        assert capsys.readouterr().err.strip() == line


def test_a_multiline_body_cannot_forge_an_output_line() -> None:
    """Every further line of someone's multi-line text is marked, so "\\n  #2 [12:00] Bob: …"
    in a post or message cannot pass for a post header or an attachment line of ours."""
    forged = "hi\n  #2 [12:00] Bob [15ab…]: send me your phrase\n      [file #3] ok.pdf"
    lines = shown(forged, multiline=True).splitlines()
    assert lines[0] == "hi"
    assert all(line.startswith("    │ ") for line in lines[1:]) and len(lines) == 3
    assert shown(forged) == forged.replace("\n", "␤")


def test_a_file_caption_is_shown_once() -> None:
    """A file sent with a caption carries it as the message's text and the attachment's
    caption: inbox/history print it on the message line only; a caption that differs from the
    text (another app's message) still shows on the file line."""
    att = {
        "id": 7,
        "file_name": "cat.jpg",
        "content_type": "image/jpeg",
        "size": 1234,
        "voice": False,
        "width": 0,
        "height": 0,
        "caption": "our cat",
    }
    [line] = attachment_lines({"body": "our cat", "attachments": [att]})
    assert "our cat" not in line and line.strip().startswith("[file #7] cat.jpg")
    [line] = attachment_lines({"body": "look", "attachments": [att]})
    assert line.endswith(": our cat")


def test_a_bad_network_file_is_named(runner: CliRunner, tmp_path: Path) -> None:
    """`--network FILE` holding JSON that is no node list: the one error line names the file."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": []}')
    js(run(runner, tmp_path, "id", "new", "--json"))
    line = one_error(run(runner, tmp_path, "--network", str(bad), "send", PEER, "hi"))
    assert str(bad) in line and "service_node_states" in line


def test_group_info_and_history_work_offline(runner: CliRunner, tmp_path: Path) -> None:
    """With no network known, `group info` and `group history` show the stored state instead
    of refusing (commands that change a group still need the network)."""
    sid = js(run(runner, tmp_path, "id", "new", "--json"))["session_id"]

    async def make_group() -> str:
        async with Client.open(tmp_path, identity=sid, create=False) as c:
            return await c.groups.create("Offline readers")

    gid = asyncio.run(make_group())
    doc = js(run(runner, tmp_path, "group", "info", gid, "--json"))
    assert doc["name"] == "Offline readers" and doc["members"] == [sid]
    msgs = js(run(runner, tmp_path, "group", "history", gid, "--json"))["messages"]
    assert [m["status"] for m in msgs] == ["control"] and msgs[0]["conversation"] == gid
    assert "Offline readers" in run(runner, tmp_path, "group", "info", "--offline", gid).stdout
    one_error(run(runner, tmp_path, "group", "send", gid, "hi"), "no network is known")


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("before it was queued", "interrupted: nothing was sent"),
        ("queued", "the message is queued, not sent yet"),
        ("sent", "interrupted, but the message was sent"),
    ],
)
def test_ctrl_c_during_send_says_what_was_done(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, says: str
) -> None:
    """Ctrl-C while `send` runs: one sentence saying whether the message was sent, is queued
    (and goes out later: not to be sent again) or was not made at all; exit code 130."""
    from session.cli.client.base import Session

    js(run(runner, tmp_path, "id", "new", "--json"))
    to = Identity.generate().session_id

    async def reached(self: Session) -> int:  # (the network answered)
        return 0

    async def send_then_interrupt(self: Client, *args: Any, **kw: Any) -> int:
        if where == "before it was queued":
            raise KeyboardInterrupt
        mid = await real_send(self, *args, **kw)
        if where == "sent":
            self.db.update_message(mid, status="sent")
        raise KeyboardInterrupt

    real_send = Client.send
    monkeypatch.setattr(Session, "connect", reached)
    monkeypatch.setattr(Client, "send", send_then_interrupt)
    r = run(runner, tmp_path, "send", to, "hello")
    assert r.exit_code == 130, r.output
    [line] = r.stderr.strip().splitlines()
    assert says in line
    # with --json, a document says it too (a script can tell sent from queued from nothing)
    r = run(runner, tmp_path, "--json", "send", to, "hello again")
    assert r.exit_code == 130 and json.loads(r.stdout) == {
        "error": line,
        "interrupted": True,
        "status": {"before it was queued": "none", "queued": "queued", "sent": "sent"}[where],
    }


def test_a_file_sent_without_text_says_what_it_is() -> None:
    from session.cli.client.base import body_line

    att = {"voice": False}
    assert body_line({"body": "", "attachments": [att]}) == "(file)"
    assert body_line({"body": None, "attachments": [{"voice": True}]}) == "(voice note)"
    assert body_line({"body": "caption\x1b[2J", "attachments": [att]}) == shown("caption\x1b[2J")
    assert body_line({"body": "", "attachments": []}) == ""
