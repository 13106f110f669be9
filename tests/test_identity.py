"""session.identity: vectors (identity.json, TV-01..TV-04), round trips, and differential
tests against PyNaCl (libsodium) for key derivation, X25519 conversion and Ed25519."""

from __future__ import annotations

import sys
import types

import nacl.bindings as nb
import nacl.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import _core
from session.errors import (
    InvalidInput,
    InvalidKey,
    InvalidSessionID,
    InvalidSignature,
    SessionError,
)
from session.identity import Identity, ed25519_to_x25519, parse_session_id, verify, verify_many
from vectorlib import case_ids, load_vectors

SEED_KEYS = load_vectors("identity", "seed_keys")

# Ed25519 group order ℓ and a few low-order point encodings (identity, order 2, order 4, order 8).
L = 2**252 + 27742317777372353535851937790883648493
LOW_ORDER = [
    bytes.fromhex("0100000000000000000000000000000000000000000000000000000000000000"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("0000000000000000000000000000000000000000000000000000000000000080"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
]


def _identity_for(case: dict) -> Identity:
    if "recovery_seed" in case:
        return Identity.from_seed(bytes.fromhex(case["recovery_seed"]))
    return Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))


@pytest.mark.parametrize("case", SEED_KEYS, ids=case_ids(SEED_KEYS))
def test_seed_keys_vectors(case: dict) -> None:
    ident = _identity_for(case)
    if "ed25519_pk" in case:
        assert ident.ed25519_public.hex() == case["ed25519_pk"]
    if "x25519_pk" in case:
        assert ident.x25519_public.hex() == case["x25519_pk"]
    if "session_id" in case:
        assert ident.session_id == case["session_id"]
        assert parse_session_id(ident.session_id) == ident.x25519_public
    if "recovery_seed" in case:
        assert ident.seed().hex() == case["recovery_seed"]
        assert len(ident.mnemonic.split()) == 13
    # the 32-byte Ed25519 seed is the same account
    full = Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))
    assert full == ident
    assert (
        ident.ed25519_public == nb.crypto_sign_seed_keypair(bytes.fromhex(case["ed25519_seed"]))[0]
    )


@pytest.mark.parametrize("case", load_vectors("identity", "ed25519_sign"), ids=lambda c: c["name"])
def test_sign_vector(case: dict) -> None:
    ident = Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))
    msg = case["message_utf8"].encode()
    sig = ident.sign(msg)
    assert sig.hex() == case["signature"]
    verify(ident.ed25519_public, msg, sig)
    with pytest.raises(InvalidSignature):
        verify(ident.ed25519_public, msg + b"!", sig)


@pytest.mark.parametrize(
    "case", load_vectors("identity", "ed_pk_to_x25519"), ids=lambda c: c["name"]
)
def test_ed_pk_to_x25519_vector(case: dict) -> None:
    x = ed25519_to_x25519(bytes.fromhex(case["ed25519_pk"]))
    if "x25519_pk" in case:
        assert x.hex() == case["x25519_pk"]
    if "session_id" in case:
        assert "05" + x.hex() == case["session_id"]


@pytest.mark.parametrize(
    "case", load_vectors("identity", "xed25519_sign_bit"), ids=lambda c: c["name"]
)
def test_xed25519_keys_convert(case: dict) -> None:
    ident = Identity.from_seed(bytes.fromhex(case["ed25519_sk"])[:32])
    assert ident.ed25519_public.hex() == case["ed25519_pk"]
    assert ident.x25519_public.hex() == case["x25519_pk"]


def test_generate_is_random_and_restorable() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a != b
    assert len(a.seed()) == 16
    assert Identity.from_seed(a.seed()) == a
    assert Identity.from_mnemonic(a.mnemonic) == a
    assert len(a.mnemonic.split()) == 13
    assert a.session_id.startswith("05") and len(a.session_id) == 66


def test_legacy_32_byte_seed_has_25_words() -> None:
    seed = bytes(range(32))
    ident = Identity.from_seed(seed)
    assert len(ident.mnemonic.split()) == 25
    assert ident.seed() == seed
    assert Identity.from_mnemonic(ident.mnemonic) == ident
    assert ident.session_id == "054701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01"


def test_docs_phrase_to_session_id() -> None:
    (case,) = load_vectors("mnemonic", "phrase_to_session_id")
    ident = Identity.from_mnemonic(case["words"])
    assert ident.session_id == case["session_id"]
    assert ident.seed().hex() == case["seed"]


