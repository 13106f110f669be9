"""session.blinding: vectors (blinding.json TV-12..TV-17/TV-19, sogs_auth.json TV-18), a
PyNaCl oracle of the blinding scalar math written from client spec §4.2 (libsodium's
crypto_core_ed25519_* / crypto_scalarmult_ed25519_* as pysogs uses them), round trips and
bad input."""

from __future__ import annotations

import base64
import hashlib

import nacl.bindings as nb
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import blinding
from session.errors import (
    InvalidInput,
    InvalidKey,
    InvalidSessionID,
    InvalidSignature,
    SessionError,
)
from session.identity import Identity
from vectorlib import case_ids, load_vectors

P = 2**255 - 19


def cases(kind: str) -> list[dict]:
    return load_vectors("blinding", kind)


def seed_of(case: dict) -> bytes:
    if "ed25519_seed" in case:
        return bytes.fromhex(case["ed25519_seed"])
    sk = bytes.fromhex(case["ed25519_sk"])
    assert len(sk) == 64
    return sk[:32]


def ident(case: dict) -> Identity:
    ident = Identity.from_seed(seed_of(case))
    if "ed25519_sk" in case:
        assert ident.ed25519_public == bytes.fromhex(case["ed25519_sk"])[32:]
    return ident


# --- oracle (PyNaCl / hashlib), written from the spec -----------------------------------------


def h64(data: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=64, key=key).digest()


def reduce(x: bytes) -> bytes:
    return nb.crypto_core_ed25519_scalar_reduce(x)


def xed_positive(x25519_pk: bytes) -> bytes:
    """Ed25519 encoding (sign bit 0) of the point whose Montgomery u is x25519_pk."""
    u = int.from_bytes(x25519_pk, "little") % P
    y = (u - 1) * pow(u + 1, P - 2, P) % P
    return y.to_bytes(32, "little")


class Oracle:
    def __init__(self, seed: bytes) -> None:
        self.pk, self.sk = nb.crypto_sign_seed_keypair(seed)
        self.a = nb.crypto_sign_ed25519_sk_to_curve25519(self.sk)
        self.x = nb.crypto_sign_ed25519_pk_to_curve25519(self.pk)
        self.seed = seed

    def blind15(self, server_pk: bytes) -> tuple[bytes, bytes]:
        k = reduce(h64(server_pk))
        ka = nb.crypto_core_ed25519_scalar_mul(k, self.a)
        return nb.crypto_scalarmult_ed25519_base_noclamp(ka), ka

    def blind25(self, server_pk: bytes) -> tuple[bytes, bytes]:
        k = reduce(h64(b"\x05" + self.x + server_pk))
        if self.pk[31] & 0x80:
            k = nb.crypto_core_ed25519_scalar_negate(k)
        ka = nb.crypto_core_ed25519_scalar_mul(k, self.a)
        return nb.crypto_scalarmult_ed25519_base_noclamp(ka), ka

    @staticmethod
    def _sign(r: bytes, a: bytes, pub: bytes, msg: bytes) -> bytes:
        big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r)
        hram = reduce(hashlib.sha512(big_r + pub + msg).digest())
        return big_r + nb.crypto_core_ed25519_scalar_add(
            r, nb.crypto_core_ed25519_scalar_mul(hram, a)
        )

    def sign15(self, server_pk: bytes, msg: bytes, variant: str = "libsession") -> bytes:
        pub, ka = self.blind15(server_pk)
        src = self.sk if variant == "libsession" else self.seed
        hrh = hashlib.sha512(src).digest()[32:]
        r = reduce(hashlib.sha512(hrh + pub + msg).digest())
        return self._sign(r, ka, pub, msg)

    def sign25(self, server_pk: bytes, msg: bytes) -> bytes:
        pub, ka = self.blind25(server_pk)
        seedhash = hashlib.blake2b(self.seed, digest_size=32, key=b"SessCommBlind25_seed").digest()
        r = reduce(h64(seedhash + pub + msg, key=b"SessCommBlind25_sig"))
        return self._sign(r, ka, pub, msg)


