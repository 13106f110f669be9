"""Config messages and their merge (session.groups.config) against libsession's own cases
(``tests/test_configdata.cpp``: the serialization, signature and example 1–4 conflict cases;
the expected hashes and bytes are upstream values), plus the empty UserProfile hash (TV-25)."""

from __future__ import annotations

import pytest

from session.errors import InvalidSignature
from session.groups import bt
from session.groups.config import ConfigMessage, ConfigParseError, data_diff, merge
from session.identity import Identity, verify
from vectorlib import load_vectors

H = bytes.fromhex


def test_empty_message_hash_tv25() -> None:
    case = load_vectors("config_encrypt", "config_hash")[0]
    m = ConfigMessage()
    assert m.serialize() == case["config_utf8"].encode()
    assert m.hash.hex() == case["hash"]
    parsed = ConfigMessage.parse(case["config_utf8"].encode())
    assert parsed.hash.hex() == case["hash"] and parsed.seqno == 0 and parsed.data == {}


def _bar() -> dict:
    return {b"asdf": 123, b"xyz": b"abc", b"": {b"a", b"b", 42}}


def test_diff_rules() -> None:
    m = ConfigMessage()
    m.data[b"foo"] = 123
    m.data[b"empty"] = set()
    m.data[b"empty2"] = {}
    m.data[b"bar"] = _bar()
    assert m.diff() == {
        b"foo": b"",
        b"bar": {b"asdf": b"", b"xyz": b"", b"": [[42, b"a", b"b"], []]},
    }
    assert b"empty" not in m.data  # empty containers are pruned
    m1 = m.increment()
    assert m1.seqno == 1 and m1.diff() == {}
    del m1.data[b"foo"]
    assert m1.diff() == {b"foo": b"-"}
    m2 = m1.increment()
    m2.data[b"foo"] = 123
    bar = m2.data[b"bar"]
    bar[b"xyz"] = 42
    bar[b"a"] = 42
    bar[b""] |= {b"c", 99, 42}
    bar[b""].discard(b"b")
    assert m2.diff() == {
        b"foo": b"",
        b"bar": {b"xyz": b"", b"a": b"", b"": [[99, b"c"], [b"b"]]},
    }


def test_serialization_hash_chain() -> None:
    m = ConfigMessage(10)
    m.data[b"foo"] = 123
    m.data[b"bar"] = _bar()
    assert m.serialize() == (
        b"d1:#i10e1:&d3:bard0:li42e1:a1:be4:asdfi123e3:xyz3:abce3:fooi123ee1:<le"
        b"1:=d3:bard0:lli42e1:a1:belee4:asdf0:3:xyz0:e3:foo0:ee"
    )
    assert m.hash == H("d65738bba88b0f3455cef20fe09a7b4b10f25f9db82be24a6ce1bd06da197526")
    m1 = m.increment()
    del m1.data[b"foo"]
    assert m1.hash == H("5b30b4abf4cba71db25dbc0d977cc25df1d0a8a87cad7f561cdec2b8caf65f5e")
    m2 = m1.increment()
    m2.data[b"foo"] = 123
    m2.data[b"bar"][b"xyz"] = 42
    m2.data[b"bar"][b"a"] = 42
    m2.data[b"bar"][b""] |= {b"c", 99}
    m2.data[b"bar"][b""].discard(b"b")
    assert m2.hash == H("027552203cf669070d3ecbeecfa65c65497d59aa4da490e0f68f8131ce081320")
    assert m2.increment().hash == H(
        "b83871ea06587f9254cdf2b2af8daff19bd7fb550fb90d5f8f9f546464c08bc5"
    )
    assert m2.increment().increment().hash == H(
        "c30e2cfa7ec93c64a1ab6420c9bccfb63da8e4c2940ed6509ffb64f3f0131860"
    )
    m5 = m2.increment().increment().increment()
    assert m5.seqno == 15
    assert m5.hash == H("3234eb7da8cf4b79b9eec2a144247279d10f6f118184f82429a42c5996bea60c")
    # lagged diffs keep only seqnos 11..14 (lag 5)
    assert [s for s, _ in sorted(m5.lagged) if 15 - 5 < s < 15] == [11, 12, 13, 14]
    again = ConfigMessage.parse(m5.serialize())
    assert again.serialize() == m5.serialize() and again.hash == m5.hash