def test_repr_eq_hash() -> None:
    ident = Identity.from_seed(bytes(range(16)))
    r = repr(ident)
    assert r == f"Identity({ident.session_id})"
    assert ident.seed().hex() not in r and ident.seed().hex() not in str(ident)
    other = Identity.from_seed(bytes(range(16)))
    assert other == ident and hash(other) == hash(ident)
    assert len({ident, other}) == 1
    assert ident != Identity.from_seed(bytes(16))
    assert ident != ident.session_id
    assert isinstance(ident, _core.Identity)


@pytest.mark.parametrize("length", [0, 1, 15, 17, 31, 33, 64])
def test_bad_seed_lengths(length: int) -> None:
    with pytest.raises(InvalidInput, match="16 or 32"):
        Identity.from_seed(bytes(length))


def test_seed_and_phrase_together_rejected() -> None:
    with pytest.raises(InvalidInput):
        _core.Identity(bytes(16), phrase="abbey " * 13)


def test_blinded15_id_delegates_to_blinding(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_blinded15_id(ident: Identity, server: str) -> str:
        calls.append((ident, server))
        return "15" + "ab" * 32

    fake = types.ModuleType("session.blinding")
    fake.blinded15_id = fake_blinded15_id  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "session.blinding", fake)
    import session

    monkeypatch.setattr(session, "blinding", fake, raising=False)
    ident = Identity.from_seed(bytes(16))
    assert ident.blinded15_id("00" * 32) == "15" + "ab" * 32
    assert calls == [(ident, "00" * 32)]


def test_blinded15_id_vector() -> None:
    pytest.importorskip("session.blinding")
    ident = Identity.from_seed(bytes.fromhex("0123456789abcdef0123456789abcdef"))
    server = "1d7e7f92b1ed3643855c98ecac02fc7274033a3467653f047d6e433540c03f17"
    assert (
        ident.blinded15_id(server)
        == "155678ab7f648665b1e90e3c19e56bbaa9d5890f367d1000101aebe265c46ae8c4"
    )


# ---- parse_session_id ----


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("d2ad010eeb72d72e561d9de7bd7b6989af77dcabffa03a5111a6c859ae5c3a72", "66 hex"),
        ("05d2ad", "got 6"),
        ("15" + "ab" * 32, "community-blinded"),
        ("03" + "ab" * 32, "group"),
        ("05" + "zz" * 32, "hex digits"),
        ("05" + "ab" * 31 + "a\u00e9", "hex digits"),
        ("", "got 0"),
    ],
)
def test_parse_session_id_errors(text: str, needle: str) -> None:
    with pytest.raises(InvalidSessionID, match=needle):
        parse_session_id(text)


def test_parse_session_id_type() -> None:
    with pytest.raises(TypeError):
        parse_session_id(b"05" + b"ab" * 32)  # type: ignore[arg-type]


@given(st.binary(min_size=32, max_size=32))
def test_parse_session_id_round_trip(pk: bytes) -> None:
    assert parse_session_id("05" + pk.hex()) == pk
    assert parse_session_id("05" + pk.hex().upper()) == pk


# ---- differential against PyNaCl ----


@given(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32))
def test_keys_match_libsodium(seed: bytes) -> None:
    ident = Identity.from_seed(seed)
    seed32 = seed.ljust(32, b"\0")
    pk, sk = nb.crypto_sign_seed_keypair(seed32)
    assert ident.ed25519_public == pk
    x_pk = nb.crypto_sign_ed25519_pk_to_curve25519(pk)
    assert ident.x25519_public == x_pk
    # X25519 secret (libsodium conversion) gives the same public key through scalarmult
    assert nb.crypto_scalarmult_base(nb.crypto_sign_ed25519_sk_to_curve25519(sk)) == x_pk


@given(st.binary(min_size=32, max_size=32))
def test_ed_to_x_matches_libsodium_on_any_input(data: bytes) -> None:
    try:
        want: bytes | None = nb.crypto_sign_ed25519_pk_to_curve25519(data)
    except nacl.exceptions.CryptoError:
        want = None
    try:
        got: bytes | None = ed25519_to_x25519(data)
    except InvalidKey:
        got = None
    assert got == want


