"""Communities end to end on a devnet through the CLI (issue 11): two members join the devnet's
``lobby`` by the join URL nodes.json lists, post and read each other (display names, quotes),
react, edit, delete, DM each other by blinded ID; a moderator (made with the server's admin CLI)
deletes a member's post and it disappears for both; a banned member's post is refused with
SOGS's 403; the room reaches a second device of the same account through the UserGroups config;
and neither Session ID is in any file of the community server (database, WAL, logs), which holds
the members' blinded IDs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from session.cli.client import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    with Devnet(tmp_path_factory.mktemp("community-cli"), nodes=5, file_server=False) as net:
        yield net


@pytest.fixture(scope="module")
def lobby(devnet: Any) -> str:
    from session.proto.snodes import parse_community_servers

    (cs,) = parse_community_servers(json.loads((devnet.dir / "nodes.json").read_text()))
    return str(cs.rooms["lobby"])


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory, devnet: Any) -> dict[str, Any]:
    """Alice and Bob, each in a profile directory, with display names."""
    root = tmp_path_factory.mktemp("people")
    runner = CliRunner()
    out: dict[str, Any] = {}
    for name in ("Alice", "Bob"):
        home = root / name.lower()
        doc = js(runner.invoke(main, ["--home", str(home), "id", "new", "--json"]))
        js(runner.invoke(main, ["--home", str(home), "--network", str(devnet.dir / "nodes.json"),
                                "id", "name", name, "--json"]))  # fmt: skip
        out[name] = {"home": home, "sid": doc["session_id"], "mnemonic": doc["mnemonic"]}
    return out


def js(r: Result) -> Any:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def cli(devnet: Any, who: dict[str, Any], *args: str, input: str | None = None) -> Result:
    nodes = str(devnet.dir / "nodes.json")
    env = {"SESSION_HOME": None, "SESSION_NETWORK": None}
    argv = ["--home", str(who["home"]), "--network", nodes, *args]
    return CliRunner().invoke(main, argv, env=env, input=input)


def admin(devnet: Any, *args: str) -> None:
    """The community server's admin CLI on its data directory (as an operator runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_COMMUNITY_")}
    cmd = [sys.executable, "-m", "session.community", *args,
           "--data-dir", str(devnet.community.data_dir)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=60)


def posts(devnet: Any, who: dict[str, Any]) -> dict[int, dict[str, Any]]:
    doc = js(cli(devnet, who, "community", "read", "lobby", "--json"))
    return {p["id"]: p for p in doc["posts"]}


def test_two_members_in_the_lobby(
    devnet: Any, lobby: str, people: dict[str, Any], tmp_path: Path
) -> None:
    alice, bob = people["Alice"], people["Bob"]
    a = js(cli(devnet, alice, "community", "join", lobby, "--json"))
    b = js(cli(devnet, bob, "community", "join", lobby, "--json"))
    assert a["room"] == "lobby" and a["url"] == lobby
    a15, b15 = a["blinded_id"], b["blinded_id"]
    assert a15.startswith("15") and b15.startswith("15") and a15 != b15
    alice["b15"], bob["b15"] = a15, b15

    p1 = js(cli(devnet, alice, "community", "post", "lobby", "hello lobby", "--json"))
    seen = posts(devnet, bob)[p1["id"]]
    assert (seen["body"], seen["name"], seen["author"], seen["mine"]) == (
        "hello lobby", "Alice", a15, False
    )  # fmt: skip
    text = cli(devnet, bob, "community", "read", "lobby").stdout
    assert f"#{p1['id']}" in text and "Alice [15" in text and "hello lobby" in text

    reply = js(cli(devnet, bob, "community", "post", "lobby", "hi Alice", "--reply",
                   str(p1["id"]), "--json"))  # fmt: skip
    react = js(cli(devnet, bob, "community", "react", "lobby", str(p1["id"]), "🎉", "--json"))
    assert react["added"] is True
    got = posts(devnet, alice)
    assert got[reply["id"]]["quote"]["author"] == a15
    assert got[reply["id"]]["quote"]["text"] == "hello lobby"
    assert got[p1["id"]]["reactions"]["🎉"]["count"] == 1
    assert got[p1["id"]]["reactions"]["🎉"]["reactors"] == [b15]

    js(cli(devnet, alice, "community", "edit", "lobby", str(p1["id"]), "hello, edited", "--json"))
    assert posts(devnet, bob)[p1["id"]]["body"] == "hello, edited"
    js(cli(devnet, alice, "community", "delete", "lobby", str(p1["id"]), "--json"))
    assert p1["id"] not in posts(devnet, bob)
    # deleting someone else's post without being a moderator is refused
    r = cli(devnet, alice, "community", "delete", "lobby", str(reply["id"]))
    assert r.exit_code == 1 and "403" in r.stderr

    # a room file: uploaded as it is (room files are as public as the room), saved by Alice
    src = tmp_path / "lunch menu.txt"
    src.write_bytes(b"soup, pasta, salad\n" * 50)
    with_file = js(cli(devnet, bob, "community", "post", "lobby", "menu", "--file", str(src),
                       "--json"))  # fmt: skip
    (entry,) = posts(devnet, alice)[with_file["id"]]["files"]
    file_id = entry["url"].rsplit("/", 1)[-1]
    assert (entry["file_name"], entry["size"]) == ("lunch menu.txt", src.stat().st_size)
    assert (
        f"[file {file_id}] lunch menu.txt"
        in cli(devnet, alice, "community", "read", "lobby").stdout
    )
    dl = tmp_path / "dl"
    dl.mkdir()
    saved = js(cli(devnet, alice, "community", "save", "lobby", file_id, "--to", str(dl), "--json"))
    assert Path(saved["path"]).read_bytes() == src.read_bytes()
    again = cli(devnet, alice, "community", "save", "lobby", file_id, "--to", str(dl))
    assert again.exit_code == 1 and "already exists" in again.stderr
    stored = [p for p in devnet.community.data_dir.rglob("*") if p.is_file()]
    assert any(p.read_bytes() == src.read_bytes() for p in stored)

    # a DM by blinded ID: Bob learns Alice's Session ID, the server does not
    js(cli(devnet, alice, "community", "dm", b15, "psst, Bob", "--json"))
    (dm,) = js(cli(devnet, bob, "community", "dms", "--json"))["dms"]
    assert (dm["body"], dm["peer"], dm["sender_session_id"], dm["outgoing"]) == (
        "psst, Bob", a15, alice["sid"], False
    )  # fmt: skip
    (mine,) = js(cli(devnet, alice, "community", "dms", "--json"))["dms"]
    assert (mine["outgoing"], mine["peer"]) == (True, b15)

    # the interactive chat: a typed line is posted, /react reacts, /help helps, an unknown
    # /word is refused and never posted, //text posts "/text", /quit leaves
    lines = (
        f"from the chat\n/react {reply['id']} 👀\n/react nope x\n/help\n/nosuch secret\n"
        "//slash line\n/quit\n"
    )
    r = cli(devnet, alice, "community", "chat", "lobby", "--json", "--poll-interval", "0.5",
            input=lines)  # fmt: skip
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert any(e["event"] == "error" for e in events)  # the bad /react, and the chat went on
    assert any(e["event"] == "post" and e["body"] == "from the chat" for e in events)
    errs = [e["error"] for e in events if e["event"] == "error"]
    assert any("post number" in e for e in errs) and "/nosuch" in errs, errs
    assert any(e["event"] == "help" for e in events)
    got = posts(devnet, bob)
    bodies = [p["body"] for p in got.values()]
    assert "/slash line" in bodies and not [b for b in bodies if "nosuch" in b or "help" in b]
    (chatted,) = [p for p in got.values() if p["body"] == "from the chat"]
    assert chatted["author"] == a15
    assert got[reply["id"]]["reactions"]["👀"]["reactors"] == [a15]


