"""Property tests for onion requests: build → peel hop by hop → reply round trips for 1..15
hops, both ciphers and both destination kinds; codecs round trip; garbage never crashes."""

from __future__ import annotations

import json
import os

from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_base

from session import onion
from session.errors import DecodeError, OnionError, SessionError

# A fixed pool of node keys (key generation is not what is under test).
POOL = [(sk, crypto_scalarmult_base(sk)) for sk in (os.urandom(32) for _ in range(20))]
EDS = [os.urandom(32).hex() for _ in POOL]
PEELERS = [onion.Peeler.from_x25519_secret(sk) for sk, _ in POOL]

enc_types = st.sampled_from(["xchacha20", "aes-gcm", "gcm", "xchacha20-poly1305"])
CANON = {"gcm": "aes-gcm", "xchacha20-poly1305": "xchacha20"}


@given(
    n_hops=st.integers(1, 15),
    enc_type=enc_types,
    to_server=st.booleans(),
    payload=st.binary(max_size=300),
    reply=st.binary(max_size=300),
    data=st.data(),
)
def test_build_peel_reply_round_trip(
    n_hops: int, enc_type: str, to_server: bool, payload: bytes, reply: bytes, data: st.DataObject
) -> None:
    idx = data.draw(st.permutations(range(len(POOL))))[: n_hops + 1]
    path = [onion.Hop(EDS[i], POOL[i][1]) for i in idx[:n_hops]]
    d_i = idx[n_hops]
    dest: onion.NodeDestination | onion.ServerDestination
    if to_server:
        scheme = data.draw(st.sampled_from(["http", "https"]))
        port = data.draw(st.integers(1, 65535))
        target = data.draw(st.sampled_from(["/oxen/v4/lsrpc", "/loki/v3/lsrpc", "/oxen/x/lsrpc"]))
        dest = onion.ServerDestination(
            "srv.example", target, POOL[d_i][1], scheme=scheme, port=port
        )
    else:
        dest = onion.NodeDestination(EDS[d_i], POOL[d_i][1])
    frame, key = onion.build(path, dest, payload, enc_type=enc_type)
    assert key.enc_type == CANON.get(enc_type, enc_type)

    for hop, i in enumerate(idx[:n_hops]):
        d = PEELERS[i].peel(frame)
        if hop + 1 < n_hops or not to_server:
            assert isinstance(d, onion.Relay)
            assert d.hop_no == hop + 1
            assert d.next_ed25519 == (EDS[idx[hop + 1]] if hop + 1 < n_hops else EDS[d_i])
            frame = d.frame
        else:
            assert isinstance(d, onion.Proxy)
            assert (d.host, d.port, d.scheme, d.target) == ("srv.example", port, scheme, target)
            frame = d.payload

    if to_server:
        got, cipher = PEELERS[d_i].open_request(frame)
        assert got == payload
        assert key.decrypt(cipher.encrypt(reply)) == reply
    else:
        d = PEELERS[d_i].peel(frame)
        assert isinstance(d, onion.Deliver)
        assert d.payload == payload
        assert d.reply.enc_type == CANON.get(enc_type, enc_type)
        assert key.decrypt(d.reply.encrypt(reply)) == reply
    # Another request's key cannot open this reply.
    _, other = onion.build(path, dest, payload, enc_type=enc_type)
    sealed = cipher.encrypt(reply) if to_server else d.reply.encrypt(reply)  # type: ignore[union-attr]
    try:
        other.decrypt(sealed)
    except OnionError:
        pass
    else:
        raise AssertionError("a reply opened with the wrong key")


@given(
    blob=st.binary(max_size=200),
    meta=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8)),
)
def test_layer_round_trip(blob: bytes, meta: dict) -> None:
    assert onion.decode_layer(onion.encode_layer(blob, meta)) == (blob, meta)


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    endpoint=st.text(max_size=30).map(lambda s: "/" + s),
    headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    body=st.none() | st.binary(max_size=100),
    code=st.integers(100, 599),
)
def test_v4_round_trip(
    method: str, endpoint: str, headers: dict, body: bytes | None, code: int
) -> None:
    meta = {"method": method, "endpoint": endpoint, "headers": headers}
    assert onion.v4_decode_request(onion.v4_encode_request(meta, body)) == (meta, body)
    rmeta = {"code": code, "headers": headers}
    assert onion.v4_decode_response(onion.v4_encode_response(rmeta, body)) == (rmeta, body)


@given(st.binary(max_size=400))
def test_garbage_never_crashes(data: bytes) -> None:
    p = PEELERS[0]
    for call, allowed in (
        (lambda: onion.decode_layer(data), (OnionError, DecodeError)),
        (lambda: p.peel(data), (OnionError,)),
        (lambda: p.open_request(data), (OnionError,)),
        (lambda: onion.v4_decode_request(data), (DecodeError,)),
        (lambda: onion.v4_decode_response(data), (DecodeError,)),
        (lambda: onion.decrypt_hop("xchacha20", POOL[0][0], POOL[1][1], data), (OnionError,)),
        (lambda: onion.decrypt_hop("aes-gcm", POOL[0][0], POOL[1][1], data), (OnionError,)),
    ):
        try:
            call()
        except allowed:
            pass
        except SessionError as e:  # pragma: no cover - a wrong class is a failure
            raise AssertionError(f"unexpected {type(e).__name__}: {e}") from e
    [r] = p.peel_many([data])
    assert isinstance(r, OnionError | onion.Deliver | onion.Relay | onion.Proxy)


@given(
    blob=st.binary(max_size=200),
    inner=st.dictionaries(
        st.sampled_from(
            [
                "headers",
                "host",
                "target",
                "port",
                "protocol",
                "destination",
                "ephemeral_key",
                "enc_type",
                "json",
                "base64",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers(-5, 70000)
        | st.text(max_size=70)
        | st.sampled_from(["ab" * 32, "/oxen/v4/lsrpc", "http", "xchacha20"]),
    ),
    enc_type=st.sampled_from(["xchacha20", "aes-gcm"]),
    hop_no=st.none() | st.integers(-3, 20),
)
def test_structured_garbage_is_typed(
    blob: bytes, inner: dict, enc_type: str, hop_no: int | None
) -> None:
    """Well-encrypted layers with arbitrary routing JSON: a decision or an OnionError."""
    a = os.urandom(32)
    _sk, pk = POOL[3]
    plaintext = onion.encode_layer(blob, inner)
    extra = {} if hop_no is None else {"hop_no": hop_no}
    meta = {"ephemeral_key": crypto_scalarmult_base(a).hex(), "enc_type": enc_type, **extra}
    frame = onion.encode_layer(onion.encrypt_hop(enc_type, a, pk, plaintext), meta)
    try:
        d = PEELERS[3].peel(frame)
    except OnionError as e:
        assert e.status == 400
        if hop_no is not None and hop_no > 15:
            assert e.reply is None
        else:
            assert e.reply is not None
        return
    assert hop_no is None or hop_no <= 15
    if "headers" in inner:
        assert isinstance(d, onion.Deliver) and d.payload == blob
    elif inner.get("host") is not None:
        assert isinstance(d, onion.Proxy) and d.payload == plaintext
    else:
        assert isinstance(d, onion.Relay)
        _, m = onion.decode_layer(d.frame)
        assert m["hop_no"] == max(0, hop_no or 0) + 1
        assert json.loads(json.dumps(m))["ephemeral_key"] == str(inner["ephemeral_key"]).lower()
