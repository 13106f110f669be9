"""Sealing config messages (compress, pad, encrypt; TV-25) and the group's signed Info and
Members configs: admins write, members read, forgeries are dropped, concurrent admin edits
merge, the 101st member is refused."""

from __future__ import annotations

import os

import pytest

from session.errors import DecryptionError, InvalidInput
from session.groups.config import ConfigMessage, open_sealed, seal
from session.groups.configs import (
    INFO_DOMAIN,
    MAX_MEMBERS,
    MEMBERS_DOMAIN,
    GroupInfo,
    GroupMember,
    SignedConfig,
    get_members,
    remove_member,
    set_member,
)
from session.groups.crypto import GroupIdentity
from session.identity import Identity
from vectorlib import load_vectors


def test_seal_matches_the_userprofile_push_vector() -> None:
    case = load_vectors("config_encrypt", "config_push")[0]
    plain = bytes.fromhex(case["plaintext"])
    key = bytes.fromhex(case["ed25519_seed"])
    sealed = seal(plain, key, case["domain_utf8"], compress=False)
    assert sealed.hex() == case["ciphertext"]
    assert open_sealed(sealed, [os.urandom(32), key], case["domain_utf8"]) == plain
    parsed = ConfigMessage.parse(plain)
    assert parsed.seqno == 1 and parsed.data[b"n"] == b"Kallie"


def test_seal_compresses_only_when_smaller_and_refuses_bad_input() -> None:
    key = os.urandom(32)
    m = ConfigMessage(3)
    m.data[b"x"] = b"abc" * 3000
    raw = m.serialize()
    sealed = seal(raw, key, "UserProfile")
    assert len(sealed) < len(raw)  # 9 KB of repetition compresses to one bucket
    assert open_sealed(sealed, [key], "UserProfile") == raw
    with pytest.raises(DecryptionError):
        open_sealed(sealed, [os.urandom(32)], "UserProfile")
    with pytest.raises(DecryptionError):
        open_sealed(sealed, [key], "Contacts")
    big = ConfigMessage(1)
    big.data[b"x"] = os.urandom(80_000)
    with pytest.raises(InvalidInput, match="too large"):
        seal(big.serialize(), key, "UserProfile")


def _member(
    p: Identity, *, admin: bool = False, invite_status: int | None = None, supplement: bool = False
) -> GroupMember:
    return GroupMember(
        p.session_id,
        name="n" + p.session_id[-4:],
        admin=admin,
        invite_status=invite_status,
        supplement=supplement,
    )


def test_admins_write_members_read_forgeries_dropped() -> None:
    group = GroupIdentity.generate()
    key = os.urandom(32)
    alice, bob, carol = Identity(), Identity(), Identity()
    info_a = SignedConfig(group.group_id, INFO_DOMAIN, admin=group)
    GroupInfo(name="Lunch club", description="noon", created=1_700_000_000).write(info_a.edit())
    members_a = SignedConfig(group.group_id, MEMBERS_DOMAIN, admin=group)
    d = members_a.edit()
    set_member(d, _member(alice, admin=True))
    for p in (bob, carol):
        set_member(d, _member(p, invite_status=1, supplement=True))
    stored_info, stored_members = info_a.push(key), members_a.push(key)
    info_a.confirm_pushed()
    members_a.confirm_pushed()

    info_b = SignedConfig(group.group_id, INFO_DOMAIN)
    members_b = SignedConfig(group.group_id, MEMBERS_DOMAIN)
    # Mallory (not an admin) seals a rename under the right key, signed with her own key
    mallory = GroupIdentity.generate()
    forged = ConfigMessage(5, signer=mallory.sign)
    GroupInfo(name="pwned").write(forged.data)
    forged_sealed = seal(forged.serialize(), key, INFO_DOMAIN)
    dropped = info_b.merge_fetched([forged_sealed, stored_info, b"garbage"], [key])
    assert len(dropped) == 2 and any("signature" in r for r in dropped)
    assert GroupInfo.from_data(info_b.data).name == "Lunch club"
    assert not info_b.needs_push
    with pytest.raises(InvalidInput, match="only an admin"):
        info_b.edit()
    assert members_b.merge_fetched([stored_members], [key]) == []
    got = get_members(members_b.data)
    assert set(got) == {alice.session_id, bob.session_id, carol.session_id}
    assert got[alice.session_id].admin and got[bob.session_id].invite_status == 1
    assert got[bob.session_id].supplement and got[bob.session_id].name.startswith("n")


