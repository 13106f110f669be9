"""Closed groups through the ``session group`` CLI on a loopback devnet: three people
create, invite, accept, exchange, rename, remove one; the removed one's later fetches are
refused and the newest stored message does not open with their keys; the others continue.
Group names from others reach the terminal only sanitised."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from session.cli.client import main
from session.client import Client
from session.errors import DecryptionError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=5)
    net.start()
    try:
        yield net
    finally:
        net.stop()


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
    assert js(run(runner, hb, "group", "accept", "book", "--json"))["status"] == "joined"
    assert js(run(runner, hc, "group", "accept", gid, "--json"))["status"] == "joined"

    js(run(runner, ha, "group", "send", "Book", "hello everyone", "--json"))
    js(run(runner, hc, "group", "send", "Book", "hi from carol", "--json"))
    hist = js(run(runner, hb, "group", "history", "Book", "--json"))["messages"]
    assert {"hello everyone", "hi from carol"} <= {m["body"] for m in hist}

    renamed = js(run(runner, ha, "group", "rename", "Book", "Readers", "--json"))
    assert renamed["name"] == "Readers"
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
    assert "Alice set messages to disappear 86400 s after sending" in bodies
    js(run(runner, hb, "group", "send", "Readers", "bob still here", "--json"))
    assert "bob still here" in {
        m["body"] for m in js(run(runner, ha, "group", "history", "Readers", "--json"))["messages"]
    }

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
            newest = datas[[i for i, p in enumerate(opened) if b"carol cannot read" in p][0]]
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
    assert [x["group_id"] for x in js(run(runner, hb, "group", "list", "--json"))["groups"]] == [gid]