def test_moderator_delete_and_ban(devnet: Any, lobby: str, people: dict[str, Any]) -> None:
    alice, bob = people["Alice"], people["Bob"]
    admin(devnet, "mod", "add", alice["b15"], "--room", "lobby")
    spam = js(cli(devnet, bob, "community", "post", "lobby", "buy my coin", "--json"))
    assert spam["id"] in posts(devnet, alice)
    js(cli(devnet, alice, "community", "delete", "lobby", str(spam["id"]), "--json"))
    assert spam["id"] not in posts(devnet, alice)
    assert spam["id"] not in posts(devnet, bob)

    admin(devnet, "ban", bob["b15"], "--room", "lobby")
    r = cli(devnet, bob, "community", "post", "lobby", "let me back in")
    # SOGS hides a room from a member banned from it: the post is refused (403, or 404 as here)
    assert r.exit_code == 1 and ("403" in r.stderr or "404" in r.stderr), r.stderr
    assert "banned" in r.stderr
    assert "let me back in" not in json.dumps(list(posts(devnet, alice).values()))


def test_second_device_and_what_the_server_kept(
    devnet: Any, lobby: str, people: dict[str, Any], tmp_path: Path
) -> None:
    alice, bob = people["Alice"], people["Bob"]
    second = {"home": tmp_path / "alice-2"}
    js(CliRunner().invoke(main, ["--home", str(second["home"]), "id", "restore",
                                 *alice["mnemonic"].split(), "--json"]))  # fmt: skip
    rooms = js(cli(devnet, second, "community", "list", "--json"))["rooms"]
    assert [(r["room"], r["url"]) for r in rooms] == [("lobby", lobby)]
    assert rooms[0]["blinded_id"] == alice["b15"]
    # the second device reads the room and the DM it sent from the first device (outbox)
    assert any(p["name"] == "Bob" for p in posts(devnet, second).values())
    (sent,) = js(cli(devnet, second, "community", "dms", "--json"))["dms"]
    assert (sent["outgoing"], sent["body"]) == (True, "psst, Bob")
    offline = cli(devnet, second, "community", "list", "--offline").stdout
    assert "lobby" in offline and lobby in offline
    r = cli(devnet, second, "community", "chat", "lobby", "--history", "3", input="/quit\n")
    assert r.exit_code == 0, r.output
    assert "chatting in lobby" in r.stdout and r.stdout.rstrip().endswith("bye")
    assert "Bob [15" in r.stdout  # the history: names with blinded IDs

    root = devnet.community.data_dir
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(alice["b15"].encode() in p.read_bytes() for p in files)  # what it does keep
    for who in (alice, bob):
        sid = who["sid"]
        for p in files:
            raw = p.read_bytes()
            assert sid.encode() not in raw and sid[2:].encode() not in raw, p
            assert bytes.fromhex(sid[2:]) not in raw, p

    # Bob deletes the DMs he received (DELETE /inbox): gone on the server and here
    doc = js(cli(devnet, bob, "community", "dms", "--clear", "lobby", "--json"))
    assert doc["cleared"] == 1 and not [d for d in doc["dms"] if not d["outgoing"]]
    r = cli(devnet, bob, "community", "dms", "--clear", "lobby", "--offline")
    assert r.exit_code != 0 and "--offline" in r.stderr
    read = js(cli(devnet, bob, "community", "read", "lobby", "--json"))
    assert read["pinned"] == [] and all(p["pinned"] is False for p in read["posts"])