def test_concurrent_admin_edits_merge() -> None:
    group = GroupIdentity.generate()
    key = os.urandom(32)
    people = [Identity() for _ in range(4)]
    a1 = SignedConfig(group.group_id, MEMBERS_DOMAIN, admin=group)
    d = a1.edit()
    for p in people:
        set_member(d, _member(p))
    base = a1.push(key)
    a1.confirm_pushed()
    a2 = SignedConfig(group.group_id, MEMBERS_DOMAIN, admin=group)
    assert a2.merge_fetched([base], [key]) == []
    # at the same moment admin 1 removes people[2] and admin 2 removes people[3]
    assert remove_member(a1.edit(), people[2].session_id)
    assert remove_member(a2.edit(), people[3].session_id)
    p1, p2 = a1.push(key), a2.push(key)
    a1.confirm_pushed()
    a2.confirm_pushed()
    # a member cannot sign a merge: until an admin publishes one it shows the higher message
    reader = SignedConfig(group.group_id, MEMBERS_DOMAIN)
    assert reader.merge_fetched([p2, base, p1], [key]) == []
    assert len(get_members(reader.data)) == 3 and not reader.needs_push
    # the admins merge (both removals kept) and converge on the same message
    a1.merge_fetched([p1, p2], [key])
    a2.merge_fetched([p2, p1], [key])
    both_left = {people[0].session_id, people[1].session_id}
    assert set(get_members(a1.data)) == both_left
    assert a1.current.serialize() == a2.current.serialize()
    assert a1.needs_push
    merged = a1.push(key)
    a1.confirm_pushed()
    assert reader.merge_fetched([p1, merged, p2, base], [key]) == []
    assert set(get_members(reader.data)) == both_left


def test_member_limit_and_info_fields() -> None:
    data: dict = {}
    for i in range(MAX_MEMBERS):
        set_member(data, GroupMember(Identity(bytes([i]) * 16).session_id))
    with pytest.raises(InvalidInput, match="at most 100"):
        set_member(data, GroupMember(Identity(bytes([200]) * 16).session_id))
    set_member(data, GroupMember(Identity(bytes([0]) * 16).session_id, name="renamed"))
    assert len(get_members(data)) == MAX_MEMBERS
    info: dict = {}
    GroupInfo(name="é" * 80, disappear_after_send=3600, destroyed=True).write(info)
    back = GroupInfo.from_data(info)
    assert len(info[b"n"]) == 100 and back.name == "é" * 50  # truncated on a character
    assert back.disappear_after_send == 3600 and back.destroyed
    GroupInfo(name="x", created=0, pic_url="http://x/y").write(info)  # a URL without its key
    assert not {b"E", b"!", b"c", b"p", b"q"} & set(info)
    GroupInfo(pic_url="http://x/y", pic_key=bytes(32)).write(info)
    assert GroupInfo.from_data(info).pic_url == "http://x/y" and b"n" not in info


def test_member_fields_round_trip() -> None:
    p = Identity()
    cases = [
        GroupMember(p.session_id, name="a", invite_status=1, supplement=True),
        GroupMember(p.session_id, name="b", admin=True, promotion_status=1),
        GroupMember(p.session_id, removed_status=2, pic_url="http://x/y", pic_key=b"k" * 32),
    ]
    for m in cases:
        data: dict = {}
        set_member(data, m)
        assert get_members(data)[p.session_id] == m
        assert data[b"m"][b"\x05" + p.x25519_public][b"n"] == m.name.encode()  # always present
    # an admin's stale invite status and a supplement flag without a pending invite are ignored
    raw = {b"m": {b"\x05" + p.x25519_public: {b"n": b"", b"A": 1, b"I": 1, b"s": 1}}}
    got = get_members(raw)[p.session_id]
    assert got.admin and got.invite_status is None and not got.supplement
