"""Onion requests: vectors (onion_hop, onion_layer, v4_bencode, channel_encryption), peeler
decisions and errors, builder limits, replies, and differential checks against PyNaCl /
cryptography."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)

from session import _core, onion
from session.errors import DecodeError, InvalidInput, InvalidKey, OnionError, SessionError
from vectorlib import case_ids, load_vectors

HOP = load_vectors("onion_hop")
LAYER_PARSE = load_vectors("onion_layer", "layer_parse")
ROUTING = load_vectors("onion_layer", "routing")
URL_FILTER = load_vectors("onion_layer", "url_filter")
V4 = load_vectors("v4_bencode")
CHANNEL = load_vectors("channel_encryption")

H = bytes.fromhex


def keypair() -> tuple[bytes, bytes]:
    sk = os.urandom(32)
    return sk, crypto_scalarmult_base(sk)


def frame_for(
    node_pk: bytes, plaintext: bytes, enc_type: str = "xchacha20", **extra: object
) -> tuple[bytes, bytes]:
    """A frame carrying `plaintext` for `node_pk`; returns (frame, client secret)."""
    a, a_pub = keypair()
    blob = onion.encrypt_hop(enc_type, a, node_pk, plaintext)
    return onion.encode_layer(
        blob, {"ephemeral_key": a_pub.hex(), "enc_type": enc_type, **extra}
    ), a


def client_open(enc_type: str, client_secret: bytes, node_pk: bytes, ct: bytes) -> bytes:
    """Reference client-side reply decryption in Python (PyNaCl / cryptography)."""
    shared = crypto_scalarmult(client_secret, node_pk)
    if enc_type == "aes-gcm":
        key = hmac.new(b"LOKI", shared, "sha256").digest()
        return AESGCM(key).decrypt(ct[:12], ct[12:], None)
    key = hashlib.blake2b(
        shared + crypto_scalarmult_base(client_secret) + node_pk, digest_size=32
    ).digest()
    return bytes(crypto_aead_xchacha20poly1305_ietf_decrypt(ct[24:], None, ct[:24], key))


# --- hop ciphers -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", HOP, ids=case_ids(HOP))
def test_onion_hop_vectors(case: dict) -> None:
    ct = H(case["ciphertext"])
    args = (case["enc_type"], H(case["node_secret"]), H(case["client_pubkey"]), ct)
    if case["expect"] == "ok":
        pt = onion.decrypt_hop(*args)
        assert pt == case["plaintext_utf8"].encode()
        n = 12 if case["enc_type"] == "aes-gcm" else 24
        again = _core.onion_encrypt_hop(
            case["enc_type"], H(case["client_secret"]), H(case["node_pubkey"]), pt, ct[:n]
        )
        assert again == ct
    else:
        with pytest.raises(OnionError) as e:
            onion.decrypt_hop(*args)
        assert e.value.status == 400


@pytest.mark.parametrize("alias", ["gcm", "xchacha20-poly1305", "aes-gcm", "xchacha20"])
def test_aliases_round_trip(alias: str) -> None:
    a, _ = keypair()
    b, b_pub = keypair()
    ct = onion.encrypt_hop(alias, a, b_pub, b"hi")
    assert onion.decrypt_hop(alias, b, crypto_scalarmult_base(a), ct) == b"hi"


def test_bad_enc_type_and_keys() -> None:
    with pytest.raises(InvalidInput, match="unknown encryption type"):
        onion.encrypt_hop("rot13", bytes(32), bytes(32), b"x")
    with pytest.raises(InvalidKey):
        onion.encrypt_hop("aes-gcm", bytes(31), bytes(32), b"x")
    with pytest.raises(InvalidKey, match="low-order"):
        onion.encrypt_hop("aes-gcm", os.urandom(32), bytes(32), b"x")


@pytest.mark.parametrize("case", CHANNEL, ids=case_ids(CHANNEL))
def test_channel_encryption_vectors(case: dict) -> None:
    pt = case["plaintext_utf8"].encode()
    ct = onion.encrypt_hop(
        case["enc_type"], H(case["client_x25519_sk"]), H(case["server_x25519_pk"]), pt
    )
    assert len(ct) == case["ciphertext_len"] == len(pt) + case["overhead"]
    assert (
        onion.decrypt_hop(
            case["enc_type"], H(case["server_x25519_sk"]), H(case["client_x25519_pk"]), ct
        )
        == pt
    )
    if case.get("client_client_must_fail"):
        # The server side acting as a second "client" orders its own key first: must fail.
        wrong = _core.onion_encrypt_hop(
            case["enc_type"], H(case["server_x25519_sk"]), H(case["client_x25519_pk"]), pt
        )
        with pytest.raises(OnionError):
            onion.decrypt_hop(
                case["enc_type"], H(case["server_x25519_sk"]), H(case["client_x25519_pk"]), wrong
            )


def test_differential_xchacha20_pynacl() -> None:
    a, a_pub = keypair()
    b, b_pub = keypair()
    key = hashlib.blake2b(crypto_scalarmult(b, a_pub) + a_pub + b_pub, digest_size=32).digest()
    for size in (0, 1, 15, 16, 17, 1000):
        msg = os.urandom(size)
        ours = onion.encrypt_hop("xchacha20", a, b_pub, msg)
        assert crypto_aead_xchacha20poly1305_ietf_decrypt(ours[24:], None, ours[:24], key) == msg
        nonce = os.urandom(24)
        theirs = nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(msg, None, nonce, key)
        assert onion.decrypt_hop("xchacha20", b, a_pub, theirs) == msg
        assert _core.onion_encrypt_hop("xchacha20", a, b_pub, msg, nonce) == theirs


def test_differential_x25519_and_gcm() -> None:
    for _ in range(8):
        a, _a_pub = keypair()
        b, b_pub = keypair()
        assert onion.Peeler.from_x25519_secret(b).x25519_public == b_pub
        key = hmac.new(b"LOKI", crypto_scalarmult(a, b_pub), "sha256").digest()
        ct = onion.encrypt_hop("aes-gcm", a, b_pub, b"payload")
        assert AESGCM(key).decrypt(ct[:12], ct[12:], None) == b"payload"


def test_differential_x25519_random_points() -> None:
    """Any u-coordinate (curve or twist, non-canonical) gives libsodium's X25519 result."""
    for i in range(200):
        a = os.urandom(32)
        u = os.urandom(32) if i % 2 else crypto_scalarmult_base(os.urandom(32))
        try:
            shared = crypto_scalarmult(a, u)
        except Exception:  # libsodium refuses an all-zero result (low-order u)
            with pytest.raises(InvalidKey):
                onion.encrypt_hop("aes-gcm", a, u, b"m")
            continue
        ct = onion.encrypt_hop("aes-gcm", a, u, b"m")
        key = hmac.new(b"LOKI", shared, "sha256").digest()
        assert AESGCM(key).decrypt(ct[:12], ct[12:], None) == b"m"
    for low_order in (
        bytes(32),
        (1).to_bytes(32, "little"),
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ):
        with pytest.raises(InvalidKey, match="low-order"):
            onion.encrypt_hop("xchacha20", os.urandom(32), low_order, b"m")


