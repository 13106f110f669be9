"""The network demo (the README's main command, run by ``./ci/demo.sh``)::

    python3 -m session.cli.demo [--nodes 14] [--data-dir DIR] [--keep] [--timeout 90]

1. starts a devnet (a registry and N service nodes on 127.0.0.1) in a temporary directory;
2. creates two identities, Alice and Bob, each in its own profile directory;
3. Alice → Bob through an onion path (every request is a fresh 3-hop onion to a member of
   the recipient's swarm): a message request;
4. Bob accepts it and replies Bob → Alice; Alice's read receipt reaches Bob;
5. a closed group: Alice creates it with Bob and a third person, Carol (invitations 1:1, signed
   by the group key); both join; one group message from Alice reaches both, one from Bob
   reaches Alice;
6. a file through the blind file server, and a name that resolves;
7. a community room: Alice and Bob join the devnet's ``lobby``, Alice posts, Bob reacts, Alice
   sends Bob a DM by his blinded ID; the community server's files hold only blinded IDs;
8. waits until every member of Bob's swarm holds Alice's message, opens every node's SQLite
   store read-only and shows what it holds under Bob's ID (ciphertext size and hash; there is
   no sender column), then checks that no plaintext and no sender key is on the nodes
   (databases, WAL files, logs);
9. stops everything cleanly (every node exits with status 0).

Exit status 0 when every step and check passed, 1 otherwise (the failure is printed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from session.attachments import encrypted_size
from session.client import (
    Client,
    MessageRead,
    MessageReceived,
    MessageSent,
    RequestAccepted,
)
from session.client import messages as M
from session.devnet import Devnet, DevnetError
from session.proto.snodes import SwarmMap, parse_community_servers, parse_node_list
from session.registry.client import register_name

TEXT_TO_BOB = "Hi Bob, it's Alice. Lunch at the usual place at noon?"
TEXT_TO_ALICE = "Hi Alice! Noon works, see you there."
GROUP_NAME = "Lunch crew"
GROUP_TEXT = "Lunch crew: noon at the usual place, Carol too?"
GROUP_REPLY = "Bob here: see you all at noon."
FILE_NAME = "menu.txt"
FILE_TEXT = "Today's menu at the usual place: soup, pasta, salad.\n" * 200
FILE_CAPTION = "Here's the menu"
DEMO_NAME = "alice-demo"
ROOM_POST = "Hello lobby! Anyone up for lunch?"
ROOM_DM = "Bob, it's Alice: this one is just for you."


class DemoFailure(Exception):
    """A step or a check of the demo failed."""


class Printer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.step_no = 0

    def step(self, title: str) -> None:
        self.step_no += 1
        print(f"\n== {self.step_no}. {title}  [{time.monotonic() - self.t0:5.1f} s]", flush=True)

    def line(self, text: str = "") -> None:
        print(f"   {text}", flush=True)

    def check(self, ok: bool, text: str) -> None:
        print(f"   {'✓' if ok else '✗'} {text}", flush=True)
        if not ok:
            raise DemoFailure(text)


def short(hex_text: str, n: int = 8) -> str:
    return f"{hex_text[:n]}…"


# ------------------------------------------------------------------------------------------
# onion tracing: which path and destination each request of a client used


class Trace:
    """Records (method, owner, path hops, destination) of every request of one client."""

    def __init__(self, client: Any) -> None:
        self.calls: list[dict[str, Any]] = []
        client.on_request(self._record)

    def _record(self, dest: Any, method: str, params: Any, path: Any) -> None:
        self.calls.append(
            {
                "method": method,
                "owner": params.get("pubkey"),
                "namespace": params.get("namespace", 0),
                "hops": [h.pubkey_ed25519 for h in path.hops],
                "dest": dest.pubkey_ed25519,
            }
        )

    def last(self, method: str, owner: str, namespace: int = 0) -> dict[str, Any] | None:
        for c in reversed(self.calls):
            if c["method"] == method and c["owner"] == owner and c["namespace"] == namespace:
                return c
        return None


# ------------------------------------------------------------------------------------------
# the nodes' stores


def open_ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def stored_for(db: Path, session_id: str) -> list[dict[str, Any]]:
    """Rows a node's store holds under ``session_id`` (opened read-only)."""
    raw = bytes.fromhex(session_id)
    conn = open_ro(db)
    try:
        rows = conn.execute(
            "SELECT m.hash, m.namespace, m.timestamp, m.expiry, m.data FROM messages m"
            " JOIN owners o ON m.owner = o.id WHERE o.type = ? AND o.pubkey = ? ORDER BY m.id",
            (raw[0], raw[1:]),
        ).fetchall()
    finally:
        conn.close()
    return [
        {"hash": h, "namespace": ns, "timestamp": ts, "expiry": exp, "data": bytes(d)}
        for h, ns, ts, exp, d in rows
    ]


