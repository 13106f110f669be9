"""Group identity, group messages and multi-recipient encryption (client spec §3.2.1, §3.2.4).

::

    group = GroupIdentity.generate()             # the admin key; group.group_id = "03…"
    key = os.urandom(32)                         # a key generation (see the Keys config)
    ct = encrypt_message(alice, key, envelope)   # what is stored in the group swarm (ns 11)
    msg = decrypt_message([old_key, key], ct)    # msg.plaintext, msg.sender, msg.key_index

A group message is the sender's signed, zero-padded bencoded dict under XChaCha20-Poly1305 with
the group key (libsession ``groups::Keys::encrypt_message``): only members holding that key
generation read it, and the signature proves which member wrote it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Self

from session import _core
from session.errors import InvalidKey
from session.identity import Identity

__all__ = [
    "DEFAULT_PADDING",
    "GROUP_ID_PREFIX",
    "MAX_PLAINTEXT",
    "GroupIdentity",
    "GroupMessage",
    "decrypt_message",
    "encrypt_message",
    "multi_decrypt",
    "multi_encrypt",
]

GROUP_ID_PREFIX = "03"
DEFAULT_PADDING = 256
MAX_PLAINTEXT = 1_000_000  # libsession's limit; equals _core.GROUP_MESSAGE_MAX_PLAINTEXT


class GroupIdentity:
    """A group's Ed25519 identity; holding it (its 32-byte seed) is being an admin.

    ``group_id`` is ``03`` + hex of the Ed25519 public key: the swarm account of the group.
    It satisfies :class:`session.proto.rpc.auth.Signer`, so admins sign the group's swarm
    requests with it (``session_id`` is the group ID). ``repr`` shows only the group ID.
    """

    __slots__ = ("_keys",)

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidKey(f"a group seed must be 32 bytes, got {len(seed)}")
        self._keys = Identity(bytes(seed))

    @classmethod
    def generate(cls) -> Self:
        """A new group (32 random bytes)."""
        return cls(os.urandom(32))

    @property
    def group_id(self) -> str:
        return GROUP_ID_PREFIX + self._keys.ed25519_public.hex()

    @property
    def session_id(self) -> str:
        """The account the group's requests are for (the group ID)."""
        return self.group_id

    @property
    def ed25519_public(self) -> bytes:
        return self._keys.ed25519_public

    @property
    def x25519_public(self) -> bytes:
        """The X25519 form of the group key (the sender key of key distribution)."""
        return self._keys.x25519_public

    @property
    def keys(self) -> Identity:
        """The group key as an :class:`Identity` (for multi-encryption by the group)."""
        return self._keys

    def seed(self) -> bytes:
        """The 32-byte admin seed (secret: admins keep it in their UserGroups config)."""
        return self._keys.seed()

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature by the group key."""
        return self._keys.sign(message)

    def __repr__(self) -> str:
        return f"GroupIdentity({self.group_id})"


def parse_group_id(group_id: str) -> bytes:
    """The 32-byte Ed25519 key of a ``03…`` group ID; raises InvalidKey."""
    if (
        not isinstance(group_id, str)
        or len(group_id) != 66
        or not group_id.startswith(GROUP_ID_PREFIX)
    ):
        raise InvalidKey("a group ID is 66 hex characters starting with 03")
    try:
        return bytes.fromhex(group_id[2:])
    except ValueError:
        raise InvalidKey("a group ID may only contain hex digits") from None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupMessage:
    """A decrypted group message."""

    plaintext: bytes
    sender: str  # the author's Session ID (05…), proven by its signature
    key_index: int  # which of the keys given to decrypt_message opened it

    def __repr__(self) -> str:
        return f"GroupMessage({len(self.plaintext)} bytes, key {self.key_index})"


def encrypt_message(
    sender: Identity,
    group_key: bytes,
    plaintext: bytes,
    *,
    compress: bool = True,
    padding: int = DEFAULT_PADDING,
) -> bytes:
    """``plaintext`` (a serialized Envelope, at most :data:`MAX_PLAINTEXT` bytes) signed by
    ``sender`` and encrypted under the 32-byte ``group_key``, zstd-compressed when that is
    smaller, padded to a multiple of ``padding`` bytes (ciphertext included)."""
    return _core.group_encrypt_message(sender, group_key, plaintext, compress, padding)


def decrypt_message(group_keys: Sequence[bytes], ciphertext: bytes) -> GroupMessage:
    """Opens a group message with the first key that authenticates it (give the newest key
    first). Raises DecryptionError when no key opens it or its content is malformed,
    InvalidSignature when the author's signature is wrong."""
    plaintext, sender, index = _core.group_decrypt_message(list(group_keys), ciphertext)
    return GroupMessage(plaintext, sender, index)


def multi_encrypt(
    sender: Identity,
    recipients: Sequence[bytes],
    messages: Sequence[bytes],
    nonce: bytes,
    domain: bytes,
) -> list[bytes]:
    """One ciphertext per recipient X25519 key (libsession ``encrypt_for_multiple``): give one
    message for all or one per recipient; ``nonce`` (24 random bytes) is shared and sent
    alongside; ``domain`` separates uses. Ciphertexts are 16 bytes longer than the messages."""
    return _core.multi_encrypt(sender, list(recipients), list(messages), nonce, domain)


def multi_decrypt(
    recipient: Identity,
    sender_x25519: bytes,
    ciphertexts: Sequence[bytes],
    nonce: bytes,
    domain: bytes,
) -> bytes:
    """The message among ``ciphertexts`` addressed to ``recipient``; DecryptionError if none."""
    return _core.multi_decrypt(recipient, sender_x25519, list(ciphertexts), nonce, domain)
