"""Content building and the envelope round trip (no network)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session.client import messages as M
from session.errors import DecodeError
from session.identity import Identity
from session.proto import session_pb2 as pb

ALICE = Identity.from_seed(bytes.fromhex("0123456789abcdef0123456789abcdef"))
BOB = Identity.from_seed(bytes.fromhex("00112233445566778899aabbccddeeff"))


def test_field_numbers_match_session() -> None:
    # Spec client.md §2.5/§2.6: the numbers other clients parse.
    d = pb.Content.DESCRIPTOR.fields_by_name
    assert {
        k: d[k].number
        for k in (
            "dataMessage",
            "receiptMessage",
            "typingMessage",
            "unsendRequest",
            "messageRequestResponse",
            "sharedConfigMessage",
            "expirationType",
            "expirationTimer",
            "sigTimestamp",
        )
    } == {
        "dataMessage": 1,
        "receiptMessage": 5,
        "typingMessage": 6,
        "unsendRequest": 9,
        "messageRequestResponse": 10,
        "sharedConfigMessage": 11,
        "expirationType": 12,
        "expirationTimer": 13,
        "sigTimestamp": 15,
    }
    dm = pb.DataMessage.DESCRIPTOR.fields_by_name
    assert (
        dm["body"].number,
        dm["flags"].number,
        dm["profile"].number,
        dm["syncTarget"].number,
    ) == (1, 4, 101, 105)
    e = pb.Envelope.DESCRIPTOR.fields_by_name
    assert (e["type"].number, e["timestamp"].number, e["content"].number) == (1, 5, 8)
    assert pb.Envelope.SESSION_MESSAGE == 6


def test_text_bytes_are_the_expected_protobuf() -> None:
    c = M.text("hi", sent_ms=5)
    # field 1 (dataMessage) { field 1 "hi" }, field 15 varint 5
    assert c.SerializeToString() == bytes.fromhex("0a040a026869") + bytes([15 << 3, 5])


def test_seal_and_open_round_trip() -> None:
    c = M.text(
        "hello bob",
        sent_ms=1_700_000_000_123,
        display_name="Alice",
        expiration=M.Expiration(M.ExpirationMode.AFTER_SEND, 3600),
    )
    data = M.seal(ALICE, BOB.session_id, c, 1_700_000_000_123)
    raw = base64.b64decode(data)
    ws = pb.WebSocketMessage.FromString(raw)
    assert ws.type == pb.WebSocketMessage.REQUEST
    env = pb.Envelope.FromString(ws.request.body)
    assert env.type == 6 and env.timestamp == 1_700_000_000_123
    assert len(env.content) % 160 == 144  # padded to 160-byte blocks, + 144 bytes of seal
    inc = M.open_stored(BOB, "h1", data)
    assert inc.sender == ALICE.session_id
    assert inc.sent_ms == 1_700_000_000_123
    assert inc.content.dataMessage.body == "hello bob"
    assert inc.content.dataMessage.profile.displayName == "Alice"
    assert M.expiration_of(inc.content) == M.Expiration(M.ExpirationMode.AFTER_SEND, 3600)


def test_wrong_recipient_cannot_open() -> None:
    data = M.seal(ALICE, BOB.session_id, M.text("x", sent_ms=1), 1)
    with pytest.raises(Exception) as ei:
        M.open_stored(ALICE, "h", data)
    assert isinstance(ei.value, ValueError)


def test_open_many_mixes_good_and_bad() -> None:
    good = [M.seal(ALICE, BOB.session_id, M.text(f"m{i}", sent_ms=i + 1), i + 1) for i in range(5)]
    other = M.seal(ALICE, ALICE.session_id, M.text("not for bob", sent_ms=9), 9)
    rows = [(f"h{i}", d, 0) for i, d in enumerate(good)] + [("bad", other, 0), ("junk", "!!!", 0)]
    out = M.open_many(BOB, rows)
    assert [o.hash for o in out] == [r[0] for r in rows]
    assert [o.content.dataMessage.body for o in out if isinstance(o, M.Incoming)] == [
        f"m{i}" for i in range(5)
    ]
    assert all(isinstance(o, M.Undecryptable) for o in out[5:])


def test_parse_stored_rejects_garbage() -> None:
    with pytest.raises(DecodeError):
        M.parse_stored("not base64!")
    with pytest.raises(DecodeError):
        M.parse_stored(base64.b64encode(b"\xff\xff\xff").decode())


@given(st.text(min_size=1, max_size=300))
def test_any_text_round_trips(body: str) -> None:
    data = M.seal(ALICE, BOB.session_id, M.text(body, sent_ms=7), 7)
    assert M.open_stored(BOB, "h", data).content.dataMessage.body == body


def test_control_builders() -> None:
    r = M.read_receipt([1, 2], sent_ms=3)
    assert r.receiptMessage.type == pb.ReceiptMessage.READ and list(r.receiptMessage.timestamp) == [
        1,
        2,
    ]
    t = M.typing(False, sent_ms=4)
    assert t.typingMessage.action == pb.TypingMessage.STOPPED and t.typingMessage.timestamp == 4
    u = M.unsend(10, ALICE.session_id, sent_ms=11)
    assert (u.unsendRequest.timestamp, u.unsendRequest.author) == (10, ALICE.session_id)
    x = M.expiration_update(sent_ms=5, expiration=M.OFF)
    assert x.dataMessage.flags == 2 and M.expiration_of(x) == M.OFF
    for c in (r, t, u, x, M.request_response(sent_ms=1, display_name="A")):
        assert c.IsInitialized()  # proto2 required fields present
    with pytest.raises(ValueError):
        M.read_receipt([], sent_ms=1)
    with pytest.raises(ValueError):
        M.text("", sent_ms=1)
    with pytest.raises(ValueError):
        M.Expiration(M.ExpirationMode.AFTER_SEND, 1)
    with pytest.raises(ValueError):
        M.check_display_name("x" * 101)


def test_ttls() -> None:
    assert M.OFF.ttl_ms() == 14 * 86400 * 1000
    assert M.Expiration(M.ExpirationMode.AFTER_SEND, 60).ttl_ms() == 60_000
    assert M.Expiration(M.ExpirationMode.AFTER_READ, 60).ttl_ms() == 14 * 86400 * 1000
