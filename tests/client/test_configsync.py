"""1:1 config sync between devices of one user (no network): each device's pushes are config
messages with diffs, and polling merges them with libsession's rules, so edits two devices make
at the same moment both survive (ConfigSync over the real database, outbox and sealing)."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session.client import sync as S
from session.client.configsync import ConfigSync
from session.client.db import Database, Sealer, derive_db_key
from session.client.events import EventHub
from session.client.identity_store import ed25519_seed32
from session.client.network import NetworkClock
from session.client.outbox import Outbox
from session.groups.config import ConfigMessage, open_sealed, seal
from session.identity import Identity
from session.proto import session_pb2 as pb
from vectorlib import load_vectors

BOB = "05" + "b0" * 32
CAROL = "05" + "c0" * 32
DAVE = "05" + "d0" * 32
_seq = itertools.count()

#: The own swarm: (hash, namespace, base64 data) in store order.
Swarm = list[tuple[str, int, str]]


class Device:
    """One device of the user: its own database and outbox, and what of the swarm it has seen."""

    def __init__(self, path: Path, ident: Identity, swarm: Swarm) -> None:
        self.db = Database(path, Sealer(derive_db_key(ed25519_seed32(ident))))
        self.outbox = Outbox(self.db)
        self.seed = ed25519_seed32(ident)
        self.config = ConfigSync(self.db, self.outbox, ident, self.seed, NetworkClock(), EventHub())
        self.swarm = swarm
        self.seen: set[str] = set()

    def push(self) -> None:
        """Deliver the queued config stores to the swarm."""
        for e in self.outbox.due(2**62):
            h = f"h{next(_seq)}"
            self.swarm.append((h, e.namespace, e.data))
            self.seen.add(h)
            self.outbox.done(e.id, h)

    def poll(self, upto: int | None = None) -> None:
        """Apply the unseen stored configs (the first ``upto`` of the swarm), then push."""
        rows = self.swarm if upto is None else self.swarm[:upto]
        for ns in (S.NS_USER_PROFILE, S.NS_CONTACTS):
            new = [(h, d, 0) for h, n, d in rows if n == ns and h not in self.seen]
            self.seen.update(h for h, _d, _e in new)
            self.config.apply(new, ns)
        self.push()

    def set_name(self, name: str) -> None:
        with self.db.tx():
            self.db.put_secret("display_name", name)
            self.config.push_profile(name)

    def set_contact(self, sid: str, **fields: object) -> None:
        with self.db.tx():
            self.db.upsert_contact(sid, **fields)
            self.config.push_contacts()

    def view(self) -> tuple[str | None, dict[str, tuple[str | None, bool, bool]]]:
        return self.db.get_secret("display_name"), {
            c.session_id: (c.name, c.approved, c.blocked) for c in self.db.contacts()
        }


def _pair(tmp_path: Path) -> tuple[Device, Device, Swarm]:
    ident = Identity.generate()
    swarm: Swarm = []
    return (
        Device(tmp_path / "a.db", ident, swarm),
        Device(tmp_path / "b.db", ident, swarm),
        swarm,
    )


def _message(dev: Device, ns: int, data_b64: str) -> ConfigMessage:
    raw = open_sealed(base64.b64decode(data_b64), [dev.seed], S.DOMAINS[ns])
    return ConfigMessage.parse(raw)


def test_concurrent_edits_on_two_devices_both_survive(tmp_path: Path) -> None:
    a, b, swarm = _pair(tmp_path)
    a.set_contact(BOB, name="Bob", approved=1)
    a.push()
    b.poll()
    assert b.view()[1] == {BOB: ("Bob", True, False)}
    # the same moment: each device edits something else and pushes before either polls
    a.set_contact(CAROL, name="Carol", approved=1)
    a.set_name("Alice")
    b.set_contact(BOB, name="Bob", approved=1, blocked=1)
    b.set_contact(DAVE, name="Dave")
    a.push()
    b.push()
    concurrent = [_message(a, S.NS_CONTACTS, d) for _h, ns, d in swarm if ns == S.NS_CONTACTS]
    # Last-writer-wins would lose an edit: the newest message (highest seqno, then hash) holds
    # only one device's changes.
    newest = max(concurrent, key=lambda m: (m.seqno, m.hash))
    has = {sid.hex() for sid in newest.data[b"c"]}
    assert not {CAROL, DAVE} <= has
    a.poll()
    b.poll()
    a.poll()
    want = (
        "Alice",
        {
            BOB: ("Bob", True, True),
            CAROL: ("Carol", True, False),
            DAVE: ("Dave", False, False),
        },
    )
    assert a.view() == want
    assert b.view() == want
    # both converged on the same config message, and a further poll changes nothing
    assert a.db.config_state(S.NS_CONTACTS) == b.db.config_state(S.NS_CONTACTS)
    stored = len(swarm)
    a.poll()
    b.poll()
    assert len(swarm) == stored


def test_pushes_carry_diffs_and_keep_unknown_keys(tmp_path: Path) -> None:
    a, b, swarm = _pair(tmp_path)
    a.set_contact(BOB, name="Bob", approved=1)
    a.set_contact(BOB, name="Bobby", approved=1)
    a.push()
    first, second = (_message(a, ns, d) for _h, ns, d in swarm)
    assert (first.seqno, second.seqno) == (1, 2)
    bob = bytes.fromhex(BOB)
    assert second.diff() == {b"c": {bob: {b"n": b""}}}
    assert (1, first.hash) in second.lagged
    # a key another client set on the contact (a nickname) survives our edits
    with a.db.tx():
        a.config.edit(S.NS_CONTACTS, lambda d: d[b"c"][bob].__setitem__(b"N", b"B"))
    a.set_contact(BOB, blocked=1)
    state = ConfigMessage.parse(a.db.config_state(S.NS_CONTACTS) or b"")
    assert state.data[b"c"][bob] == {b"n": b"Bobby", b"a": 1, b"b": 1, b"N": b"B"}
    # a change that changes nothing pushes nothing
    a.push()
    stored = len(swarm)
    a.set_contact(BOB, blocked=1)
    a.push()
    assert len(swarm) == stored
    b.poll()
    assert b.view()[1] == {BOB: ("Bobby", True, True)}


SIDS = ["05" + f"{i:02x}" * 32 for i in range(1, 5)]


@settings(max_examples=25, deadline=None)
@given(
    edits_a=st.lists(st.sampled_from(SIDS), min_size=1, max_size=3),
    edits_b=st.lists(st.sampled_from(SIDS), min_size=1, max_size=3),
    cut=st.integers(min_value=0, max_value=6),
    b_first=st.booleans(),
)
def test_any_delivery_order_converges(
    tmp_path_factory: pytest.TempPathFactory,
    edits_a: list[str],
    edits_b: list[str],
    cut: int,
    b_first: bool,
) -> None:
    """Each device renames contacts while seeing only part of the other's pushes; whatever
    the order, once both have polled everything they converge on the same contacts, and a
    contact only one device edited has that device's last name for it."""
    a, b, swarm = _pair(tmp_path_factory.mktemp("cfg"))
    for i, sid in enumerate(edits_a):
        a.set_contact(sid, name=f"a{i}")
    a.push()
    first, second = (b, a) if b_first else (a, b)
    first.poll(upto=min(cut, len(swarm)))
    for i, sid in enumerate(edits_b):
        b.set_contact(sid, name=f"b{i}")
    b.push()
    for _ in range(3):
        second.poll()
        first.poll()
    assert a.view() == b.view()
    names = {sid: name for sid, (name, _ap, _bl) in a.view()[1].items()}
    for who, edits in (("a", edits_a), ("b", edits_b)):
        other = edits_b if who == "a" else edits_a
        for sid in set(edits) - set(other):
            last = max(i for i, s in enumerate(edits) if s == sid)
            assert names[sid] == f"{who}{last}"
    assert set(names) == set(edits_a) | set(edits_b)


