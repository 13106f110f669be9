"""session.protocol: padding (padding.json message kinds, TV-26), sign-then-sealed-box
(session_protocol.json, TV-10/TV-11), batch decryption, BLAKE2b (blake2b.json, TV-23), and
differential tests against PyNaCl (libsodium sealed boxes, signatures, generichash)."""

from __future__ import annotations

import hashlib

import nacl.bindings as nb
import nacl.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import protocol
from session.errors import (
    DecryptionError,
    InvalidInput,
    InvalidSessionID,
    InvalidSignature,
    PaddingError,
    SessionError,
)
from session.identity import Identity
from session.protocol import (
    blake2b,
    decrypt_incoming,
    decrypt_many,
    encrypt_for_recipient,
    encrypt_for_recipient_deterministic,
    pad,
    unpad,
)
from vectorlib import case_ids, load_vectors

USER1 = Identity.from_seed(bytes.fromhex("0123456789abcdef0123456789abcdef"))
USER2 = Identity.from_seed(bytes.fromhex("00112233445566778899aabbccddeeff"))

PAD = load_vectors("padding", "message_pad")
UNPAD = load_vectors("padding", "message_unpad")
DETERMINISTIC = load_vectors("session_protocol", "deterministic")
RANDOM = load_vectors("session_protocol", "random_structure")
BLAKE = load_vectors("blake2b")


# ---- padding ----