def oracle_from_session_id15(x25519_pk: bytes, server_pk: bytes) -> tuple[str, str]:
    k = reduce(h64(server_pk))
    pos = nb.crypto_scalarmult_ed25519_noclamp(k, xed_positive(x25519_pk))
    neg = pos[:31] + bytes([pos[31] ^ 0x80])
    return "15" + pos.hex(), "15" + neg.hex()


def oracle_from_session_id25(x25519_pk: bytes, server_pk: bytes) -> str:
    k = reduce(h64(b"\x05" + x25519_pk + server_pk))
    return "25" + nb.crypto_scalarmult_ed25519_noclamp(k, xed_positive(x25519_pk)).hex()


# --- vectors --------------------------------------------------------------------------------

FACTOR = cases("blind15_factor")
FROM_SEED15 = cases("blind15_from_seed")
FROM_SEED25 = cases("blind25_from_seed")
FROM_SID15 = cases("blind15_from_session_id")
FROM_SID25 = cases("blind25_from_session_id")
SIGN15 = cases("blind15_sign")
SIGN25 = cases("blind25_sign")
VERSION = cases("version_blind")
SOGS = load_vectors("sogs_auth")


@pytest.mark.parametrize("case", FACTOR, ids=case_ids(FACTOR))
def test_factor_vectors_oracle(case: dict) -> None:
    # The factor is internal; check the oracle's and that ids built on it agree.
    assert reduce(h64(bytes.fromhex(case["server_pk"]))).hex() == case["k"]


@pytest.mark.parametrize("case", FROM_SEED15, ids=case_ids(FROM_SEED15))
def test_blind15_from_seed(case: dict) -> None:
    i = ident(case)
    got = blinding.blinded15_id(i, case["server_pk"])
    assert got == case["blinded_id"]
    assert got in blinding.blinded15_ids_for_session_id(i.session_id, case["server_pk"])
    assert blinding.session_id_matches_blinded_id(i.session_id, got, case["server_pk"])
    assert i.blinded15_id(case["server_pk"]) == got


@pytest.mark.parametrize("case", FROM_SEED25, ids=case_ids(FROM_SEED25))
def test_blind25_from_seed(case: dict) -> None:
    i = ident(case)
    got = blinding.blinded25_id(i, case["server_pk"])
    assert got == case["blinded_id"]
    assert blinding.blinded25_id_for_session_id(i.session_id, case["server_pk"]) == got


@pytest.mark.parametrize("case", FROM_SID15, ids=case_ids(FROM_SID15))
def test_blind15_from_session_id(case: dict) -> None:
    got = blinding.blinded15_ids_for_session_id(case["session_id"], case["server_pk"])
    assert got == (case["blinded_id_positive"], case["blinded_id_negative"])
    x = bytes.fromhex(case["session_id"][2:])
    assert oracle_from_session_id15(x, bytes.fromhex(case["server_pk"])) == got
    for b in got:
        assert blinding.session_id_matches_blinded_id(case["session_id"], b, case["server_pk"])


@pytest.mark.parametrize("case", FROM_SID25, ids=case_ids(FROM_SID25))
def test_blind25_from_session_id(case: dict) -> None:
    got = blinding.blinded25_id_for_session_id(case["session_id"], case["server_pk"])
    assert got == case["blinded_id"]
    x = bytes.fromhex(case["session_id"][2:])
    assert oracle_from_session_id25(x, bytes.fromhex(case["server_pk"])) == got
    assert blinding.session_id_matches_blinded_id(case["session_id"], got, case["server_pk"])


