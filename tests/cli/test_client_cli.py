"""``session`` (the client CLI) through click's CliRunner, plus devnet runs of send/inbox/
requests/block and of ``session chat`` with piped standard input."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from session.cli.client import main
from session.identity import Identity
from session.testing.http import closed_port, unreachable_node_list

VECTORS = Path(__file__).parent.parent / "vectors"


def load_vectors(name: str, kind: str) -> list[dict[str, Any]]:
    """Cases of ``tests/vectors/<name>.json`` of one kind (read directly: the ``conftest``
    module name is ambiguous once tests/integration/conftest.py is loaded)."""
    cases = [
        c
        for c in json.loads((VECTORS / f"{name}.json").read_text())["cases"]
        if c.get("kind") == kind
    ]
    assert cases, f"no {kind!r} cases in {name}.json"
    return cases


GOOD_ID = "05" + "ab" * 32


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


def assert_one_sentence_error(r: Result, *words: str) -> str:
    """Exit code 1, stdout empty (or a JSON error), stderr exactly one line ``error: ...``."""
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def new_id(runner: CliRunner, home: Path, *extra: str) -> dict[str, Any]:
    doc: dict[str, Any] = js(run(runner, home, "id", "new", "--json", *extra))
    return doc


# ------------------------------------------------------------------------------------------
# identities


def test_id_new_prints_id_phrase_and_qr(runner: CliRunner, tmp_path: Path) -> None:
    r = run(runner, tmp_path, "id", "new")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    sid = lines[0].split()[-1]
    words = lines[1].split(":", 1)[1].split()
    assert len(words) == 13
    assert Identity.from_mnemonic(" ".join(words)).session_id == sid
    assert "█" in r.stdout and "▀" in r.stdout  # the terminal QR code
    assert "current identity" in r.stdout
    key = tmp_path / "identities" / sid / "key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    no_qr = run(runner, tmp_path, "id", "new", "--no-qr")
    assert no_qr.exit_code == 0 and "█" not in no_qr.stdout


def test_id_new_json_and_several_identities(runner: CliRunner, tmp_path: Path) -> None:
    a = new_id(runner, tmp_path)
    assert Identity.from_mnemonic(a["mnemonic"]).session_id == a["session_id"]
    assert a["current"] is True and a["home"] == str(tmp_path)
    b = new_id(runner, tmp_path)
    assert b["current"] is False and b["session_id"] != a["session_id"]

    listed = js(run(runner, tmp_path, "id", "list", "--json"))
    assert listed["current"] == a["session_id"]
    assert {e["session_id"]: e["current"] for e in listed["identities"]} == {
        a["session_id"]: True,
        b["session_id"]: False,
    }
    text = run(runner, tmp_path, "id", "list").stdout.splitlines()
    assert f"* {a['session_id']}" in text and f"  {b['session_id']}" in text

    used = js(run(runner, tmp_path, "id", "use", b["session_id"].upper(), "--json"))
    assert used == {"current": b["session_id"]}
    assert js(run(runner, tmp_path, "id", "show", "--json")) == {"session_id": b["session_id"]}
    # --identity picks another one for a single command; --use makes a new one current
    shown = js(
        run(runner, tmp_path, "--identity", a["session_id"], "id", "show", "--phrase", "--json")
    )
    assert shown == {"session_id": a["session_id"], "mnemonic": a["mnemonic"]}
    c = new_id(runner, tmp_path, "--use")
    assert c["current"] is True
    assert js(run(runner, tmp_path, "id", "list", "--json"))["current"] == c["session_id"]


def test_options_before_or_after_the_command_and_env(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = new_id(runner, tmp_path)
    before = runner.invoke(main, ["--home", str(tmp_path), "--json", "id", "list"])
    after = runner.invoke(main, ["id", "list", "--home", str(tmp_path), "--json"])
    assert js(before) == js(after)
    monkeypatch.setenv("SESSION_HOME", str(tmp_path))
    env = runner.invoke(main, ["id", "show", "--json"])
    assert js(env) == {"session_id": a["session_id"]}


def test_id_restore_from_arguments_and_stdin(runner: CliRunner, tmp_path: Path) -> None:
    case = load_vectors("mnemonic", "phrase_to_session_id")[0]
    r = js(run(runner, tmp_path, "id", "restore", *case["words"].split(), "--json"))
    assert r == {
        "session_id": case["session_id"],
        "existed": False,
        "current": True,
        "home": str(tmp_path),
    }
    # again, from standard input with odd spacing and capitals: same identity, already there
    again = js(
        run(runner, tmp_path, "id", "restore", "--json", input="  " + case["words"].upper() + "\n")
    )
    assert again["session_id"] == case["session_id"] and again["existed"] is True
    text = run(runner, tmp_path / "other", "id", "restore", input=case["words"])
    assert text.exit_code == 0 and case["session_id"] in text.stdout


@pytest.mark.parametrize(
    "case", load_vectors("mnemonic", "decode_fail")[:4], ids=lambda c: c["name"]
)
def test_bad_phrase_is_one_sentence(
    runner: CliRunner, tmp_path: Path, case: dict[str, Any]
) -> None:
    expected = {
        "checksum": ("phrase", "checksum word does not match"),
        "unknown_word": ("word 13", "zzzzz", "not in the word list"),
    }[case["error"]]
    r = run(runner, tmp_path, "id", "restore", *case["words"].split())
    assert_one_sentence_error(r, *expected)
    assert js(run(runner, tmp_path, "id", "list", "--json"))["identities"] == []


@pytest.mark.parametrize("gap", [0, 6, 12])
def test_phrase_with_a_word_missing_is_refused(runner: CliRunner, tmp_path: Path, gap: int) -> None:
    case = load_vectors("mnemonic", "phrase_to_session_id")[0]
    words = case["words"].split()
    short = words[:gap] + words[gap + 1 :]
    r = run(runner, tmp_path, "id", "restore", *short)
    assert_one_sentence_error(r, "12 words but needs 13", "a word is missing")
    rj = run(runner, tmp_path, "id", "restore", "--json", input=" ".join(short))
    assert rj.exit_code == 1 and "a word is missing" in json.loads(rj.stdout)["error"]
    assert js(run(runner, tmp_path, "id", "list", "--json"))["identities"] == []


def test_bad_phrase_word_count_and_json_error(runner: CliRunner, tmp_path: Path) -> None:
    r = run(runner, tmp_path, "id", "restore", "hello", "world")
    assert_one_sentence_error(r, "13 or 25 words", "got 2")
    rj = run(runner, tmp_path, "id", "restore", "hello", "--json")
    assert rj.exit_code == 1
    assert "13 or 25 words" in json.loads(rj.stdout)["error"]


@pytest.mark.parametrize(
    "bad,what",
    [
        ("05abc", "66 hex characters"),
        ("05" + "zz" * 32, "hex digits"),
        ("15" + "ab" * 32, "starts with 05"),
    ],
)
def test_malformed_session_id_is_one_sentence(
    runner: CliRunner, tmp_path: Path, bad: str, what: str
) -> None:
    new_id(runner, tmp_path)
    for args in (
        ["id", "use", bad],
        ["send", bad, "hi"],
        ["block", bad],
        ["chat", bad],
        ["history", bad],
        ["requests", "accept", bad],
    ):
        r = run(runner, tmp_path, *args)
        line = assert_one_sentence_error(r, "invalid Session ID", what)
        assert "Traceback" not in r.output, (args, line)


def test_unknown_identity_and_empty_home(runner: CliRunner, tmp_path: Path) -> None:
    assert_one_sentence_error(run(runner, tmp_path, "send", GOOD_ID, "hi"), "session id new")
    assert_one_sentence_error(run(runner, tmp_path, "id", "use", GOOD_ID), "no identity", GOOD_ID)
    assert_one_sentence_error(
        run(runner, tmp_path, "--identity", GOOD_ID, "id", "show"), "no identity"
    )
    assert "no identity" in run(runner, tmp_path, "id", "list").stdout


# ------------------------------------------------------------------------------------------
# network errors (no devnet needed)


def test_no_network_known(runner: CliRunner, tmp_path: Path) -> None:
    new_id(runner, tmp_path)
    r = run(runner, tmp_path, "send", GOOD_ID, "hi")
    assert_one_sentence_error(r, "no network", "--network")
    assert_one_sentence_error(run(runner, tmp_path, "inbox"), "no network")


def test_missing_node_list_file(runner: CliRunner, tmp_path: Path) -> None:
    new_id(runner, tmp_path)
    missing = tmp_path / "nope" / "nodes.json"
    r = run(runner, tmp_path, "--network", str(missing), "send", GOOD_ID, "hi", "--json")
    assert_one_sentence_error(r, "cannot reach the network", str(missing))
    assert str(missing) in json.loads(r.stdout)["error"]


def test_unreachable_registry_url(runner: CliRunner, tmp_path: Path) -> None:
    new_id(runner, tmp_path)
    url = f"https://127.0.0.1:{closed_port()}"
    r = run(runner, tmp_path, "--network", url, "--timeout", "5", "inbox")
    assert_one_sentence_error(r, "cannot reach the network", url)


def test_unreachable_nodes(runner: CliRunner, tmp_path: Path) -> None:
    """A node list whose nodes are all down: the error says how many nodes from where."""
    path = unreachable_node_list(tmp_path / "nodes.json")
    new_id(runner, tmp_path / "home")
    r = run(
        runner, tmp_path / "home", "--network", str(path), "--timeout", "20", "send", GOOD_ID, "hi"
    )
    assert_one_sentence_error(r, "cannot reach the network", f"5 nodes from {path}")


# ------------------------------------------------------------------------------------------
# local state commands (no network)


def test_offline_commands_json(runner: CliRunner, tmp_path: Path) -> None:
    me = new_id(runner, tmp_path)
    inbox = js(run(runner, tmp_path, "inbox", "--offline", "--json"))
    assert inbox == {
        "session_id": me["session_id"],
        "conversations": [],
        "requests": 0,
        "queued": 0,
    }
    assert js(run(runner, tmp_path, "requests", "--offline", "--json")) == {"requests": []}
    assert js(run(runner, tmp_path, "history", GOOD_ID, "--json")) == {
        "conversation": GOOD_ID,
        "messages": [],
    }
    blocked = js(run(runner, tmp_path, "block", GOOD_ID, "--json"))
    assert blocked["session_id"] == GOOD_ID and blocked["action"] == "block"
    assert blocked["queued"] >= 1  # the contacts config waits for the network

    import asyncio

    from session.client import Client

    async def check() -> None:
        c = Client.open(tmp_path, None, background=False, create=False)
        try:
            contact = c.contact(GOOD_ID)
            assert contact is not None and contact.blocked == 1
        finally:
            await c.close()

    asyncio.run(check())
    unblocked = js(run(runner, tmp_path, "unblock", GOOD_ID, "--json"))
    assert unblocked["action"] == "unblock"
    r = run(runner, tmp_path, "send", GOOD_ID, "")
    assert_one_sentence_error(r, "empty")


def test_version_and_help(runner: CliRunner) -> None:
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and "session" in r.output
    h = runner.invoke(main, ["--help"])
    for cmd in ("id", "send", "inbox", "chat", "requests", "block"):
        assert f"  {cmd} " in h.output


def test_fast_start() -> None:
    """``session --help`` imports neither the client nor the native core."""
    code = (
        "import sys; from session.cli.client import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('session._core', 'session.client', 'aiohttp') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


# ------------------------------------------------------------------------------------------
# on a devnet


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from session.devnet import Devnet

    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=5)
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.mark.integration
def test_send_inbox_requests_block_on_devnet(
    runner: CliRunner, tmp_path: Path, devnet: Any
) -> None:
    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a, b = new_id(runner, ha)["session_id"], new_id(runner, hb)["session_id"]

    sent = js(run(runner, ha, "--network", nodes, "send", b, "hello bob", "--json"))
    assert sent["to"] == b and sent["status"] == "sent" and sent["hash"]

    inbox = js(run(runner, hb, "--network", nodes, "inbox", "--json"))
    assert inbox["conversations"] == [] and inbox["requests"] == 1
    reqs = js(run(runner, hb, "requests", "--json"))  # the node list is cached from now on
    assert [(r["session_id"], [m["body"] for m in r["messages"]]) for r in reqs["requests"]] == [
        (a, ["hello bob"])
    ]
    assert js(run(runner, hb, "requests", "accept", a, "--json"))["action"] == "accept_request"

    js(run(runner, hb, "send", a, "hello alice", "--json"))
    ainbox = js(run(runner, ha, "inbox", "--json"))
    [conv] = ainbox["conversations"]
    assert conv["session_id"] == b and conv["unread"] == 1
    assert [m["body"] for m in conv["messages"]] == ["hello alice"]
    text = run(runner, ha, "inbox")
    assert "hello alice" in text.stdout and "*new*" in text.stdout

    # Bob blocks Alice: her next message is delivered to the swarm but dropped by Bob.
    js(run(runner, hb, "block", a, "--json"))
    js(run(runner, ha, "send", b, "are you there?", "--json"))
    after = js(run(runner, hb, "inbox", "--json"))
    assert after["conversations"] == [] and after["requests"] == 0
    hist = js(run(runner, hb, "history", a, "--json"))
    assert [m["body"] for m in hist["messages"]] == ["hello bob", "hello alice"]


def _reader(proc: subprocess.Popen[str], q: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        q.put(line)
    q.put(None)


def _expect(q: queue.Queue[str | None], pred: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        doc = json.loads(line)
        seen.append(doc)
        if pred(doc):
            return doc
    raise AssertionError(f"expected event not seen; got {seen}")


@pytest.mark.integration
def test_chat_with_piped_stdin(runner: CliRunner, tmp_path: Path, devnet: Any) -> None:
    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a, b = new_id(runner, ha)["session_id"], new_id(runner, hb)["session_id"]
    js(run(runner, hb, "--network", nodes, "inbox", "--json"))  # caches the node list

    cmd = [sys.executable, "-c", "from session.cli.client import main; main()"]
    env = {**os.environ, "SESSION_HOME": str(hb)}
    env.pop("SESSION_NETWORK", None)
    bob = subprocess.Popen(
        [*cmd, "chat", a, "--json", "--poll-interval", "0.3"],
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    q: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(bob, q), daemon=True).start()
    try:
        _expect(q, lambda d: d["event"] == "start" and d["peer"] == a and d["me"] == b)
        # Alice chats from a pipe: a typing indicator, a message, then end of input.
        alice = subprocess.run(
            [*cmd, "--network", nodes, "chat", b, "--json"],
            env={**env, "SESSION_HOME": str(ha)},
            input="/typing\n/frobnicate\n/help\nhi bob, from a pipe\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert alice.returncode == 0, alice.stderr
        events = [json.loads(line) for line in alice.stdout.splitlines()]
        assert next(e["event"] for e in events) == "start" and events[-1] == {
            "event": "end",
            "queued": 0,
        }
        assert any(e["event"] == "sent" for e in events)
        # an unknown /word is refused (never sent); /help answers
        assert {"event": "error", "error": "/frobnicate"} in events
        assert any(e["event"] == "help" for e in events)

        _expect(q, lambda d: d["event"] == "typing" and d["started"] is True)
        msg = _expect(q, lambda d: d["event"] == "message")
        assert (
            msg["body"] == "hi bob, from a pipe"
            and msg["author"] == a
            and msg["is_request"] is True
        )
        # Bob answers (this accepts Alice's request) and leaves with /quit.
        assert bob.stdin is not None
        bob.stdin.write("hello alice\n")
        bob.stdin.flush()
        _expect(q, lambda d: d["event"] == "accepted")
        _expect(q, lambda d: d["event"] == "sent")
        bob.stdin.write("/quit\n")
        bob.stdin.flush()
        _expect(q, lambda d: d["event"] == "end")
        assert bob.wait(30) == 0
    finally:
        if bob.poll() is None:
            bob.kill()
            bob.wait(5)

    # Alice sees Bob's reply, and that Bob read her message (read receipt).
    inbox = js(run(runner, ha, "inbox", "--json"))
    [conv] = inbox["conversations"]
    assert [m["body"] for m in conv["messages"]] == ["hello alice"]
    hist = js(run(runner, ha, "history", b, "--json"))["messages"]
    assert [(m["body"], m["status"]) for m in hist] == [
        ("hi bob, from a pipe", "read"),
        ("hello alice", "received"),
    ]
    # reading the history marked the conversation read
    [conv] = js(run(runner, ha, "inbox", "--offline", "--json"))["conversations"]
    assert conv["unread"] == 0 and conv["count"] == 2
    # a message that arrives while Bob is away is shown once when he comes back to the chat
    js(run(runner, ha, "send", b, "while you were away", "--json"))
    back = subprocess.run(
        [*cmd, "chat", a, "--json"],
        env=env,
        input="/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert back.returncode == 0, back.stderr
    seen = [json.loads(line) for line in back.stdout.splitlines()]
    assert [e["event"] for e in seen if e.get("body") == "while you were away"] == ["history"]


@pytest.mark.integration
def test_send_words_stdin_and_people_by_name(
    runner: CliRunner, tmp_path: Path, devnet: Any
) -> None:
    nodes = str(devnet.dir / "nodes.json")
    ha, hb = tmp_path / "alice", tmp_path / "bob"
    a, b = new_id(runner, ha)["session_id"], new_id(runner, hb)["session_id"]
    js(run(runner, ha, "id", "name", "Alice", "--json"))
    r = run(runner, ha, "--network", nodes, "send", b, "hello", "world")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("sent to ")  # one short line
    assert run(runner, ha, "send", b, "-", input="from\nstdin\n").exit_code == 0
    assert_one_sentence_error(run(runner, ha, "send", b, "   "), "empty", "nothing was sent")
    # Bob has a request; accepting someone who sent none says so and sends nothing
    js(run(runner, hb, "--network", nodes, "inbox", "--json"))
    assert_one_sentence_error(
        run(runner, hb, "requests", "accept", GOOD_ID), "no message request", "nothing sent"
    )
    js(run(runner, hb, "requests", "accept", a, "--json"))
    hist = run(runner, hb, "history", a)
    assert hist.exit_code == 0, hist.output
    short_a = f"{a[:8]}…{a[-4:]}"
    assert f"Alice ({short_a}): hello world" in hist.stdout
    assert f"Alice ({short_a}): from␤stdin" in hist.stdout
    assert f"reply: session send {a} TEXT" in hist.stdout
    inbox = run(runner, hb, "inbox", "--offline")
    assert f"Alice ({short_a})  (0 unread, 2 messages)" in inbox.stdout
    assert f"reply: session send {a} TEXT" in inbox.stdout


ATTACK = "\033[2J\033[H\033[31mSYSTEM: your account is locked"


@pytest.mark.integration
def test_strangers_escape_sequences_never_reach_the_terminal(
    runner: CliRunner, tmp_path: Path, devnet: Any
) -> None:
    """A stranger's message request (and display name) holding terminal escape sequences is
    shown visibly, without an ESC byte, by `session requests` and `session chat`; `--json` keeps
    the exact text."""
    nodes = str(devnet.dir / "nodes.json")
    hm, hb = tmp_path / "mallory", tmp_path / "bob"
    m, b = new_id(runner, hm)["session_id"], new_id(runner, hb)["session_id"]
    js(run(runner, hm, "id", "name", "\033]0;pwned\007Bank\u202e", "--json"))
    js(run(runner, hm, "--network", nodes, "send", b, ATTACK, "--json"))

    listed = run(runner, hb, "--network", nodes, "requests")
    assert listed.exit_code == 0, listed.output
    assert (
        "\033" not in listed.stdout
        and "\x07" not in listed.stdout
        and "\u202e" not in listed.stdout
    )
    assert "␛[2J␛[H␛[31mSYSTEM: your account is locked" in listed.stdout
    assert "␛]0;pwned␇Bank⟨U+202E⟩" in listed.stdout
    exact = js(run(runner, hb, "requests", "--json"))["requests"]
    assert [(r["session_id"], r["name"], [x["body"] for x in r["messages"]]) for r in exact] == [
        (m, "\033]0;pwned\007Bank\u202e", [ATTACK])
    ]

    # In chat: the request in the history, then the same trick arriving live.
    cmd = [sys.executable, "-c", "from session.cli.client import main; main()"]
    env = {**os.environ, "SESSION_HOME": str(hb)}
    env.pop("SESSION_NETWORK", None)
    bob = subprocess.Popen(
        [*cmd, "chat", m, "--poll-interval", "0.3"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        assert bob.stdout is not None
        for line in bob.stdout:
            out.put(line)
        out.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[bytes] = []

    def expect(needle: bytes) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = out.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            seen.append(line)
            if needle in line:
                return
        raise AssertionError(f"{needle!r} not seen in {seen}")

    try:
        expect(b"chatting with")
        expect("␛[2J".encode())  # the request, in the history
        js(run(runner, hm, "send", b, "live " + ATTACK, "--json"))
        expect("live ␛[2J".encode())
        assert bob.stdin is not None
        bob.stdin.write(b"/quit\n")
        bob.stdin.flush()
        expect(b"bye")
        assert bob.wait(30) == 0
    finally:
        if bob.poll() is None:
            bob.kill()
            bob.wait(5)
    assert not [line for line in seen if b"\x1b" in line or b"\x07" in line], seen


def test_id_new_with_a_network_that_cannot_be_read_still_makes_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-nodes.json"
    r = run(runner, tmp_path / "home", "--network", str(missing), "id", "new", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["session_id"].startswith("05")
    assert "the node list was not saved" in r.stderr and str(missing) in r.stderr
    # not a node list at all: the phrase is still printed, the note says why
    bad = tmp_path / "bad.json"
    bad.write_text('{"result": 5}')
    r = run(runner, tmp_path / "home2", "--network", str(bad), "id", "new")
    assert r.exit_code == 0, r.output
    assert "Recovery phrase:" in r.stdout and "the node list was not saved" in r.stderr
