"""Attachment encryption as every Session client does it today (client spec §5.1–5.2).

``encrypt`` pads the file with zero bytes to a size bucket (:func:`padded_size`, hiding the
exact length), then encrypts with AES-256-CBC (PKCS#7) under a random IV and appends an
HMAC-SHA256 tag: ``IV ‖ ciphertext ‖ MAC``. The 64-byte key (AES key ‖ MAC key) and the
SHA-256 digest of the blob go into the attachment pointer together with the real ``size``;
``decrypt`` checks MAC and digest and cuts the padding off again::

    blob, key, digest = attachments.encrypt(data)
    data = attachments.decrypt(blob, key, digest, size=len(data))

Large files go through :func:`encrypt_file` / :func:`decrypt_file` instead: they stream in
:data:`CHUNK`-sized pieces through the core's ``_core.AttachmentEncryptor`` /
``_core.AttachmentDecryptor`` (same bytes as the one-shot functions), so memory stays flat
whatever the file's size. :func:`decrypt_file` writes to a temporary file next to the target
and moves it into place only once MAC and digest have been checked::

    sealed = attachments.encrypt_file("photo.jpg", "photo.blob")
    attachments.decrypt_file("photo.blob", "out.jpg", sealed.key, sealed.digest, sealed.size)

A wrong MAC or digest raises :class:`session.errors.DecryptionError`; a key that is not 64
bytes raises :class:`session.errors.InvalidKey`. Community (SOGS) uploads are neither padded
nor encrypted, so they do not use this module.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from session import _core
from session.errors import InvalidInput

#: Attachment keys are 64 bytes: AES-256 key ‖ HMAC-SHA256 key.
KEY_SIZE: int = _core.ATTACHMENT_KEY_LEN
#: Length of the SHA-256 digest returned by :func:`encrypt`.
DIGEST_SIZE: int = 32
#: Bytes read per step by the streaming file functions.
CHUNK: int = 1 << 16
#: IV (16) + HMAC-SHA256 tag (32) around the CBC ciphertext.
_OVERHEAD = 16 + 32

#: Called with the number of bytes just processed (drives progress bars).
Progress = Callable[[int], None]


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


def encrypted_size(n: int) -> int:
    """Size of the blob :func:`encrypt` makes from ``n`` file bytes (IV, padded CBC, MAC)."""
    return _OVERHEAD + (padded_size(n) // 16 + 1) * 16


@dataclass(frozen=True)
class Sealed:
    """What an attachment pointer needs about a file encrypted by :func:`encrypt_file`."""

    key: bytes
    digest: bytes
    size: int
    blob_size: int

    def __repr__(self) -> str:  # never show the key
        return f"Sealed(size={self.size}, blob_size={self.blob_size})"


def encrypt_stream(
    src: BinaryIO,
    size: int,
    out: BinaryIO,
    *,
    key: bytes | None = None,
    progress: Progress | None = None,
) -> Sealed:
    """Encrypt ``size`` bytes read from ``src`` into ``out`` chunk by chunk."""
    enc = _core.AttachmentEncryptor(_size("size", size), None if key is None else bytes(key))
    written = 0
    remaining = size
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise InvalidInput(f"the file ended after {size - remaining} of {size} bytes")
        remaining -= len(chunk)
        written += out.write(enc.update(chunk))
        if progress is not None:
            progress(len(chunk))
    tail, digest = enc.finalize()
    written += out.write(tail)
    return Sealed(key=enc.key, digest=digest, size=size, blob_size=written)


def encrypt_file(
    src: str | os.PathLike[str],
    out: BinaryIO,
    *,
    key: bytes | None = None,
    progress: Progress | None = None,
) -> Sealed:
    """Pad and encrypt the file at ``src`` into the writable binary stream ``out``."""
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return encrypt_stream(f, size, out, key=key, progress=progress)


def decrypt_stream(
    src: BinaryIO,
    out: BinaryIO,
    key: bytes,
    digest: bytes | None = None,
    size: int | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Decrypt a blob read from ``src`` into ``out``; returns the plaintext length.

    What reaches ``out`` is unverified until this returns: on
    :class:`~session.errors.DecryptionError` the caller must discard it (see
    :func:`decrypt_file`, which does).
    """
    dec = _core.AttachmentDecryptor(
        bytes(key),
        None if digest is None else bytes(digest),
        None if size is None else _size("size", size),
    )
    written = 0
    while chunk := src.read(CHUNK):
        written += out.write(dec.update(chunk))
        if progress is not None:
            progress(len(chunk))
    written += out.write(dec.finalize())
    return written


def decrypt_file(
    src: str | os.PathLike[str] | BinaryIO,
    dst: str | os.PathLike[str],
    key: bytes,
    digest: bytes | None = None,
    size: int | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Decrypt a blob (a path or a readable binary stream) into the file ``dst``.

    The plaintext goes to a temporary file in ``dst``'s directory, which becomes ``dst`` only
    after MAC and digest check out: a tampered blob leaves nothing behind. An existing
    ``dst`` raises :class:`FileExistsError` unless ``overwrite``.
    """
    target = Path(dst)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(src, (str, os.PathLike)):
                with open(src, "rb") as f:
                    decrypt_stream(f, out, key, digest, size, progress=progress)
            else:
                decrypt_stream(src, out, key, digest, size, progress=progress)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails, rather than replaces, if dst appeared meanwhile
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


__all__ = [
    "CHUNK",
    "DIGEST_SIZE",
    "KEY_SIZE",
    "Sealed",
    "decrypt",
    "decrypt_file",
    "decrypt_stream",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
    "encrypted_size",
    "padded_size",
]