# --- layers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", LAYER_PARSE, ids=case_ids(LAYER_PARSE))
def test_layer_parse_vectors(case: dict) -> None:
    layer = H(case["layer"])
    blob, meta = onion.decode_layer(layer)
    assert len(blob) == case["blob_len"]
    assert meta == case["json"]
    peeler = onion.Peeler.from_x25519_secret(H(case["node_secret"]))
    payload, reply = peeler.open_request(layer)
    assert payload == case["payload_utf8"].encode()
    enc = reply.encrypt(case["reply_plaintext_utf8"].encode())
    assert len(enc) == case["reply_len"]
    got = client_open(case["json"]["enc_type"], H(case["client_secret"]), peeler.x25519_public, enc)
    assert got == case["reply_plaintext_utf8"].encode()


def test_layer_codec() -> None:
    data = onion.encode_layer(b"\x00\xffblob", {"a": [1, "x"], "ü": None})
    assert data[:4] == (6).to_bytes(4, "little")
    assert onion.decode_layer(data) == (b"\x00\xffblob", {"a": [1, "x"], "ü": None})
    for bad in (
        b"",
        b"\x01\x00",
        b"\x09\x00\x00\x00abc{}",
        b"\x00\x00\x00\x00[]",
        b"\x00\x00\x00\x00{} {}",
    ):
        with pytest.raises(OnionError) as e:
            onion.decode_layer(bad)
        assert e.value.status == 400


