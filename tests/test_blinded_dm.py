"""Blinded direct messages (client spec §4.6): TV-12 (session_protocol.json
``blinded_dm_structure``), interoperability both ways with a PyNaCl oracle written from the spec
(libsodium's scalar multiplication, BLAKE2b and XChaCha20-Poly1305, as libsession calls them),
the outbox orientation, and every refusal as a typed error."""

from __future__ import annotations

import hashlib
import os

import nacl.bindings as nb
import pytest

from session import blinding
from session.errors import DecryptionError, InvalidKey, InvalidSessionID, SessionError
from session.identity import Identity
from vectorlib import case_ids, load_vectors

CASES = load_vectors("session_protocol", "blinded_dm_structure")
SERVER = CASES[0]["server_pk"]


def blinded(ident: Identity, prefix: str, server: str = SERVER) -> str:
    if prefix == "15":
        return blinding.blinded15_id(ident, server)
    return blinding.blinded25_id(ident, server)


# ----------------------------------------------------------------------- PyNaCl oracle (§4.6)


def _scalar_a(seed: bytes) -> bytes:
    _pk, sk = nb.crypto_sign_seed_keypair(seed)
    return nb.crypto_sign_ed25519_sk_to_curve25519(sk)


def _own_factor(seed: bytes, prefix: str, server: bytes) -> bytes:
    """a (15) or k'·a (25) as 32 bytes, from libsodium primitives."""
    a = _scalar_a(seed)
    if prefix == "15":
        return a
    pk, _ = nb.crypto_sign_seed_keypair(seed)
    xpk = nb.crypto_sign_ed25519_pk_to_curve25519(pk)
    k = nb.crypto_core_ed25519_scalar_reduce(hashlib.blake2b(b"\x05" + xpk + server).digest())
    if pk[31] & 0x80:
        k = nb.crypto_core_ed25519_scalar_negate(k)
    return nb.crypto_core_ed25519_scalar_mul(nb.crypto_core_ed25519_scalar_reduce(a + bytes(32)), k)


def oracle_key(seed: bytes, own: str, other: str, sending: bool) -> bytes:
    server = bytes.fromhex(SERVER)
    factor = _own_factor(seed, own[:2], server)
    x = nb.crypto_scalarmult_ed25519_noclamp(factor, bytes.fromhex(other[2:]))
    sender, recipient = (own, other) if sending else (other, own)
    return hashlib.blake2b(
        x + bytes.fromhex(sender[2:]) + bytes.fromhex(recipient[2:]), digest_size=32
    ).digest()


def oracle_encrypt(seed: bytes, own: str, recipient: str, content: bytes) -> bytes:
    key = oracle_key(seed, own, recipient, sending=True)
    pk, _ = nb.crypto_sign_seed_keypair(seed)
    nonce = os.urandom(24)
    ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(content + pk, None, nonce, key)
    return b"\x00" + ct + nonce


def oracle_decrypt(seed: bytes, own: str, other: str, message: bytes, *, sending: bool) -> bytes:
    key = oracle_key(seed, own, other, sending=sending)
    inner = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(message[1:-24], None, message[-24:], key)
    return inner[:-32]


# ----------------------------------------------------------------------------------- TV-12


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_tv12_structure_both_readers_and_tamper(case: dict) -> None:
    alice = Identity(bytes.fromhex(case["sender_ed25519_seed"]))
    bob = Identity(bytes.fromhex(case["recipient_ed25519_seed"]))
    assert alice.session_id == case["sender_session_id"]
    prefix = case["blinding"]
    a_id, b_id = blinded(alice, prefix), blinded(bob, prefix)
    plain = (b"Lorem ipsum dolor sit amet. " * 20)[: case["plaintext_len"]]
    ct = blinding.encrypt_blinded_dm(alice, SERVER, b_id, plain)
    assert len(ct) == case["ciphertext_len"]
    assert ct[0] == 0 and len(ct) - case["nonce_offset"] == 24
    assert ct != blinding.encrypt_blinded_dm(alice, SERVER, b_id, plain)  # random nonce
    for reader in (bob, alice):  # inbox, and the sender's outbox copy
        content, sender = blinding.decrypt_blinded_dm(reader, SERVER, a_id, b_id, ct)
        assert content == plain
        assert sender == case["sender_session_id"]
    for t in case["tamper_must_fail"]:
        bad = bytearray(ct)
        bad[t["byte_index"]] ^= t["xor"]
        with pytest.raises(DecryptionError):
            blinding.decrypt_blinded_dm(bob, SERVER, a_id, b_id, bytes(bad))
    # Ids without their 15/25 prefix are refused.
    with pytest.raises(InvalidSessionID):
        blinding.encrypt_blinded_dm(alice, SERVER, b_id[2:], plain)
    with pytest.raises(InvalidSessionID):
        blinding.decrypt_blinded_dm(bob, SERVER, a_id[2:], b_id, ct)