def owners_of(db: Path) -> set[str]:
    conn = open_ro(db)
    try:
        return {
            bytes([t]).hex() + bytes(pk).hex()
            for t, pk in conn.execute("SELECT type, pubkey FROM owners")
        }
    finally:
        conn.close()


def columns(db: Path, table: str) -> list[str]:
    conn = open_ro(db)
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def key_forms(raw: bytes) -> list[bytes]:
    """A 32-byte key as raw bytes, lower/upper hex and base64 (padded and not)."""
    b64 = base64.b64encode(raw)
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def files_under(root: Path) -> Iterator[Path]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "nodes.json":
            yield p


# ------------------------------------------------------------------------------------------
# the demo


async def wait_event(q: Any, pred: Callable[[Any], bool], what: str, timeout: float = 20.0) -> Any:
    async def go() -> Any:
        while True:
            ev = await q.get()
            if ev is None:
                raise DemoFailure(f"client closed while waiting for {what}")
            if pred(ev):
                return ev

    try:
        return await asyncio.wait_for(go(), timeout)
    except TimeoutError:
        raise DemoFailure(f"timed out after {timeout:g} s waiting for {what}") from None


async def exchange(out: Printer, net: Any, work: Path) -> dict[str, Any]:
    """Steps 2-5: identities, messages both ways, read receipt, a group. Returns what step 6
    checks."""
    nodes_json = net.dir / "nodes.json"
    names = {n.pubkey_ed25519: n.name for n in net.nodes}
    smap = SwarmMap(parse_node_list(net.node_list()))

    def name(ed: str) -> str:
        return names.get(ed, short(ed))

    def route(call: dict[str, Any] | None, who: str) -> str:
        if call is None:
            return "(no request recorded)"
        hops = " → ".join(name(h) for h in call["hops"])
        return f"{who} → {hops} ⇒ {name(call['dest'])}"

    out.step("Create two identities (each in its own profile directory)")
    alice = Client.open(work / "alice", nodes_json, poll_interval=0.3)
    bob = Client.open(work / "bob", nodes_json, poll_interval=0.3)
    ta, tb = Trace(alice), Trace(bob)
    for who, c in (("Alice", alice), ("Bob", bob)):
        swarm = sorted(name(n.pubkey_ed25519) for n in smap.members_for(c.session_id))
        out.line(f"{who:5} {c.session_id}")
        words = c.identity.mnemonic.split()
        out.line(f"      recovery phrase: {words[0]} … ({len(words)} words)")
        out.line(f"      swarm (the nodes that keep {who}'s mail): {', '.join(swarm)}")
    same = smap.swarm_id_for(alice.session_id) == smap.swarm_id_for(bob.session_id)
    out.line(
        "Alice and Bob live in the same swarm" if same else "Alice and Bob live in different swarms"
    )
    try:
        await alice.start()
        await bob.start()
        qa, qb = alice.hub.subscribe(), bob.hub.subscribe()

        out.step("Alice → Bob (a message request: Bob does not know Alice yet)")
        mid = await alice.send(bob.session_id, TEXT_TO_BOB)
        sent = await wait_event(
            qa,
            lambda e: isinstance(e, MessageSent) and e.message_id == mid,
            "Alice's message to be stored",
        )
        out.line("encrypted for Bob, sent through an onion path to Bob's swarm:")
        out.line("  " + route(ta.last("store", bob.session_id), "Alice"))
        out.line(f"stored by Bob's swarm, hash {sent.hash}")
        got = await wait_event(
            qb,
            lambda e: isinstance(e, MessageReceived) and not e.outgoing,
            "Bob to receive Alice's message",
        )
        out.line("Bob polls his swarm through his own onion path:")
        out.line("  " + route(tb.last("retrieve", bob.session_id), "Bob"))
        out.line(f"Bob decrypted: “{got.body}”")
        out.line(
            f"sender (learned only after decryption): {got.author}"
            + ("  [message request]" if got.is_request else "")
        )
        if got.body != TEXT_TO_BOB or got.author != alice.session_id or not got.is_request:
            raise DemoFailure("Bob did not receive Alice's message as a request from Alice")

        out.step("Bob accepts the request and replies: Bob → Alice")
        await bob.accept_request(alice.session_id)
        await wait_event(
            qa, lambda e: isinstance(e, RequestAccepted), "Alice to see the acceptance"
        )
        out.line("Alice learned that Bob accepted her request")
        mid2 = await bob.send(alice.session_id, TEXT_TO_ALICE)
        await wait_event(
            qb,
            lambda e: isinstance(e, MessageSent) and e.message_id == mid2,
            "Bob's reply to be stored",
        )
        out.line("  " + route(tb.last("store", alice.session_id), "Bob"))
        back = await wait_event(
            qa,
            lambda e: isinstance(e, MessageReceived) and not e.outgoing,
            "Alice to receive Bob's reply",
        )
        out.line("  " + route(ta.last("retrieve", alice.session_id), "Alice") + "  (poll)")
        out.line(f"Alice decrypted: “{back.body}” from {short(back.author, 12)}")
        if back.body != TEXT_TO_ALICE or back.author != bob.session_id or back.is_request:
            raise DemoFailure("Alice did not receive Bob's reply")
        await alice.mark_read(bob.session_id)
        rr = await wait_event(
            qb, lambda e: isinstance(e, MessageRead), "Bob to get the read receipt"
        )
        out.line(f"Bob got a read receipt for {len(rr.sent_ms)} message(s)")
        out.line(
            f"onion requests made: Alice {len(ta.calls)}, Bob {len(tb.calls)} "
            f"(stores, polls, config sync), each over 3 relays"
        )
        await group_step(out, alice, bob, qa, qb, work, nodes_json)
        await file_and_name_step(out, net, alice, bob, qb, work)
        await community_step(out, net, alice, bob)
        return {
            "alice": alice.session_id,
            "bob": bob.session_id,
            "alice_ed25519": bytes(alice.identity.ed25519_public),
            "bob_ed25519": bytes(bob.identity.ed25519_public),
            "alice_swarm": {n.pubkey_ed25519 for n in smap.members_for(alice.session_id)},
            "bob_swarm": {n.pubkey_ed25519 for n in smap.members_for(bob.session_id)},
            "names": names,
            "alice_identity": alice.identity,
            "bob_identity": bob.identity,
            "hashes": {sent.hash},
        }
    finally:
        await alice.close()
        await bob.close()


