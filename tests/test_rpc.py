"""Sans-I/O storage RPC (session.proto.rpc): parsing, every status path, signature texts."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc_helpers import NOW, Client, b64
from session.errors import ErrorKind
from session.identity import Identity, verify
from session.proto import rpc as P
from vectorlib import case_ids, load_vectors

ACCT = "05" + "ab" * 32


def parse(method: str, **params):
    return P.parse_request({"method": method, "params": params})


def err(method: str, **params) -> P.RpcStatusError:
    with pytest.raises(P.RpcStatusError) as ei:
        parse(method, **params)
    return ei.value


# ---- envelope ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid json"),
        (b"\xff\xfe", "invalid json"),
        (b'{"method": "info", "params": {}, "x": NaN}', "invalid json"),
        (b"[1,2]", "invalid json: no `method` field"),
        (b'{"params": {}}', "invalid json: no `method` field"),
        (b'{"method": 5, "params": {}}', "invalid json: no `method` field"),
        (b'{"method": "info"}', "invalid json: no `params` field"),
        (b'{"method": "info", "params": []}', "invalid json: no `params` field"),
        (b'{"method": "nope", "params": {}}', "no method nope"),
    ],
)
def test_envelope_errors(body, message):
    with pytest.raises(P.RpcStatusError) as ei:
        P.parse_request(body)
    assert (ei.value.status, ei.value.message) == (400, message)
    assert ei.value.kind is ErrorKind.BAD_INPUT


def test_info_and_aliases():
    assert isinstance(P.parse_request(b'{"method":"info","params":{}}'), P.Info)
    g = parse("get_snodes_for_pubkey", pubKey=ACCT.upper())
    assert isinstance(g, P.GetSwarm) and g.account.hex == ACCT
    assert err("get_swarm", pubkey="05ab").message == (
        "invalid request: Pubkey must be 66 hex digits/33 bytes long"
    )
    assert (
        "Cannot specify both 'pubkey' and 'pubKey'"
        in err("get_swarm", pubkey=ACCT, pubKey=ACCT).message
    )
    assert err("get_swarm").message == "invalid request: Required field 'pubkey' missing"


# ---- store -------------------------------------------------------------------------------


def store_params(**over):
    p = {"pubkey": ACCT, "timestamp": NOW, "ttl": 86_400_000, "data": b64(b"hi")}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def test_store_parse_forms():
    s = parse("store", **store_params(timestamp=str(NOW), ttl="86400000"))
    assert (s.timestamp, s.expiry, s.data, s.namespace, s.auth) == (
        NOW,
        NOW + 86_400_000,
        b"hi",
        0,
        None,
    )
    s = parse(
        "store",
        **store_params(ttl=None, expiry=NOW + 5000, namespace=-10, pubkey=None, pubKey=ACCT),
    )
    assert (s.expiry, s.namespace, s.account.hex) == (NOW + 5000, -10, ACCT)
    # the largest body is accepted, one more base64 quantum is not
    big = base64.b64encode(b"x" * P.MAX_MESSAGE_BODY).decode()
    assert len(parse("store", **store_params(data=big)).data) == 76_800
    e = err("store", **store_params(data=big + "AAAA"))
    assert (
        e.message == "invalid request: Message body exceeds maximum allowed length of 76800 bytes"
    )


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"timestamp": None}, "Required field 'timestamp' missing"),
        ({"ttl": None}, "Required field 'expiry' or 'ttl' missing"),
        ({"expiry": NOW + 1}, "Cannot specify both 'expiry' and 'ttl'"),
        ({"ttl": "12a"}, "Invalid value given for 'ttl': \"12a\""),
        ({"ttl": -5}, "Invalid value given for 'ttl': expected positive integer"),
        ({"timestamp": 1.5}, "Invalid value given for 'timestamp': expected integer"),
        (
            {"ttl": None, "expiry": 1_600_000},
            "Invalid timestamp for 'expiry': timestamp must be in milliseconds",
        ),
        (
            {"ttl": None, "expiry": True},
            "Invalid value given for 'expiry': expected integer timestamp (in milliseconds)",
        ),
        ({"pubkey": "05" + "ab" * 31}, "Pubkey must be 66 hex digits (33 bytes) long"),
        ({"pubkey": 5}, "Invalid value given for 'pubkey': expected string"),
        ({"namespace": 32768}, "Invalid value given for 'namespace': value out of range"),
        ({"namespace": "3"}, "Invalid value given for 'namespace': expected integer or \"all\""),
        ({"namespace": 1.0}, "Invalid value given for 'namespace': expected 16-bit integer"),
        ({"data": None}, "Required field 'data' missing"),
        ({"data": "a b"}, "Invalid 'data' value: not base64 encoded"),
        ({"signature": "abc"}, "invalid signature: expected base64 encoded Ed25519 signature"),
        (
            {"signature": "A" * 86, "pubkey_ed25519": "zz" * 32},
            "invalid pubkey_ed25519: value is not hex",
        ),
        (
            {"signature": "A" * 86, "pubkey_ed25519": "ab"},
            "Invalid pubkey_ed25519: expected 64 hex char or 32 byte pubkey",
        ),
        (
            {"signature": "A" * 86, "pubkey": "03" + "ab" * 32, "pubkey_ed25519": "ab" * 32},
            "pubkey_ed25519 is only permitted for 05[...] pubkeys",
        ),
        (
            {"signature": "A" * 86, "subaccount": "A" * 48},
            "invalid subaccount: subaccount_sig is required when using subaccount",
        ),
        (
            {"signature": "A" * 86, "subaccount": "A" * 47, "subaccount_sig": "A" * 86},
            "invalid subaccount: expected base64 or hex-encoded subaccount token",
        ),
        (
            {"signature": "A" * 86, "subaccount": "A" * 48, "subaccount_sig": "A"},
            "invalid subaccount signature: expected base64 encoded Ed25519 signature",
        ),
    ],
)
def test_store_parse_errors(over, message):
    e = err("store", **store_params(**over))
    assert (e.status, e.message) == (400, "invalid request: " + message)


def test_store_precheck_paths():
    c = Client()
    ok = P.parse_request(c.store(b"x"))
    P.precheck(ok, NOW)  # public inbox, no signature needed
    P.verify_request(ok)
    cases = [
        (c.store(b"x", ttl=9_999), 403, "Provided expiry/TTL is not valid."),
        (c.store(b"x", ttl=14 * 86_400_000 + 1), 403, "Provided expiry/TTL is not valid."),
        (c.store(b"x", ns=3, ttl=30 * 86_400_000 + 1), 403, "Provided expiry/TTL is not valid."),
        (c.store(b"x", ts=NOW + 10_001), 406, "Timestamp error: check your clock"),
        (
            c.store(b"x", ts=NOW - 86_400_000, ttl=86_400_000 - 10_001),
            406,
            "Timestamp error: check your clock",
        ),
        (c.store(b"x", ns=3, sign=False), 401, "store: signature required to store to namespace 3"),
        (
            c.store(b"x", ns=3, ts=NOW - 60_001),
            406,
            "store signature timestamp too far from current time",
        ),
    ]
    for body, status, message in cases:
        with pytest.raises(P.RpcStatusError) as ei:
            P.precheck(P.parse_request(body), NOW)
        assert (ei.value.status, ei.value.message) == (status, message), body
    # private namespace: 30 days allowed, signature checked
    good = P.parse_request(c.store(b"x", ns=3, ttl=30 * 86_400_000))
    P.precheck(good, NOW)
    P.verify_request(good)
    # a signature by another key fails with 401
    other = Client()
    forged = c.store(b"x", ns=3)
    forged["params"].update(other.auth(f"store3{NOW}"))
    forged["params"]["pubkey_ed25519"] = other.ident.ed25519_public.hex()  # does not map to the id
    req = P.parse_request(forged)
    P.precheck(req, NOW)
    with pytest.raises(P.RpcStatusError) as ei:
        P.verify_request(req)
    assert (ei.value.status, ei.value.message) == (401, "store signature verification failed")
    # without pubkey_ed25519 the X25519 bytes are (wrongly) used as the key: fails
    nopk = c.store(b"x", ns=3)
    del nopk["params"]["pubkey_ed25519"]
    with pytest.raises(P.RpcStatusError) as ei:
        P.verify_request(P.parse_request(nopk))
    assert ei.value.status == 401


def test_store_to_public_inbox_ignores_bad_signature():
    c = Client()
    body = c.store(b"x")
    body["params"]["signature"] = b64(b"\x01" * 64)
    req = P.parse_request(body)
    P.precheck(req, NOW)
    P.verify_request(req)  # Session's quirk 10: not verified for public inboxes


# ---- signature texts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", load_vectors("request_signatures"), ids=case_ids(load_vectors("request_signatures"))
)
def test_request_signature_vectors(case):
    ident = Identity.from_seed(bytes.fromhex(case["ed25519_seed"]))
    assert ident.ed25519_public.hex() == case["ed25519_pk"]
    c = Client(seed=bytes.fromhex(case["ed25519_seed"]))
    ts, ns = case["timestamp_ms"], case["namespace"]
    body = (
        c.store(b"x", ns=ns, ts=ts, sign=True)
        if case["method"] == "store"
        else c.retrieve(ns=ns, ts=ts)
    )
    body["params"]["signature"] = case["signature_b64"]
    req = P.parse_request(body)
    assert req.signature_text() == case["signed_text_utf8"].encode()
    P.precheck(req, ts)
    P.verify_request(req)  # the vector's signature verifies through the 05 → Ed25519 mapping


@pytest.mark.parametrize(
    "case",
    load_vectors("group_signatures", "sign"),
    ids=case_ids(load_vectors("group_signatures", "sign")),
)
def test_group_signature_vectors(case):
    c = Client(seed=bytes.fromhex(case["ed25519_seed"]), group=True)
    key = load_vectors("group_signatures", "seed_keys")[0]
    assert c.account == key["account_id"]
    ts, ns = case["timestamp_ms"], case["namespace"]
    params = {
        "pubkey": c.account,
        "timestamp": ts,
        "namespace": ns,
        "signature": case["signature_b64"],
    }
    if case["method"] == "store":
        params.update(ttl=86_400_000, data=b64(b"x"))
    if case["method"] == "store":
        req = P.parse_params("store", params)
    else:
        # timestamp 1234 would be refused by the parser ("must be in milliseconds"): build the
        # request object directly to check the text and signature
        sig = base64.b64decode(case["signature_b64"])
        req = P.Retrieve(P.Account.parse(c.account), ns, auth=P.Auth(sig), timestamp=ts)
    assert req.signature_text() == case["signed_text_utf8"].encode()
    P.verify_request(req)
    bad = dataclasses.replace(req, auth=P.Auth(bytes(64)))
    with pytest.raises(P.RpcStatusError) as ei:
        P.verify_request(bad)
    assert ei.value.status == 401


def test_subaccount_vector_and_permissions():
    case = load_vectors("subaccount", "subaccount_sign")[0]
    account = "03" + case["group_pk"]
    params = {
        "pubkey": account,
        "namespace": case["namespace"],
        "timestamp": case["timestamp_ms"],
        "signature": case["signature_b64"],
        "subaccount": case["subaccount_b64"],
        "subaccount_sig": case["subaccount_sig_b64"],
    }
    req = P.parse_params("retrieve", params)
    assert req.signature_text() == case["signed_text_utf8"].encode()
    assert req.auth.subaccount.hex() == case["subaccount"]
    P.precheck(req, case["timestamp_ms"])
    P.verify_request(req)
    # hex form of the token parses identically
    assert P.parse_params("retrieve", {**params, "subaccount": case["subaccount"]}) == req
    # revoked → 401 (but not in an unrevocable namespace)
    with pytest.raises(P.RpcStatusError) as ei:
        P.verify_request(req, revoked=True)
    assert ei.value.message == "retrieve signature verification failed"
    assert P.skip_revoke_check(dataclasses.replace(req, namespace=-11))
    # the token grants read|write only: delete access is refused
    assert not P.verify_auth(
        req.account, req.auth, req.signature_text(), P.Access.DELETE, revoked=False
    )
    assert P.verify_auth(
        req.account, req.auth, req.signature_text(), P.Access.READ | P.Access.WRITE, revoked=False
    )
    # a token for another network prefix is refused
    other = P.Account(0x05, req.account.key)
    assert not P.verify_auth(other, req.auth, req.signature_text(), P.Access.READ, revoked=False)


def test_recursive_signature_texts():
    c = Client()
    h = ["A" * 43, "B" * 43]
    assert P.parse_request(c.delete(h)).signature_text() == ("delete" + "".join(h)).encode()
    assert (
        P.parse_request(c.delete_all(ns="all")).signature_text() == f"delete_allall{NOW}".encode()
    )
    assert P.parse_request(c.delete_all(ns=0)).signature_text() == f"delete_all{NOW}".encode()
    assert (
        P.parse_request(c.delete_before(NOW, ns=-10)).signature_text()
        == f"delete_before-10{NOW}".encode()
    )
    assert P.parse_request(c.expire_all(NOW, ns=5)).signature_text() == f"expire_all5{NOW}".encode()
    e = P.parse_request(c.expire(h, [NOW + 1, NOW + 2], "shorten"))
    assert e.signature_text() == f"expireshorten{NOW + 1}{NOW + 2}".encode() + "".join(h).encode()
    g = P.parse_request(c.get_expiries(h))
    assert g.signature_text() == f"get_expiries{NOW}".encode() + "".join(h).encode()
    for body in (
        c.delete(h),
        c.delete_all(ns="all"),
        c.delete_before(NOW),
        c.expire_all(NOW),
        c.expire(h, NOW),
        c.get_expiries(h),
    ):
        req = P.parse_request(body)
        P.precheck(req, NOW)
        P.verify_request(req)
    tok = bytes(36)
    r = P.parse_params(
        "revoke_subaccount",
        {
            "pubkey": c.account,
            "revoke": tok.hex(),
            "timestamp": NOW,
            **c.auth(f"revoke_subaccount{NOW}".encode() + tok),
        },
    )
    assert r.tokens == (tok,)
    P.verify_request(r)


# ---- other methods: parse errors and checks --------------------------------------------------


def test_retrieve_parse_and_checks():
    r = parse("retrieve", pubkey=ACCT, namespace=-10)  # no-auth namespace
    assert r.auth is None
    P.precheck(r, NOW)
    r = parse("retrieve", pubkey=ACCT, namespace=-21, lastHash="A" * 43, max_count=3)
    assert (r.last_hash, r.max_count) == ("A" * 43, 3)
    assert parse("retrieve", pubkey=ACCT, namespace=-10, last_hash="").last_hash is None
    with pytest.raises(P.RpcStatusError) as ei:
        P.precheck(parse("retrieve", pubkey=ACCT), NOW)
    assert (ei.value.status, ei.value.message) == (401, "retrieve: request signature required")
    assert (
        err("retrieve", pubkey=ACCT, namespace=3).message
        == "invalid request: Required field 'signature' missing"
    )
    sig = "A" * 86
    assert (
        err("retrieve", pubkey=ACCT, signature=sig).message
        == "invalid request: Required field 'timestamp' missing"
    )
    assert (
        err("retrieve", pubkey=ACCT, namespace=-10, last_hash="x").message
        == "invalid request: Invalid last_hash: expected base64 (43 chars)"
    )
    assert (
        err("retrieve", pubkey=ACCT, namespace=-10, last_hash="!" * 43).message
        == "invalid request: Invalid last_hash: not base64"
    )
    assert (
        "Cannot specify both 'last_hash' and 'lastHash'"
        in err("retrieve", pubkey=ACCT, namespace=-10, last_hash="", lastHash="").message
    )
    c = Client()
    with pytest.raises(P.RpcStatusError) as ei:
        P.precheck(P.parse_request(c.retrieve(ts=NOW - 60_001)), NOW)
    assert (ei.value.status, ei.value.message) == (
        406,
        "retrieve timestamp too far from current time",
    )


def test_retrieve_limits():
    def lim(**kw):
        return P.retrieve_limits(parse("retrieve", pubkey=ACCT, namespace=-10, **kw))

    assert lim() == (None, 7_800_000 // 5)
    assert lim(max_count=0, max_size=0) == (None, 7_800_000 // 5)
    assert lim(max_count=10) == (10, 7_800_000)
    assert lim(max_size=-1) == (None, 7_800_000)
    assert lim(max_size=-3) == (None, 2_600_000)
    assert lim(max_size=99_999_999) == (None, 7_800_000)
    assert lim(max_size=1000, max_count=2) == (2, 1000)


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("delete", {"pubkey": ACCT, "signature": "A" * 86}, "Required field 'messages' missing"),
        (
            "delete",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": []},
            "messages does not contain any message hashes",
        ),
        (
            "delete",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": ["short"]},
            "invalid message hash: short",
        ),
        (
            "delete",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": [1]},
            "Invalid value given for 'messages': expected string array",
        ),
        ("delete", {"pubkey": ACCT, "messages": ["A" * 43]}, "Required field 'signature' missing"),
        (
            "delete_all",
            {"pubkey": ACCT, "signature": "A" * 86},
            "Required field 'timestamp' missing",
        ),
        (
            "delete_all",
            {"pubkey": ACCT, "signature": "A" * 86, "timestamp": NOW, "namespace": "some"},
            "Invalid value given for 'namespace': expected integer or \"all\"",
        ),
        (
            "delete_before",
            {"pubkey": ACCT, "signature": "A" * 86},
            "Required field 'before' missing",
        ),
        ("expire_all", {"pubkey": ACCT, "signature": "A" * 86}, "Required field 'expiry' missing"),
        (
            "expire",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": ["A" * 43]},
            "Required field 'expiry' missing",
        ),
        (
            "expire",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": ["A" * 43], "expiry": []},
            "'expiry' does not contain any expiration timestamps",
        ),
        (
            "expire",
            {
                "pubkey": ACCT,
                "signature": "A" * 86,
                "messages": ["A" * 43],
                "expiry": NOW,
                "shorten": True,
                "extend": True,
            },
            "cannot specify both 'shorten' and 'extend'",
        ),
        (
            "expire",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": ["A" * 43], "expiry": [NOW, NOW]},
            "'expiry' must be a single expiry, or the same length as 'messages'",
        ),
        (
            "expire",
            {
                "pubkey": ACCT,
                "signature": "A" * 86,
                "messages": ["A" * 43],
                "expiry": NOW,
                "shorten": 1,
            },
            "Invalid value given for 'shorten': expected boolean",
        ),
        (
            "get_expiries",
            {"pubkey": ACCT, "signature": "A" * 86, "messages": ["x"]},
            "Required field 'timestamp' missing",
        ),
        (
            "revoke_subaccount",
            {"pubkey": ACCT, "signature": "A" * 86, "timestamp": NOW, "revoke": ["00" * 36] * 51},
            "invalid revoke: cannot revoke more than 50 subaccounts at once",
        ),
        (
            "revoke_subaccount",
            {"pubkey": ACCT, "signature": "A" * 86, "timestamp": NOW, "revoke": ["00"]},
            "invalid revoke: expected base64 or hex-encoded subaccount tag",
        ),
        (
            "unrevoke_subaccount",
            {"pubkey": ACCT, "signature": "A" * 86, "timestamp": NOW},
            "Required field 'unrevoke' missing",
        ),
        ("oxend_request", {}, "Required field 'endpoint' missing"),
        ("oxend_request", {"endpoint": "get_block"}, "Invalid oxend endpoint 'get_block'"),
        ("batch", {}, 'Invalid batch request: no valid "requests" field'),
        (
            "batch",
            {"requests": [{"method": "info", "params": {}}] * 21},
            "Invalid batch request: subrequest limit exceeded",
        ),
        ("batch", {"requests": [1]}, "Invalid batch request: requests must be objects"),
        (
            "batch",
            {"requests": [{"method": "info"}]},
            "Invalid batch request: subrequests must have method/params keys",
        ),
        (
            "sequence",
            {"requests": [{"method": "batch", "params": {}}]},
            "Invalid batch subrequest: subrequests may not contain meta-requests",
        ),
        (
            "batch",
            {"requests": [{"method": "foo", "params": {}}]},
            'Invalid batch subrequest: invalid method "foo"',
        ),
        (
            "batch",
            {"requests": [{"method": "get_swarm", "params": {}}]},
            "Required field 'pubkey' missing",
        ),
        ("ifelse", {}, 'Invalid ifelse request: no valid "if" field'),
        (
            "ifelse",
            {"if": {}, "then": {"method": "info", "params": {}}},
            'Invalid ifelse request: must specify at least one "if" condition',
        ),
        (
            "ifelse",
            {"if": {"hf_at_least": [19]}},
            'Invalid ifelse request: at least one of "then"/"else" required',
        ),
        (
            "ifelse",
            {"if": {"hf_at_least": [19]}, "then": {"method": "x", "params": {}}},
            'Invalid ifelse request method "then"',
        ),
    ],
)
def test_parse_errors(method, params, message):
    e = err(method, **params)
    assert (e.status, e.message) == (400, "invalid request: " + message)


def test_time_checks_of_recursive_methods():
    c = Client()
    h = ["A" * 43]
    cases = [
        (
            c.delete_all(ts=NOW - 60_001),
            False,
            406,
            "delete_all timestamp too far from current time",
        ),
        (
            c.delete_before(NOW + 60_001),
            False,
            401,
            "delete_before timestamp too far in the future",
        ),
        (c.expire_all(NOW - 60_001), False, 406, "expire_all timestamp should be >= current time"),
        (c.expire(h, NOW - 60_001), False, 401, "expire: timestamp should be >= current time"),
        (
            c.get_expiries(h, ts=NOW + 60_001),
            False,
            406,
            "get_expiries timestamp too far from current time",
        ),
    ]
    for body, fwd, status, message in cases:
        with pytest.raises(P.RpcStatusError) as ei:
            P.precheck(P.parse_request(body), NOW, forwarded=fwd)
        assert (ei.value.status, ei.value.message) == (status, message)
    # forwarded copies get 70 s
    P.precheck(P.parse_request(c.delete_all(ts=NOW - 65_000)), NOW, forwarded=True)
    P.precheck(P.parse_request(c.expire_all(NOW - 65_000)), NOW, forwarded=True)
    # multi-expiry needs HF 19.4
    multi = P.parse_request(c.expire(h * 2, [NOW, NOW]))
    with pytest.raises(P.RpcStatusError) as ei:
        P.precheck(multi, NOW, hf=(19, 3))
    assert ei.value.status == 403
    P.precheck(multi, NOW, hf=(19, 4))
    # expiries are clamped to now + 30 days
    far = P.parse_request(c.expire(h, NOW + 40 * 86_400_000))
    assert P.applied_expiries(far, NOW) == [NOW + 30 * 86_400_000]


def test_expire_subaccount_without_delete():
    token = bytes([5, int(P.Access.WRITE), 0, 0]) + bytes(32)
    auth = P.Auth(bytes(64), None, token, bytes(64))
    e = P.Expire(P.Account(5, bytes(32)), ("A" * 43,), (NOW,), auth, shorten=True)
    with pytest.raises(P.RpcStatusError) as ei:
        P.expire_extend_only(e)
    assert ei.value.status == 400
    assert P.expire_extend_only(dataclasses.replace(e, shorten=False)) is True
    assert (
        P.expire_extend_only(dataclasses.replace(e, shorten=False, auth=P.Auth(bytes(64)))) is False
    )


def test_forwarded_roundtrip_and_rejection():
    c = Client()
    for body in (
        c.store(b"payload", ns=3),
        c.delete(["A" * 43], required=True),
        c.delete_all(ns="all"),
        c.delete_before(NOW, ns=2),
        c.expire_all(NOW + 1),
        c.expire(["A" * 43, "B" * 43], [NOW, NOW + 1], "extend"),
    ):
        req = P.parse_request(body)
        fwd = P.forward_body(req)
        again = P.parse_request(json.loads(json.dumps(fwd)), forwarded=True)
        assert again == req
        P.verify_request(again)
    with pytest.raises(P.RpcStatusError) as ei:
        P.parse_request(c.retrieve(), forwarded=True)
    assert ei.value.message == "invalid request: received invalid forwarded non-forwardable request"


def test_ifelse_and_batch_parse():
    r = parse(
        "ifelse",
        **{
            "if": {"hf_at_least": [19, 3], "v_before": [3]},
            "then": {"method": "batch", "params": {"requests": [{"method": "info", "params": {}}]}},
        },
    )
    assert r.condition.holds((19, 4), (2, 8, 0), 0)
    assert not r.condition.holds((19, 2), (2, 8, 0), 0)
    assert not r.condition.holds((19, 4), (3, 0, 0), 0)
    assert isinstance(r.then, P.Batch) and r.otherwise is None
    b = parse(
        "sequence",
        requests=[
            {"method": "info", "params": {}},
            {"method": "get_swarm", "params": {"pubkey": ACCT}},
        ],
    )
    assert b.sequence and b.METHOD == "sequence" and len(b.requests) == 2


# ---- response shapes -------------------------------------------------------------------------


def test_result_texts_and_shapes():
    assert P.ns_action_result_text(ACCT, 5, ["a", "b"]) == f"{ACCT}5ab".encode()
    assert P.delete_result_text(ACCT, ["x", "y"], ["y"]) == f"{ACCT}xyy".encode()
    assert (
        P.expire_result_text(ACCT, [7], ["b", "a"], ["a"], {"b": 3, "a0": 1})
        == f"{ACCT}7baaa01b3".encode()
    )
    hashes, shown = P.affected_by_namespace([(3, "b"), (0, "c"), (3, "a")], True)
    assert hashes == ["a", "b", "c"] and shown == {"3": ["a", "b"], "0": ["c"]}
    assert P.affected_by_namespace([(0, "b"), (0, "a")], False) == (["a", "b"], ["a", "b"])
    assert P.swarm_json(None, ()) == {"snodes": [], "swarm": "ffffffffffffffff"}
    assert P.swarm_status({"a": {"failed": True}, "b": {"hash": "x"}}) == 200
    assert P.swarm_status({"a": {"failed": True}}) == 500
    assert P.failed_entry(timeout=True) == {"failed": True, "timeout": True}
    assert P.failed_entry(code=421, reason="r") == {"failed": True, "code": 421, "reason": "r"}


def test_base32z():
    # oxenc: 0x00.. → 'y', 5-bit groups MSB first
    assert P.base32z(b"\x00" * 32) == "y" * 52
    assert P.base32z(b"\xff") == "9h"  # 11111 111(00)
    assert len(P.base32z(bytes(range(32)))) == 52


@given(st.binary(min_size=0, max_size=300))
def test_garbage_never_escapes_as_other_exception(blob):
    try:
        P.parse_request(blob)
    except P.RpcStatusError as e:
        assert e.status == 400


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "pubkey",
                "timestamp",
                "ttl",
                "expiry",
                "data",
                "namespace",
                "signature",
                "messages",
                "sig_timestamp",
                "pubkey_ed25519",
                "subaccount",
                "subaccount_sig",
                "last_hash",
                "max_count",
                "before",
                "revoke",
                "requests",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=False),
            st.text(max_size=90),
            st.lists(st.text(max_size=50), max_size=3),
        ),
    ),
    st.sampled_from(sorted(P.METHODS)),
)
def test_random_params_give_typed_errors(params, method):
    try:
        P.parse_params(method, params)
    except P.RpcStatusError as e:
        assert e.status == 400


def test_verify_helper_matches_identity():
    ident = Identity.generate()
    sig = ident.sign(b"abc")
    verify(ident.ed25519_public, b"abc", sig)


def test_ed25519_key_of_a_05_account_is_checked_with_the_remembered_conversion():
    """A 05 account's signature names its Ed25519 key; the key's X25519 form must be the
    account. The conversion is remembered per key: a second request with the same key is
    accepted without converting again, another key is still refused, and a key that is not
    a curve point fails without being remembered."""
    from session.proto.rpc import auth

    owner, other = Identity.generate(), Identity.generate()
    acct = P.Account.parse(owner.session_id)
    assert acct is not None
    text = b"retrieve1234"

    def check(signer: Identity, pk: bytes) -> bool:
        a = P.Auth(signature=signer.sign(text), pubkey_ed25519=pk)
        return P.verify_auth(acct, a, text, auth.Access.READ, revoked=False)

    auth._x25519_of.cache_clear()
    assert check(owner, owner.ed25519_public)
    hits = auth._x25519_of.cache_info().hits
    assert check(owner, owner.ed25519_public)
    assert auth._x25519_of.cache_info().hits == hits + 1
    assert not check(other, other.ed25519_public)  # a valid signature by someone else's key
    size = auth._x25519_of.cache_info().currsize
    not_a_point = bytes([2]) + bytes(31)  # y = 2 has no x on the curve
    assert not check(owner, not_a_point)
    assert auth._x25519_of.cache_info().currsize == size
