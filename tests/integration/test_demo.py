"""The README's main demo, end to end, as a user runs it (``python3 -m session.cli.demo``).

Besides what the demo prints, the test checks its outcome itself, from the directory the demo
keeps (``--data-dir``): the profiles, the node list and every node's files, read without the
demo's code."""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from session.cli.demo import GROUP_REPLY, GROUP_TEXT, TEXT_TO_ALICE, TEXT_TO_BOB
from session.client import messages as M
from session.client.identity_store import IdentityStore
from session.proto.snodes import SwarmMap, parse_node_list

pytestmark = pytest.mark.integration


def rows_under(db: Path, session_id: str) -> list[tuple[str, int, bytes]]:
    """(hash, namespace, data) of every message a node's store holds for ``session_id``."""
    raw = bytes.fromhex(session_id)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            (h, ns, bytes(d))
            for h, ns, d in conn.execute(
                "SELECT m.hash, m.namespace, m.data FROM messages m JOIN owners o ON m.owner = o.id"
                " WHERE o.type = ? AND o.pubkey = ?",
                (raw[0], raw[1:]),
            )
        ]
    finally:
        conn.close()


def port_refuses(port: int) -> bool:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def check_processes_gone(data: Path) -> None:
    """Every node process is gone: its port refuses, its pid is no more, and its store was
    closed cleanly (SQLite removes the WAL file when the last connection closes properly; so
    this runs before anything here opens a store)."""
    node_dirs = sorted((data / "devnet").glob("node-*"))
    assert len(node_dirs) == 14
    for d in node_dirs:
        ready = json.loads((d / "ready.json").read_text())
        assert port_refuses(ready["https_port"]), f"{d.name} still listens"
        with pytest.raises(ProcessLookupError):
            os.kill(ready["pid"], 0)
        assert not (d / "db" / "storage.db-wal").exists(), f"{d.name} did not close its store"


def check_stores(data: Path) -> None:
    """What the nodes hold: Bob's mail only in Bob's swarm, Alice's message on every member of
    it and sealed to Bob alone; no plaintext and no Session ID as text in any devnet file."""
    devnet = data / "devnet"
    alice = IdentityStore(data / "profiles" / "alice").load()
    bob = IdentityStore(data / "profiles" / "bob").load()
    nodes = parse_node_list(json.loads((devnet / "nodes.json").read_text()))
    bob_swarm = {n.pubkey_ed25519 for n in SwarmMap(nodes).members_for(bob.session_id)}
    node_dirs = sorted(devnet.glob("node-*"))
    assert len(node_dirs) == len(nodes) == 14
    by_port = {n.storage_port: n.pubkey_ed25519 for n in nodes}

    holders: dict[str, set[str]] = {}  # hash -> node Ed25519 keys
    stored: dict[str, tuple[int, bytes]] = {}
    for d in node_dirs:
        ed = by_port[json.loads((d / "ready.json").read_text())["https_port"]]
        for h, ns, blob in rows_under(d / "db" / "storage.db", bob.session_id):
            holders.setdefault(h, set()).add(ed)
            stored[h] = (ns, blob)
    assert stored and all(eds <= bob_swarm for eds in holders.values())
    mailbox = [
        (h, base64.b64encode(blob).decode(), 0) for h, (ns, blob) in stored.items() if ns == 0
    ]
    opened = [o for o in M.open_many(bob, mailbox) if isinstance(o, M.Incoming)]
    from_alice = [
        o
        for o in opened
        if o.sender == alice.session_id and o.content.dataMessage.body == TEXT_TO_BOB
    ]
    assert len(from_alice) == 1
    assert holders[from_alice[0].hash] == bob_swarm
    assert not any(isinstance(o, M.Incoming) for o in M.open_many(alice, mailbox))

    files = [p for p in devnet.rglob("*") if p.is_file() and p.name != "nodes.json"]
    assert {d / "db" / "storage.db" for d in node_dirs} <= set(files)
    needles = [
        TEXT_TO_BOB.encode(),
        TEXT_TO_ALICE.encode(),
        alice.session_id.encode(),
        bob.session_id.encode(),
    ]
    found = [str(p.relative_to(devnet)) for p in files for n in needles if n in p.read_bytes()]
    assert not found, found


def test_demo_runs_and_every_check_passes(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "session.cli.demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for needle in (
        "14 nodes in 2 swarms",
        "Bob decrypted: “Hi Bob, it's Alice. Lunch at the usual place at noon?”",
        "[message request]",
        "Alice decrypted: “Hi Alice! Noon works, see you there.”",
        "Bob got a read receipt",
        "← Alice's message",
        "✓ Alice's message is stored under Bob's ID",
        "✓ Alice's key opens none of them",
        "✓ no sender column",
        "✓ no message stored for Bob contains Alice's Session ID or keys",
        "✓ no plaintext in any node file",
        "✓ Alice's signing key (Ed25519) is on no node in any form",
        "✓ 14 nodes and the registry stopped cleanly (exit status 0)",
        "all checks passed",
    ):
        assert needle in text, f"missing {needle!r} in:\n{text}"
    assert "✗" not in text
    # Onion routes are printed as "who → relay → relay → relay ⇒ destination".
    routes = [line for line in text.splitlines() if "⇒" in line]
    assert len(routes) >= 4 and all(line.count("→") == 3 for line in routes)
    # --data-dir is kept: the nodes' stores and both profiles are there to look at.
    assert len(list((data / "devnet").glob("node-*/db/storage.db"))) == 14
    assert (data / "profiles" / "alice" / "current").is_file()
    # The outcome, checked from the kept directory without the demo's code.
    check_processes_gone(data)
    check_stores(data)
    check_group(data, text)
    # ... and that check is not vacuous: with Alice's words in clear in one node's log, it fails
    log = next((data / "devnet").glob("node-*/process.log"))
    log.write_bytes(log.read_bytes() + TEXT_TO_BOB.encode())
    with pytest.raises(AssertionError, match=r"process\.log"):
        check_stores(data)


def check_group(data: Path, text: str) -> None:
    """The group step: its swarm holds keys, info, members and messages (11-14), none of it
    in clear, and Bob's profile opens the group's messages with the key he fetched."""
    from session.groups.keys import GroupKeys

    for needle in (
        "Bob decrypted with the group key: “" + GROUP_TEXT + "” from Alice",
        "Carol decrypted with the group key: “" + GROUP_TEXT + "” from Alice",
        "Alice decrypted: “" + GROUP_REPLY + "”",
    ):
        assert needle in text, f"missing {needle!r}"
    [gid] = {
        w for line in text.splitlines() for w in line.split() if w.startswith("03") and len(w) == 66
    }
    rows = [
        r
        for d in sorted((data / "devnet").glob("node-*/db/storage.db"))
        for r in rows_under(d, gid)
    ]
    assert {ns for _, ns, _ in rows} >= {11, 12, 13, 14}
    assert not any(
        GROUP_TEXT.encode() in blob or GROUP_REPLY.encode() in blob for _, _, blob in rows
    )
    # Bob's key from namespace 12 opens Alice's message from namespace 11
    bob = IdentityStore(data / "profiles" / "bob").load()
    keys = GroupKeys(gid, bob)
    for h, ns, blob in rows:
        if ns == 12:
            keys.load_key_message(h, blob, 0)
    opened = [keys.decrypt_message(blob).plaintext for _, ns, blob in rows if ns == 11]
    assert any(GROUP_TEXT.encode() in p for p in opened)


def test_demo_rejects_too_few_nodes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "session.cli.demo", "--nodes", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "--nodes" in out.stderr
