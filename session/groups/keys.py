"""The Keys config of a 03 group: key generations, rekeys, supplements and their expiry
(client spec §3.2.2; libsession ``groups::Keys``). Pure state over bytes: the client stores
key messages in the group swarm (namespace 12) and feeds what it fetches to
:meth:`GroupKeys.load_key_message`.

::

    keys = GroupKeys(group.group_id, me, admin=group)          # an admin device
    msg = keys.rekey(member_ids)                                 # store in ns 12, then load it
    keys.load_key_message(hash_of_msg, msg, stored_at_ms)
    ct = keys.encrypt_message(envelope)                          # a group message (ns 11)
    keys.decrypt_message(ct)                                     # tries every generation

* A rekey makes a new generation readable only by the listed members (removing someone is a
  rekey without them). Its key is derived from the sorted member list, the generation and the
  group seed, so two admins rekeying the same membership at once produce the same key.
* A supplement gives newly added members the existing keys without a rekey.
* A generation is kept until the next one has been in use for 60 days (so late messages still
  open); swarm timestamps decide, not the local clock.
* Two admins who rekey concurrently for different memberships create two keys of one
  generation; every device orders them the same way (generation, timestamp, key) and so
  encrypts with the same newest key, and :meth:`GroupKeys.needs_rekey` tells an admin to issue
  a fresh generation over the merged membership.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable

from session import _core
from session.errors import InvalidInput, SessionError
from session.groups.crypto import (
    GroupIdentity,
    GroupMessage,
    decrypt_message,
    encrypt_message,
    parse_group_id,
)
from session.identity import Identity

__all__ = [
    "KEY_EXPIRY_MS",
    "MAX_MEMBERS",
    "MESSAGE_KEY_MULTIPLE",
    "GroupKeys",
    "KeyGeneration",
    "NoGroupKey",
]

KEY_EXPIRY_MS = 60 * 24 * 3600 * 1000
"""A superseded generation is dropped once its successor is this old (libsession KEY_EXPIRY)."""
MESSAGE_KEY_MULTIPLE = 75  # member entries per key message; equals _core.GROUP_MESSAGE_KEY_MULTIPLE
MAX_MEMBERS = 100
"""Largest group (members, admins included) this implementation creates keys for."""


class NoGroupKey(SessionError):
    """The device holds no key of the group yet (no key message for it has been loaded)."""


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class KeyGeneration:
    """One group key; ordered as libsession orders them (generation, timestamp, key)."""

    generation: int
    timestamp_ms: int
    key: bytes = dataclasses.field(repr=False)


@dataclasses.dataclass(slots=True)
class _Pending:
    generation: int
    key: bytes
    message: bytes


class GroupKeys:
    """The key state of one device in one group (an admin when ``admin`` is given)."""

    def __init__(self, group_id: str, me: Identity, *, admin: GroupIdentity | None = None) -> None:
        self._group_pk = parse_group_id(group_id)
        if admin is not None and admin.group_id != group_id:
            raise InvalidInput("the admin key given is not this group's key")
        self.group_id = group_id
        self.me = me
        self.admin = admin
        self.keys: list[KeyGeneration] = []
        self._pending: _Pending | None = None
        self._active: dict[int, set[str]] = {}

    # -- state

    @property
    def is_admin(self) -> bool:
        return self.admin is not None

    @property
    def pending_config(self) -> bytes | None:
        """The rekey message this admin made and has not seen stored yet (push it to ns 12)."""
        return self._pending.message if self._pending else None

    def group_keys(self) -> list[bytes]:
        """Every usable key, the one to encrypt with first (pending key, then newest first)."""
        out = [self._pending.key] if self._pending else []
        out.extend(k.key for k in reversed(self.keys))
        return out

    @property
    def encryption_key(self) -> bytes:
        """The key new messages are encrypted with."""
        if self._pending:
            return self._pending.key
        if not self.keys:
            raise NoGroupKey("no key of this group has been received yet")
        return self.keys[-1].key

    @property
    def current_generation(self) -> int | None:
        if self._pending:
            return self._pending.generation
        return self.keys[-1].generation if self.keys else None

    def current_hashes(self) -> set[str]:
        """Hashes of the key messages still needed (keep them alive in the swarm)."""
        return set().union(*self._active.values()) if self._active else set()

    def needs_rekey(self) -> bool:
        """True for an admin when two keys share the newest generation (concurrent rekeys)."""
        return (
            self.is_admin
            and len(self.keys) >= 2
            and self.keys[-1].generation == self.keys[-2].generation
        )

    # -- admin operations

    def _require_admin(self) -> GroupIdentity:
        if self.admin is None:
            raise InvalidInput("only an admin (holding the group key) can do this")
        return self.admin

    def rekey(self, member_session_ids: Iterable[str]) -> bytes:
        """A new key generation for exactly these members (admins included): the signed key
        message to store in namespace 12. Until it is loaded back it is pending and used."""
        admin = self._require_admin()
        ids = sorted(set(member_session_ids))
        if len(ids) > MAX_MEMBERS:
            raise InvalidInput(f"a group has at most {MAX_MEMBERS} members, got {len(ids)}")
        gen = self.keys[-1].generation + 1 if self.keys else 0
        msg, key = _core.group_rekey(admin.seed(), ids, gen)
        self._pending = _Pending(gen, key, msg)
        return msg

    def key_supplement(self, session_ids: Iterable[str]) -> bytes:
        """A key message giving ``session_ids`` (newly added members) every current key."""
        admin = self._require_admin()
        if not self.keys:
            raise NoGroupKey("there are no keys to give yet: load the first rekey message")
        ids = list(session_ids)
        if not ids:
            raise InvalidInput("give at least one Session ID")
        keys = [(k.generation, k.key, k.timestamp_ms) for k in self.keys]
        return _core.group_key_supplement(admin.seed(), ids, keys)

    # -- loading

    def load_key_message(self, msg_hash: str, data: bytes, timestamp_ms: int) -> bool:
        """Reads a key message fetched from namespace 12 (stored at ``timestamp_ms``). Returns
        True when it gave this device a key. Raises InvalidSignature (not the group's
        signature) or InvalidInput (malformed); nothing changes then."""
        if self.admin is not None:
            found, gen, _ = _core.group_load_key_message(
                self._group_pk, data, timestamp_ms, admin_seed=self.admin.seed()
            )
        else:
            found, gen, _ = _core.group_load_key_message(
                self._group_pk, data, timestamp_ms, member=self.me
            )
        new = [KeyGeneration(g, t, k) for g, k, t in found]
        p = self._pending
        if p is not None and new and (new[0].generation > p.generation or new[0].key == p.key):
            self._pending = None
        if not new:
            self._active.setdefault(gen, set()).add(msg_hash)
            self._remove_expired()
            return False
        for k in new:
            self._insert(msg_hash, k)
        return True

    def _insert(self, msg_hash: str, new: KeyGeneration) -> None:
        if any(k.generation == new.generation and k.key == new.key for k in self.keys):
            self._active.setdefault(new.generation, set()).add(msg_hash)
            return
        pos = bisect.bisect_left(self.keys, new)
        if (
            len(self.keys) >= 2
            and pos == 0
            and new.generation < self.keys[0].generation
            and self.keys[0].timestamp_ms + KEY_EXPIRY_MS < self.keys[-1].timestamp_ms
        ):
            return  # older than a generation that has itself expired: stale
        self._active.setdefault(new.generation, set()).add(msg_hash)
        self.keys.insert(pos, new)
        self._remove_expired()

    def _remove_expired(self) -> None:
        keys = self.keys
        if len(keys) >= 2:
            newest = keys[-1].timestamp_ms
            keep_from = 0
            i = 0
            while i < len(keys):
                j = i + 1
                while j < len(keys) and keys[j].generation == keys[i].generation:
                    j += 1
                if j == len(keys):
                    break
                # keys[j] starts the next generation: once it is older than the expiry, every
                # generation before it is no longer needed
                if keys[j].timestamp_ms + KEY_EXPIRY_MS < newest:
                    keep_from = j
                else:
                    break
                i = j
            del keys[:keep_from]
        if keys:
            oldest = keys[0].generation
            self._active = {g: h for g, h in self._active.items() if g >= oldest}
        else:
            self._active.clear()

    # -- messages

    def encrypt_message(self, plaintext: bytes, *, compress: bool = True) -> bytes:
        """A group message from this device under the current key."""
        return encrypt_message(self.me, self.encryption_key, plaintext, compress=compress)

    def decrypt_message(self, ciphertext: bytes) -> GroupMessage:
        """Opens a group message with any key this device holds (DecryptionError if none)."""
        keys = self.group_keys()
        if not keys:
            raise NoGroupKey("no key of this group has been received yet")
        return decrypt_message(keys, ciphertext)

    def __repr__(self) -> str:
        role = "admin" if self.is_admin else "member"
        return f"GroupKeys({self.group_id}, {role}, {len(self.keys)} keys)"
