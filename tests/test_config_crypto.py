"""session.config_crypto: vectors (config_encrypt.json: encrypt, decrypt_fail, padded_size,
config_hash, config_push; TV-24/TV-25), an oracle built from hashlib BLAKE2b + PyNaCl
XChaCha20-Poly1305 following client spec §6.7, round trips and bad input."""

from __future__ import annotations

import hashlib

import nacl.bindings as nb
import nacl.encoding
import nacl.hash
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import config_crypto
from session.errors import DecryptionError, InvalidInput, InvalidKey, SessionError
from vectorlib import case_ids, load_vectors

ENC = load_vectors("config_encrypt", "encrypt")
FAIL = load_vectors("config_encrypt", "decrypt_fail")
SIZES = load_vectors("config_encrypt", "padded_size")
HASH = load_vectors("config_encrypt", "config_hash")
PUSH = load_vectors("config_encrypt", "config_push")


def oracle_encrypt(message: bytes, key_base: bytes, domain: str) -> bytes:
    d = domain.encode()
    key = hashlib.blake2b(key_base + len(message).to_bytes(8, "big") + d, digest_size=32).digest()
    nonce = hashlib.blake2b(
        message, digest_size=24, key=b"libsessionutil-config-encrypted-" + d
    ).digest()
    return nb.crypto_aead_xchacha20poly1305_ietf_encrypt(message, None, nonce, key) + nonce


def ref_padded_size(size: int, overhead: int) -> int:
    total = size + overhead
    chunk = 256 if total < 5120 else 1024 if total < 20480 else 2048 if total < 40960 else 5120
    return -(-total // chunk) * chunk - overhead


@pytest.mark.parametrize("case", ENC, ids=case_ids(ENC))
def test_encrypt_vectors(case: dict) -> None:
    msg, key = case["message_utf8"].encode(), bytes.fromhex(case["key_base"])
    ct = config_crypto.encrypt(msg, key, case["domain_utf8"])
    assert ct[-24:].hex() == case["nonce"]
    if "ciphertext" in case:
        assert ct.hex() == case["ciphertext"]
    assert ct == oracle_encrypt(msg, key, case["domain_utf8"])
    assert config_crypto.decrypt(ct, key, case["domain_utf8"]) == msg


@pytest.mark.parametrize("case", FAIL, ids=case_ids(FAIL))
def test_decrypt_fail_vectors(case: dict) -> None:
    with pytest.raises(DecryptionError):
        config_crypto.decrypt(
            bytes.fromhex(case["ciphertext"]), bytes.fromhex(case["key_base"]), case["domain_utf8"]
        )


@pytest.mark.parametrize("case", SIZES, ids=case_ids(SIZES))
def test_padded_size_vectors(case: dict) -> None:
    assert config_crypto.padded_size(case["size"], case["overhead"]) == case["padded_size"]
    assert ref_padded_size(case["size"], case["overhead"]) == case["padded_size"]


@pytest.mark.parametrize("case", HASH, ids=case_ids(HASH))
def test_config_hash_vectors(case: dict) -> None:
    assert config_crypto.config_hash(case["config_utf8"].encode()).hex() == case["hash"]


@pytest.mark.parametrize("case", PUSH, ids=case_ids(PUSH))
def test_config_push_vectors(case: dict) -> None:
    plain = bytes.fromhex(case["plaintext"])
    padded = config_crypto.pad(plain)
    assert len(padded) == case["padded_len"]
    assert padded == bytes(case["padded_len"] - len(plain)) + plain
    ct = config_crypto.encrypt(padded, bytes.fromhex(case["ed25519_seed"]), case["domain_utf8"])
    assert ct.hex() == case["ciphertext"]
    assert (
        config_crypto.decrypt(ct, bytes.fromhex(case["ed25519_seed"]), case["domain_utf8"])
        == padded
    )


domains = st.text(min_size=1, max_size=24).filter(lambda d: 1 <= len(d.encode()) <= 24)


@given(st.binary(max_size=2000), st.binary(min_size=32, max_size=32), domains)
def test_round_trip_and_oracle(msg: bytes, key: bytes, domain: str) -> None:
    ct = config_crypto.encrypt(msg, key, domain)
    assert len(ct) == len(msg) + config_crypto.OVERHEAD
    assert ct == oracle_encrypt(msg, key, domain)
    nonce_key = b"libsessionutil-config-encrypted-" + domain.encode()
    assert ct[-24:] == nacl.hash.blake2b(
        msg, digest_size=24, key=nonce_key, encoder=nacl.encoding.RawEncoder
    )
    assert ct == config_crypto.encrypt(msg, key, domain)  # deterministic
    assert config_crypto.decrypt(ct, key, domain) == msg
    other = bytes([key[0] ^ 1]) + key[1:]
    with pytest.raises(DecryptionError):
        config_crypto.decrypt(ct, other, domain)
    with pytest.raises(DecryptionError):
        config_crypto.decrypt(
            ct, key, domain + "x" if len(domain.encode()) < 24 else domain[:-1] or "y"
        )


@given(st.integers(0, 200_000), st.integers(0, 1000))
def test_padded_size_reference(size: int, overhead: int) -> None:
    p = config_crypto.padded_size(size, overhead)
    assert p == ref_padded_size(size, overhead)
    assert p >= size
    assert len(config_crypto.pad(bytes(size % 5000), overhead)) == config_crypto.padded_size(
        size % 5000, overhead
    )


@given(st.binary(max_size=200), st.binary(max_size=40), st.text(max_size=30))
def test_garbage_never_crashes(ct: bytes, key: bytes, domain: str) -> None:
    try:
        config_crypto.decrypt(ct, key, domain)
    except SessionError:
        pass


def test_bad_input() -> None:
    key = bytes(32)
    for k in (b"", bytes(31), bytes(33)):
        with pytest.raises(InvalidKey, match="32 bytes"):
            config_crypto.encrypt(b"m", k, "d")
        with pytest.raises(InvalidKey, match="32 bytes"):
            config_crypto.decrypt(bytes(60), k, "d")
    for d in ("", "x" * 25, "é" * 13):
        with pytest.raises(InvalidInput, match="domain"):
            config_crypto.encrypt(b"m", key, d)
    assert config_crypto.decrypt(config_crypto.encrypt(b"m", key, "é" * 12), key, "é" * 12) == b"m"
    with pytest.raises(DecryptionError, match="too short"):
        config_crypto.decrypt(bytes(39), key, "d")
    with pytest.raises(InvalidInput):
        config_crypto.padded_size(-1, 0)
    with pytest.raises(InvalidInput):
        config_crypto.padded_size(2**63 - 1, 2**63 - 1)
    with pytest.raises(InvalidInput):
        config_crypto.pad(b"x", -3)
    with pytest.raises(TypeError):
        config_crypto.padded_size("1", 0)  # type: ignore[arg-type]