# --- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ROUTING, ids=case_ids(ROUTING))
@pytest.mark.parametrize("enc_type", ["aes-gcm", "xchacha20"])
def test_routing_vectors(case: dict, enc_type: str) -> None:
    sk, pk = keypair()
    peeler = onion.Peeler.from_x25519_secret(sk)
    plaintext = H(case["plaintext"])
    frame, _ = frame_for(pk, plaintext, enc_type)
    want = case["expect"]
    if want["action"] == "final":
        d = peeler.peel(frame)
        assert isinstance(d, onion.Deliver)
        assert d.payload == want["body_utf8"].encode()
        assert d.reply.base64 and not d.reply.json and d.reply.enc_type == enc_type
    elif want["action"] == "relay":
        d = peeler.peel(frame)
        assert isinstance(d, onion.Relay)
        assert d.next_ed25519 == want["destination"]
        assert d.hop_no == 1
        blob, meta = onion.decode_layer(d.frame)
        assert blob == want["blob_utf8"].encode()
        assert meta == {
            "ephemeral_key": want["ephemeral_key"],
            "enc_type": want["enc_type"],
            "hop_no": 1,
        }
    else:
        # The vector's target "target" is parsed as a proxy request but fails the URL filter:
        # the node answers an encrypted 400.
        with pytest.raises(OnionError) as e:
            peeler.peel(frame)
        assert e.value.status == 400 and e.value.reply is not None
        # With an allowed target the same layer proxies with the vector's defaults.
        blob, meta = onion.decode_layer(plaintext)
        meta["target"] = "/oxen/v4/lsrpc"
        plaintext2 = onion.encode_layer(blob, meta)
        d = peeler.peel(frame_for(pk, plaintext2, enc_type)[0])
        assert isinstance(d, onion.Proxy)
        assert (d.host, d.port, d.scheme) == (want["host"], want["port"], want["protocol"])
        assert d.payload == plaintext2  # the whole decrypted layer
        assert d.url == (
            "https://host/oxen/v4/lsrpc" if d.scheme == "https" else "http://host/oxen/v4/lsrpc"
        )


@pytest.mark.parametrize("case", URL_FILTER, ids=case_ids(URL_FILTER))
def test_url_filter_vectors(case: dict) -> None:
    assert onion.url_target_allowed(case["target"]) is case["allowed"]
    sk, pk = keypair()
    layer = onion.encode_layer(b"x", {"host": "example.org", "target": case["target"]})
    frame, _ = frame_for(pk, layer)
    if case["allowed"]:
        assert isinstance(onion.Peeler.from_x25519_secret(sk).peel(frame), onion.Proxy)
    else:
        with pytest.raises(OnionError, match="invalid url"):
            onion.Peeler.from_x25519_secret(sk).peel(frame)


def test_peel_errors_and_statuses() -> None:
    sk, pk = keypair()
    p = onion.Peeler.from_x25519_secret(sk)
    # Undecryptable: plain 400, no reply cipher.
    junk = onion.encode_layer(
        os.urandom(80), {"ephemeral_key": keypair()[1].hex(), "enc_type": "xchacha20"}
    )
    with pytest.raises(OnionError) as e:
        p.peel(junk)
    assert e.value.status == 400 and e.value.reply is None
    # Too many hops.
    frame, _ = frame_for(pk, onion.encode_layer(b"x", {"headers": ""}), hop_no=16)
    with pytest.raises(OnionError, match="max path length") as e:
        p.peel(frame)
    assert e.value.status == 400
    frame, _ = frame_for(pk, onion.encode_layer(b"x", {"headers": ""}), hop_no=15)
    assert isinstance(p.peel(frame), onion.Deliver)
    # Decrypted but inner JSON is bad: encrypted 400 the client can read.
    frame, a = frame_for(pk, b"\x01\x00\x00\x00x{not json", "aes-gcm")
    with pytest.raises(OnionError) as e:
        p.peel(frame)
    assert e.value.status == 400 and e.value.reply is not None
    answer = e.value.reply.encrypt_status(e.value.status, b"Invalid json")
    assert json.loads(client_open("aes-gcm", a, pk, base64.b64decode(answer))) == {
        "status": 400,
        "body": "Invalid json",
    }
    # Relay with a bad destination key, missing key, bad protocol, cbc: all 400.
    for inner in (
        {"destination": "zz" * 32, "ephemeral_key": "00" * 32},
        {"destination": "ab" * 32},
        {"host": "h", "target": "/oxen/v4/lsrpc", "protocol": "ftp"},
        {"host": "evil.org/x?", "target": "/oxen/v4/lsrpc"},
        {"host": "h"},
        {"destination": "ab" * 32, "ephemeral_key": "00" * 32, "enc_type": "aes-cbc"},
    ):
        frame, _ = frame_for(pk, onion.encode_layer(b"x", inner))
        with pytest.raises(OnionError) as e:
            p.peel(frame)
        assert e.value.status == 400 and e.value.reply is not None
    # Outer frame without an ephemeral key or with an unknown cipher.
    for meta in ({}, {"ephemeral_key": "12"}, {"ephemeral_key": pk.hex(), "enc_type": "rot13"}):
        with pytest.raises(OnionError):
            p.peel(onion.encode_layer(b"x" * 64, meta))