async def group_step(
    out: Printer, alice: Client, bob: Client, qa: Any, qb: Any, work: Path, nodes_json: Path
) -> None:
    """Step 5: a closed group of three; one message from Alice to the group, one back."""
    out.step("A closed group: Alice creates it with Bob and Carol; one message each way")
    carol = Client.open(work / "carol", nodes_json, poll_interval=0.3)
    try:
        await carol.start()
        qc = carol.hub.subscribe()
        gid = await alice.groups.create(GROUP_NAME, [bob.session_id, carol.session_id])
        out.line(f"group {gid} (its own key pair and swarm; Alice is admin)")
        if await alice.drain(20):
            raise DemoFailure("Alice's invitations were not delivered")
        for who, c in (("Bob", bob), ("Carol", carol)):
            await c.poll_once()
            if gid not in {g.group_id for g in c.groups.invites()}:
                raise DemoFailure(f"{who} did not get the invitation")
            await c.groups.accept(gid)
            out.line(f"{who} got the invitation (signed by the group key) and joined")
        await alice.groups.send(gid, GROUP_TEXT)
        for who, q in (("Bob", qb), ("Carol", qc)):
            got = await wait_event(
                q,
                lambda e: (
                    isinstance(e, MessageReceived)
                    and e.conversation == gid
                    and e.body == GROUP_TEXT
                ),
                f"{who} to read Alice's group message",
            )
            out.line(f"{who} decrypted with the group key: “{got.body}” from Alice")
        await bob.groups.send(gid, GROUP_REPLY)
        back = await wait_event(
            qa,
            lambda e: (
                isinstance(e, MessageReceived) and e.conversation == gid and e.body == GROUP_REPLY
            ),
            "Alice to read Bob's group message",
        )
        if back.author != bob.session_id:
            raise DemoFailure("Bob's group message did not come from Bob")
        out.line(f"Alice decrypted: “{back.body}” from {short(back.author, 12)}")
        members = alice.groups.info(gid).members
        if sorted(members) != sorted([alice.session_id, bob.session_id, carol.session_id]):
            raise DemoFailure("the group's member list is not Alice, Bob and Carol")
        out.line(f"members (signed Members config in the group's swarm): {len(members)}")
    finally:
        await carol.close()


