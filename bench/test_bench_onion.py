"""Onion benchmarks: one-hop peel (the node's hot path) and a 3-hop build.

Groups ``peel-{1k,10k}-{xchacha20,aes-gcm}`` compare, for the same one-hop frame with a 1 KiB /
10 KiB payload:

* ``ours``: ``Peeler.peel`` (one Rust call, GIL released);
* ``baseline``: the same peel in Python over PyNaCl (X25519 + libsodium AEAD, or the
  ``cryptography`` package's AESGCM for aes-gcm) plus the JSON / framing parsing;
* ``floor``: only the raw primitive calls (X25519, key hash, AEAD open), no parsing.

``build-3hop`` compares ``onion.build`` (3 hops to a storage node) with the same algorithm in
Python over PyNaCl.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)

from session import onion

NODE_SK = bytes(range(1, 33))
NODE_PK = crypto_scalarmult_base(NODE_SK)
PEELER = onion.Peeler.from_x25519_secret(NODE_SK)


def one_hop_frame(enc_type: str, size: int) -> tuple[bytes, bytes]:
    """A frame for one node whose layer delivers `size` bytes (the storage node's common case)."""
    payload = os.urandom(size)
    a = os.urandom(32)
    inner = onion.encode_layer(payload, {"headers": ""})
    blob = onion.encrypt_hop(enc_type, a, NODE_PK, inner)
    frame = onion.encode_layer(
        blob, {"ephemeral_key": crypto_scalarmult_base(a).hex(), "enc_type": enc_type}
    )
    return frame, payload


def split_layer(data: bytes) -> tuple[bytes, bytes]:
    if len(data) < 4:
        raise ValueError("short layer")
    (n,) = struct.unpack_from("<I", data)
    if len(data) - 4 < n:
        raise ValueError("short blob")
    return data[4 : 4 + n], data[4 + n :]


def py_peel(frame: bytes) -> tuple[str, bytes]:
    """The storage server's peel, written in Python over PyNaCl / cryptography."""
    blob, meta_raw = split_layer(frame)
    meta = json.loads(meta_raw)
    eph = bytes.fromhex(meta["ephemeral_key"])
    enc_type = meta.get("enc_type", "aes-gcm")
    shared = crypto_scalarmult(NODE_SK, eph)
    if enc_type in ("xchacha20", "xchacha20-poly1305"):
        key = hashlib.blake2b(shared + eph + NODE_PK, digest_size=32).digest()
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(blob[24:], None, blob[:24], key)
    else:
        key = hmac.new(b"LOKI", shared, "sha256").digest()
        plain = AESGCM(key).decrypt(blob[:12], blob[12:], None)
    body, inner_raw = split_layer(plain)
    inner = json.loads(inner_raw)
    if "headers" in inner:
        return "deliver", body
    raise ValueError("benchmark frames are deliver frames")


def floor_peel(enc_type: str, eph: bytes, blob: bytes) -> bytes:
    shared = crypto_scalarmult(NODE_SK, eph)
    if enc_type == "xchacha20":
        key = hashlib.blake2b(shared + eph + NODE_PK, digest_size=32).digest()
        return crypto_aead_xchacha20poly1305_ietf_decrypt(blob[24:], None, blob[:24], key)
    key = hmac.new(b"LOKI", shared, "sha256").digest()
    return AESGCM(key).decrypt(blob[:12], blob[12:], None)


@pytest.mark.parametrize("enc_type", ["xchacha20", "aes-gcm"])
@pytest.mark.parametrize("size_name,size", [("1k", 1024), ("10k", 10 * 1024)])
@pytest.mark.parametrize("impl", ["ours", "baseline", "floor"])
def test_bench_peel(benchmark, impl: str, size_name: str, size: int, enc_type: str) -> None:
    benchmark.group = f"peel-{size_name}-{enc_type}"
    benchmark.extra_info.update(impl=impl, payload_bytes=size, enc_type=enc_type)
    frame, payload = one_hop_frame(enc_type, size)
    if impl == "ours":
        d = benchmark(PEELER.peel, frame)
        ok = isinstance(d, onion.Deliver) and d.payload == payload
    elif impl == "baseline":
        kind, body = benchmark(py_peel, frame)
        ok = (kind, body) == ("deliver", payload)
    else:
        blob, meta = onion.decode_layer(frame)
        eph = bytes.fromhex(meta["ephemeral_key"])
        plain = benchmark(floor_peel, enc_type, eph, blob)
        ok = plain[4 : 4 + size] == payload
    benchmark.extra_info.update(correct=ok, checked="the peel delivers the frame's payload")
    assert ok


def py_build(
    path: list[tuple[str, bytes]], dest: tuple[str, bytes], payload: bytes
) -> tuple[bytes, bytes]:
    """libsession's Builder::build for a storage-node destination, in Python over PyNaCl."""

    def seal(a: bytes, a_pub: bytes, b_pub: bytes, pt: bytes) -> bytes:
        key = hashlib.blake2b(crypto_scalarmult(a, b_pub) + a_pub + b_pub, digest_size=32).digest()
        nonce = os.urandom(24)
        return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(pt, None, nonce, key)

    def join(blob: bytes, meta: dict) -> bytes:
        return (
            struct.pack("<I", len(blob)) + blob + json.dumps(meta, separators=(",", ":")).encode()
        )

    a0 = os.urandom(32)
    a0_pub = crypto_scalarmult_base(a0)
    blob = seal(a0, a0_pub, dest[1], join(payload, {"headers": ""}))
    route = {"destination": dest[0], "ephemeral_key": a0_pub.hex(), "enc_type": "xchacha20"}
    for i in range(len(path) - 1, -1, -1):
        data = join(blob, route)
        ai = os.urandom(32)
        ai_pub = crypto_scalarmult_base(ai)
        blob = seal(ai, ai_pub, path[i][1], data)
        route = (
            {"ephemeral_key": ai_pub.hex(), "enc_type": "xchacha20"}
            if i == 0
            else {"destination": path[i][0], "ephemeral_key": ai_pub.hex(), "enc_type": "xchacha20"}
        )
    return join(blob, route), a0


BUILD_KEYS = [(os.urandom(32).hex(), NODE_PK) for _ in range(3)]


@pytest.mark.parametrize("impl", ["ours", "baseline"])
def test_bench_build_3hop(benchmark, impl: str) -> None:
    benchmark.group = "build-3hop"
    benchmark.extra_info.update(impl=impl, hops=3, payload_bytes=512, enc_type="xchacha20")
    payload = os.urandom(512)
    dest = ("cd" * 32, NODE_PK)
    if impl == "ours":
        path = [onion.Hop(ed, x) for ed, x in BUILD_KEYS]
        frame, _ = benchmark(onion.build, path, onion.NodeDestination(*dest), payload)
    else:
        frame, _ = benchmark(py_build, BUILD_KEYS, dest, payload)
    # Correctness: both frames peel through the three hops (all use NODE_SK) to the payload.
    ok = True
    for _ in range(3):
        d = PEELER.peel(frame)
        ok = ok and isinstance(d, onion.Relay)
        if not isinstance(d, onion.Relay):
            break
        frame = d.frame
    else:
        d = PEELER.peel(frame)
        ok = ok and isinstance(d, onion.Deliver) and d.payload == payload
    benchmark.extra_info.update(
        correct=ok, checked="the frame peels through 3 relays to the payload"
    )
    assert ok