def _legacy_pad(data: bytes) -> bytes:
    """Desktop's pre-libsession padding, written from the spec formula (test oracle only)."""
    total = 160 * -(-(len(data) + 2) // 160) - 1
    return (data + b"\x80").ljust(total, b"\0")


@pytest.mark.parametrize("case", PAD, ids=case_ids(PAD))
def test_pad_vectors(case: dict) -> None:
    data = bytes.fromhex(case["input"]) if "input" in case else b"\x41" * case["input_len"]
    if case["variant"] == "libsession":
        padded = pad(data)
    else:
        padded = _legacy_pad(data)
    assert len(padded) == case["padded_len"]
    if "padded" in case:
        assert padded.hex() == case["padded"]
    assert unpad(padded) == data


@pytest.mark.parametrize("case", UNPAD, ids=case_ids(UNPAD))
def test_unpad_vectors(case: dict) -> None:
    assert unpad(bytes.fromhex(case["input"])).hex() == case["output"]


@given(st.binary(max_size=1000))
def test_pad_round_trip(data: bytes) -> None:
    padded = pad(data)
    assert len(padded) % 160 == 0
    assert len(padded) - len(data) in range(2, 162)
    assert padded[len(data)] == 0x80 and not any(padded[len(data) + 1 :])
    assert unpad(padded) == data
    assert unpad(_legacy_pad(data)) == data


def test_unpad_lenient_and_errors() -> None:
    assert unpad(b"plain") == b"plain"
    assert unpad(b"plain\0\0") == b"plain\0\0"
    assert unpad(b"\x80") == b""
    for bad in (b"", b"\0", bytes(100)):
        with pytest.raises(PaddingError):
            unpad(bad)


@given(st.binary(max_size=400))
def test_unpad_garbage_never_crashes(data: bytes) -> None:
    try:
        out = unpad(data)
    except PaddingError:
        assert not any(data)
    else:
        assert data.startswith(out)


# ---- encryption ----


@pytest.mark.parametrize("case", DETERMINISTIC, ids=case_ids(DETERMINISTIC))
def test_deterministic_vector(case: dict) -> None:
    sender = Identity.from_seed(bytes.fromhex(case["sender_ed25519_seed"]))
    recipient = Identity.from_seed(bytes.fromhex(case["recipient_ed25519_seed"]))
    assert recipient.x25519_public.hex() == case["recipient_x25519_pk"]
    msg = case["plaintext_utf8"].encode()
    ct = encrypt_for_recipient_deterministic(sender, recipient.session_id, msg)
    assert ct.hex() == case["ciphertext"]
    assert decrypt_incoming(recipient, ct) == (msg, case["sender_session_id"])
    with pytest.raises(DecryptionError):
        decrypt_incoming(sender, ct)


@pytest.mark.parametrize("case", RANDOM, ids=case_ids(RANDOM))
def test_random_structure_vectors(case: dict) -> None:
    sender = Identity.from_seed(bytes.fromhex(case["sender_ed25519_seed"]))
    recipient = Identity.from_seed(bytes.fromhex(case["recipient_ed25519_seed"]))
    msg = case.get("plaintext_utf8", "x" * case["plaintext_len"]).encode()
    ct = encrypt_for_recipient(sender, recipient.session_id, msg)
    assert len(ct) == case["ciphertext_len"] == len(msg) + case["overhead"]
    assert protocol.OVERHEAD == case["overhead"]
    assert decrypt_incoming(recipient, ct) == (msg, sender.session_id)
    assert encrypt_for_recipient(sender, recipient.session_id, msg) != ct  # random ephemeral key
    for t in case["tamper_must_fail"]:
        bad = bytearray(ct)
        bad[t["byte_index"]] ^= t["xor"]
        with pytest.raises(DecryptionError):
            decrypt_incoming(recipient, bytes(bad))
    if case["wrong_recipient_must_fail"]:
        with pytest.raises(DecryptionError):
            decrypt_incoming(sender, ct)


def test_encrypt_does_not_pad_and_round_trips_padded_content() -> None:
    content = b"\x0a\x05hello"
    ct = encrypt_for_recipient(USER1, USER2.session_id, pad(content))
    assert len(ct) == 160 + 144
    padded, sender = decrypt_incoming(USER2, ct)
    assert sender == USER1.session_id and unpad(padded) == content


def test_bad_recipient_ids() -> None:
    for bad in ("", USER2.session_id[2:], "15" + USER2.session_id[2:], USER2.session_id + "0"):
        with pytest.raises(InvalidSessionID):
            encrypt_for_recipient(USER1, bad, b"x")
    # a low-order X25519 key cannot receive (libsodium refuses it too)
    with pytest.raises(InvalidInput):
        encrypt_for_recipient(USER1, "05" + "00" * 32, b"x")


def test_too_short_ciphertexts() -> None:
    for n in (0, 1, 47, 48, 143):
        with pytest.raises(DecryptionError, match="shorter"):
            decrypt_incoming(USER2, bytes(n))


@given(st.binary(max_size=600))
def test_decrypt_garbage_never_crashes(data: bytes) -> None:
    with pytest.raises(DecryptionError):
        decrypt_incoming(USER2, data)


@given(st.binary(max_size=500), st.data())
def test_round_trip_and_any_bit_flip_fails(msg: bytes, data: st.DataObject) -> None:
    ct = encrypt_for_recipient(USER1, USER2.session_id, msg)
    assert decrypt_incoming(USER2, ct) == (msg, USER1.session_id)
    i = data.draw(st.integers(0, len(ct) - 1))
    bad = bytearray(ct)
    bad[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecryptionError):
        decrypt_incoming(USER2, bytes(bad))
    with pytest.raises(DecryptionError):
        decrypt_incoming(USER2, ct[:-1])


# ---- differential against PyNaCl / libsodium ----


def _nacl_keys(ident_seed32: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    ed_pk, ed_sk = nb.crypto_sign_seed_keypair(ident_seed32)
    return (
        ed_pk,
        ed_sk,
        nb.crypto_sign_ed25519_pk_to_curve25519(ed_pk),
        nb.crypto_sign_ed25519_sk_to_curve25519(ed_sk),
    )


def nacl_encrypt(sender_seed32: bytes, recipient_x_pk: bytes, msg: bytes) -> bytes:
    """The 1:1 encryption written with libsodium calls (the oracle)."""
    ed_pk, ed_sk, _, _ = _nacl_keys(sender_seed32)
    sig = nb.crypto_sign(msg + ed_pk + recipient_x_pk, ed_sk)[:64]
    return nb.crypto_box_seal(msg + ed_pk + sig, recipient_x_pk)


def nacl_decrypt(recipient_seed32: bytes, ct: bytes) -> tuple[bytes, str]:
    _, _, x_pk, x_sk = _nacl_keys(recipient_seed32)
    inner = nb.crypto_box_seal_open(ct, x_pk, x_sk)
    msg, ed_pk, sig = inner[:-96], inner[-96:-64], inner[-64:]
    nb.crypto_sign_open(sig + msg + ed_pk + x_pk, ed_pk)
    return msg, "05" + nb.crypto_sign_ed25519_pk_to_curve25519(ed_pk).hex()


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=400),
)
def test_interop_with_libsodium_both_ways(s_seed: bytes, r_seed: bytes, msg: bytes) -> None:
    sender, recipient = Identity.from_seed(s_seed), Identity.from_seed(r_seed)
    ours = encrypt_for_recipient(sender, recipient.session_id, msg)
    assert nacl_decrypt(r_seed + bytes(16), ours) == (msg, sender.session_id)
    theirs = nacl_encrypt(s_seed + bytes(16), recipient.x25519_public, msg)
    assert decrypt_incoming(recipient, theirs) == (msg, sender.session_id)