async def file_and_name_step(
    out: Printer, net: Any, alice: Client, bob: Client, qb: Any, work: Path
) -> None:
    """Step 6: an attachment through the blind file server, and a name that resolves."""
    out.step("A file through the blind file server, and a name that resolves to an ID")
    src = work / FILE_NAME
    src.write_text(FILE_TEXT)
    await alice.send_file(bob.session_id, src, caption=FILE_CAPTION)
    got = await wait_event(
        qb,
        lambda e: (
            isinstance(e, MessageReceived)
            and e.conversation == alice.session_id
            and e.body == FILE_CAPTION
        ),
        "Bob to receive Alice's file",
    )
    msg = bob.message(got.message_id)
    if msg is None or len(msg.attachments) != 1:
        raise DemoFailure("Bob's message from Alice does not carry exactly one attachment")
    att = msg.attachments[0]
    file_id = att.url.split("#", 1)[0].rsplit("/", 1)[-1]
    out.line(
        f"Alice encrypted {src.name} ({len(FILE_TEXT.encode())} bytes), uploaded it through an "
        f"onion path as file {short(file_id, 12)} and sent its key to Bob inside the message"
    )
    (work / "bob-downloads").mkdir(exist_ok=True)
    saved = await bob.save_attachment(att.id, work / "bob-downloads")
    out.check(
        saved.read_bytes() == FILE_TEXT.encode(),
        f"Bob downloaded it through his own onion path and saved {saved.name}: byte-identical",
    )
    blobs = [p for p in net.file_server.data_dir.rglob(file_id) if p.is_file()]
    if len(blobs) != 1:
        raise DemoFailure(f"the file server does not hold exactly one blob {file_id}")
    blob = blobs[0].read_bytes()
    out.check(
        len(blob) == encrypted_size(len(FILE_TEXT.encode()))
        and FILE_TEXT.encode()[:64] not in blob,
        f"the file server holds only ciphertext, padded to {len(blob)} bytes "
        "(no name, no type, no Session ID)",
    )
    await register_name(net.registry_url, alice.identity, DEMO_NAME)
    found = await bob.resolve_name(DEMO_NAME)
    out.line(f"Alice registered the name “{DEMO_NAME}” (the registry keeps only its hash)")
    out.check(
        found == alice.session_id,
        f"Bob resolved “{DEMO_NAME}” through onion requests to three nodes that agree: "
        f"{short(found, 12)}",
    )


