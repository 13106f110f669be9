"""session.attachments streaming: AttachmentEncryptor/Decryptor and the file functions give
the same bytes as the one-shot functions and an independent oracle (cryptography's AES-CBC +
hmac), in any chunking; tampering leaves no output file behind."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from session import _core, attachments
from session.errors import DecryptionError, InvalidInput, InvalidKey

pytestmark = pytest.mark.skipif(
    not hasattr(_core, "AttachmentEncryptor"),
    reason="session/_core.abi3.so predates streaming attachments: rebuild it (maturin build)",
)

SIZES = [0, 1, 15, 16, 17, 540, 541, 542, 65_535, 65_536, 65_537, 200_003]


def oracle(data: bytes, key: bytes, iv: bytes) -> bytes:
    """IV ‖ AES-256-CBC-PKCS7(data ‖ zeros to the bucket) ‖ HMAC-SHA256, via cryptography."""
    padded = data + bytes(attachments.padded_size(len(data)) - len(data))
    p = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).encryptor()
    ct = enc.update(p.update(padded) + p.finalize()) + enc.finalize()
    return iv + ct + hmac.new(key[32:], iv + ct, hashlib.sha256).digest()


def stream_encrypt(data: bytes, key: bytes | None, step: int) -> tuple[bytes, bytes, bytes]:
    enc = _core.AttachmentEncryptor(len(data), key)
    out = b"".join(enc.update(data[i : i + step]) for i in range(0, len(data), step))
    tail, digest = enc.finalize()
    return out + tail, enc.key, digest


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("step", [1, 13, 16, 4096, attachments.CHUNK])
def test_stream_encrypt_matches_oracle_and_one_shot(n: int, step: int) -> None:
    if step == 1 and n > 2000:
        pytest.skip("byte-by-byte only on small inputs")
    data = os.urandom(n)
    blob, key, digest = stream_encrypt(data, None, step)
    assert len(key) == attachments.KEY_SIZE
    assert blob == oracle(data, key, blob[:16])
    assert digest == hashlib.sha256(blob).digest()
    assert len(blob) == attachments.encrypted_size(n)
    assert attachments.decrypt(blob, key, digest, n) == data
    # and the other way round: one-shot blob, streaming decrypt in the same chunking
    blob2, key2, digest2 = attachments.encrypt(data)
    dec = _core.AttachmentDecryptor(key2, digest2, n)
    plain = b"".join(dec.update(blob2[i : i + step]) for i in range(0, len(blob2), step))
    assert plain + dec.finalize() == data


def test_given_key_is_used() -> None:
    key = bytes(range(64))
    blob, k, _ = stream_encrypt(b"hello", key, 4)
    assert k == key
    assert attachments.decrypt(blob, key)[:5] == b"hello"
    with pytest.raises(InvalidKey):
        _core.AttachmentEncryptor(5, b"short")
    with pytest.raises(InvalidKey):
        _core.AttachmentDecryptor(b"short")


def test_stream_misuse_is_a_clear_error() -> None:
    enc = _core.AttachmentEncryptor(3)
    with pytest.raises(InvalidInput, match="too large"):
        enc.update(b"four")
    enc.update(b"ab")
    with pytest.raises(InvalidInput, match="fewer bytes"):
        enc.finalize()
    with pytest.raises(InvalidInput, match="already"):
        enc.update(b"c")
    with pytest.raises(InvalidInput):
        _core.AttachmentDecryptor(bytes(64), b"\x00" * 31)
    with pytest.raises(InvalidInput, match="ended after 2 of 5"):
        attachments.encrypt_stream(io.BytesIO(b"ab"), 5, io.BytesIO())


def test_file_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    data = os.urandom(300_001)
    src.write_bytes(data)
    seen: list[int] = []
    with open(tmp_path / "blob", "wb") as out:
        sealed = attachments.encrypt_file(src, out, progress=seen.append)
    assert sum(seen) == len(data)
    assert "key" not in repr(sealed) and sealed.key.hex() not in repr(sealed)
    blob = (tmp_path / "blob").read_bytes()
    assert sealed.blob_size == len(blob) == attachments.encrypted_size(len(data))
    assert sealed.digest == hashlib.sha256(blob).digest()
    dst = attachments.decrypt_file(
        tmp_path / "blob", tmp_path / "out.bin", sealed.key, sealed.digest, sealed.size
    )
    assert dst.read_bytes() == data
    with pytest.raises(FileExistsError):
        attachments.decrypt_file(tmp_path / "blob", dst, sealed.key, sealed.digest, sealed.size)
    dst.write_bytes(b"old")
    attachments.decrypt_file(
        io.BytesIO(blob), dst, sealed.key, sealed.digest, sealed.size, overwrite=True
    )
    assert dst.read_bytes() == data


@pytest.mark.parametrize("where", ["iv", "middle", "last_block", "mac", "truncated", "digest"])
def test_tampered_blob_leaves_nothing(tmp_path: Path, where: str) -> None:
    data = os.urandom(100_000)
    blob, key, digest = attachments.encrypt(data)
    bad = bytearray(blob)
    pos = {"iv": 3, "middle": len(blob) // 2, "last_block": len(blob) - 40, "mac": len(blob) - 1}
    if where == "truncated":
        bad = bad[:-16]
    elif where == "digest":
        digest = bytes(32)
    else:
        bad[pos[where]] ^= 0x01
    dst = tmp_path / "out.bin"
    with pytest.raises(DecryptionError):
        attachments.decrypt_file(io.BytesIO(bytes(bad)), dst, key, digest, len(data))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("blob", [b"", b"x" * 47, b"x" * 48, b"x" * 50, b"x" * 64])
def test_short_or_misaligned_blob(blob: bytes) -> None:
    key = bytes(64)
    dec = _core.AttachmentDecryptor(key)
    dec.update(blob)
    with pytest.raises(DecryptionError):
        dec.finalize()
