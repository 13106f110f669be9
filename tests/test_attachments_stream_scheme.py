"""The deterministic stream scheme (§5.3) on the receiving side: sizes against libsession's
vectors (attachment_sizes.json), and decryption of blobs built here with libsodium's
secretstream (PyNaCl) in libsession's chunk layout; tampering, truncation, wrong keys."""

from __future__ import annotations

import io
import os
from pathlib import Path

import nacl.bindings as sodium
import pytest

from session import attachments
from session.errors import DecryptionError, InvalidInput
from vectorlib import case_ids, load_vectors

SIZES = [c for c in load_vectors("attachment_sizes") if "encrypted_size" in c]
CHUNK = attachments.STREAM_CHUNK


@pytest.mark.parametrize("case", SIZES, ids=case_ids(SIZES))
def test_encrypted_size_vectors(case: dict[str, int]) -> None:
    assert attachments.stream_encrypted_size(case["data_len"]) == case["encrypted_size"]


def seal(data: bytes, key: bytes) -> bytes:
    """libsession's layout with a random header: 'S' ‖ header ‖ chunks (padding ‖ data)."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    stream = bytes(attachments.stream_padding(len(data)) - 1) + b"\x01" + data
    out = [b"S", header]
    for i in range(0, len(stream), CHUNK):
        last = i + CHUNK >= len(stream)
        tag = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL if last else 0
        out.append(
            sodium.crypto_secretstream_xchacha20poly1305_push(
                state, stream[i : i + CHUNK], None, tag
            )
        )
    return b"".join(out)


@pytest.mark.parametrize("n", [0, 1, 4053, 4054, 32_767, 33_333, 261_983, 523_991])
def test_decrypt(tmp_path: Path, n: int) -> None:
    key = os.urandom(32)
    data = os.urandom(n)
    blob = seal(data, key)
    assert len(blob) == attachments.stream_encrypted_size(n)
    out = attachments.decrypt_file(io.BytesIO(blob), tmp_path / "f", key, None, n)
    assert out.read_bytes() == data


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_final", "wrong_key", "no_s", "extra"])
def test_bad_blobs_leave_nothing(tmp_path: Path, damage: str) -> None:
    key = os.urandom(32)
    blob = bytearray(seal(os.urandom(40_000), key))
    if damage == "flip":
        blob[5000] ^= 1
    elif damage == "truncate":
        blob = blob[:-5]
    elif damage == "drop_final":
        blob = blob[: 25 + CHUNK + 17]
    elif damage == "wrong_key":
        key = os.urandom(32)
    elif damage == "no_s":
        blob[0] = ord("X")
    else:
        blob += blob[-100:]
    with pytest.raises(DecryptionError):
        attachments.decrypt_file(io.BytesIO(bytes(blob)), tmp_path / "f", key, None, 40_000)
    assert list(tmp_path.iterdir()) == []


def test_bad_key_length() -> None:
    with pytest.raises(InvalidInput):
        attachments.decrypt_stream_scheme(io.BytesIO(b"S"), io.BytesIO(), bytes(31))
