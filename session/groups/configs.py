"""The group's signed configs: Info (namespace 13) and Members (namespace 14) (client spec
§3.2.3; libsession ``groups::Info`` / ``groups::Members``).

Both are config messages (:mod:`session.groups.config`) signed by the group key — only admins
can write them — and sealed under the group's current key. :class:`SignedConfig` keeps one of
them: it merges what is fetched (checking the group's signature, dropping what fails), lets an
admin change it and gives the bytes to store. :class:`GroupInfo` and :class:`GroupMember` are
typed views of the data (libsession's key letters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from session.errors import DecryptionError, InvalidInput, InvalidSignature
from session.groups.config import (
    ConfigData,
    ConfigMessage,
    ConfigParseError,
    merge,
    open_sealed,
    seal,
)
from session.groups.crypto import GroupIdentity, parse_group_id
from session.identity import parse_session_id, verify

__all__ = [
    "INFO_DOMAIN",
    "MAX_MEMBERS",
    "MEMBERS_DOMAIN",
    "NS_INFO",
    "NS_KEYS",
    "NS_MEMBERS",
    "NS_MESSAGES",
    "GroupInfo",
    "GroupMember",
    "SignedConfig",
    "get_members",
    "remove_member",
    "set_member",
]

NS_MESSAGES = 11
NS_KEYS = 12
NS_INFO = 13
NS_MEMBERS = 14
INFO_DOMAIN = "groups::Info"
MEMBERS_DOMAIN = "groups::Members"
MAX_MEMBERS = 100
NAME_MAX = 100
DESCRIPTION_MAX = 2000


def _truncate_utf8(text: str, limit: int) -> bytes:
    b = text.encode()
    return b[:limit].decode(errors="ignore").encode()


@dataclasses.dataclass
class GroupInfo:
    """The Info config's fields (``n`` name ≤ 100 bytes, ``o`` description ≤ 2000 bytes, ``c``
    created (s), ``E`` disappear-after-send timer (s), ``d`` delete-before (s), ``D``
    delete-attachments-before (s), ``p``/``q`` picture URL and key, ``!`` destroyed)."""

    name: str = ""
    description: str = ""
    created: int | None = None
    disappear_after_send: int | None = None
    delete_before: int | None = None
    delete_attachments_before: int | None = None
    pic_url: str = ""
    pic_key: bytes = b""
    destroyed: bool = False

    @classmethod
    def from_data(cls, data: ConfigData) -> GroupInfo:
        def text(k: bytes) -> str:
            v = data.get(k)
            return v.decode(errors="replace") if isinstance(v, bytes) else ""

        def num(k: bytes) -> int | None:
            v = data.get(k)
            return v if isinstance(v, int) else None

        key = data.get(b"q")
        return cls(
            name=text(b"n"),
            description=text(b"o"),
            created=num(b"c"),
            disappear_after_send=num(b"E"),
            delete_before=num(b"d"),
            delete_attachments_before=num(b"D"),
            pic_url=text(b"p"),
            pic_key=key if isinstance(key, bytes) else b"",
            destroyed=data.get(b"!") == 1,
        )

    def write(self, data: ConfigData) -> None:
        """Stores these fields into config data (empty/None/0 fields are removed)."""
        has_pic = bool(self.pic_url) and len(self.pic_key) == 32
        fields: dict[bytes, Any] = {
            b"n": _truncate_utf8(self.name, NAME_MAX) or None,
            b"o": _truncate_utf8(self.description, DESCRIPTION_MAX) or None,
            b"c": self.created or None,
            b"E": self.disappear_after_send or None,
            b"d": self.delete_before or None,
            b"D": self.delete_attachments_before or None,
            # the picture is stored only as a pair: a URL and its 32-byte key
            b"p": self.pic_url.encode() if has_pic else None,
            b"q": self.pic_key if has_pic else None,
            b"!": 1 if self.destroyed else None,
        }
        for k, v in fields.items():
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v


@dataclasses.dataclass
class GroupMember:
    """One entry of the Members config (``m`` → 33-byte Session ID → ``n`` name (always
    present), ``p``/``q`` picture, ``I`` invite status (not for admins), ``s`` supplement flag,
    ``A`` admin, ``P`` promotion status, ``R`` removed status). Statuses: 1 sent, 2 failed,
    3 not sent yet, None = done; removed: 1 removed, 2 removed with their messages."""

    session_id: str
    name: str = ""
    admin: bool = False
    invite_status: int | None = None  # 1 sent, 2 failed, 3 not sent yet; None = accepted
    supplement: bool = False
    promotion_status: int | None = None
    removed_status: int | None = None
    pic_url: str = ""
    pic_key: bytes = b""

    def to_data(self) -> dict[bytes, Any]:
        d: dict[bytes, Any] = {b"n": _truncate_utf8(self.name, NAME_MAX)}
        if self.pic_url:
            d[b"p"] = self.pic_url.encode()
        if self.pic_key:
            d[b"q"] = self.pic_key
        if self.admin:
            d[b"A"] = 1
        elif self.invite_status:
            d[b"I"] = self.invite_status
        if self.promotion_status:
            d[b"P"] = self.promotion_status
        if self.supplement:
            d[b"s"] = 1
        if self.removed_status:
            d[b"R"] = self.removed_status
        return d

    @classmethod
    def from_data(cls, session_id: str, d: dict[bytes, Any]) -> GroupMember:
        def text(k: bytes) -> str:
            v = d.get(k)
            return v.decode(errors="replace") if isinstance(v, bytes) else ""

        def num(k: bytes) -> int | None:
            v = d.get(k)
            return v if isinstance(v, int) else None

        key = d.get(b"q")
        admin = bool(num(b"A"))
        invite = None if admin else num(b"I") or None
        promotion = num(b"P") or None
        return cls(
            session_id=session_id,
            name=text(b"n"),
            admin=admin,
            invite_status=invite,
            # as libsession reads it: only meaningful for a pending invite of a non-admin
            supplement=bool(invite and not promotion and num(b"s")),
            promotion_status=promotion,
            removed_status=num(b"R") or None,
            pic_url=text(b"p"),
            pic_key=key if isinstance(key, bytes) else b"",
        )


def _member_key(session_id: str) -> bytes:
    return b"\x05" + parse_session_id(session_id)


def get_members(data: ConfigData) -> dict[str, GroupMember]:
    """The members in Members config data, by Session ID (malformed entries skipped)."""
    out: dict[str, GroupMember] = {}
    m = data.get(b"m")
    if isinstance(m, dict):
        for k, v in m.items():
            if isinstance(k, bytes) and len(k) == 33 and k[0] == 5 and isinstance(v, dict):
                sid = k.hex()
                out[sid] = GroupMember.from_data(sid, v)
    return out


def set_member(data: ConfigData, member: GroupMember) -> None:
    """Adds or updates a member; a 101st member is refused (InvalidInput)."""
    key = _member_key(member.session_id)
    m = data.setdefault(b"m", {})
    if key not in m and len(m) >= MAX_MEMBERS:
        raise InvalidInput(f"a group has at most {MAX_MEMBERS} members")
    m[key] = member.to_data()


def remove_member(data: ConfigData, session_id: str) -> bool:
    """Removes a member; returns whether it was there."""
    m = data.get(b"m")
    if not isinstance(m, dict):
        return False
    return m.pop(_member_key(session_id), None) is not None


class SignedConfig:
    """One of the group's signed configs (Info or Members) on one device.

    ``merge_fetched`` combines the stored messages with the device's own state (libsession's
    merge); messages that no key opens or that the group did not sign are dropped and reported.
    An admin calls ``edit`` to get a mutable data dict and ``push`` for the bytes to store.
    """

    def __init__(self, group_id: str, domain: str, admin: GroupIdentity | None = None) -> None:
        if domain not in (INFO_DOMAIN, MEMBERS_DOMAIN):
            raise InvalidInput(f"unknown group config domain {domain!r}")
        self._pk = parse_group_id(group_id)
        if admin is not None and admin.group_id != group_id:
            raise InvalidInput("the admin key given is not this group's key")
        self.group_id = group_id
        self.domain = domain
        self.admin = admin
        self.current = ConfigMessage(signer=admin.sign if admin else None)
        self._dirty = False

    def _verify(self, data: bytes, sig: bytes) -> bool:
        try:
            verify(self._pk, data, sig)
        except InvalidSignature:
            return False
        return True

    @property
    def data(self) -> ConfigData:
        return self.current.data

    def merge_fetched(self, sealed: Sequence[bytes], keys: Sequence[bytes]) -> list[str]:
        """Merges fetched messages; returns a reason for each one dropped."""
        dropped: list[str] = []
        opened: list[bytes] = []
        for i, item in enumerate(sealed):
            try:
                opened.append(open_sealed(item, keys, self.domain))
            except (DecryptionError, ConfigParseError, InvalidInput) as e:
                dropped.append(f"message {i}: {e}")
        if self.current.seqno > 0 or self._dirty:
            opened.insert(0, self.current.serialize())
        if not opened:
            return dropped
        signer = self.admin.sign if self.admin else None
        errors: list[tuple[int, Exception]] = []
        try:
            merged = merge(
                opened,
                verifier=self._verify,
                signer=signer,
                on_error=lambda i, e: errors.append((i, e)),
            )
        except ConfigParseError as e:
            dropped.append(str(e))
            return dropped
        dropped += [f"config {i}: {e}" for i, e in errors]
        self.current = merged
        self._dirty = merged.merged
        return dropped

    def edit(self) -> ConfigData:
        """The data to change (admins only); the change is pushed by :meth:`push`."""
        if self.admin is None:
            raise InvalidInput("only an admin (holding the group key) can change the group")
        if not (self.current.mutable and self._dirty):
            self.current = self.current.increment()
            self.current.signer = self.admin.sign
        self._dirty = True
        return self.current.data

    @property
    def needs_push(self) -> bool:
        return self._dirty

    def push(self, key: bytes) -> bytes:
        """The sealed, signed message to store (under the group's current ``key``)."""
        if self.admin is None:
            raise InvalidInput("only an admin (holding the group key) can change the group")
        return seal(self.current.serialize(), key, self.domain)

    def confirm_pushed(self) -> None:
        """The pushed message is stored: the next edit starts a new seqno."""
        self._dirty = False
