"""The 03 groups in a user's own UserGroups config (namespace 5), so every device of the user
knows its groups and keys (libsession ``user_groups``: top-level ``g``, keyed by the group's
32-byte Ed25519 key without the ``03``).

Per group: ``K`` the admin seed (always present, empty when not an admin), ``s`` the member
auth data (only when ``K`` is empty), ``n`` the name from the invitation, ``r`` removed status,
``@`` notifications (1 all, 2 off, 3 mentions), ``!`` muted until (unix s), ``+`` priority
(−1 hidden, >0 pinned), ``i`` 1 while the invitation is pending, ``j`` joined at (unix s).
Communities (libsession's ``o``): ``o`` → {canonical base URL (``http://host[:port]``, lower
case, default port left out) → {``#`` the server's 32-byte X25519 key, ``R`` → {lower-case room
token → {``n`` the token as written, and the ``@ ! + i j`` values above}}}}.
The config itself is sealed with the user's Ed25519 seed under the domain ``UserGroups``
(:func:`session.groups.config.seal`) and merged like every config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from session.errors import InvalidInput
from session.groups.config import ConfigData
from session.groups.crypto import GROUP_ID_PREFIX, GroupIdentity, parse_group_id

__all__ = [
    "DOMAIN",
    "NAMESPACE",
    "CommunityEntry",
    "UserGroup",
    "get_communities",
    "get_groups",
    "remove_community",
    "remove_group",
    "set_community",
    "set_group",
]

NAMESPACE = 5
DOMAIN = "UserGroups"


@dataclasses.dataclass
class UserGroup:
    """One 03 group as the user's devices share it."""

    group_id: str
    admin_seed: bytes = dataclasses.field(default=b"", repr=False)  # 32 bytes for admins
    auth_data: bytes = dataclasses.field(default=b"", repr=False)  # 100 bytes for members
    name: str = ""
    removed_status: int = 0
    notify: int = 0
    mute_until: int = 0
    priority: int = 0
    invited: bool = False
    joined_at: int = 0

    @property
    def is_admin(self) -> bool:
        return len(self.admin_seed) == 32

    def admin_identity(self) -> GroupIdentity | None:
        """The group key, for an admin."""
        return GroupIdentity(self.admin_seed) if self.is_admin else None

    def to_data(self) -> dict[bytes, Any]:
        if self.admin_seed and len(self.admin_seed) != 32:
            raise InvalidInput("a group's admin seed is 32 bytes")
        if self.admin_seed and GroupIdentity(self.admin_seed).group_id != self.group_id:
            raise InvalidInput("the admin seed is not this group's key")
        d: dict[bytes, Any] = {b"K": self.admin_seed}
        if not self.admin_seed and self.auth_data:
            d[b"s"] = self.auth_data
        optional: dict[bytes, Any] = {
            b"n": self.name.encode(),
            b"r": self.removed_status,
            b"@": self.notify,
            b"!": self.mute_until,
            b"+": self.priority,
            b"i": int(self.invited),
            b"j": self.joined_at,
        }
        d.update({k: v for k, v in optional.items() if v})
        return d

    @classmethod
    def from_data(cls, group_id: str, d: dict[bytes, Any]) -> UserGroup:
        def num(k: bytes) -> int:
            v = d.get(k)
            return v if isinstance(v, int) else 0

        def raw(k: bytes) -> bytes:
            v = d.get(k)
            return v if isinstance(v, bytes) else b""

        seed = raw(b"K")
        return cls(
            group_id=group_id,
            admin_seed=seed if len(seed) == 32 else b"",
            auth_data=b"" if len(seed) == 32 else raw(b"s"),
            name=raw(b"n").decode(errors="replace"),
            removed_status=num(b"r"),
            notify=num(b"@"),
            mute_until=num(b"!"),
            priority=num(b"+"),
            invited=num(b"i") == 1,
            joined_at=num(b"j"),
        )


def get_groups(data: ConfigData) -> dict[str, UserGroup]:
    """The 03 groups in UserGroups config data, by group ID (malformed entries skipped)."""
    out: dict[str, UserGroup] = {}
    g = data.get(b"g")
    if isinstance(g, dict):
        for k, v in g.items():
            if isinstance(k, bytes) and len(k) == 32 and isinstance(v, dict):
                gid = GROUP_ID_PREFIX + k.hex()
                out[gid] = UserGroup.from_data(gid, v)
    return out


def set_group(data: ConfigData, group: UserGroup) -> None:
    """Adds or updates a group entry."""
    data.setdefault(b"g", {})[parse_group_id(group.group_id)] = group.to_data()


def remove_group(data: ConfigData, group_id: str) -> bool:
    """Removes a group entry; returns whether it was there."""
    g = data.get(b"g")
    return isinstance(g, dict) and g.pop(parse_group_id(group_id), None) is not None


@dataclasses.dataclass(frozen=True)
class CommunityEntry:
    """One joined community room as the user's devices share it."""

    base_url: str  # canonical: scheme://host[:port], lower case
    room: str  # the token as written (the config key is its lower case)
    pubkey: bytes  # the server's 32-byte X25519 key
    priority: int = 0
    joined_at: int = 0


def get_communities(data: ConfigData) -> list[CommunityEntry]:
    """The community rooms in UserGroups config data (malformed entries skipped)."""
    out: list[CommunityEntry] = []
    o = data.get(b"o")
    if not isinstance(o, dict):
        return out
    for base, server in o.items():
        if not (isinstance(base, bytes) and isinstance(server, dict)):
            continue
        pk, rooms = server.get(b"#"), server.get(b"R")
        if not (isinstance(pk, bytes) and len(pk) == 32 and isinstance(rooms, dict)):
            continue
        for key, info in rooms.items():
            if not (isinstance(key, bytes) and isinstance(info, dict)):
                continue
            name = info.get(b"n")
            token = name if isinstance(name, bytes) and name.lower() == key else key
            prio, joined = info.get(b"+"), info.get(b"j")
            out.append(
                CommunityEntry(
                    base.decode(errors="replace"),
                    token.decode(errors="replace"),
                    pk,
                    prio if isinstance(prio, int) else 0,
                    joined if isinstance(joined, int) else 0,
                )
            )
    return out


def set_community(data: ConfigData, entry: CommunityEntry) -> None:
    """Adds or updates a community room entry."""
    if len(entry.pubkey) != 32:
        raise InvalidInput("a community server's public key is 32 bytes")
    server = data.setdefault(b"o", {}).setdefault(entry.base_url.encode(), {})
    server[b"#"] = entry.pubkey
    info: dict[bytes, Any] = {b"n": entry.room.encode()}
    if entry.priority:
        info[b"+"] = entry.priority
    if entry.joined_at > 0:
        info[b"j"] = entry.joined_at
    server.setdefault(b"R", {})[entry.room.lower().encode()] = info


def remove_community(data: ConfigData, base_url: str, room: str) -> bool:
    """Removes a community room entry (and its server when no room is left)."""
    o = data.get(b"o")
    if not isinstance(o, dict):
        return False
    server = o.get(base_url.encode())
    rooms = server.get(b"R") if isinstance(server, dict) else None
    if not isinstance(rooms, dict) or rooms.pop(room.lower().encode(), None) is None:
        return False
    if not rooms:
        del o[base_url.encode()]
    return True