def test_deliver_reply_flags() -> None:
    sk, pk = keypair()
    p = onion.Peeler.from_x25519_secret(sk)
    frame, a = frame_for(
        pk, onion.encode_layer(b"rpc", {"headers": {}, "json": True, "base64": False})
    )
    d = p.peel(frame)
    assert isinstance(d, onion.Deliver) and d.reply.json and not d.reply.base64
    ct = d.reply.encrypt_status(421, b'{"snodes": []}')
    assert json.loads(client_open("xchacha20", a, pk, ct)) == {
        "status": 421,
        "body": {"snodes": []},
    }


def test_peel_many_mixed() -> None:
    sk, pk = keypair()
    p = onion.Peeler.from_x25519_secret(sk)
    good = [frame_for(pk, onion.encode_layer(bytes([i]), {"headers": ""}))[0] for i in range(20)]
    out = p.peel_many([*good, b"garbage", good[0]])
    assert [d.payload for d in out[:20]] == [bytes([i]) for i in range(20)]  # type: ignore[union-attr]
    assert isinstance(out[20], OnionError) and out[20].status == 400
    assert isinstance(out[21], onion.Deliver)


def test_peeler_from_identity() -> None:
    from session.identity import Identity

    me = Identity.generate()
    p = onion.Peeler(me)
    assert p.x25519_public == me.x25519_public
    frame, _ = frame_for(p.x25519_public, onion.encode_layer(b"rpc", {"headers": ""}))
    d = p.peel(frame)
    assert isinstance(d, onion.Deliver) and d.payload == b"rpc"


def test_peeler_constructors() -> None:
    sk, pk = keypair()
    assert onion.Peeler(sk).x25519_public == pk
    with pytest.raises(InvalidKey):
        onion.Peeler(b"short")
    with pytest.raises(InvalidInput):
        onion.Peeler("not a key")
    assert sk.hex() not in repr(onion.Peeler(sk))


# --- builder and replies -----------------------------------------------------------------------


def make_path(n: int) -> tuple[list[bytes], list[onion.Hop]]:
    keys = [keypair() for _ in range(n)]
    return [k[0] for k in keys], [onion.Hop(os.urandom(32).hex(), k[1]) for k in keys]


def test_build_three_hops_to_node() -> None:
    secrets, path = make_path(3)
    dsk, dpk = keypair()
    dest = onion.NodeDestination(os.urandom(32).hex(), dpk)
    frame, key = onion.build(path, dest, b'{"method":"info","params":{}}')
    assert key.enc_type == "xchacha20"
    for i, sk in enumerate(secrets):
        d = onion.Peeler(sk).peel(frame)
        assert isinstance(d, onion.Relay) and d.hop_no == i + 1
        assert d.next_ed25519 == (path[i + 1].ed25519_hex if i + 1 < 3 else dest.ed25519_hex)
        frame = d.frame
    d = onion.Peeler(dsk).peel(frame)
    assert isinstance(d, onion.Deliver) and d.payload == b'{"method":"info","params":{}}'
    body = d.reply.encrypt_status(200, b'{"version":[2,8,0]}')
    assert json.loads(key.decrypt(body)) == {"status": 200, "body": '{"version":[2,8,0]}'}
    # Replies also open from raw bytes and from the legacy {"result": b64} wrapper.
    assert key.decrypt(base64.b64decode(body)) == key.decrypt(body)
    assert key.decrypt(json.dumps({"result": body.decode()}).encode()) == key.decrypt(body)
    with pytest.raises(OnionError):
        key.decrypt(body[:-3] + b"AAA")