async def community_step(out: Printer, net: Any, alice: Client, bob: Client) -> None:
    """Step 7: Alice and Bob in the devnet's community room ``lobby``: a post, a reaction and
    a DM by blinded ID; the server's files hold only blinded IDs."""
    out.step("A community room: Alice and Bob join the lobby, post, react and DM by blinded ID")
    if net.community is None:
        raise DemoFailure("the devnet has no community server")
    (server,) = parse_community_servers(json.loads((net.dir / "nodes.json").read_text()))
    url = server.rooms["lobby"]
    out.line(f"join URL from nodes.json: {url[:60]}…")
    for c in (alice, bob):
        await c.communities.join(url)
    a15, b15 = (c.communities.blinded_id(server.url) for c in (alice, bob))
    out.line(f"Alice appears there as {short(a15, 16)}, Bob as {short(b15, 16)} (blinded IDs)")
    post = await alice.communities.post("lobby", ROOM_POST)
    await bob.communities.poll(server.url)
    seen = bob.communities.post_by_id("lobby", post.id)
    out.check(
        seen.body == ROOM_POST and seen.author == a15,
        f"Bob read post #{post.id} “{seen.body}”, signature checked under Alice's blinded key",
    )
    await bob.communities.react("lobby", post.id, "🍝")
    await alice.communities.poll(server.url)
    reactions = alice.communities.post_by_id("lobby", post.id).reactions
    out.check(
        reactions.get("🍝", {}).get("reactors") == [b15],
        "Bob reacted 🍝 and Alice sees the reaction (by Bob's blinded ID)",
    )
    await alice.communities.send_dm("lobby", b15, ROOM_DM)
    await bob.communities.poll(server.url)
    dms = [d for d in bob.communities.dms(server.url) if not d.outgoing]
    out.check(
        len(dms) == 1 and dms[0].body == ROOM_DM and dms[0].sender_session_id == alice.session_id,
        "Alice sent Bob a DM to his blinded ID; Bob decrypted it and learned her Session ID "
        "from inside the message",
    )
    root = net.community.data_dir
    db = open_ro(root / "store" / "community.db")
    try:
        users = {r[0] for r in db.execute("SELECT session_id FROM users")}
    finally:
        db.close()
    out.check(users == {a15, b15}, f"the server's users table holds {len(users)} blinded IDs")
    secrets = [
        form
        for c in (alice, bob)
        for form in (*key_forms(bytes.fromhex(c.session_id[2:])), c.session_id.encode())
    ]
    leaked = [p for p in files_under(root) if any(x in p.read_bytes() for x in secrets)]
    out.check(
        not leaked,
        "neither Session ID (hex, raw or base64) is in any community-server file "
        "(database, WAL, files, log)",
    )


def wait_replicated(out: Printer, net: Any, facts: dict[str, Any], deadline: float) -> None:
    """Waits until every member of Bob's swarm has committed Alice's message (each store read
    read-only, as in step 6), so that step looks at a settled swarm."""
    names: dict[str, str] = facts["names"]
    members = {names[e] for e in facts["bob_swarm"]}
    dbs = {n.name: n.data_dir / "db" / "storage.db" for n in net.nodes if n.name in members}
    missing = set(dbs)

    def holds_all(db: Path) -> bool:
        return bool(facts["hashes"] <= {r["hash"] for r in stored_for(db, facts["bob"])})

    while True:
        missing = {name for name in missing if not holds_all(dbs[name])}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out.check(
        not missing,
        f"every member of Bob's swarm ({len(dbs)} nodes) holds Alice's message"
        + (f": not {', '.join(sorted(missing))}" if missing else ""),
    )


