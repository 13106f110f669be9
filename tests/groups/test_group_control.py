"""Admin signatures of group control messages: the texts Session's apps sign, checked with
libsodium (PyNaCl) directly; forged, replayed-at-another-time and other-group signatures fail."""

from __future__ import annotations

import pytest
from nacl.signing import VerifyKey

from session.errors import InvalidKey, InvalidSignature
from session.groups import control
from session.groups.control import InfoChange, MemberChange
from session.groups.crypto import GroupIdentity
from session.identity import Identity

TS = 1_700_000_123_456


def test_texts() -> None:
    bob = Identity(bytes(16))
    assert control.invite_text(bob.session_id, TS) == f"INVITE{bob.session_id}{TS}".encode()
    assert control.info_change_text(InfoChange.NAME, TS) == b"INFO_CHANGE11700000123456"
    assert control.member_change_text(MemberChange.REMOVED, TS) == b"MEMBER_CHANGE21700000123456"
    assert (
        control.delete_content_text(TS, ["05aa", "05bb"], ["h1", "h2"])
        == b"DELETE_CONTENT170000012345605aa05bbh1h2"
    )


def test_sign_and_verify() -> None:
    group, other = GroupIdentity.generate(), GroupIdentity.generate()
    for text in (
        control.invite_text(Identity().session_id, TS),
        control.info_change_text(InfoChange.DISAPPEARING_MESSAGES, TS),
        control.member_change_text(MemberChange.PROMOTED, TS),
        control.delete_content_text(TS, [Identity().session_id], ["hash"]),
    ):
        sig = control.sign(group, text)
        VerifyKey(group.ed25519_public).verify(text, sig)  # plain Ed25519 by the group key
        control.verify(group.group_id, text, sig)
        with pytest.raises(InvalidSignature):  # a non-admin (another key) signed it
            control.verify(group.group_id, text, control.sign(other, text))
        with pytest.raises(InvalidSignature):  # the same signature at another time
            control.verify(group.group_id, text.replace(b"1700000123456", b"1700000123457"), sig)
    with pytest.raises(InvalidKey):
        control.verify("05" + group.group_id[2:], b"x", bytes(64))
