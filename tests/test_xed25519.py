"""XEd25519 (client spec §4.5, TV-04): signatures by an X25519 key that verify as plain
Ed25519 under the positive-sign Edwards point of that key, checked against PyNaCl (libsodium)
with the vectors' positive keys, for accounts whose real Ed25519 key is positive and negative."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from session import blinding
from session.errors import InvalidSessionID, InvalidSignature
from session.identity import Identity
from vectorlib import case_ids, load_vectors

CASES = load_vectors("identity", "xed25519_sign_bit")


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_signatures_verify_under_the_positive_point(case: dict[str, Any]) -> None:
    ident = Identity(bytes.fromhex(case["ed25519_sk"])[:32])
    assert ident.x25519_public.hex() == case["x25519_pk"]
    msg = b"community post bytes"
    sig = blinding.xed25519_sign(ident, msg)
    VerifyKey(bytes.fromhex(case["xed25519_positive_pk"])).verify(msg, sig)  # libsodium
    blinding.xed25519_verify(ident.session_id, msg, sig)
    if case["ed25519_pk_negative"]:  # the real key is the other sign: it does not verify
        with pytest.raises(BadSignatureError):
            VerifyKey(bytes.fromhex(case["ed25519_pk"])).verify(msg, sig)
    assert blinding.xed25519_sign(ident, msg) != sig  # fresh nonce randomness each time


def test_bad_signatures_and_ids_are_typed_errors() -> None:
    ident = Identity.generate()
    sig = blinding.xed25519_sign(ident, b"m")
    for message, signature in ((b"n", sig), (b"m", sig[:63]), (b"m", bytes(64))):
        with pytest.raises(InvalidSignature):
            blinding.xed25519_verify(ident.session_id, message, signature)
    with pytest.raises(InvalidSignature):
        blinding.xed25519_verify(Identity.generate().session_id, b"m", sig)
    with pytest.raises(InvalidSessionID):
        blinding.xed25519_verify("15" + ident.session_id[2:], b"m", sig)
