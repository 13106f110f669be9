"""session.client.community without a network: join-URL parsing, post encoding and
verification, and the CommunityManager of two real clients against a scripted SOGS answering
through a stand-in for the onion transport (it checks every request's X-SOGS signature the way
SOGS does, so the signing path is exercised byte for byte)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import nacl.bindings as nb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from session import blinding
from session.client import Client
from session.client import community as C
from session.client import messages as M
from session.errors import (
    CommunityError,
    CommunityNotJoined,
    InvalidCommunityURL,
    InvalidInput,
    InvalidSignature,
)
from session.groups import user_groups as UG
from session.identity import Identity
from session.proto import session_pb2 as pb
from session.testing.community import ServerCall, ServerStandIn

SERVER_ID = Identity(bytes(range(32)))
SERVER_PK = SERVER_ID.x25519_public.hex()
BASE = "http://sogs.example:8080"
URL = f"{BASE}/lobby?public_key={SERVER_PK}"


# ------------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("url", "base", "room"),
    [
        (URL, BASE, "lobby"),
        (
            f"HTTP://SOGS.Example:80/r/Lobby_2?public_key={SERVER_PK.upper()}",
            "http://sogs.example",
            "Lobby_2",
        ),
        (f"https://x.org:443/a-b?public_key={SERVER_PK}", "https://x.org", "a-b"),
        (f"http://[::1]:8/z?public_key={SERVER_PK}", "http://[::1]:8", "z"),
    ],
)
def test_join_url_parsing(url: str, base: str, room: str) -> None:
    u = C.parse_join_url(url)
    assert (u.base_url, u.room, u.pubkey) == (base, room, SERVER_PK)
    assert C.parse_join_url(u.join_url) == u


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://h/lobby?public_key={SERVER_PK}",
        f"http:///lobby?public_key={SERVER_PK}",
        f"http://h/?public_key={SERVER_PK}",
        f"http://h/a/b?public_key={SERVER_PK}",
        f"http://h/lob.by?public_key={SERVER_PK}",
        f"http://h/{'x' * 65}?public_key={SERVER_PK}",
        "http://h/lobby",
        "http://h/lobby?public_key=abc",
        f"http://u:p@h/lobby?public_key={SERVER_PK}",
        f"http://h:99999/lobby?public_key={SERVER_PK}",
    ],
)
def test_bad_join_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidCommunityURL):
        C.parse_join_url(url)


def test_destination_and_wire_path() -> None:
    d = C.destination(BASE, SERVER_PK)
    assert (d.host, d.port, d.scheme, d.target) == ("sogs.example", 8080, "http", "/oxen/v4/lsrpc")
    assert C.wire_path("/room/r/reaction/1/👍") == "/room/r/reaction/1/%F0%9F%91%8D"


# ------------------------------------------------------------------------------ posts


def _signed_post(ident: Identity, body: str, msg_id: int = 1) -> dict[str, Any]:
    content = C.post_content(body, sent_ms=1234, display_name="Alice")
    data = C.encode_post(content)
    sig = blinding.blind15_sign(ident, SERVER_PK, data)
    return {
        "id": msg_id,
        "seqno": msg_id,
        "session_id": blinding.blinded15_id(ident, SERVER_PK),
        "posted": 1.5,
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(sig).decode(),
    }


def test_post_round_trip_and_tampering() -> None:
    alice = Identity.generate()
    msg = _signed_post(alice, "hello room")
    p = C.parse_post(msg)
    assert (p.body, p.name, p.sent_ms, p.author) == ("hello room", "Alice", 1234, msg["session_id"])
    assert len(base64.b64decode(msg["data"])) % 160 == 0  # pad160
    other = dict(msg, session_id=blinding.blinded15_id(Identity.generate(), SERVER_PK))
    with pytest.raises(InvalidSignature):
        C.parse_post(other)
    data = bytearray(base64.b64decode(msg["data"]))
    data[3] ^= 1
    with pytest.raises(InvalidSignature):
        C.parse_post(dict(msg, data=base64.b64encode(bytes(data)).decode()))
    with pytest.raises(InvalidSignature):  # 05 senders: no XEd25519 verify, dropped
        C.parse_post(dict(msg, session_id=alice.session_id))
    with pytest.raises(InvalidInput):
        C.parse_post(dict(msg, data="!!notbase64"))


def test_emoji_rules() -> None:
    assert C.check_emoji("👩‍💻") == "👩‍💻"
    for bad in ("", "a" * 13, "a/b", "%2F", "\x1b"):
        with pytest.raises(InvalidInput):
            C.check_emoji(bad)


def test_user_groups_community_entries_round_trip() -> None:
    data: dict[bytes, Any] = {}
    e = UG.CommunityEntry(BASE, "Lobby", bytes.fromhex(SERVER_PK), 0, 1700000000)
    UG.set_community(data, e)
    assert data[b"o"][BASE.encode()][b"R"][b"lobby"][b"n"] == b"Lobby"
    assert UG.get_communities(data) == [e]
    assert UG.remove_community(data, BASE, "LOBBY") and b"o" in data
    assert UG.get_communities(data) == [] and not UG.remove_community(data, BASE, "lobby")


# ------------------------------------------------------------------------------ scripted SOGS


class ScriptedSogs(ServerStandIn):
    """Answers v4 requests as a SOGS with one room would, after checking the X-SOGS headers
    (signature over server_pk ‖ nonce ‖ ts ‖ METHOD ‖ decoded path ‖ H64(body), nonce reuse)."""

    def __init__(self, *, blind: bool = True) -> None:
        super().__init__(BASE, SERVER_PK)
        self.blind = blind
        self.posts: dict[int, dict[str, Any]] = {}
        self.seq = 0
        self.dms: list[dict[str, Any]] = []
        self.files: dict[int, bytes] = {}
        self.nonces: set[str] = set()
        self.seen_ids: set[str] = set()
        self.paths: list[str] = []
        self.banned: set[str] = set()
        self.pinned: list[int] = []

    def _auth(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
        nonce = headers["X-SOGS-Nonce"]
        assert nonce not in self.nonces, "nonce reused"
        self.nonces.add(nonce)
        msg = (
            bytes.fromhex(SERVER_PK)
            + base64.b64decode(nonce)
            + headers["X-SOGS-Timestamp"].encode()
            + method.encode()
            + path.encode()
            + (hashlib.blake2b(body).digest() if body else b"")
        )
        who = headers["X-SOGS-Pubkey"]
        sig = base64.b64decode(headers["X-SOGS-Signature"])
        if who.startswith("00"):  # unblinded: Ed25519 key; the room sees the 05 Session ID
            ed_pk = bytes.fromhex(who[2:])
            VerifyKey(ed_pk).verify(msg, sig)
            who = "05" + nb.crypto_sign_ed25519_pk_to_curve25519(ed_pk).hex()
        else:
            blinding.verify_blinded(who, msg, sig)
        self.seen_ids.add(who)
        return who

    def _bump(self, mid: int) -> None:
        self.seq += 1
        self.posts[mid]["seqno"] = self.seq

    def route(self, method: str, path: str, body: Any, who: str) -> tuple[int, Any]:
        self.paths.append(f"{method} {path}")
        parts = path.split("?")[0].strip("/").split("/")
        if path == "/capabilities":
            return 200, {"capabilities": ["sogs", "reactions", *(["blind"] if self.blind else [])]}
        if parts[:2] == ["room", "lobby"] and len(parts) == 2:
            return 200, {"token": "lobby", "name": "Lobby", "info_updates": 1, "active_users": 2}
        if parts[0] == "room" and parts[1] != "lobby":
            return 404, {"error": "no such room"}
        if parts[2:3] == ["pollInfo"]:
            pins = [{"id": i, "pinned_at": 1.0, "pinned_by": "15" + "ab" * 32} for i in self.pinned]
            return 200, {
                "token": "lobby",
                "active_users": 2,
                "read": True,
                "write": True,
                "pinned_messages": pins,
            }
        if parts[2:4] == ["messages", "recent"]:
            return 200, [p for p in self.posts.values() if not p.get("deleted")]
        if parts[2:4] == ["messages", "since"]:
            since = int(parts[4])
            return 200, sorted(
                (p for p in self.posts.values() if p["seqno"] > since), key=lambda p: p["seqno"]
            )
        if parts[2:3] == ["message"] and method == "POST":
            if who in self.banned:
                return 403, {"error": "banned"}
            mid = len(self.posts) + 1
            self.posts[mid] = {"id": mid, "session_id": who, "posted": time.time(), **body}
            self._bump(mid)
            return 201, self.posts[mid]
        if parts[2:3] == ["message"] and method == "PUT":
            mid = int(parts[3])
            self.posts[mid].update(body, edited=time.time())
            self._bump(mid)
            return 200, {}
        if parts[2:3] == ["message"] and method == "DELETE":
            mid = int(parts[3])
            self.posts[mid] = {"id": mid, "deleted": True, "data": None, "seqno": 0}
            self._bump(mid)
            return 200, {}
        if parts[2:3] == ["reaction"]:
            mid, emoji = int(parts[3]), parts[4]
            r = self.posts[mid].setdefault("reactions", {})
            entry = r.setdefault(emoji, {"index": 0, "count": 0, "reactors": []})
            if method == "PUT" and who not in entry["reactors"]:
                entry["count"] += 1
                entry["reactors"].append(who)
            self._bump(mid)
            return 200, {"added": method == "PUT", "seqno": self.seq}
        if parts[2:3] == ["file"] and method == "POST":
            fid = 100 + len(self.files)
            self.files[fid] = body
            return 201, {"id": fid}
        if parts[2:3] == ["file"] and method == "GET":
            return 200, self.files[int(parts[3])]
        if parts[0] == "inbox" and method == "POST":
            dm = {
                "id": len(self.dms) + 1,
                "posted_at": time.time(),
                "sender": who,
                "recipient": parts[1],
                "message": body["message"],
            }
            self.dms.append(dm)
            return 201, {k: v for k, v in dm.items() if k != "message"}
        if path == "/inbox" and method == "DELETE":
            kept = [d for d in self.dms if d["recipient"] != who]
            deleted, self.dms = len(self.dms) - len(kept), kept
            return 200, {"deleted": deleted}
        if parts[0] in ("inbox", "outbox"):
            since = int(parts[2]) if len(parts) == 3 else 0
            key = "recipient" if parts[0] == "inbox" else "sender"
            got = [d for d in self.dms if d[key] == who and d["id"] > since]
            return (200, got) if got else (304, None)
        return 404, {"error": f"unscripted {method} {path}"}

    async def answer(self, call: ServerCall) -> tuple[int, dict[str, str], bytes]:
        method, path, headers = call.method, unquote(call.endpoint), call.headers
        raw = call.body or b""
        who = self._auth(method, path, headers, raw)
        ctype = headers.get("Content-Type")
        parsed: Any = json.loads(raw) if ctype == "application/json" else raw
        if path == "/batch":
            out = []
            for sub in parsed:
                code, res = self.route(sub["method"], sub["path"], sub.get("json"), who)
                out.append({"code": code, "headers": {}, "body": res})
            return 200, {}, json.dumps(out).encode()
        code, res = self.route(method, path, parsed, who)
        payload = res if isinstance(res, bytes) else json.dumps(res).encode()
        return code, {}, payload


@pytest.fixture
async def pair(tmp_path: Path) -> Any:
    sogs = ScriptedSogs()
    clients = []
    for name in ("alice", "bob"):
        c = Client.open(tmp_path / name, [], background=False)
        sogs.install(c)
        await c.set_display_name(name.title())
        clients.append(c)
    yield sogs, clients[0], clients[1]
    for c in clients:
        await c.close()


async def test_a_stand_in_answers_only_for_its_own_server() -> None:
    """The shared transport stand-in (session.testing.community.ServerStandIn) records what
    it answers and fails the test on a request meant for another server or key."""
    sogs = ScriptedSogs()
    meta = {"method": "GET", "endpoint": "/capabilities", "headers": {}}
    for dest, says in [
        (C.destination("http://other.example:8080", SERVER_PK), "not this server"),
        (C.destination(BASE, "ab" * 32), "not this server's key"),
    ]:
        with pytest.raises(AssertionError, match=says):
            await sogs.request_server(dest, meta)
    assert sogs.requests == []


async def test_two_members_post_react_edit_delete_and_dm(pair: Any) -> None:
    sogs, alice, bob = pair
    room = await alice.communities.join(URL)
    assert (room.token, room.name, room.base_url) == ("lobby", "Lobby", BASE)
    await bob.communities.join(URL)
    a_id = alice.communities.blinded_id(BASE)
    b_id = bob.communities.blinded_id(BASE)
    assert a_id.startswith("15") and sogs.seen_ids == {a_id, b_id}

    p = await alice.communities.post("lobby", "hello from alice")
    assert p.mine and p.body == "hello from alice"
    got = await bob.communities.poll(BASE)
    assert got.posts == 1
    (seen,) = bob.communities.posts("lobby")
    assert (seen.body, seen.name, seen.author, seen.mine) == (
        "hello from alice",
        "Alice",
        a_id,
        False,
    )

    reply = await bob.communities.post("lobby", "hi alice", reply_to=p.id)
    assert reply.quote == {"id": p.sent_ms, "author": a_id, "text": "hello from alice"}
    assert await bob.communities.react("lobby", p.id, "👍")
    await alice.communities.poll(BASE)
    first = alice.communities.post_by_id("lobby", p.id)
    assert first.reactions["👍"]["count"] == 1 and first.reactions["👍"]["reactors"] == [b_id]
    assert "PUT /room/lobby/reaction/1/👍" in sogs.paths  # signed and routed decoded

    edited = await alice.communities.edit("lobby", p.id, "hello, edited")
    assert edited.body == "hello, edited" and edited.edited is not None
    await bob.communities.poll(BASE)
    assert bob.communities.post_by_id("lobby", p.id).body == "hello, edited"

    await alice.communities.delete("lobby", p.id)
    assert (await bob.communities.poll(BASE)).deleted == 1
    assert [x.id for x in bob.communities.posts("lobby")] == [reply.id]

    # a forged post (valid base64, wrong signer) is dropped by every reader
    forged = _signed_post(Identity.generate(), "forged", msg_id=99)
    forged["session_id"] = a_id
    sogs.posts[99] = forged
    sogs.seq += 1
    forged["seqno"] = sogs.seq
    assert (await bob.communities.poll(BASE)).dropped == 1
    assert 99 not in [x.id for x in bob.communities.posts("lobby")]

    # blinded DM by blinded id; the recipient learns the sender, the sender's outbox too
    await alice.communities.send_dm("lobby", b_id, "psst, bob")
    assert (await bob.communities.poll(BASE)).dms == 1
    (dm,) = bob.communities.dms(BASE)
    assert (dm.body, dm.peer, dm.sender_session_id, dm.outgoing, dm.name) == (
        "psst, bob",
        a_id,
        alice.session_id,
        False,
        "Alice",
    )
    assert bob.communities.match_contact(a_id, BASE) == alice.session_id
    assert alice.communities.match_contact(b_id, BASE) is None  # bob is no contact of alice
    alice.db.upsert_contact(bob.session_id, approved=1)
    assert alice.communities.match_contact(b_id, BASE) == bob.session_id

    # the server never saw a Session ID
    wire = json.dumps([sogs.posts, sogs.dms, sorted(sogs.seen_ids)])
    for sid in (alice.session_id, bob.session_id):
        assert sid not in wire and sid[2:] not in wire


async def test_unblinded_server_signs_with_the_session_id_and_xed25519(tmp_path: Path) -> None:
    """A SOGS without the ``blind`` capability: after joining, requests carry the ``00`` Ed25519
    key, posts are XEd25519-signed, readers verify them under the 05 id and drop forgeries."""
    sogs = ScriptedSogs(blind=False)
    alice = Client.open(tmp_path / "alice", [], background=False)
    bob = Client.open(tmp_path / "bob", [], background=False)
    try:
        for c in (alice, bob):
            sogs.install(c)
        await alice.set_display_name("Alice")
        await alice.communities.join(URL)
        # the join request is signed blinded (capabilities still unknown), its poll unblinded
        assert {i[:2] for i in sogs.seen_ids} == {"15", "05"}
        assert alice.session_id in sogs.seen_ids
        await bob.communities.join(URL)
        assert not alice.communities.is_blinded(BASE)
        assert alice.communities.blinded_id(BASE) == alice.session_id
        p = await alice.communities.post("lobby", "plain hello")
        assert p.mine and p.author == alice.session_id
        stored = sogs.posts[p.id]
        assert stored["session_id"] == alice.session_id  # signed with 00 ‖ Ed25519 key
        data, sig = base64.b64decode(stored["data"]), base64.b64decode(stored["signature"])
        blinding.xed25519_verify(alice.session_id, data, sig)
        assert (await bob.communities.poll(BASE)).posts == 1
        (seen,) = bob.communities.posts("lobby")
        assert (seen.author, seen.body, seen.name) == (alice.session_id, "plain hello", "Alice")
        # the same post under another 05 id, or with its data changed, is dropped
        forged = dict(stored, id=7, session_id=bob.session_id)
        tampered = dict(stored, id=8, data=base64.b64encode(data[:-1] + b"\x01").decode())
        for n, post in ((7, forged), (8, tampered)):
            sogs.posts[n] = post
            sogs.seq += 1
            post["seqno"] = sogs.seq
        assert (await bob.communities.poll(BASE)).dropped == 2
        assert [x.id for x in bob.communities.posts("lobby")] == [p.id]
        # no inbox/outbox polls on a server without blinded DMs
        assert not any(x.split()[1].startswith(("/inbox", "/outbox")) for x in sogs.paths)
    finally:
        await alice.close()
        await bob.close()


def test_xed25519_posts_verify_and_05_authors_are_accepted() -> None:
    alice = Identity.generate()
    data = C.encode_post(C.post_content("hi", sent_ms=5, display_name="A"))
    msg = {
        "id": 3,
        "seqno": 3,
        "session_id": alice.session_id,
        "posted": 1.0,
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(blinding.xed25519_sign(alice, data)).decode(),
    }
    assert C.parse_post(msg).body == "hi"
    blinded = _signed_post(alice, "blinded one", msg_id=4)
    signed = [C.signed_parts(msg), C.signed_parts(blinded)]
    bad = C.signed_parts(dict(msg, session_id=Identity.generate().session_id))
    assert C.verify_many([*signed, bad]) == [True, True, False]
    with pytest.raises(InvalidSignature):
        C.parse_post(dict(msg, session_id="06" + alice.session_id[2:]))


async def test_outbox_on_a_second_device_and_room_files(pair: Any, tmp_path: Path) -> None:
    sogs, alice, bob = pair
    await alice.communities.join(URL)
    await bob.communities.join(URL)
    b_id = bob.communities.blinded_id(BASE)
    await alice.communities.send_dm(BASE, b_id, "from device 1")
    second = Client.open(
        tmp_path / "alice2", [], mnemonic=alice.identity.mnemonic, background=False
    )
    try:
        sogs.install(second)
        await second.communities.join(URL)
        (dm,) = second.communities.dms(BASE)
        assert (dm.outgoing, dm.body, dm.peer) == (True, "from device 1", b_id)
    finally:
        await second.close()

    f = tmp_path / "note.txt"
    f.write_bytes(b"room file bytes")
    p = await alice.communities.post("lobby", "see file", files=[f])
    assert sogs.files == {100: b"room file bytes"}  # plain bytes: room files are public
    assert sogs.posts[p.id]["files"] == [100]
    await bob.communities.poll(BASE)
    (seen,) = bob.communities.posts("lobby")
    assert seen.files == [
        {
            "url": f"{BASE}/room/lobby/file/100",
            "file_name": "note.txt",
            "content_type": "text/plain",
            "size": 15,
        }
    ]
    assert await bob.communities.download("lobby", 100) == b"room file bytes"
    out = tmp_path / "bob-files"
    out.mkdir()
    saved = await bob.communities.save_file("lobby", 100, out)
    assert saved == out / "note.txt" and saved.read_bytes() == b"room file bytes"
    with pytest.raises(InvalidInput, match="already exists"):
        await bob.communities.save_file("lobby", 100, out)
    sogs.files[100] = b"other bytes, other size"
    with pytest.raises(CommunityError, match="says has 15"):
        await bob.communities.save_file("lobby", 100, out, force=True)
    assert saved.read_bytes() == b"room file bytes"  # nothing replaced
    with pytest.raises(InvalidInput, match="no stored post"):
        await bob.communities.save_file("lobby", 101, out)


async def test_refusals_and_leave(pair: Any) -> None:
    sogs, alice, _ = pair
    with pytest.raises(CommunityError) as e:
        await alice.communities.join(f"{BASE}/nope?public_key={SERVER_PK}")
    assert e.value.status == 404
    assert alice.communities.rooms() == []
    await alice.communities.join(URL)
    sogs.banned.add(alice.communities.blinded_id(BASE))
    with pytest.raises(CommunityError, match="banned") as e:
        await alice.communities.post("lobby", "let me in")
    assert e.value.status == 403
    with pytest.raises(CommunityNotJoined):
        alice.communities.room("elsewhere")
    # joined rooms are in the UserGroups config queued for our other devices
    ug = alice.groups._ug.data
    assert UG.get_communities(ug)[0].room == "lobby"
    await alice.communities.leave("lobby")
    assert alice.communities.rooms() == [] and UG.get_communities(alice.groups._ug.data) == []


async def test_rooms_adopted_from_another_devices_config(pair: Any) -> None:
    _, alice, _ = pair
    e = UG.CommunityEntry(BASE, "lobby", bytes.fromhex(SERVER_PK), 0, 1700000000)
    with alice.db.tx():
        assert alice.communities.adopt_config([e]) == 1
    (room,) = alice.communities.rooms()
    assert (room.join_url, room.joined_ms) == (URL, 1700000000000)
    # capabilities unknown until the first poll: the Session ID is not shown meanwhile
    assert alice.communities.is_blinded(BASE) and alice.communities.blinded_id(BASE)[:2] == "15"
    with alice.db.tx():
        assert alice.communities.adopt_config([]) == 1
    assert alice.communities.rooms() == []


def test_post_content_is_a_data_message() -> None:
    c = C.post_content("x", sent_ms=5, display_name="N", quote=(3, "15" + "ab" * 32, "q"))
    back = pb.Content.FromString(M.unpad(C.encode_post(c)))
    assert (back.dataMessage.body, back.dataMessage.timestamp, back.dataMessage.quote.id) == (
        "x",
        5,
        3,
    )


# ------------------------------------------------------------------------------ hostile answers

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
_edge = st.sampled_from([-1, 0, 1, 2**63 - 1, 2**63, 2**70, True])
_message_like = st.fixed_dictionaries(
    {},
    optional={
        "id": _edge | _json_values,
        "seqno": _edge | _json_values,
        "data": _json_values | st.just(None) | st.just("AAAA"),
        "signature": _json_values,
        "session_id": _json_values | st.just("15" + "ab" * 32),
        "deleted": _json_values,
        "reactions": _json_values,
        "posted": _json_values,
        "sender": _json_values,
        "recipient": _json_values,
        "message": _json_values,
        "posted_at": _json_values,
        "details": _json_values,
        "info_updates": _edge | _json_values,
        "message_sequence": _edge | _json_values,
        "capabilities": _json_values,
        "name": _json_values,
    },
)
_body = _json_values | st.lists(_message_like | _json_values, max_size=3) | _message_like


def test_hostile_poll_answers_are_skipped_not_raised(tmp_path: Path) -> None:
    """Whatever a server answers to a poll (wrong types, huge or negative numbers, NaN, junk
    base64, other shapes), the client stores what verifies, skips the rest and keeps working."""
    c = Client.open(tmp_path / "p", [], background=False)
    c.db.conn.execute("PRAGMA synchronous=OFF")  # no fsync per example: this is about parsing
    mgr = c.communities
    with c.db.tx():
        mgr.adopt_config([UG.CommunityEntry(BASE, "lobby", bytes.fromhex(SERVER_PK), 0, 1)])
    with c.db.tx():
        c.db.conn.execute(
            "UPDATE community_servers SET capabilities='[\"blind\"]' WHERE base_url=?", (BASE,)
        )
    reqs = mgr._poll_requests(BASE)
    assert [r["path"].split("?")[0] for r in reqs] == [
        "/capabilities", "/room/lobby/pollInfo/0", "/room/lobby/messages/recent", "/inbox",
        "/outbox",
    ]  # fmt: skip
    good = _signed_post(Identity.generate(), "still fine", msg_id=7)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(st.tuples(st.sampled_from([200, 304, 404, 500]), _body), min_size=5, max_size=5)
    )
    def check(answers: list[tuple[int, Any]]) -> None:
        got = mgr.apply_poll(BASE, reqs, answers)
        assert got.posts <= 5
        mgr.rooms()  # still readable
        assert mgr.apply_poll(BASE, reqs, [(200, {}), (200, {}), (200, [good]), (304, None),
                                           (304, None)]).posts == 1  # fmt: skip
        assert mgr.posts("lobby", limit=1000)[-1].body is not None

    try:
        check()
    finally:
        asyncio.run(c.close())


async def test_terminal_lines_are_sanitised(pair: Any) -> None:
    """Everything a poster chose (name, text, quote, file name and type, reaction) reaches the
    terminal lines of ``community read`` only through the sanitiser."""
    from session.cli.client.community import post_lines

    sogs, alice, bob = pair
    await alice.communities.join(URL)
    await bob.communities.join(URL)
    evil = "\x1b[2J\x1b]0;pwned\x07"
    content = C.post_content(
        "text" + evil,
        sent_ms=5,
        display_name="Mallory" + evil,
        quote=(1, "15" + evil, "quoted" + evil),
        attachments=[pb.AttachmentPointer(deprecated_id=1, fileName=evil, contentType=evil)],
    )
    data = C.encode_post(content)
    mallory = Identity.generate()
    sogs.posts[1] = {
        "id": 1,
        "seqno": 1,
        "session_id": blinding.blinded15_id(mallory, SERVER_PK),
        "posted": 1.0,
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(blinding.blind15_sign(mallory, SERVER_PK, data)).decode(),
        "reactions": {evil: {"index": 0, "count": 1, "reactors": []}},
    }
    sogs.seq = 1
    await bob.communities.poll(BASE)
    (p,) = bob.communities.posts("lobby")
    assert p.name == "Mallory" + evil  # stored exactly
    lines = "\n".join(post_lines(bob, p))
    assert "\x1b" not in lines and "\x07" not in lines
    assert "Mallory" in lines and "quoted" in lines


async def test_background_loop_delivers_posts_and_dms_as_events(pair: Any) -> None:
    """The client's community loop polls joined servers by itself: an app reading
    ``client.events()`` gets new posts and DMs without calling poll."""
    from session.client import CommunityDMReceived, CommunityPostReceived

    _, alice, bob = pair
    await alice.communities.join(URL)
    await bob.communities.join(URL)
    alice.community_poll_interval = 0.01
    stream = alice.events()
    loop = asyncio.create_task(alice.loops.community_loop())
    try:
        p = await bob.communities.post("lobby", "anyone here?")
        await bob.communities.send_dm("lobby", alice.communities.blinded_id(BASE), "psst")
        got: dict[type, Any] = {}

        async def collect() -> None:
            async for ev in stream:
                if isinstance(ev, CommunityPostReceived | CommunityDMReceived):
                    got[type(ev)] = ev
                if len(got) == 2:
                    return

        await asyncio.wait_for(collect(), 30)
    finally:
        loop.cancel()
        stream.close()
    post, dm = got[CommunityPostReceived], got[CommunityDMReceived]
    assert (post.room, post.post_id, post.body, post.name, post.mine) == (
        "lobby",
        p.id,
        "anyone here?",
        "Bob",
        False,
    )
    assert post.author == bob.communities.blinded_id(BASE)
    assert (dm.body, dm.sender_session_id, dm.outgoing) == ("psst", bob.session_id, False)
    # what the loop stored is what a later read shows; nothing is announced twice
    assert [x.body for x in alice.communities.posts("lobby")] == ["anyone here?"]
    again = alice.events()
    await alice.communities.poll(BASE)
    assert again.pending() == []
    again.close()


async def test_clear_inbox_pins_and_whispers(pair: Any) -> None:
    from session.cli.client.community import post_lines

    sogs, alice, bob = pair
    await alice.communities.join(URL)
    await bob.communities.join(URL)
    a_id = alice.communities.blinded_id(BASE)
    await bob.communities.send_dm("lobby", a_id, "one")
    await bob.communities.send_dm("lobby", a_id, "two")
    await alice.communities.send_dm("lobby", bob.communities.blinded_id(BASE), "mine")
    assert (await alice.communities.poll(BASE)).dms == 2  # "mine" was stored when sent
    assert len(alice.communities.dms(BASE)) == 3
    assert await alice.communities.clear_inbox("lobby") == 2
    assert [(d.body, d.outgoing) for d in alice.communities.dms(BASE)] == [("mine", True)]
    assert [d["recipient"] for d in sogs.dms] == [bob.communities.blinded_id(BASE)]
    with pytest.raises(CommunityNotJoined):
        await alice.communities.clear_inbox("http://elsewhere.example")

    first = await alice.communities.post("lobby", "read the rules")
    second = await alice.communities.post("lobby", "mods only")
    sogs.posts[second.id]["whisper"] = True
    sogs.posts[second.id]["whisper_mods"] = True
    sogs._bump(second.id)
    sogs.pinned = [first.id]
    await bob.communities.poll(BASE)
    assert bob.communities.pinned("lobby") == [first.id]
    by_id = {p.id: p for p in bob.communities.posts("lobby")}
    assert by_id[second.id].whisper and not by_id[first.id].whisper
    assert by_id[second.id].to_dict()["whisper"] is True
    pinned_line = post_lines(bob, by_id[first.id], pinned=True)[0]
    whisper_line = post_lines(bob, by_id[second.id])[0]
    assert f"#{first.id} [pinned]" in pinned_line and "(whisper)" not in pinned_line
    assert "(whisper)" in whisper_line and "[pinned]" not in whisper_line
    sogs.pinned = []
    await bob.communities.poll(BASE)
    assert bob.communities.pinned("lobby") == []


async def test_every_change_to_a_room_is_announced_once_per_poll(pair: Any) -> None:
    """A poll that changes what a room shows (a new post, a reaction, a deletion) ends with one
    CommunityRoomUpdated for that room, after the poll's CommunityPostReceived; a poll that
    changes nothing announces nothing (an app redraws on it: the TUI does)."""
    from session.client import CommunityPostReceived, CommunityRoomUpdated

    _, alice, bob = pair
    await alice.communities.join(URL)
    await bob.communities.join(URL)

    async def poll_events() -> list[Any]:
        stream = alice.events()
        try:
            await alice.communities.poll(BASE)
            return [
                e
                for e in stream.pending()
                if isinstance(e, CommunityPostReceived | CommunityRoomUpdated)
            ]
        finally:
            stream.close()

    p = await bob.communities.post("lobby", "first")
    got = await poll_events()
    assert [type(e) for e in got] == [CommunityPostReceived, CommunityRoomUpdated]
    assert (got[1].base_url, got[1].room) == (BASE, "lobby")
    assert await poll_events() == []  # nothing changed
    await bob.communities.react("lobby", p.id, "👍")
    assert [type(e) for e in await poll_events()] == [CommunityRoomUpdated]
    await bob.communities.delete("lobby", p.id)
    assert [type(e) for e in await poll_events()] == [CommunityRoomUpdated]
    assert alice.communities.posts("lobby") == []


def test_a_batch_answers_plain_text_as_its_bytes_and_a_refusal_says_it() -> None:
    """A subrequest's answer that is not JSON (an error's text, a file) comes base64-encoded
    inside the batch, as SOGS sends it: it is decoded, so the refusal shows the server's words;
    JSON bodies come as parsed."""
    text = "No room 'nope' on this server"
    payload = json.dumps(
        [
            {"code": 200, "headers": {"content-type": "application/json"}, "body": {"a": 1}},
            {
                "code": 404,
                "headers": {"content-type": "text/plain; charset=utf-8"},
                "body": base64.b64encode(text.encode()).decode(),
            },
        ]
    ).encode()
    (c1, b1), (c2, b2) = C.batch_answers(payload, 2)
    assert (c1, b1) == (200, {"a": 1}) and (c2, b2) == (404, text.encode())
    assert str(C.refusal(c2, b2)).endswith(f"(404: {text})")
