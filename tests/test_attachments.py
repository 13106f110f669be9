"""session.attachments: padding vectors (padding.json attachment kinds, TV-27), a float64
Python reference of the bucket formula, an AES-CBC/HMAC oracle (cryptography + hmac) and
round trips, tampering and bad input."""

from __future__ import annotations

import hashlib
import hmac
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import attachments
from session.errors import DecryptionError, InvalidInput, InvalidKey, SessionError
from vectorlib import case_ids, load_vectors

PAD = load_vectors("padding", "attachment_pad")
UNPAD = load_vectors("padding", "attachment_unpad")


def ref_padded_size(n: int) -> int:
    """client spec §5.2 (desktop addAttachmentPadding), float64 like JavaScript."""
    p = 0 if n == 0 else math.floor(1.05 ** math.ceil(math.log(n) / math.log(1.05)))
    p = max(541, p)
    if p > 10_000_000 and n <= 10_000_000:
        p = 10_000_000
    return max(p, n)


def oracle_decrypt(blob: bytes, key: bytes) -> bytes:
    ciphers = pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    padding = pytest.importorskip("cryptography.hazmat.primitives.padding")
    iv, ct, tag = blob[:16], blob[16:-32], blob[-32:]
    assert hmac.compare_digest(hmac.new(key[32:], blob[:-32], hashlib.sha256).digest(), tag)
    dec = ciphers.Cipher(ciphers.algorithms.AES(key[:32]), ciphers.modes.CBC(iv)).decryptor()
    padded = dec.update(ct) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


@pytest.mark.parametrize("case", PAD, ids=case_ids(PAD))
def test_padding_vectors(case: dict) -> None:
    assert attachments.padded_size(case["input_len"]) == case["padded_len"]
    assert ref_padded_size(case["input_len"]) == case["padded_len"]


@pytest.mark.parametrize("case", UNPAD, ids=case_ids(UNPAD))
def test_unpad_vector(case: dict) -> None:
    data = bytes.fromhex(case["input"])
    blob, key, digest = attachments.encrypt(data)
    out = attachments.decrypt(blob, key, digest, size=case["expected_size"])
    assert out.hex() == case["output"]


def test_small_input_is_padded_with_zeros() -> None:
    blob, key, digest = attachments.encrypt(bytes(range(10)))
    full = attachments.decrypt(blob, key, digest)
    assert full == bytes(range(10)) + bytes(531)


@given(st.integers(0, 12_000_000))
def test_padded_size_matches_reference(n: int) -> None:
    assert attachments.padded_size(n) == ref_padded_size(n)
    assert attachments.padded_size(n) >= max(n, 541)


@given(st.binary(max_size=3000), st.one_of(st.none(), st.binary(min_size=64, max_size=64)))
def test_round_trip_and_oracle(data: bytes, key_in: bytes | None) -> None:
    blob, key, digest = attachments.encrypt(data, key=key_in)
    assert len(key) == 64 and len(digest) == 32
    if key_in is not None:
        assert key == key_in
    padded = attachments.padded_size(len(data))
    assert len(blob) == 16 + (padded // 16 + 1) * 16 + 32
    assert digest == hashlib.sha256(blob).digest()
    assert attachments.decrypt(blob, key, digest, size=len(data)) == data
    assert attachments.decrypt(blob, key, size=len(data) + 10_000) == data + bytes(
        padded - len(data)
    )
    assert oracle_decrypt(blob, key) == data + bytes(padded - len(data))


def test_random_iv_and_key() -> None:
    a = attachments.encrypt(b"same")
    b = attachments.encrypt(b"same")
    assert a[0][:16] != b[0][:16] and a[1] != b[1]
    c = attachments.encrypt(b"same", key=a[1])
    assert c[1] == a[1] and c[0] != a[0]


@given(st.binary(max_size=600), st.data())
def test_tampering_fails(data: bytes, draw: st.DataObject) -> None:
    blob, key, _digest = attachments.encrypt(data)
    i = draw.draw(st.integers(0, len(blob) - 1))
    bad = bytearray(blob)
    bad[i] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(DecryptionError):
        attachments.decrypt(bytes(bad), key)
    with pytest.raises(DecryptionError):
        attachments.decrypt(blob[: draw.draw(st.integers(0, len(blob) - 1))], key)
    # A wrong MAC key (second half) is always detected.
    wrong = bytearray(key)
    wrong[draw.draw(st.integers(32, 63))] ^= 1
    with pytest.raises(DecryptionError):
        attachments.decrypt(blob, bytes(wrong))
    # Encrypt-then-MAC does not authenticate the AES key (first half): a wrong one is caught
    # by the padding check only by chance (~255/256), but never yields the plaintext.
    wrong = bytearray(key)
    wrong[draw.draw(st.integers(0, 31))] ^= 1
    try:
        out = attachments.decrypt(blob, bytes(wrong))
    except DecryptionError:
        pass
    else:
        assert out != data
    with pytest.raises(DecryptionError, match="digest"):
        attachments.decrypt(blob, key, hashlib.sha256(b"other").digest())


@given(st.binary(max_size=200), st.binary(min_size=64, max_size=64))
def test_garbage_never_crashes(blob: bytes, key: bytes) -> None:
    try:
        attachments.decrypt(blob, key)
    except SessionError:
        pass


def test_bad_input() -> None:
    blob, key, digest = attachments.encrypt(b"x")
    for k in (b"", key[:32], key + b"\0"):
        with pytest.raises(InvalidKey, match="64 bytes"):
            attachments.decrypt(blob, k)
        with pytest.raises(InvalidKey, match="64 bytes"):
            attachments.encrypt(b"x", key=k)
    with pytest.raises(InvalidInput, match="digest"):
        attachments.decrypt(blob, key, digest[:31])
    with pytest.raises(InvalidInput):
        attachments.decrypt(blob, key, size=-1)
    with pytest.raises(InvalidInput):
        attachments.padded_size(-5)
    with pytest.raises(TypeError):
        attachments.padded_size(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        attachments.padded_size(True)
    # HMAC is checked before anything else: a correctly tagged short body still fails cleanly.
    body = bytes(16 + 5)
    tag = hmac.new(key[32:], body, hashlib.sha256).digest()
    with pytest.raises(DecryptionError, match="AES blocks"):
        attachments.decrypt(body + tag, key)