@pytest.mark.parametrize("case", SIGN15 + SIGN25, ids=case_ids(SIGN15 + SIGN25))
def test_blinded_signature_vectors(case: dict) -> None:
    i = ident(case)
    msg = case["message_utf8"].encode()
    spk = case["server_pk"]
    if case["kind"] == "blind15_sign":
        sig = blinding.blind15_sign(i, spk, msg)
        assert blinding.blinded15_id(i, spk) == case["blinded_id"]
    else:
        sig = blinding.blind25_sign(i, spk, msg)
        assert blinding.blinded25_id(i, spk) == case["blinded_id"]
    assert sig.hex() == case["signature"]
    blinding.verify_blinded(case["blinded_id"], msg, sig)
    nacl.signing.VerifyKey(bytes.fromhex(case["blinded_id"][2:])).verify(msg, sig)
    with pytest.raises(InvalidSignature):
        blinding.verify_blinded(case["blinded_id"], msg + b"!", sig)


@pytest.mark.parametrize("case", VERSION, ids=case_ids(VERSION))
def test_version_blind(case: dict) -> None:
    i = ident(case)
    assert blinding.version_blinded_id(i) == case["blinded_id"]
    msg = f"{case['timestamp']}{case['method']}{case['path']}".encode()
    assert msg == case["message_utf8"].encode()
    sig = blinding.version_blind_sign(i, msg)
    assert sig.hex() == case["signature"]
    blinding.verify_blinded(case["blinded_id"], msg, sig)


@pytest.mark.parametrize("case", SOGS, ids=case_ids(SOGS))
def test_sogs_auth_vectors(case: dict) -> None:
    i = Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))
    assert i.ed25519_public.hex() == case["ed25519_pk"]
    assert i.session_id == case["session_id"]
    body = (case["body_utf8"] or "").encode()
    kwargs = {}
    if case.get("nonce_derivation"):
        kwargs["nonce_derivation"] = case["nonce_derivation"]
    headers = blinding.sogs_auth_headers(
        i,
        case["server_pk"],
        case["method"],
        case["path"],
        body,
        blinded=case["blinded"],
        timestamp=case["timestamp"],
        nonce=base64.b64decode(case["nonce_b64"]),
        **kwargs,
    )
    assert headers == case["headers"]
    # The signature verifies over the documented message.
    signed = (
        bytes.fromhex(case["server_pk"])
        + base64.b64decode(case["nonce_b64"])
        + str(case["timestamp"]).encode()
        + case["method"].encode()
        + case["path"].encode()
        + (h64(body) if body else b"")
    )
    sig = base64.b64decode(headers["X-SOGS-Signature"])
    nacl.signing.VerifyKey(bytes.fromhex(headers["X-SOGS-Pubkey"][2:])).verify(signed, sig)


# --- differential against the oracle and round trips ----------------------------------------

seeds = st.binary(min_size=32, max_size=32)
server_pks = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=300)


@given(seeds, server_pks, messages)
def test_blinding_matches_oracle(seed: bytes, spk: bytes, msg: bytes) -> None:
    i = Identity.from_seed(seed)
    o = Oracle(seed)
    spk_hex = spk.hex()
    b15, b25 = blinding.blinded15_id(i, spk_hex), blinding.blinded25_id(i, spk_hex)
    assert b15 == "15" + o.blind15(spk)[0].hex()
    assert b25 == "25" + o.blind25(spk)[0].hex()
    assert b15 in oracle_from_session_id15(o.x, spk)
    assert blinding.blinded25_id_for_session_id(i.session_id, spk_hex) == b25
    assert blinding.blinded15_ids_for_session_id(i.session_id, spk_hex) == oracle_from_session_id15(
        o.x, spk
    )
    s15 = blinding.blind15_sign(i, spk_hex, msg)
    assert s15 == o.sign15(spk, msg)
    assert blinding.blind15_sign(i, spk_hex, msg, nonce_derivation="desktop") == o.sign15(
        spk, msg, "desktop"
    )
    s25 = blinding.blind25_sign(i, spk_hex, msg)
    assert s25 == o.sign25(spk, msg)
    nacl.signing.VerifyKey(bytes.fromhex(b15[2:])).verify(msg, s15)
    nacl.signing.VerifyKey(bytes.fromhex(b25[2:])).verify(msg, s25)


