"""One-to-one messages (client spec §2.2–2.4): padding, sign-then-sealed-box, BLAKE2b.

Sending::

    ct = encrypt_for_recipient(me, their_session_id, pad(content_bytes))

Receiving::

    padded, sender_session_id = decrypt_incoming(me, ct)
    content_bytes = unpad(padded)

Encryption does not pad (Session pads the serialized Content first); decryption returns the
plaintext exactly as it was encrypted.
"""

from __future__ import annotations

from collections.abc import Iterable

from session import _core
from session.errors import SessionError
from session.identity import Identity

__all__ = [
    "OVERHEAD",
    "blake2b",
    "decrypt_incoming",
    "decrypt_many",
    "encrypt_for_recipient",
    "encrypt_for_recipient_deterministic",
    "pad",
    "unpad",
]

#: Ciphertext size minus plaintext size: sender key + signature (96) + sealed box (48).
OVERHEAD = 144


def pad(data: bytes) -> bytes:
    """Append 0x80 then zero bytes up to the next multiple of 160 above ``len(data) + 1``
    (libsession's form; what current clients send)."""
    return _core.pad_message(bytes(data))


def unpad(data: bytes) -> bytes:
    """Remove message padding of either form (160·k or the legacy 160·k − 1).

    Lenient like every Session client: data whose last non-zero byte is not 0x80 is returned
    whole. Empty or all-zero data raises :class:`~session.errors.PaddingError`."""
    return _core.unpad_message(bytes(data))


def encrypt_for_recipient(sender: Identity, recipient_session_id: str, plaintext: bytes) -> bytes:
    """Sign ``plaintext ‖ sender Ed25519 key ‖ recipient X25519 key`` and seal
    ``plaintext ‖ key ‖ signature`` to the recipient (libsodium sealed box).

    The result is ``len(plaintext) + 144`` bytes. Raises InvalidSessionID for a bad ID."""
    return _core.session_encrypt(sender, recipient_session_id, bytes(plaintext))


def encrypt_for_recipient_deterministic(
    sender: Identity, recipient_session_id: str, plaintext: bytes
) -> bytes:
    """As :func:`encrypt_for_recipient` but with libsession's derived ephemeral key, so the
    same inputs give the same ciphertext (used for config messages)."""
    return _core.session_encrypt_deterministic(sender, recipient_session_id, bytes(plaintext))


def decrypt_incoming(recipient: Identity, ciphertext: bytes) -> tuple[bytes, str]:
    """Open a message sent to ``recipient`` and check the sender's signature.

    Returns ``(plaintext, sender Session ID)``; the plaintext is still padded. Raises
    :class:`~session.errors.DecryptionError` (wrong recipient, tampered or too short) or
    :class:`~session.errors.InvalidSignature` (a subclass)."""
    return _core.session_decrypt(recipient, bytes(ciphertext))


def decrypt_many(
    recipient: Identity, ciphertexts: Iterable[bytes]
) -> list[tuple[bytes, str] | SessionError]:
    """Decrypt a batch in one call with the GIL released: from 8 items on spread over all
    cores, a shorter batch on the calling thread (waking other threads costs more than it
    saves there).

    Each result is ``(plaintext, sender Session ID)`` or the exception instance for that item
    (returned, not raised)."""
    return _core.session_decrypt_many(
        recipient, [c if type(c) is bytes else bytes(c) for c in ciphertexts]
    )


def blake2b(data: bytes, *, key: bytes | None = None, digest_size: int = 32) -> bytes:
    """BLAKE2b as libsodium's ``crypto_generichash``: ``digest_size`` 1..64 bytes, optional
    key of up to 64 bytes (empty or None = unkeyed). Bad sizes raise InvalidInput."""
    if isinstance(digest_size, bool) or not isinstance(digest_size, int):
        raise TypeError("digest_size must be an int")
    if not 1 <= digest_size <= 64:
        from session.errors import InvalidInput  # noqa: PLC0415

        raise InvalidInput(f"a BLAKE2b digest size must be between 1 and 64, got {digest_size}")
    return _core.blake2b(bytes(data), None if key is None else bytes(key), digest_size)
