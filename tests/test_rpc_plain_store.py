"""The core's fast path of a plain unsigned ``store`` (``_core.parse_plain_store``, used by
``parse_request`` for JSON bytes) gives exactly what the full parser gives: the same
:class:`Store` for every body it takes, and the full parser's answer (request or error) for
every body it declines. Session's own store vectors go through ``test_rpc.py``."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from session import _core
from session.errors import RpcStatusError
from session.proto import rpc
from session.proto.rpc.codec import parse_json
from session.proto.rpc.envelope import parse_document

PK = "05" + "ab" * 32
FIELDS = ["pubkey", "timestamp", "ttl", "data", "namespace"]
OTHER_FIELDS = ["signature", "expiry", "pubKey", "sig_timestamp", "pubkey_ed25519", "x"]
NOW = 1_700_000_000_000


def outcome(parse: Any) -> tuple[Any, ...]:
    try:
        return ("ok", parse())
    except RpcStatusError as e:
        return ("refused", e.status, e.message)


def same_as_full_parser(body: bytes) -> bool:
    """Both parsers agree on ``body``; returns whether the fast path took it."""
    fast = outcome(lambda: rpc.parse_request(body))
    full = outcome(lambda: parse_document(parse_json(body)))
    assert fast == full, body
    return _core.parse_plain_store(body) is not None


def plain(**params: Any) -> bytes:
    return json.dumps({"method": "store", "params": params}).encode()


def test_a_plain_store_takes_the_fast_path_with_the_full_parsers_result() -> None:
    data = base64.b64encode(b"hello").decode()
    body = plain(pubkey=PK, timestamp=NOW, ttl=86_400_000, data=data)
    assert same_as_full_parser(body)
    req = rpc.parse_request(body)
    assert req == rpc.Store(
        rpc.Account(5, bytes.fromhex("ab" * 32)), 0, NOW, NOW + 86_400_000, b"hello"
    )
    assert same_as_full_parser(plain(pubkey=PK, timestamp=NOW, ttl=1, data=data, namespace=-10))
    assert same_as_full_parser(plain(pubkey=PK.upper(), timestamp=NOW, ttl=1, data="-_+/"))


def test_what_it_declines_the_full_parser_answers() -> None:
    data = base64.b64encode(b"x").decode()
    declined = [
        plain(pubkey=PK, timestamp=str(NOW), ttl=1, data=data),  # a string for a number
        plain(pubkey=PK, timestamp=NOW, ttl=1, data=data, namespace=None),
        plain(pubkey=PK, timestamp=NOW, ttl=1, data=data, signature="x"),
        plain(pubkey=PK, timestamp=NOW, expiry=NOW + 1, data=data),
        plain(pubkey=PK, timestamp=NOW, ttl=1, data="Q"),  # not base64
        plain(pubkey=PK, timestamp=NOW, ttl=1, data="QQ==\n"),
        plain(pubkey=PK, timestamp=NOW, ttl=-1, data=data),
        plain(pubkey=PK[:64], timestamp=NOW, ttl=1, data=data),
        plain(pubkey=PK, timestamp=NOW, ttl=1, data="A" * (76_800 // 3 * 4 + 4)),
        plain(pubkey=PK, timestamp=2**63 - 1, ttl=1, data=data),
        b'{"method": "store", "params": {"data": "\\ud800"}}',
    ]
    for body in declined:
        assert not same_as_full_parser(body)
    # the full parser's errors, word for word
    assert outcome(lambda: rpc.parse_request(declined[4])) == (
        "refused",
        400,
        "invalid request: Invalid 'data' value: not base64 encoded",
    )


_ints = st.one_of(
    st.integers(-(2**64), 2**65),
    st.sampled_from([0, -1, NOW, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
)
_values = st.one_of(
    _ints,
    _ints.map(str),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_b64_text = st.text(alphabet="ABCDQQabc019+/-_=\n ", max_size=24)
_b64_data = st.binary(max_size=40).flatmap(
    lambda b: st.sampled_from(
        [
            base64.b64encode(b).decode(),
            base64.b64encode(b).decode().rstrip("="),
            base64.urlsafe_b64encode(b).decode(),
            base64.urlsafe_b64encode(b).decode().rstrip("="),
        ]
    )
)
_pubkeys = st.one_of(
    st.binary(min_size=33, max_size=33).map(lambda b: b.hex()),
    st.binary(min_size=33, max_size=33).map(lambda b: b.hex().upper()),
    st.text(alphabet="0123456789abcdefABCDEFg", min_size=64, max_size=68),
    _values,
)


#: what a body may get wrong (each a way the full parser refuses it, or another shape)
KNOBS = ["pubkey", "timestamp", "ttl", "data", "namespace", "absent", "extra", "method", "top"]


@given(
    broken=st.one_of(
        st.just(frozenset()), st.frozensets(st.sampled_from(KNOBS), min_size=1, max_size=2)
    ),
    good=st.fixed_dictionaries(
        {
            "pubkey": st.binary(min_size=33, max_size=33).flatmap(
                lambda b: st.sampled_from([b.hex(), b.hex().upper()])
            ),
            "timestamp": st.integers(0, 2**41),
            "ttl": st.integers(0, 2**40),
            "data": _b64_data,
            "namespace": st.integers(-32768, 32767),
        }
    ),
    bad=st.fixed_dictionaries(
        {
            "pubkey": _pubkeys,
            "timestamp": _values,
            "ttl": _values,
            "data": st.one_of(_b64_text, _values),
            "namespace": st.one_of(st.integers(), _values),
        }
    ),
    absent=st.frozensets(st.sampled_from(FIELDS), min_size=1, max_size=2),
    extra=st.dictionaries(st.sampled_from(OTHER_FIELDS), _values, min_size=1),
    method=st.sampled_from(["retrieve", "Store", "store ", "sequence"]),
    with_namespace=st.booleans(),
    indent=st.sampled_from([None, None, 1]),
)
def test_the_fast_path_agrees_with_the_full_parser(
    broken: frozenset[str],
    good: dict[str, Any],
    bad: dict[str, Any],
    absent: frozenset[str],
    extra: dict[str, Any],
    method: str,
    with_namespace: bool,
    indent: int | None,
) -> None:
    params = {k: bad[k] if k in broken else v for k, v in good.items()}
    if not with_namespace and "namespace" not in broken:
        del params["namespace"]
    if "absent" in broken:
        params = {k: v for k, v in params.items() if k not in absent}
    if "extra" in broken:
        params |= extra
    doc: dict[str, Any] = {"method": method if "method" in broken else "store", "params": params}
    if "top" in broken:
        doc["id"] = 1
    taken = same_as_full_parser(json.dumps(doc, indent=indent).encode())
    if not broken:
        assert taken  # a plain store always takes the fast path


@given(st.binary(max_size=200))
def test_garbage_is_answered_as_the_full_parser_answers_it(body: bytes) -> None:
    same_as_full_parser(body)