@pytest.mark.parametrize("pk", LOW_ORDER)
def test_ed_to_x_rejects_low_order(pk: bytes) -> None:
    with pytest.raises(InvalidKey):
        ed25519_to_x25519(pk)
    with pytest.raises(nacl.exceptions.CryptoError):
        nb.crypto_sign_ed25519_pk_to_curve25519(pk)


def test_ed_to_x_length() -> None:
    with pytest.raises(InvalidKey, match="32 bytes"):
        ed25519_to_x25519(bytes(31))


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_sign_matches_libsodium(seed: bytes, msg: bytes) -> None:
    ident = Identity.from_seed(seed)
    _, sk = nb.crypto_sign_seed_keypair(seed)
    assert ident.sign(msg) == nb.crypto_sign(msg, sk)[:64]


def _nacl_verifies(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        nb.crypto_sign_open(sig + msg, pk)
        return True
    except nacl.exceptions.CryptoError:
        return False


def _ours_verifies(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        verify(pk, msg, sig)
        return True
    except InvalidSignature:
        return False


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64), st.data())
def test_verify_agrees_with_libsodium_on_mutations(
    seed: bytes, msg: bytes, data: st.DataObject
) -> None:
    ident = Identity.from_seed(seed)
    sig = ident.sign(msg)
    pk = ident.ed25519_public
    assert _ours_verifies(pk, msg, sig) and _nacl_verifies(pk, msg, sig)
    blob = bytearray(pk + sig)
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    pk2, sig2 = bytes(blob[:32]), bytes(blob[32:])
    assert _ours_verifies(pk2, msg, sig2) == _nacl_verifies(pk2, msg, sig2)


def test_verify_edge_cases_agree_with_libsodium() -> None:
    ident = Identity.from_seed(bytes(range(32)))
    msg = b"edge"
    sig = ident.sign(msg)
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    cases = []
    # non-canonical S (S + ℓ still < 2^256): libsodium rejects
    cases.append((ident.ed25519_public, msg, r + (s + L).to_bytes(32, "little")))
    # low-order public keys with S = 0 and R = the same low-order point (satisfies the
    # cofactorless equation for some messages: must be rejected like libsodium)
    for p in LOW_ORDER:
        cases.append((p, msg, p + bytes(32)))
        cases.append((ident.ed25519_public, msg, p + sig[32:]))
    # non-canonical public key encodings (y >= p)
    for low in range(0xED, 0x100):
        enc = bytes([low]) + b"\xff" * 30 + b"\x7f"
        cases.append((enc, msg, sig))
        cases.append((enc, msg, enc + bytes(32)))
    for pk, m, sg in cases:
        assert _ours_verifies(pk, m, sg) == _nacl_verifies(pk, m, sg), (pk.hex(), sg.hex())
        assert not _ours_verifies(pk, m, sg)


def test_verify_length_errors() -> None:
    ident = Identity.from_seed(bytes(16))
    sig = ident.sign(b"x")
    with pytest.raises(InvalidKey, match="32 bytes"):
        verify(ident.ed25519_public[:31], b"x", sig)
    with pytest.raises(InvalidInput, match="64"):
        verify(ident.ed25519_public, b"x", sig[:63])
    with pytest.raises(InvalidSignature):
        verify(bytes(32), b"x", sig)  # not a usable key


def test_verify_many() -> None:
    idents = [Identity.from_seed(bytes([i]) * 16) for i in range(20)]
    items = []
    want = []
    for i, ident in enumerate(idents):
        msg = f"message {i}".encode()
        sig = ident.sign(msg)
        if i % 3 == 1:
            sig = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
        if i % 7 == 2:
            sig = sig[:40]  # wrong length counts as not verifying
        items.append((ident.ed25519_public, msg, sig))
        want.append(_nacl_verifies(ident.ed25519_public, msg, sig) if len(sig) == 64 else False)
    assert verify_many(items) == want
    assert verify_many(iter(items)) == want
    assert verify_many([]) == []
    assert sum(want) > 5


@given(st.binary(max_size=100), st.binary(max_size=100), st.binary(max_size=100))
def test_verify_garbage_never_crashes(pk: bytes, msg: bytes, sig: bytes) -> None:
    try:
        verify(pk, msg, sig)
    except SessionError:
        pass
    assert verify_many([(pk, msg, sig)]) == [
        _ours_verifies(pk, msg, sig) if len(pk) == 32 and len(sig) == 64 else False
    ]