def test_older_wrapped_push_still_opens() -> None:
    """The older protobuf-wrapped UserProfile push (libsession's upstream test value) opens to
    its config message (TV-25's empty seqno-0 message)."""
    (case,) = load_vectors("config_encrypt", "config_push_wrapped")
    seed = bytes.fromhex(case["ed25519_seed"])
    ident = Identity.from_seed(seed)
    raw = S.open_config(S.NS_USER_PROFILE, bytes.fromhex(case["push"]), seed, ident)
    assert raw == case["config_utf8"].encode()
    assert ConfigMessage.parse(raw).seqno == case["seqno"]


def test_profile_picture_encoding_is_libsessions() -> None:
    """TV-25: the seqno-1 UserProfile push libsession makes after setting a name, a picture
    (``p`` URL, ``q`` 32-byte key) and a note-to-self priority, built with our setters from the
    empty seqno-0 message and sealed with our code, is byte-identical to libsession's."""
    (case,) = load_vectors("config_encrypt", "config_push")
    seed = bytes.fromhex(case["ed25519_seed"])
    msg = ConfigMessage(0).increment()
    S.set_display_name(msg.data, "Kallie")
    S.set_profile_pic(
        msg.data, ("http://example.org/omg-pic-123.bmp", b"secret78901234567890123456789012")
    )
    msg.data[b"+"] = 9  # the priority, a key our client keeps but does not set
    raw = msg.serialize()
    assert raw.hex() == case["plaintext"]
    assert seal(raw, seed, "UserProfile").hex() == case["ciphertext"]
    assert S.profile_pic(ConfigMessage.parse(raw).data) == (
        "http://example.org/omg-pic-123.bmp",
        b"secret78901234567890123456789012",
    )
    # libsession keeps the pair only when both are valid: a short key or empty URL clears both
    for bad in (("http://x/y", b"short"), ("", b"k" * 32)):
        S.set_profile_pic(msg.data, bad)
        assert b"p" not in msg.data and b"q" not in msg.data