SECRET = H("79f530dbf3d81aecc04072933c1b3e3edc0b7d91f2dcc2f7756f2611886cca5f")
EXPECTED_SIG = H(
    "77267f4de7701ae348eba0ef73175281512ba3f1051cfed22dc3e31b9c699330"
    "2938863e09bc8b33638161071bd8dc397d5c1d3f674120d08fbb9c64dde2e907"
)


def test_signature() -> None:
    key = Identity(SECRET)

    def verifier(data: bytes, sig: bytes) -> bool:
        try:
            verify(key.ed25519_public, data, sig)
        except InvalidSignature:
            return False
        return True

    m = ConfigMessage(10, signer=key.sign)
    m.data[b"foo"] = 123
    m.data[b"bar"] = _bar()
    signed = m.serialize()
    assert signed.endswith(b"1:~64:" + EXPECTED_SIG + b"e")
    assert signed[: -len(b"1:~64:") - 65] + b"e" == m.serialize(sign=False)
    parsed = ConfigMessage.parse(signed, verifier=verifier)
    assert parsed.verified_signature == EXPECTED_SIG
    assert parsed.hash == m.hash and parsed.serialize() == signed
    broken = bytearray(signed)
    assert broken[-2] == 0x07
    broken[-2] = 0x17
    with pytest.raises(InvalidSignature):
        ConfigMessage.parse(bytes(broken), verifier=verifier)
    with pytest.raises(ConfigParseError):
        merge([bytes(broken), bytes(broken)], verifier=verifier)
    errors: list[int] = []
    for order in ([bytes(broken), signed], [signed, bytes(broken)]):
        r = merge(order, verifier=verifier, signer=key.sign, on_error=lambda i, e: errors.append(i))
        assert not r.merged and r.seqno == 10 and r.hash == m.hash
    assert errors == [0, 1]
    with pytest.raises(InvalidSignature, match="not signed"):
        ConfigMessage.parse(m.serialize(sign=False), verifier=verifier)


DATA118 = {
    b"dictB": {b"changed": -1, b"foo": 123, b"removed": b"x", b"removed2": b"y"},
    b"dictC": {b"x": {b"y": 1}},
    b"good": {99, 456, b"bar"},
    b"great": {-42, b"omg"},
    b"int0": -9999,
    b"int1": 100,
    b"string1": b"hello",
    b"string2": b"goodbye",
}
H119 = H("43094f68c1faa37eff79e1c2f3973ffd5f9d6423b00ccda306fc6e7dac5f0c44")
H120 = H("e3a237f91014d31e4d30569c4a8bfcd72157804f99b8732c611c48bf126432b5")
H121 = H("1a7f602055124deaf21175ef3f32983dee7c9de570e5d9c9a0bbc2db71dcb97f")
H122 = H("46560604fe352101bb869435260d7100ccfe007be5f741c7e96303f02f394e8a")
H123 = H("d9398c597b058ac7e28e3febb76ed68eb8c5b6c369610562ab5f2b596775d73c")
H124 = H("8b73f316178765b9b3b37168e865c84bb5a78610cbb59b84d0fa4d3b4b3c102b")
H125A = H("80f229c3667de6d0fa6f96b53118e097fbda82db3ca1aea221a3db91ea9c45fb")
H125B = H("ab12f0efe9a9ed00db6b17b44ae0ff36b9f49094077fb114f415522f2a0e98de")


def _copy118() -> dict:
    import copy

    return copy.deepcopy(DATA118)


def make_m123() -> bytes:
    """libsession's example 1: data118 at seqno 118, four empty increments, then an edit."""
    m = ConfigMessage(118)
    m.data = _copy118()
    m123 = m
    for want in (H119, H120, H121, H122):
        m123 = m123.increment()
        assert m123.hash == want
    m123 = m123.increment()
    m123.data[b"int1"] = 1
    m123.data[b"int2"] = 2
    del m123.data[b"int0"]
    m123.data[b"string1"] = b"hello"  # unchanged: not in the diff
    out = m123.serialize()
    assert m123.hash == H123
    return out


