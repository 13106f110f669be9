"""Attachment encryption as every Session client does it today (client spec §5.1–5.2).

``encrypt`` pads the file with zero bytes to a size bucket (:func:`padded_size`, hiding the
exact length), then encrypts with AES-256-CBC (PKCS#7) under a random IV and appends an
HMAC-SHA256 tag: ``IV ‖ ciphertext ‖ MAC``. The 64-byte key (AES key ‖ MAC key) and the
SHA-256 digest of the blob go into the attachment pointer together with the real ``size``;
``decrypt`` checks MAC and digest and cuts the padding off again::

    blob, key, digest = attachments.encrypt(data)
    data = attachments.decrypt(blob, key, digest, size=len(data))

A wrong MAC or digest raises :class:`session.errors.DecryptionError`; a key that is not 64
bytes raises :class:`session.errors.InvalidKey`. Community (SOGS) uploads are neither padded
nor encrypted, so they do not use this module.
"""

from __future__ import annotations

from session import _core
from session.errors import InvalidInput

#: Attachment keys are 64 bytes: AES-256 key ‖ HMAC-SHA256 key.
KEY_SIZE: int = _core.ATTACHMENT_KEY_LEN
#: Length of the SHA-256 digest returned by :func:`encrypt`.
DIGEST_SIZE: int = 32


def _size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0 or value >= 2**63:
        raise InvalidInput(f"{name} must be a non-negative size, got {value}")
    return value


def padded_size(n: int) -> int:
    """Size ``n`` file bytes are padded to before encryption (at least 541 bytes)."""
    return _core.attachment_padded_size(_size("n", n))


def encrypt(data: bytes, *, key: bytes | None = None) -> tuple[bytes, bytes, bytes]:
    """Pad and encrypt ``data``; returns ``(blob, key, digest)``.

    A random 64-byte key is generated unless ``key`` is given (the IV is always random).
    """
    return _core.attachment_encrypt(bytes(data), None if key is None else bytes(key))


def decrypt(
    ciphertext: bytes, key: bytes, digest: bytes | None = None, size: int | None = None
) -> bytes:
    """Verify and decrypt a blob from :func:`encrypt`.

    ``digest`` (from the attachment pointer) is checked when given; ``size`` cuts the
    padding off (a size at or above the decrypted length returns everything).
    """
    return _core.attachment_decrypt(
        bytes(ciphertext),
        bytes(key),
        None if digest is None else bytes(digest),
        None if size is None else _size("size", size),
    )


__all__ = ["DIGEST_SIZE", "KEY_SIZE", "decrypt", "encrypt", "padded_size"]