def inspect_nodes(out: Printer, net: Any, facts: dict[str, Any]) -> None:
    """Step 6: what the nodes hold, read straight from their SQLite files."""
    names: dict[str, str] = facts["names"]
    alice, bob = facts["alice"], facts["bob"]
    out.step("What the nodes stored under Bob's ID (each node's SQLite store, opened read-only)")
    dbs = {n.name: n.data_dir / "db" / "storage.db" for n in net.nodes}
    first = next(iter(dbs.values()))
    cols = columns(first, "messages")
    out.line(f"table messages: {', '.join(cols)}  (owners: {', '.join(columns(first, 'owners'))})")
    holders: dict[str, list[str]] = {}
    rows_by_hash: dict[str, dict[str, Any]] = {}
    for nname, db in dbs.items():
        rows = stored_for(db, bob)
        for r in rows:
            holders.setdefault(r["hash"], []).append(nname)
            rows_by_hash[r["hash"]] = r
    now_ms = int(time.time() * 1000)
    for h, r in rows_by_hash.items():
        kind = {0: "1:1 mailbox", 2: "profile config", 3: "contacts config"}.get(r["namespace"], "")
        mark = "  ← Alice's message" if h in facts["hashes"] else ""
        out.line(
            f"{short(h, 12)} ns {r['namespace']:<2} {kind:<15} {len(r['data']):5} bytes  "
            f"sha256 {hashlib.sha256(r['data']).hexdigest()[:16]}  "
            f"expires in {(r['expiry'] - now_ms) / 86_400_000:4.1f} d  "
            f"on {', '.join(sorted(holders[h]))}{mark}"
        )
    out.check(bool(facts["hashes"] & set(rows_by_hash)), "Alice's message is stored under Bob's ID")

    # What the 1:1 mailbox rows are, as only Bob can tell (decrypted here with Bob's key).
    mailbox = [
        (h, base64.b64encode(r["data"]).decode(), r["expiry"])
        for h, r in rows_by_hash.items()
        if r["namespace"] == 0
    ]
    opened = M.open_many(facts["bob_identity"], mailbox)
    out.line("opened with Bob's key (outside the nodes):")
    who = {alice: "Alice", bob: "Bob"}
    for o in opened:
        if not isinstance(o, M.Incoming):
            out.line(f"  {short(o.hash, 12)} cannot be opened: {o.reason}")
            continue
        c = o.content
        if c.HasField("dataMessage") and c.dataMessage.syncTarget:
            what = f"Bob's own copy of his reply (for his other devices): “{c.dataMessage.body}”"
        elif c.HasField("dataMessage") and c.dataMessage.body:
            what = f"text message: “{c.dataMessage.body}”"
        elif c.HasField("receiptMessage"):
            what = "read receipt"
        elif c.HasField("messageRequestResponse"):
            what = "message request accepted"
        else:
            what = "control message"
        out.line(f"  {short(o.hash, 12)} from {who.get(o.sender, short(o.sender, 12))}: {what}")
    out.check(
        bool(mailbox)
        and len(opened) == len(mailbox)
        and all(isinstance(o, M.Incoming) for o in opened),
        f"Bob's key opens every message of his mailbox ({len(mailbox)})",
    )
    by_alice = M.open_many(facts["alice_identity"], mailbox)
    out.check(
        len(by_alice) == len(mailbox) > 0 and not any(isinstance(o, M.Incoming) for o in by_alice),
        "Alice's key opens none of them (each is sealed to Bob alone)",
    )
    swarm_names = {names[e] for e in facts["bob_swarm"]}
    out.check(
        bool(holders) and all(set(v) <= swarm_names for v in holders.values()),
        f"only Bob's swarm ({', '.join(sorted(swarm_names))}) holds Bob's mail",
    )
    out.check(
        not ({"sender", "source", "from", "author"} & {c.lower() for c in cols}),
        "no sender column: a row is owner, namespace, hash, times and ciphertext",
    )

    # No sender key inside anything stored for Bob.
    alice_x = bytes.fromhex(alice[2:])
    sender_forms = key_forms(alice_x) + key_forms(facts["alice_ed25519"]) + [alice.encode()]
    leaks = [
        h
        for h, r in rows_by_hash.items()
        for f in sender_forms
        if f in r["data"] or f in _b64_decoded(r["data"])
    ]
    out.check(
        not leaks,
        "no message stored for Bob contains Alice's Session ID or keys (raw, hex, base64)",
    )

    # Whole-file scans: databases, WAL/SHM files, logs of every node and of the registry.
    files = list(files_under(net.dir))
    out.check(set(dbs.values()) <= set(files), "the scan below covers every node's database")
    blobs = {p: p.read_bytes() for p in files}
    size = sum(len(b) for b in blobs.values())
    plain = [TEXT_TO_BOB.encode(), TEXT_TO_ALICE.encode(), FILE_TEXT.encode()[:64]]
    plain += [FILE_CAPTION.encode(), FILE_NAME.encode()]
    found = [str(p.relative_to(net.dir)) for p, b in blobs.items() for t in plain if t in b]
    out.check(
        not found,
        f"no plaintext in any node file ({len(files)} files, {size / 1e6:.1f} MB: "
        "databases, WAL, logs, the file server's blobs)" + (f": found in {found}" if found else ""),
    )
    text_ids = [alice.encode(), alice.upper().encode(), bob.encode(), bob.upper().encode()]
    found = [str(p.relative_to(net.dir)) for p, b in blobs.items() for t in text_ids if t in b]
    out.check(
        not found,
        "neither Session ID appears as text in any node database or log "
        "(logs mask Session IDs)" + (f": found in {found}" if found else ""),
    )
    found = [
        str(p.relative_to(net.dir))
        for p, b in blobs.items()
        for f in key_forms(facts["alice_ed25519"])
        if f in b
    ]
    on_nodes = [f for f in found if not f.startswith("registry/")]
    out.check(
        not on_nodes,
        "Alice's signing key (Ed25519) is on no node in any form"
        + (f": found in {on_nodes}" if on_nodes else ""),
    )
    if found:
        out.line(
            f"  (the registry holds it as the owner of the name “{DEMO_NAME}”: registering a "
            "name is public, as on Session's chain)"
        )
    holding = {nname for nname, db in dbs.items() if alice in owners_of(db)}
    alice_swarm = {names[e] for e in facts["alice_swarm"]}
    out.check(
        holding <= alice_swarm,
        f"Alice's Session ID is on the nodes only as the owner of her own mailbox "
        f"(on {', '.join(sorted(holding)) or 'no node'}: Bob's reply and her sync copies)",
    )


