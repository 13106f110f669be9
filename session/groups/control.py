"""Admin signatures of group control messages (client spec §3.2.6; DataMessage field 120,
``groupUpdateMessage``).

Changes to a group are announced with control messages; the ones only an admin may send carry
an Ed25519 signature by the group key over a short UTF-8 text (as Session's apps build it):

* invite (sent 1:1): ``"INVITE" + invitee Session ID + timestamp``;
* info change (name 1, avatar 2, disappearing messages 3): ``"INFO_CHANGE" + type + timestamp``;
* member change (added 1, removed 2, promoted 3): ``"MEMBER_CHANGE" + type + timestamp``;
* delete member content: ``"DELETE_CONTENT" + timestamp + Session IDs + message hashes``
  (each list concatenated without separators).

Timestamps are the message's network timestamp in milliseconds, in decimal. A receiver drops a
control message whose signature does not verify under the group's key (:func:`verify`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from session.groups.crypto import GroupIdentity, parse_group_id
from session.identity import verify as ed25519_verify

__all__ = [
    "InfoChange",
    "MemberChange",
    "delete_content_text",
    "info_change_text",
    "invite_text",
    "member_change_text",
    "sign",
    "verify",
]


class InfoChange(enum.IntEnum):
    """``GroupUpdateInfoChangeMessage.Type``."""

    NAME = 1
    AVATAR = 2
    DISAPPEARING_MESSAGES = 3


class MemberChange(enum.IntEnum):
    """``GroupUpdateMemberChangeMessage.Type``."""

    ADDED = 1
    REMOVED = 2
    PROMOTED = 3


def invite_text(invitee_session_id: str, timestamp_ms: int) -> bytes:
    return f"INVITE{invitee_session_id}{int(timestamp_ms)}".encode()


def info_change_text(change: InfoChange, timestamp_ms: int) -> bytes:
    return f"INFO_CHANGE{int(change)}{int(timestamp_ms)}".encode()


def member_change_text(change: MemberChange, timestamp_ms: int) -> bytes:
    return f"MEMBER_CHANGE{int(change)}{int(timestamp_ms)}".encode()


def delete_content_text(
    timestamp_ms: int, session_ids: Iterable[str], message_hashes: Iterable[str]
) -> bytes:
    return (
        f"DELETE_CONTENT{int(timestamp_ms)}{''.join(session_ids)}{''.join(message_hashes)}".encode()
    )


def sign(group: GroupIdentity, text: bytes) -> bytes:
    """The admin signature of a control message's text (64 bytes)."""
    return group.sign(text)


def verify(group_id: str, text: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless the group's key signed ``text`` (InvalidKey for a
    malformed group ID)."""
    ed25519_verify(parse_group_id(group_id), text, signature)