def test_libsodium_sealed_box_with_bad_signature_is_rejected() -> None:
    ed_pk, ed_sk, _, _ = _nacl_keys(USER1.seed() + bytes(16))
    msg = b"forged"
    # signature over the wrong recipient key: the box opens, the signature must not verify
    sig = nb.crypto_sign(msg + ed_pk + USER1.x25519_public, ed_sk)[:64]
    ct = nb.crypto_box_seal(msg + ed_pk + sig, USER2.x25519_public)
    with pytest.raises(InvalidSignature):
        decrypt_incoming(USER2, ct)
    # a plain sealed box without the signature layer
    ct = nb.crypto_box_seal(b"x" * 120, USER2.x25519_public)
    with pytest.raises(InvalidSignature):
        decrypt_incoming(USER2, ct)


# ---- batch ----


def test_decrypt_many_mixed_batch() -> None:
    cts = []
    for i in range(40):
        msg = f"message {i}".encode() * (i % 5)
        if i % 4 == 3:
            cts.append(encrypt_for_recipient(USER2, USER1.session_id, msg))  # not for USER2
        elif i % 9 == 5:
            cts.append(b"\x01" * i)
        else:
            cts.append(encrypt_for_recipient(USER1, USER2.session_id, msg))
    results = decrypt_many(USER2, cts)
    assert len(results) == len(cts)
    for ct, res in zip(cts, results, strict=True):
        try:
            want = decrypt_incoming(USER2, ct)
        except DecryptionError as e:
            assert isinstance(res, DecryptionError) and type(res) is type(e)
            assert str(res) == str(e)
        else:
            assert res == want
    assert decrypt_many(USER2, []) == []
    assert decrypt_many(USER2, (c for c in cts[:3])) == results[:3]


def test_decrypt_many_type_errors() -> None:
    with pytest.raises(TypeError):
        decrypt_many(USER2, ["not bytes"])  # type: ignore[list-item]


# ---- BLAKE2b ----


@pytest.mark.parametrize("case", BLAKE, ids=case_ids(BLAKE))
def test_blake2b_vectors(case: dict) -> None:
    key = None if case["key_utf8"] is None else case["key_utf8"].encode()
    assert (
        blake2b(case["message_utf8"].encode(), key=key, digest_size=case["digest_size"]).hex()
        == case["digest"]
    )


@given(st.binary(max_size=600), st.binary(max_size=64), st.integers(16, 64))
def test_blake2b_matches_libsodium(data: bytes, key: bytes, size: int) -> None:
    want = nb.crypto_generichash_blake2b_salt_personal(data, digest_size=size, key=key)
    assert blake2b(data, key=key or None, digest_size=size) == want
    assert blake2b(data, key=key, digest_size=size) == want


@given(st.binary(max_size=300), st.binary(max_size=64), st.integers(1, 64))
def test_blake2b_matches_hashlib(data: bytes, key: bytes, size: int) -> None:
    assert (
        blake2b(data, key=key, digest_size=size)
        == hashlib.blake2b(data, key=key, digest_size=size).digest()
    )


@pytest.mark.parametrize(("key", "size"), [(None, 0), (None, 65), (None, -1), (b"k" * 65, 32)])
def test_blake2b_bad_sizes(key: bytes | None, size: int) -> None:
    with pytest.raises(InvalidInput):
        blake2b(b"x", key=key, digest_size=size)


def test_sealed_box_matches_libsodium_nonce_rule() -> None:
    """Sealed boxes from libsodium open with ours and vice versa at the raw layer too:
    a libsodium box whose contents are a correctly signed message decrypts; flipping the
    ephemeral key breaks it (the nonce is BLAKE2b-24(epk ‖ pk))."""
    ct = nacl_encrypt(USER1.seed() + bytes(16), USER2.x25519_public, b"abc")
    assert decrypt_incoming(USER2, ct) == (b"abc", USER1.session_id)
    bad = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(DecryptionError):
        decrypt_incoming(USER2, bad)
    with pytest.raises(nacl.exceptions.CryptoError):
        nacl_decrypt(USER2.seed() + bytes(16), bad)


def test_errors_are_session_errors() -> None:
    assert issubclass(InvalidSignature, DecryptionError)
    assert issubclass(DecryptionError, SessionError)
