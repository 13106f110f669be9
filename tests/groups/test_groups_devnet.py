"""Closed groups on a loopback devnet. Through the ``session group`` CLI: three people
create, invite, accept, exchange, rename, remove one; the removed one's later fetches are
refused and the newest stored message does not open with their keys; the others continue;
group names from others reach the terminal only sanitised. With library clients in one
process: a 100-member group gets one message to every member and refuses a 101st; a key
message with a bad signature is dropped with a logged reason (and refused by the node)."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from session.cli.client import main
from session.client import Client
from session.errors import DecryptionError, GroupFull, NodeRequestFailed
from session.identity import Identity
from session.testing.http import unreachable_node_list

pytestmark = pytest.mark.integration


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


def test_three_people_through_the_cli(runner: CliRunner, tmp_path: Path, devnet: Any) -> None:
    nodes = str(devnet.dir / "nodes.json")
    homes = {n: tmp_path / n for n in ("alice", "bob", "carol")}
    ids = {}
    for n, h in homes.items():
        ids[n] = js(run(runner, h, "id", "new", "--json"))["session_id"]
        js(run(runner, h, "--network", nodes, "id", "name", n.capitalize(), "--json"))
    ha, hb, hc = homes["alice"], homes["bob"], homes["carol"]

    g = js(run(runner, ha, "group", "create", "Book club", ids["bob"], ids["carol"], "--json"))
    gid = g["group_id"]
    assert g["admin"] and len(g["members"]) == 3

    listed = js(run(runner, hb, "group", "list", "--json"))["groups"]
    assert [(x["group_id"], x["status"]) for x in listed] == [(gid, "invited")]
    assert f"Book club  (invited)  {gid}" in run(runner, hb, "group", "list").stdout
    assert js(run(runner, hb, "group", "accept", "book", "--json"))["status"] == "joined"
    # `requests` lists the invitation next to message requests, and accepts it the same way
    listed = js(run(runner, hc, "requests", "--json"))["requests"]
    assert [r["session_id"] for r in listed] == [gid]
    assert js(run(runner, hc, "requests", "accept", gid, "--json"))["status"] == "joined"

    js(run(runner, ha, "group", "send", "Book", "hello everyone", "--json"))
    js(run(runner, hc, "group", "send", "Book", "hi from carol", "--json"))
    hist = js(run(runner, hb, "group", "history", "Book", "--json"))["messages"]
    assert {"hello everyone", "hi from carol"} <= {m["body"] for m in hist}

    renamed = js(run(runner, ha, "group", "rename", "Book", "Readers", "--json"))
    assert renamed["name"] == "Readers"
    assert f"Readers  (admin, 3 members)  {gid}" in run(runner, ha, "group", "list").stdout
    info = js(run(runner, hb, "group", "info", "Readers", "--json"))
    assert info["name"] == "Readers" and info["admins"] == [ids["alice"]]
    text = run(runner, hb, "group", "history", "Readers")
    assert "Alice renamed the group to Readers" in text.stdout

    js(run(runner, ha, "group", "disappear", "Readers", "after-send", "1d", "--json"))
    js(run(runner, ha, "group", "remove", "Readers", ids["carol"], "--json"))
    js(run(runner, ha, "group", "send", "Readers", "carol cannot read this", "--json"))
    hist = js(run(runner, hb, "group", "history", "Readers", "--json"))["messages"]
    bodies = [m["body"] for m in hist]
    assert "carol cannot read this" in bodies and "Alice removed Carol" in bodies
    assert "Alice set messages to disappear 1 day after sending" in bodies
    js(run(runner, hb, "group", "send", "Readers", "bob still here", "--json"))
    assert "bob still here" in {
        m["body"] for m in js(run(runner, ha, "group", "history", "Readers", "--json"))["messages"]
    }

    # the group is among Bob's conversations, under its name, and the reply hint names the
    # group command
    convs = js(run(runner, hb, "inbox", "--json"))["conversations"]
    assert [(x["session_id"], x["name"]) for x in convs if x["session_id"] == gid] == [
        (gid, "Readers")
    ]
    assert f"reply: session group send {gid} TEXT" in run(runner, hb, "inbox").stdout

    # a file in the group: its line in the history (with the id `save` takes); reading the
    # history marks the group read
    note = tmp_path / "note.txt"
    note.write_text("minutes of the meeting")
    js(run(runner, ha, "group", "send", "Readers", "the minutes", "--file", str(note), "--json"))
    text = run(runner, hb, "group", "history", "Readers").stdout
    assert "Alice: the minutes" in text and "] note.txt (22 bytes" in text and "[file #" in text
    convs = js(run(runner, hb, "inbox", "--json"))["conversations"]
    assert [x["unread"] for x in convs if x["session_id"] == gid] == [0]
    # a network that does not answer (a copy of Bob's home, its nodes all down): the stored
    # messages, saying so
    away = tmp_path / "bob-away"
    shutil.copytree(hb, away)
    down = unreachable_node_list(tmp_path / "down.json")
    r = run(runner, away, "--network", str(down), "--timeout", "5", "group", "history", "Readers")
    assert r.exit_code == 0, r.output
    assert "cannot reach the network" in r.stderr and "showing the stored messages" in r.stderr
    assert "Alice: the minutes" in r.stdout

    # group chat with piped input: the line goes to the group, Alice reads it; /help helps,
    # an unknown /word is refused and never sent, //text sends "/text"
    typed = "typed in the chat\n/help\n/nosuch secret\n//slash line\n/quit\n"
    r = run(runner, hb, "group", "chat", "Readers", "--json", input=typed)
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "start" and events[-1] == {"event": "end", "queued": 0}
    assert any(ev["event"] == "queued" and ev["body"] == "typed in the chat" for ev in events)
    assert [ev["error"] for ev in events if ev["event"] == "error"] == ["/nosuch"]
    assert any(ev["event"] == "help" for ev in events)
    bodies = {
        m["body"] for m in js(run(runner, ha, "group", "history", "Readers", "--json"))["messages"]
    }
    assert {"typed in the chat", "/slash line"} <= bodies
    assert not [b for b in bodies if "nosuch" in b or "help" in b]

    # Carol: her fetch is refused (revoked) and the group shows as removed
    chist = js(run(runner, hc, "group", "history", gid, "--json"))["messages"]
    assert "carol cannot read this" not in {m["body"] for m in chist}
    assert js(run(runner, hc, "group", "info", gid, "--json"))["status"] == "removed"

    # the bytes the swarm holds for the newest message do not open with Carol's keys
    async def newest_for_carol() -> None:
        a = Client.open(ha, nodes, background=False)
        c = Client.open(hc, None, background=False)
        try:
            await a.start()
            st = a.groups._state(gid)
            node = a.rpc.dir.swarm(gid)[0]
            raw = await a.rpc.retrieve(st.signer, 11, node, "")  # type: ignore[arg-type]
            datas = [base64.b64decode(m["data"]) for m in raw["messages"]]
            opened = [st.keys.decrypt_message(d).plaintext for d in datas]
            assert any(b"carol cannot read this" in p for p in opened)
            newest = datas[next(i for i, p in enumerate(opened) if b"carol cannot read" in p)]
            with pytest.raises(DecryptionError):
                c.groups._state(gid).keys.decrypt_message(newest)
        finally:
            await a.close()
            await c.close()

    import asyncio

    asyncio.run(newest_for_carol())

    # errors are one sentence; a name from someone else is printed sanitised
    r = run(runner, hb, "group", "rename", "Readers", "Bob's")
    assert r.exit_code == 1 and "only an admin" in r.stderr
    r = run(runner, hb, "group", "send", "nothing-like-this", "x")
    assert r.exit_code == 1 and "no group" in r.stderr
    evil = js(run(runner, ha, "group", "create", "Evil\x1b[2Jname", ids["bob"], "--json"))
    shown = run(runner, hb, "group", "list")
    assert shown.exit_code == 0 and "\x1b" not in shown.stdout and evil["group_id"] in shown.stdout
    js(run(runner, hb, "group", "decline", evil["group_id"], "--json"))
    assert [x["group_id"] for x in js(run(runner, hb, "group", "list", "--json"))["groups"]] == [
        gid
    ]


async def _hundred(tmp: Path, nodes: str) -> None:
    admin = Client.open(tmp / "admin", nodes, background=False)
    members = [Client.open(tmp / f"m{i}", nodes, background=False) for i in range(99)]
    everyone = [admin, *members]
    try:
        for c in everyone:
            await c.start()
        gid = await admin.groups.create("hundred", [m.session_id for m in members])
        assert len(admin.groups.info(gid).members) == 100
        assert await admin.drain(60) == 0
        for m in members:
            await m.poll_once()
            await m.groups.accept(gid)
            assert await m.drain(30) == 0
        await admin.groups.send(gid, "one message for a hundred")
        assert await admin.drain(30) == 0
        for m in members:
            await m.groups.poll(gid)
        got = [
            m for m in members if "one message for a hundred" in {x.body for x in m.messages(gid)}
        ]
        assert len(got) == 99
        # the 101st is refused, clearly, and nothing changes
        with pytest.raises(GroupFull, match="at most 100 members"):
            await admin.groups.invite(gid, [Identity.generate().session_id])
        assert len(admin.groups.info(gid).members) == 100
    finally:
        for c in everyone:
            await c.close()


def test_hundred_members_one_message_each(tmp_path: Path, devnet: Any) -> None:
    """A 100-member group (99 library clients and the admin, one process, one devnet): one
    message reaches every member; a 101st member is refused."""
    import asyncio

    asyncio.run(_hundred(tmp_path, str(devnet.dir / "nodes.json")))


async def _bad_key_message(tmp: Path, nodes: str, caplog: pytest.LogCaptureFixture) -> None:
    from session.groups.crypto import GroupIdentity
    from session.groups.keys import GroupKeys

    a = Client.open(tmp / "a", nodes, background=False)
    b = Client.open(tmp / "b", nodes, background=False)
    try:
        await a.start()
        await b.start()
        gid = await a.groups.create("keys", [b.session_id])
        assert await a.drain(30) == 0
        await b.poll_once()
        await b.groups.accept(gid)
        st = b.groups._state(gid)
        before = st.keys.group_keys()
        # a rekey signed by another group's key, as if it had been stored in namespace 12
        other = GroupIdentity.generate()
        forged = GroupKeys(other.group_id, b.identity, admin=other).rekey([b.session_id])
        row = ("forgedkeyhash" + "A" * 30, base64.b64encode(forged).decode(), 0)
        with caplog.at_level(logging.INFO, logger="session.client.groups"):
            with b.db.tx():
                b.groups._apply(st, 12, [row])
        assert st.keys.group_keys() == before
        assert any(
            "key message" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records
        )
        # and the node refuses a member who tries to store one at all
        with pytest.raises(NodeRequestFailed) as e:
            await b.rpc.store(gid, 12, row[1], b.clock.now_ms() + 3_600_000, identity=st.signer)
        assert e.value.status == 401
        # the conversation keeps working
        await a.groups.send(gid, "keys still fine")
        assert await a.drain(30) == 0
        await b.groups.poll(gid)
        assert "keys still fine" in {m.body for m in b.messages(gid)}
    finally:
        await a.close()
        await b.close()


def test_bad_key_message_dropped(
    tmp_path: Path, devnet: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    asyncio.run(_bad_key_message(tmp_path, str(devnet.dir / "nodes.json"), caplog))