@given(seeds, server_pks, messages, st.integers(0, 63), st.integers(1, 255))
def test_sign_verify_round_trip(seed: bytes, spk: bytes, msg: bytes, pos: int, flip: int) -> None:
    i = Identity.from_seed(seed)
    for bid, sig in (
        (blinding.blinded15_id(i, spk.hex()), blinding.blind15_sign(i, spk.hex(), msg)),
        (blinding.blinded25_id(i, spk.hex()), blinding.blind25_sign(i, spk.hex(), msg)),
        (blinding.version_blinded_id(i), blinding.version_blind_sign(i, msg)),
    ):
        blinding.verify_blinded(bid, msg, sig)
        bad = bytearray(sig)
        bad[pos] ^= flip
        with pytest.raises(InvalidSignature):
            blinding.verify_blinded(bid, msg, bytes(bad))
        with pytest.raises(InvalidSignature):
            blinding.verify_blinded(bid, msg + b"x", sig)


@given(
    seeds,
    server_pks,
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    st.text(min_size=0, max_size=40),
    st.binary(max_size=200),
    st.booleans(),
)
def test_sogs_headers_round_trip(
    seed: bytes, spk: bytes, method: str, tail: str, body: bytes, blinded: bool
) -> None:
    i = Identity.from_seed(seed)
    path = "/" + tail
    h = blinding.sogs_auth_headers(i, spk.hex(), method, path, body, blinded=blinded)
    nonce = base64.b64decode(h["X-SOGS-Nonce"])
    assert len(nonce) == 16
    signed = (
        spk
        + nonce
        + h["X-SOGS-Timestamp"].encode()
        + method.encode()
        + path.encode()
        + (h64(body) if body else b"")
    )
    pk = h["X-SOGS-Pubkey"]
    assert pk[:2] == ("15" if blinded else "00")
    if not blinded:
        assert pk[2:] == i.ed25519_public.hex()
    nacl.signing.VerifyKey(bytes.fromhex(pk[2:])).verify(
        signed, base64.b64decode(h["X-SOGS-Signature"])
    )


@given(st.text(max_size=70), st.binary(max_size=70), st.binary(max_size=70))
def test_garbage_never_crashes(text: str, msg: bytes, sig: bytes) -> None:
    for call in (
        lambda: blinding.verify_blinded(text, msg, sig),
        lambda: blinding.verify_blinded("15" + msg[:32].hex().ljust(64, "0"), msg, sig),
        lambda: blinding.blinded15_ids_for_session_id(text, "00" * 32),
        lambda: blinding.blinded25_id_for_session_id("05" + msg[:32].hex().ljust(64, "0"), text),
        lambda: blinding.blinded15_ids_for_session_id(
            "05" + msg[:32].hex().ljust(64, "0"), "11" * 32
        ),
        lambda: blinding.session_id_matches_blinded_id(text, text, text),
    ):
        try:
            call()
        except SessionError:
            pass


# --- bad input ------------------------------------------------------------------------------

ID = Identity.from_seed(bytes(range(32)))
SPK = "ab" * 32
SID = ID.session_id


@pytest.mark.parametrize("spk", ["", "ab" * 31, "ab" * 33, "zz" * 32, "05" + "ab" * 32])
def test_bad_server_key(spk: str) -> None:
    for call in (
        lambda: blinding.blinded15_id(ID, spk),
        lambda: blinding.blinded25_id(ID, spk),
        lambda: blinding.blinded15_ids_for_session_id(SID, spk),
        lambda: blinding.blinded25_id_for_session_id(SID, spk),
        lambda: blinding.blind15_sign(ID, spk, b"m"),
        lambda: blinding.blind25_sign(ID, spk, b"m"),
        lambda: blinding.sogs_auth_headers(ID, spk, "GET", "/"),
    ):
        with pytest.raises(InvalidKey, match="server public key"):
            call()


