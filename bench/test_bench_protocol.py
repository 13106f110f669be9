"""1:1 message benchmarks: sign-then-sealed-box encryption and decryption.

Groups (``ours`` = the Rust core, ``baseline`` = the same algorithm in Python over PyNaCl,
i.e. libsodium ``crypto_sign`` + ``crypto_box_seal`` and friends):

* ``encrypt-1k``: encrypt a padded 1 KiB message for one recipient;
* ``decrypt-verify-1k``: open it, verify the sender's signature, derive the sender's ID;
* ``batch-decrypt-1000``: 1000 such messages: ``decrypt_many`` (one GIL-free call, rayon
  over all cores) vs a Python loop of ``decrypt_incoming`` vs the PyNaCl loop.

Every benchmark records ``extra_info["correct"]`` after checking its output with the other
implementation.
"""

from __future__ import annotations

import os

import pytest
from nacl.bindings import (
    crypto_box_seal,
    crypto_box_seal_open,
    crypto_sign,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)

from session.identity import Identity
from session.protocol import decrypt_incoming, decrypt_many, encrypt_for_recipient, pad

SENDER_SEED = bytes(range(16))
RECIPIENT_SEED = bytes(range(16, 32))
SENDER = Identity.from_seed(SENDER_SEED)
RECIPIENT = Identity.from_seed(RECIPIENT_SEED)

S_ED_PK, S_ED_SK = crypto_sign_seed_keypair(SENDER_SEED + bytes(16))
R_ED_PK, R_ED_SK = crypto_sign_seed_keypair(RECIPIENT_SEED + bytes(16))
R_X_PK = crypto_sign_ed25519_pk_to_curve25519(R_ED_PK)
R_X_SK = crypto_sign_ed25519_sk_to_curve25519(R_ED_SK)

MESSAGE = pad(os.urandom(1000))  # 1120 bytes after padding


def py_encrypt(msg: bytes) -> bytes:
    sig = crypto_sign(msg + S_ED_PK + R_X_PK, S_ED_SK)[:64]
    return crypto_box_seal(msg + S_ED_PK + sig, R_X_PK)


def py_decrypt(ct: bytes) -> tuple[bytes, str]:
    inner = crypto_box_seal_open(ct, R_X_PK, R_X_SK)
    msg, ed_pk, sig = inner[:-96], inner[-96:-64], inner[-64:]
    crypto_sign_open(sig + msg + ed_pk + R_X_PK, ed_pk)
    return msg, "05" + crypto_sign_ed25519_pk_to_curve25519(ed_pk).hex()


@pytest.mark.parametrize("impl", ["ours", "baseline"])
def test_bench_encrypt_1k(benchmark, impl: str) -> None:
    benchmark.group = "encrypt-1k"
    benchmark.extra_info.update(impl=impl, plaintext_bytes=len(MESSAGE))
    if impl == "ours":
        ct = benchmark(encrypt_for_recipient, SENDER, RECIPIENT.session_id, MESSAGE)
        ok = py_decrypt(ct) == (MESSAGE, SENDER.session_id)
    else:
        ct = benchmark(py_encrypt, MESSAGE)
        ok = decrypt_incoming(RECIPIENT, ct) == (MESSAGE, SENDER.session_id)
    ok = ok and len(ct) == len(MESSAGE) + 144
    benchmark.extra_info.update(correct=ok, checked="the other implementation opens it, same size")
    assert ok


@pytest.mark.parametrize("impl", ["ours", "baseline"])
def test_bench_decrypt_verify_1k(benchmark, impl: str) -> None:
    benchmark.group = "decrypt-verify-1k"
    benchmark.extra_info.update(impl=impl, plaintext_bytes=len(MESSAGE))
    # Each side decrypts what the other side encrypted.
    if impl == "ours":
        ct = py_encrypt(MESSAGE)
        result = benchmark(decrypt_incoming, RECIPIENT, ct)
    else:
        ct = encrypt_for_recipient(SENDER, RECIPIENT.session_id, MESSAGE)
        result = benchmark(py_decrypt, ct)
    ok = result == (MESSAGE, SENDER.session_id)
    benchmark.extra_info.update(correct=ok, checked="plaintext and sender of the other's message")
    assert ok


@pytest.fixture(scope="module")
def batch() -> list[bytes]:
    """1,000 messages of 200..1,000 bytes for the recipient (made once, when first needed)."""
    return [
        encrypt_for_recipient(SENDER, RECIPIENT.session_id, pad(os.urandom(200 + i % 800)))
        for i in range(1000)
    ]


def loop_ours(cts: list[bytes]) -> list[tuple[bytes, str]]:
    return [decrypt_incoming(RECIPIENT, c) for c in cts]


def loop_py(cts: list[bytes]) -> list[tuple[bytes, str]]:
    return [py_decrypt(c) for c in cts]


@pytest.mark.parametrize("impl", ["decrypt_many", "ours_loop", "baseline_loop"])
def test_bench_batch_decrypt_1000(benchmark, batch: list[bytes], impl: str) -> None:
    benchmark.group = "batch-decrypt-1000"
    benchmark.extra_info.update(impl=impl, messages=len(batch))
    fn = {
        "decrypt_many": lambda c: decrypt_many(RECIPIENT, c),
        "ours_loop": loop_ours,
        "baseline_loop": loop_py,
    }[impl]
    results = benchmark(fn, batch)
    expected = loop_py(batch)
    ok = results == expected and all(sender == SENDER.session_id for _, sender in expected)
    benchmark.extra_info.update(correct=ok, checked="same plaintexts and sender as the PyNaCl loop")
    assert ok