@pytest.mark.parametrize("prefix", ["15", "25"])
def test_interoperates_with_a_libsodium_oracle(prefix: str) -> None:
    alice, bob = Identity(os.urandom(32)), Identity(os.urandom(32))
    a_id, b_id = blinded(alice, prefix), blinded(bob, prefix)
    content = b"\x0a\x05hello" + b"\x80" + bytes(40)
    # ours -> oracle (recipient) and oracle (sender's outbox)
    ct = blinding.encrypt_blinded_dm(alice, SERVER, b_id, content)
    assert oracle_decrypt(bob.seed()[:32], b_id, a_id, ct, sending=False) == content
    assert oracle_decrypt(alice.seed()[:32], a_id, b_id, ct, sending=True) == content
    # oracle -> ours
    ct2 = oracle_encrypt(alice.seed()[:32], a_id, b_id, content)
    got, sender = blinding.decrypt_blinded_dm(bob, SERVER, a_id, b_id, ct2)
    assert (got, sender) == (content, alice.session_id)


def test_negative_key_sender_matches_either_sign() -> None:
    """A 15 id computed from a Session ID may have the wrong sign; the decryption still names
    the sender (the server delivers under the exact id, which is what the sender key gives)."""
    for _ in range(8):
        alice, bob = Identity(os.urandom(32)), Identity(os.urandom(32))
        a_id, b_id = blinded(alice, "15"), blinded(bob, "15")
        assert a_id in blinding.blinded15_ids_for_session_id(alice.session_id, SERVER)
        ct = blinding.encrypt_blinded_dm(alice, SERVER, b_id, b"x")
        assert blinding.decrypt_blinded_dm(bob, SERVER, a_id, b_id, ct)[1] == alice.session_id


def test_refusals_are_typed() -> None:
    alice, bob, carol = (Identity(os.urandom(32)) for _ in range(3))
    a_id, b_id, c_id = (blinded(i, "15") for i in (alice, bob, carol))
    ct = blinding.encrypt_blinded_dm(alice, SERVER, b_id, b"hello")
    with pytest.raises(DecryptionError, match="neither the sender nor the recipient"):
        blinding.decrypt_blinded_dm(carol, SERVER, a_id, b_id, ct)
    with pytest.raises(DecryptionError, match="does not authenticate"):
        # the server claims carol sent it: bob's key for (carol, bob) does not open it
        blinding.decrypt_blinded_dm(bob, SERVER, c_id, b_id, ct)
    # carol encrypts properly to bob but puts alice's key inside: the sender check refuses it
    key = oracle_key(carol.seed()[:32], c_id, b_id, sending=True)
    nonce = os.urandom(24)
    forged = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(
        b"hi" + alice.ed25519_public, None, nonce, key
    )
    with pytest.raises(DecryptionError, match="does not match the id"):
        blinding.decrypt_blinded_dm(bob, SERVER, c_id, b_id, b"\x00" + forged + nonce)
    with pytest.raises(DecryptionError, match="too short"):
        blinding.decrypt_blinded_dm(bob, SERVER, a_id, b_id, ct[:72])
    with pytest.raises(DecryptionError, match="version"):
        blinding.decrypt_blinded_dm(bob, SERVER, a_id, b_id, b"\x01" + ct[1:])
    with pytest.raises(InvalidSessionID, match="must both be 15"):
        blinding.decrypt_blinded_dm(bob, SERVER, blinded(alice, "25"), b_id, ct)
    with pytest.raises(InvalidSessionID):
        blinding.encrypt_blinded_dm(alice, SERVER, "05" + b_id[2:], b"x")
    with pytest.raises(InvalidKey):
        blinding.encrypt_blinded_dm(alice, SERVER, "15" + "00" * 32, b"x")  # low order
    with pytest.raises(InvalidKey):
        blinding.encrypt_blinded_dm(alice, "zz" * 32, b_id, b"x")
    for junk in (b"", b"\x00" * 73, os.urandom(200)):
        with pytest.raises(SessionError):
            blinding.decrypt_blinded_dm(bob, SERVER, a_id, b_id, junk)