@pytest.mark.parametrize(
    "sid", ["", SID[2:], "03" + SID[2:], "15" + SID[2:], SID + "0", "05" + "zz" * 32]
)
def test_bad_session_id(sid: str) -> None:
    with pytest.raises(InvalidSessionID):
        blinding.blinded15_ids_for_session_id(sid, SPK)
    with pytest.raises(InvalidSessionID):
        blinding.blinded25_id_for_session_id(sid, SPK)


def test_unusable_session_keys() -> None:
    # u = 0 is a small-order point; u = p - 1 has no Edwards form.
    for x in (bytes(32), (P - 1).to_bytes(32, "little")):
        with pytest.raises(InvalidKey):
            blinding.blinded15_ids_for_session_id("05" + x.hex(), SPK)
        with pytest.raises(InvalidKey):
            blinding.blinded25_id_for_session_id("05" + x.hex(), SPK)


def test_bad_blinded_ids_and_signatures() -> None:
    sig = blinding.blind15_sign(ID, SPK, b"m")
    bid = blinding.blinded15_id(ID, SPK)
    with pytest.raises(InvalidSessionID, match="15, 25 or 07"):
        blinding.verify_blinded("05" + bid[2:], b"m", sig)
    with pytest.raises(InvalidSessionID):
        blinding.verify_blinded(bid[:-2], b"m", sig)
    for bad_sig in (b"", sig[:63], sig + b"\0"):
        with pytest.raises(InvalidSignature):
            blinding.verify_blinded(bid, b"m", bad_sig)
    with pytest.raises(InvalidSignature):
        blinding.verify_blinded("15" + "00" * 32, b"m", sig)  # not a usable key
    with pytest.raises(InvalidSessionID):
        blinding.session_id_matches_blinded_id(SID, "07" + bid[2:], SPK)
    assert not blinding.session_id_matches_blinded_id(SID, "15" + "11" * 32, SPK)


def test_bad_sogs_arguments() -> None:
    with pytest.raises(InvalidInput, match="nonce"):
        blinding.sogs_auth_headers(ID, SPK, "GET", "/", nonce=b"short")
    with pytest.raises(InvalidInput, match="nonce_derivation"):
        blinding.sogs_auth_headers(ID, SPK, "GET", "/", nonce_derivation="other")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="nonce_derivation"):
        blinding.blind15_sign(ID, SPK, b"m", nonce_derivation="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="HTTP method"):
        blinding.sogs_auth_headers(ID, SPK, "", "/")
    with pytest.raises(InvalidInput, match="HTTP method"):
        blinding.sogs_auth_headers(ID, SPK, "GET /", "/")
    with pytest.raises(InvalidInput, match="path"):
        blinding.sogs_auth_headers(ID, SPK, "GET", "room")
    with pytest.raises(InvalidInput, match="timestamp"):
        blinding.sogs_auth_headers(ID, SPK, "GET", "/", timestamp=-1)
    with pytest.raises(TypeError):
        blinding.sogs_auth_headers(ID, SPK, "GET", "/", timestamp="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        blinding.blinded15_id(b"not an identity", SPK)  # type: ignore[arg-type]


def test_defaults_are_fresh() -> None:
    a = blinding.sogs_auth_headers(ID, SPK, "GET", "/")
    b = blinding.sogs_auth_headers(ID, SPK, "GET", "/")
    assert a["X-SOGS-Nonce"] != b["X-SOGS-Nonce"]
    assert a["X-SOGS-Pubkey"] == b["X-SOGS-Pubkey"] == blinding.blinded15_id(ID, SPK)
    assert abs(int(a["X-SOGS-Timestamp"]) - __import__("time").time()) < 60
