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

Incoming attachments may also use Session's newer deterministic stream scheme (§5.3: a 32-byte
key, libsodium secretstream through PyNaCl); :func:`decrypt_file` picks the scheme from the key's
length. Only decryption of that scheme is here (sending uses the legacy scheme, as Session's
clients do by default).

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

import nacl.bindings as sodium
import nacl.exceptions

from session import _core
from session.errors import DecryptionError, InvalidInput

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


#: Key length of the deterministic stream scheme (§5.3): a secretstream key.
STREAM_KEY_SIZE: int = 32
#: Plaintext bytes per secretstream chunk in the stream scheme, and the per-chunk overhead.
STREAM_CHUNK: int = 32_768
STREAM_ABYTES: int = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_STREAM_HEADER: int = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_TAG_FINAL: int = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


def stream_padding(n: int) -> int:
    """Padding bytes (≥ 1, the last one ``0x01``) before ``n`` file bytes in the stream scheme.

    The blob is rounded up to a multiple of 1/32 of the largest power of two not above its size
    (at least 4096 bytes), counting the chunk tags the padding itself adds as padding.
    """
    chunks = -(-_size("n", n) // STREAM_CHUNK)
    raw = n + 1 + _STREAM_HEADER + 1 + chunks * STREAM_ABYTES
    factor = (1 << (max(raw, 131_072).bit_length() - 1)) >> 5
    padding = -(-raw // factor) * factor - raw + 1
    full = STREAM_CHUNK + STREAM_ABYTES
    implicit = padding // full * STREAM_ABYTES
    if padding % full > chunks * STREAM_CHUNK - n:
        implicit += STREAM_ABYTES
    return padding - implicit


def stream_encrypted_size(n: int) -> int:
    """Size of the stream-scheme blob (§5.3) for ``n`` file bytes: what the server stores."""
    padded = n + stream_padding(n)
    return 1 + _STREAM_HEADER + padded + -(-padded // STREAM_CHUNK) * STREAM_ABYTES


def decrypt_stream_scheme(
    src: BinaryIO,
    out: BinaryIO,
    key: bytes,
    size: int | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Decrypt a deterministic stream-scheme blob (§5.3; 32-byte key, libsodium secretstream)
    read from ``src`` into ``out``; returns the file's length.

    Layout: ``'S'`` ‖ 24-byte header ‖ secretstream chunks of ≤ 32,768 bytes + 17, the last
    tagged FINAL; the plaintext is ``0x00…0x00 0x01`` padding then the file. Each chunk is
    authenticated as it arrives, but a truncated blob is only detected at the end, so ``out``
    is to be discarded on :class:`~session.errors.DecryptionError` (as :func:`decrypt_file`
    does).
    """
    if len(key) != STREAM_KEY_SIZE:
        raise InvalidInput(f"a stream-scheme attachment key is {STREAM_KEY_SIZE} bytes")
    head = src.read(1 + _STREAM_HEADER)
    if len(head) != 1 + _STREAM_HEADER or head[:1] != b"S":
        raise DecryptionError("the attachment is not a stream-scheme blob (no 'S' header)")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, head[1:], bytes(key))
    in_padding, written, final = True, 0, False
    if progress is not None:
        progress(len(head))
    while chunk := src.read(STREAM_CHUNK + STREAM_ABYTES):
        if final:
            raise DecryptionError("the attachment has data after its final chunk")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunk)
        except nacl.exceptions.CryptoError:
            raise DecryptionError(
                "the attachment does not decrypt (wrong key or corrupted)"
            ) from None
        final = tag == _TAG_FINAL
        if progress is not None:
            progress(len(chunk))
        if in_padding:
            body = plain.lstrip(b"\x00")
            if not body:
                continue
            if body[0] != 1:
                raise DecryptionError("the attachment's padding is malformed")
            plain, in_padding = body[1:], False
        if size is not None:
            plain = plain[: max(0, size - written)]
        written += out.write(plain)
    if not final or in_padding:
        raise DecryptionError("the attachment is truncated (no final chunk)")
    return written


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


def _decrypt_any(
    src: BinaryIO,
    out: BinaryIO,
    key: bytes,
    digest: bytes | None,
    size: int | None,
    progress: Progress | None,
) -> int:
    """The legacy scheme for 64-byte keys, the stream scheme for 32-byte keys (§5.4)."""
    if len(key) == STREAM_KEY_SIZE:
        return decrypt_stream_scheme(src, out, key, size, progress=progress)
    return decrypt_stream(src, out, key, digest, size, progress=progress)


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

    A 64-byte ``key`` means the legacy scheme (§5.1, ``digest`` checked when given), a 32-byte
    one the deterministic stream scheme (§5.3, :func:`decrypt_stream_scheme`).

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
                    _decrypt_any(f, out, key, digest, size, progress)
            else:
                _decrypt_any(src, out, key, digest, size, progress)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails, rather than replaces, if dst appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)  # gone after a replace; the spare link otherwise
    return target


__all__ = [
    "CHUNK",
    "DIGEST_SIZE",
    "KEY_SIZE",
    "STREAM_KEY_SIZE",
    "Sealed",
    "decrypt",
    "decrypt_file",
    "decrypt_stream",
    "decrypt_stream_scheme",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
    "encrypted_size",
    "padded_size",
    "stream_encrypted_size",
    "stream_padding",
]
