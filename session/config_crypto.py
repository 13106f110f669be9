"""Config-message encryption for multi-device sync (client spec §6.7, TV-24/TV-25).

Deterministic XChaCha20-Poly1305 as libsession does it:

* key = BLAKE2b-256(key_base ‖ u64_BE(len(message)) ‖ domain)
* nonce = BLAKE2b-192(message; key = ``"libsessionutil-config-encrypted-" + domain``)
* output = ciphertext ‖ tag ‖ nonce (:data:`OVERHEAD` = 40 bytes)

For user configs ``key_base`` is the account's 32-byte Ed25519 seed and ``domain`` one of
``UserProfile``, ``Contacts``, ``ConvoInfoVolatile``, ``UserGroups``; group configs use the
group keys. Messages are prefix-padded with zero bytes first (:func:`pad`,
:func:`padded_size`); :func:`encrypt` itself does not pad and :func:`decrypt` does not strip.

Wrong keys or domains raise :class:`session.errors.DecryptionError`; a key base that is not
32 bytes raises :class:`session.errors.InvalidKey`; a domain outside 1–24 bytes raises
:class:`session.errors.InvalidInput`.
"""

from __future__ import annotations

from session import _core
from session.errors import InvalidInput

#: Bytes added by :func:`encrypt` (16-byte tag + 24-byte nonce).
OVERHEAD: int = _core.CONFIG_OVERHEAD
#: Longest domain, in UTF-8 bytes.
DOMAIN_MAX_LEN: int = _core.CONFIG_DOMAIN_MAX_LEN
#: Largest config message a swarm stores (75 KiB).
MAX_MESSAGE_SIZE: int = 76_800


def _size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0 or value >= 2**63:
        raise InvalidInput(f"{name} must be a non-negative size, got {value}")
    return value


def encrypt(message: bytes, key_base: bytes, domain: str) -> bytes:
    """Encrypt a (padded) config message; deterministic for equal inputs."""
    return _core.config_encrypt(bytes(message), bytes(key_base), domain)


def decrypt(ciphertext: bytes, key_base: bytes, domain: str) -> bytes:
    """Decrypt a config message from :func:`encrypt` (padding is left in place)."""
    return _core.config_decrypt(bytes(ciphertext), bytes(key_base), domain)


def padded_size(size: int, overhead: int) -> int:
    """Size to prefix-pad ``size`` bytes to so that ``padded + overhead`` fills a bucket.

    Buckets are multiples of 256 bytes below 5,120, of 1,024 below 20,480, of 2,048 below
    40,960 and of 5,120 above.
    """
    return _core.config_padded_size(_size("size", size), _size("overhead", overhead))


def pad(message: bytes, overhead: int = OVERHEAD) -> bytes:
    """``message`` with zero bytes prepended up to :func:`padded_size`."""
    return _core.config_pad(bytes(message), _size("overhead", overhead))


def config_hash(data: bytes) -> bytes:
    """BLAKE2b-256 of a serialized config message (the hash kept in its history list)."""
    return _core.config_hash(bytes(data))


__all__ = [
    "DOMAIN_MAX_LEN",
    "MAX_MESSAGE_SIZE",
    "OVERHEAD",
    "config_hash",
    "decrypt",
    "encrypt",
    "pad",
    "padded_size",
]