def _b64_decoded(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return b""


def run_demo(nodes: int, data_dir: Path | None, keep: bool, timeout: float) -> int:
    out = Printer()
    print(
        "Session network demo: a local devnet, two accounts, onion-routed messages both ways,\n"
        "and a look at what the nodes can see.",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="session-demo-")) if data_dir is None else None
    root = data_dir if data_dir is not None else tmp
    assert root is not None
    root.mkdir(parents=True, exist_ok=True)
    net = Devnet(root / "devnet", nodes, poll_interval=1.0, ready_timeout=min(60.0, timeout))
    failed: str | None = None
    try:
        out.step(f"Start a devnet: a registry and {nodes} service nodes on 127.0.0.1")
        try:
            net.start()
        except DevnetError as e:
            raise DemoFailure(f"the devnet did not start: {e}") from None
        out.line(f"directory {net.dir}")
        out.line(f"registry  {net.registry_url}")
        out.line(f"staking   {net.locked_tokens():,} tokens locked in {net.chain['contract']}")
        listed = parse_node_list(net.node_list())
        swarm_of = {n.pubkey_ed25519: n.swarm_id for n in listed}
        for n in net.nodes:
            out.line(
                f"{n.name}  {n.url}  ed25519 {short(n.pubkey_ed25519 or '', 12)}  "
                f"swarm {swarm_of.get(n.pubkey_ed25519 or '', 0):#018x}"
            )
        out.line(
            f"{len(listed)} nodes in {len(set(swarm_of.values()))} swarms; "
            f"node list in {net.dir / 'nodes.json'}"
        )

        work = root / "profiles"
        left = max(10.0, timeout - (time.monotonic() - out.t0))
        try:
            facts = asyncio.run(asyncio.wait_for(exchange(out, net, work), left))
        except TimeoutError:
            raise DemoFailure(f"the message exchange did not finish within {left:.0f} s") from None
        wait_replicated(out, net, facts, deadline=out.t0 + timeout)
        inspect_nodes(out, net, facts)
    except DemoFailure as e:
        failed = str(e)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        out.step("Stop the devnet")
        net.stop()
        codes = net.exit_codes()
        bad = {k: v for k, v in codes.items() if v != 0}
        reg = net.registry_proc.returncode if net.registry_proc is not None else 0
        if bad or reg != 0:
            out.line(f"✗ unclean exits: {bad or ''} registry {reg}")
            failed = failed or "a process did not exit cleanly"
        else:
            out.line(f"✓ {len(codes)} nodes and the registry stopped cleanly (exit status 0)")
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
            out.line("temporary directory removed (use --keep to look at it)")
        else:
            out.line(f"kept: {root} (devnet/, profiles/alice, profiles/bob)")
    total = time.monotonic() - out.t0
    if failed:
        print(f"\ndemo FAILED after {total:.1f} s: {failed}", file=sys.stderr, flush=True)
        return 1
    print(f"\ndemo finished in {total:.1f} s: all checks passed.", flush=True)
    print(
        "Try it by hand: `session-node devnet --data-dir /tmp/devnet` in one terminal, then\n"
        '`session id new` and `session --network /tmp/devnet/nodes.json send <Session ID> "hi"`.',
        flush=True,
    )
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--nodes",
    type=click.IntRange(4, 40),
    default=14,
    show_default=True,
    help="Service nodes to start (at least 4: 3 relays plus a destination; "
    "14 make two swarms of 7).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Put the devnet and the profiles here (kept) instead of a temporary directory.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary directory.")
@click.option(
    "--timeout",
    type=click.FloatRange(20, 600),
    default=90.0,
    show_default=True,
    help="Give up after this many seconds.",
)
def main(nodes: int, data_dir: Path | None, keep: bool, timeout: float) -> None:
    """Run the network demo: devnet, two identities, messages both ways, node privacy checks."""
    sys.exit(run_demo(nodes, data_dir, keep, timeout))


if __name__ == "__main__":
    main()