def updates_124(m: ConfigMessage) -> None:
    m.data[b"dictA"] = {b"hello": 123, b"goodbye": {123, 456}}
    b = m.data[b"dictB"]
    b[b"changed"] = 1
    b[b"added"] = 9999
    b[b"nested"] = {b"a": 1}
    del b[b"removed"], b[b"removed2"]
    del m.data[b"dictC"]
    m.data[b"good"] |= {b"Foo", 123}
    m.data[b"good"].discard(456)
    m.data[b"int1"] = 42
    del m.data[b"string1"]
    m.data[b"string2"] = b"hello"
    m.data[b"string3"] = b"omg"
    del m.data[b"great"]


DIFF124 = {
    b"dictA": {b"goodbye": [[123, 456], []], b"hello": b""},
    b"dictB": {
        b"added": b"",
        b"changed": b"",
        b"nested": {b"a": b""},
        b"removed": b"-",
        b"removed2": b"-",
    },
    b"dictC": {b"x": {b"y": b"-"}},
    b"good": [[123, b"Foo"], [456]],
    b"great": [[], [-42, b"omg"]],
    b"int1": b"",
    b"string1": b"-",
    b"string2": b"",
    b"string3": b"",
}
DIFF123 = {b"int0": b"-", b"int1": b"", b"int2": b""}


def test_example_1_2_deserialization() -> None:
    m123 = make_m123()
    p = ConfigMessage.parse(m123)
    assert p.seqno == 123 and p.hash == H123 and p.diff() == DIFF123
    assert p.verified_signature is None
    want = _copy118()
    want[b"int1"] = 1
    del want[b"int0"]
    want[b"int2"] = 2
    assert p.data == want
    mut = merge([m123], for_edit=True)
    assert mut.seqno == 124 and not mut.merged and mut.diff() == {}
    assert mut.hash == H("3ea36410cf7086ce816eb193b0c94e88632abfb75771d82f8ddb3a909124c580")
    updates_124(mut)
    assert mut.diff() == DIFF124
    assert mut.hash == H124


def _m124() -> ConfigMessage:
    m = merge([make_m123()], for_edit=True)
    updates_124(m)
    assert m.hash == H124
    return m


MERGED_DATA = {
    b"dictA": {b"goodbye": {123, 456}, b"hello": 123},
    b"dictB": {b"added": 9999, b"changed": 1, b"nested": {b"a": 1}},
    b"good": {99, 123, b"Foo", b"bar"},
    b"int1": 5,
    b"int2": 2,
    b"string2": b"hello",
    b"string3": b"omg",
}


def test_example_3_simple_conflict() -> None:
    m124 = _m124()
    a = m124.increment()
    del a.data[b"dictB"][b"foo"]
    b = m124.increment()
    b.data[b"int1"] = 5
    assert (a.hash, b.hash) == (H125A, H125B)
    m = merge([a.serialize(), b.serialize()])
    assert m.merged and m.seqno == 126
    assert m.data == MERGED_DATA  # both concurrent edits survive
    expected = bt.encode(
        {
            b"#": 126,
            b"&": {
                k: sorted(v, key=lambda x: (isinstance(x, bytes), x)) if isinstance(v, set) else v
                for k, v in MERGED_DATA.items()
            }
            | {b"dictA": {b"goodbye": [123, 456], b"hello": 123}},
            b"<": [
                [122, H122, {}],
                [123, H123, DIFF123],
                [124, H124, DIFF124],
                [125, H125A, {b"dictB": {b"foo": b"-"}}],
                [125, H125B, {b"int1": b""}],
            ],
            b"=": {},
        }
    )
    assert m.serialize() == expected
    # any order, included ancestors, duplicates and too-old messages give the same bytes
    m120b = ConfigMessage(118).increment().increment()
    m120b.data[b"too old"] = b"won't see"
    for inputs in (
        [b, a],
        [m124, b, a],
        [b, a, m124],
        [b, m120b, a],
        [a, a, b, b],
    ):
        assert merge([x.serialize() for x in inputs]).serialize() == expected