def test_profile_pictures_sync_to_the_other_device(tmp_path: Path) -> None:
    """Our picture set (and removed) on one device reaches the other through UserProfile;
    a picture an approved contact sent reaches it through that contact's Contacts entry."""
    a, b, _swarm = _pair(tmp_path)
    pic = ("https://files.example/file/abc", bytes(range(32)))
    with a.db.tx():
        a.db.put_avatar(None, pic)
        a.config.push_avatar(pic)
    a.push()
    b.poll()
    assert b.db.avatar() == pic
    assert b.view()[0] is None  # the name was never set; nothing else changed

    a.set_contact(BOB, name="Bob", approved=1)
    dm = pb.DataMessage(profileKey=b"\x07" * 32)
    dm.profile.profilePicture = "https://files.example/file/bob"
    with a.db.tx():
        seen = a.config.saw_profile(BOB, dm)
    assert seen is not None and seen.url == dm.profile.profilePicture
    with a.db.tx():  # the same picture again changes nothing
        assert a.config.saw_profile(BOB, dm) is None
    a.push()
    b.poll()
    assert b.db.avatar(BOB) == (dm.profile.profilePicture, b"\x07" * 32)
    state = ConfigMessage.parse(b.db.config_state(S.NS_CONTACTS) or b"")
    entry = state.data[b"c"][bytes.fromhex(BOB)]
    assert (entry[b"p"], entry[b"q"]) == (dm.profile.profilePicture.encode(), b"\x07" * 32)
    # a stranger's picture is kept locally but not synced (it is no contact of ours)
    with a.db.tx():
        assert a.config.saw_profile(CAROL, dm) is not None
    a.push()
    b.poll()
    assert b.db.avatar(CAROL) is None

    with a.db.tx():
        a.db.put_avatar(None, None)
        a.config.push_avatar(None)
    a.push()
    b.poll()
    assert b.db.avatar() is None