def test_build_to_server_v4() -> None:
    secrets, path = make_path(2)
    ssk, spk = keypair()
    dest = onion.ServerDestination(
        "files.example.org", "/oxen/v4/lsrpc", spk, scheme="http", port=80
    )
    req = onion.v4_encode_request({"method": "GET", "endpoint": "/file/1", "headers": {}})
    frame, key = onion.build(path, dest, req, enc_type="aes-gcm")
    d = onion.Peeler(secrets[0]).peel(frame)
    assert isinstance(d, onion.Relay)
    d = onion.Peeler(secrets[1]).peel(d.frame)
    assert isinstance(d, onion.Proxy) and d.url == "http://files.example.org/oxen/v4/lsrpc"
    _, meta = onion.decode_layer(d.payload)
    assert meta["method"] == "POST" and meta["enc_type"] == "aes-gcm"
    got, reply = onion.Peeler(ssk).open_request(d.payload)
    assert onion.v4_decode_request(got) == (
        {"method": "GET", "endpoint": "/file/1", "headers": {}},
        None,
    )
    assert not reply.base64
    answer = onion.v4_encode_response({"code": 200, "headers": {}}, b"data")
    assert onion.v4_decode_response(key.decrypt(reply.encrypt(answer))) == (
        {"code": 200, "headers": {}},
        b"data",
    )


def test_reply_falls_back_to_aes_gcm() -> None:
    # libsession: an xchacha20 request may be answered with AES-GCM (legacy push server).
    ssk, spk = keypair()
    secrets, path = make_path(1)
    frame, key = onion.build(
        path, onion.ServerDestination("push.example", "/oxen/v4/lsrpc", spk), b"x"
    )
    d = onion.Peeler(secrets[0]).peel(frame)
    assert isinstance(d, onion.Proxy)
    _, meta = onion.decode_layer(d.payload)
    gcm_reply = onion.encrypt_hop("aes-gcm", ssk, bytes.fromhex(meta["ephemeral_key"]), b"legacy")
    # encrypt_hop orders keys client-first; for AES-GCM the key only depends on S, so the
    # server can produce it this way.
    assert key.decrypt(gcm_reply) == b"legacy"


def test_build_limits() -> None:
    _, path = make_path(16)
    dest = onion.NodeDestination("ab" * 32, keypair()[1])
    with pytest.raises(InvalidInput):
        onion.build([], dest, b"x")
    with pytest.raises(OnionError, match="max path length") as e:
        onion.build(path, dest, b"x")
    assert e.value.status == 400
    onion.build(path[:15], dest, b"x")
    with pytest.raises(InvalidInput, match="invalid url"):
        onion.build(path[:1], onion.ServerDestination("h", "/loki/v3", dest.x25519), b"x")
    with pytest.raises(InvalidKey):
        onion.build([onion.Hop("nothex", dest.x25519)], dest, b"x")
    with pytest.raises(InvalidInput):
        onion.build(path[:1], dest, b"x", enc_type="aes-cbc")
    with pytest.raises(InvalidInput):
        onion.build(path[:1], "somewhere", b"x")  # type: ignore[arg-type]


def test_build_uses_fresh_ephemeral_keys() -> None:
    _, path = make_path(1)
    dest = onion.NodeDestination("ab" * 32, keypair()[1])
    metas = {
        onion.decode_layer(onion.build(path, dest, b"x")[0])[1]["ephemeral_key"] for _ in range(5)
    }
    assert len(metas) == 5


# --- v4 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V4, ids=case_ids(V4))
def test_v4_vectors(case: dict) -> None:
    encoded = case["encoded_utf8"].encode()
    meta = json.loads(case["meta_utf8"])
    body = None if case["body_utf8"] is None else case["body_utf8"].encode()
    if case["direction"] == "request":
        assert onion.v4_decode_request(encoded) == (meta, body)
        assert onion.v4_encode_request(meta, body) == encoded
    else:
        assert onion.v4_decode_response(encoded) == (meta, body)
        assert onion.v4_encode_response(meta, body) == encoded


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"l",
        b"le",
        b"d1:ae",
        b"l3:abce",
        b"l2:{}e",
        b"l02:{}e",
        b"l2:{}",
        b"l2:{}1:x1:ye",
        b"l5:[1,2]e",
    ],
)
def test_v4_garbage(data: bytes) -> None:
    with pytest.raises(DecodeError):
        onion.v4_decode_request(data)
    with pytest.raises(DecodeError):
        onion.v4_decode_response(data)
    with pytest.raises(SessionError):
        onion.v4_decode_response("l2:{}e")  # type: ignore[arg-type]