def test_example_4_complex_conflict() -> None:
    m123 = ConfigMessage.parse(make_m123())
    m124a = m123.increment()
    m124a.data[b"dictB"][b"foo"] = 66
    m124a.data[b"dictB"][b"answer"] = 42
    m124b = m123.increment()
    updates_124(m124b)
    assert m124b.hash == H124
    m125a = m124b.increment()
    del m125a.data[b"dictB"][b"foo"]
    m125b = m124b.increment()
    m125b.data[b"int1"] = 5
    m126a = merge([m125a.serialize(), m125b.serialize()])
    m120b = ConfigMessage(118).increment().increment()
    m120b.data[b"too old"] = b"won't see"
    # already-included (124b via 125a/b, 123) and too-old (120b) inputs are ignored
    m126b = merge([x.serialize() for x in (m125b, m124a, m125a, m123, m120b)])
    assert m124a.hash < m124b.hash and m126a.hash < m126b.hash
    m127 = merge([m126a.serialize(), m126b.serialize()], for_edit=True)
    assert m127.merged and m127.seqno == 127
    m127.data[b"dictA"][b"goodbye"].add(789)
    want = dict(MERGED_DATA)
    want[b"dictA"] = {b"goodbye": {123, 456, 789}, b"hello": 123}
    want[b"dictB"] = {b"added": 9999, b"answer": 42, b"changed": 1, b"nested": {b"a": 1}}
    assert m127.data == want  # 124a's "answer" survives; its "foo" = 66 loses to 125a's removal

    def enc(d: dict) -> dict:
        return {
            k: enc(v)
            if isinstance(v, dict)
            else sorted(v, key=lambda x: (isinstance(x, bytes), x))
            if isinstance(v, set)
            else v
            for k, v in d.items()
        }

    expected = bt.encode(
        {
            b"#": 127,
            b"&": enc(want),
            b"<": [
                [123, H123, DIFF123],
                [124, m124a.hash, {b"dictB": {b"answer": b"", b"foo": b""}}],
                [124, H124, DIFF124],
                [125, H125A, {b"dictB": {b"foo": b"-"}}],
                [125, H125B, {b"int1": b""}],
                [126, m126a.hash, {}],
                [126, m126b.hash, {}],
            ],
            b"=": {b"dictA": {b"goodbye": [[789], []]}},
        }
    )
    assert m127.serialize() == expected
    assert m127.diff() == {b"dictA": {b"goodbye": [[789], []]}}
    out = m127.serialize()
    again = merge([out, m125a.serialize(), m126b.serialize()])
    assert again.seqno == 127 and again.hash == m127.hash


@pytest.mark.parametrize(
    "raw",
    [
        b"d1:#i0e1:&d0:lee1:<le1:=dee",  # unpruned empty set
        b"d1:#i0e1:&d0:dee1:<le1:=dee",  # unpruned empty dict
        b"d1:!i1e1:#i0e1:&de1:<le1:=dee",  # a key before "#": a future major version
        b"d1:&de1:<le1:=dee",  # no seqno
        b"d1:#i0e1:<le1:=dee",  # no data
        b"d1:#i1e1:&d1:ali2ei1eee1:<le1:=dee",  # unsorted set
        b"d1:#i1e1:&de1:<lli1e32:" + bytes(32) + b"deee1:=dee",  # lagged seqno >= seqno
        b"d1:#i5e1:&de1:<le1:=d1:ai1eee",  # a diff holding an int
        b"d1:#i5e1:&de1:<le1:=d1:a1:xee",  # a diff holding another string
        b"d1:#i5e1:&de1:<le1:=dee1:~3:abce",  # short signature
        b"d1:#i5e1:&de1:<le1:=de1:~64:" + bytes(64) + b"1:\x7fi1ee",  # key after "~"
        b"not bencode",
    ],
)
def test_invalid_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(ConfigParseError):
        ConfigMessage.parse(raw)


def test_unknown_keys_are_carried() -> None:
    raw = b"d1:#i3e1:%i7e1:&d1:ai1ee1:<le1:=de1:?3:fooe"
    m = ConfigMessage.parse(raw)
    assert m.unknown == {b"%": 7, b"?": b"foo"}
    assert m.serialize() == raw
    nxt = m.increment()
    nxt.data[b"b"] = 2
    assert ConfigMessage.parse(nxt.serialize()).unknown == m.unknown


def test_data_diff_type_change() -> None:
    assert data_diff({b"a": {b"x": 1}}, {b"a": 5}) == {b"a": b""}
    assert data_diff({b"a": 5}, {b"a": {1}}) == {b"a": [[1], []]}
    assert data_diff({b"a": 5}, {b"a": 5}) is None