async def test_read_state_syncs_between_devices(tmp_path: Path) -> None:
    """ConvoInfoVolatile: reading a conversation on one device marks it read on the other
    (through the real mark_read, outbox, sealing and merge)."""
    import hashlib

    from session.client import Client, ReadElsewhere
    from session.client import messages as M
    from session.client import sync as S

    bob = Identity.generate()
    one = Client.open(tmp_path / "one", background=False)
    two = Client.open(tmp_path / "two", mnemonic=one.identity.mnemonic, background=False)
    events = two.events()
    try:
        rows = []
        for i, body in enumerate(("first", "second")):
            t = 1_700_000_000_000 + i
            data = M.seal(bob, one.session_id, M.text(body, sent_ms=t), t)
            rows.append((hashlib.sha256(data.encode()).hexdigest(), data, 0))
        for dev in (one, two):
            dev.process_stored(rows)
            await dev.accept_request(bob.session_id)
        await one.mark_read(bob.session_id)
        pushed = [e for e in one.outbox.due(2**62) if e.namespace == S.NS_CONVO_INFO]
        assert len(pushed) == 1
        two.config.apply([("h-convo", pushed[0].data, 0)], S.NS_CONVO_INFO)
        assert [m.status for m in two.messages(bob.session_id)] == ["read", "read"]
        assert [e for e in events.pending() if isinstance(e, ReadElsewhere)] == [
            ReadElsewhere(bob.session_id, 1_700_000_000_001)
        ]
        # no read receipt from the second device: only the first sent one
        assert not [e for e in two.outbox.due(2**62) if e.kind == "receipt"]
    finally:
        events.close()
        await one.close()
        await two.close()


async def test_a_restored_device_sees_as_read_what_another_read(tmp_path: Path) -> None:
    """A device restored from the phrase applies the synced read marks first (its first poll
    fetches the configs, then the messages): messages it stores afterwards that another
    device had read are read here too; a newer one stays unread."""
    import hashlib

    from session.client import Client
    from session.client import messages as M
    from session.client import sync as S

    bob = Identity.generate()
    one = Client.open(tmp_path / "one", background=False)
    try:
        rows = []
        for i, body in enumerate(("first", "second", "newer")):
            t = 1_700_000_000_000 + i
            data = M.seal(bob, one.session_id, M.text(body, sent_ms=t), t)
            rows.append((hashlib.sha256(data.encode()).hexdigest(), data, 0))
        one.process_stored(rows[:2])
        await one.accept_request(bob.session_id)
        await one.mark_read(bob.session_id)
        pushed = [e for e in one.outbox.due(2**62) if e.namespace == S.NS_CONVO_INFO]
        two = Client.open(tmp_path / "two", mnemonic=one.identity.mnemonic, background=False)
        try:
            two.config.apply([("h-convo", pushed[-1].data, 0)], S.NS_CONVO_INFO)
            two.process_stored(rows)
            assert [m.status for m in two.messages(bob.session_id)] == ["read", "read", "received"]
        finally:
            await two.close()
    finally:
        await one.close()


def test_read_marks_are_keyed_as_libsession_keys_them() -> None:
    """ConvoInfoVolatile keys a 1:1 conversation under ``1`` and a group under ``g`` by the
    ID's 33 bytes (libsession's tests write ``data["1"][from_hex(id)]``); an entry an earlier
    version of ours keyed in hex is still read, and moved to the right key when next set."""
    from session.client import sync as S

    one, group = "05" + "ab" * 32, "03" + "cd" * 32
    data: dict[bytes, object] = {b"1": {one.encode(): {b"r": 5, b"x": 1}}}
    assert S.last_read(data) == {one: 5}
    S.set_last_read(data, one, 7)
    S.set_last_read(data, group, 9)
    S.set_last_read(data, group, 8)  # (never backwards)
    assert data[b"1"] == {bytes.fromhex(one): {b"r": 7, b"x": 1}}
    assert data[b"g"] == {bytes.fromhex(group): {b"r": 9}}
    assert S.last_read(data) == {one: 7, group: 9}
    with pytest.raises(ValueError):
        S.set_last_read(data, "15" + "00" * 32, 1)
    # both keys for one conversation (a merge of an old device's config with a new one's):
    # read as the later mark, and the hex one folded in and gone once the mark is set again
    data[b"1"][one.encode()] = {b"r": 11}  # type: ignore[index]
    assert S.last_read(data)[one] == 11
    S.set_last_read(data, one, 10)
    assert data[b"1"] == {bytes.fromhex(one): {b"r": 11, b"x": 1}}
