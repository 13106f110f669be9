"""Session names: §6.8 hashing and value encryption against Session's vectors, the name rule,
the registry's records (first come first served, owner-only renewal, expiry, persistence,
replays) and a node's mirror answering ``ons_resolve``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from session import names
from session.errors import (
    DecodeError,
    DecryptionError,
    InvalidInput,
    InvalidName,
    InvalidSignature,
    NameTaken,
    RegistryError,
    RpcStatusError,
)
from session.identity import Identity
from session.node.ons import NameMirror
from session.registry.state import Registry
from vectorlib import load_vectors


@pytest.mark.parametrize("case", load_vectors("ons", "decrypt"), ids=lambda c: c["name"])
def test_vector_decrypts(case: dict[str, Any]) -> None:
    name = case["name_utf8"]
    assert names.name_hash(name).hex() == case["name_hash"]
    assert names.name_hash_b64(name) == case["name_hash_b64"]
    sid = names.decrypt_value(name, bytes.fromhex(case["ciphertext"]), bytes.fromhex(case["nonce"]))
    assert sid == case["session_id"]
    # and our encryption gives the same bytes for the same nonce
    ct, _ = names.encrypt_value(name, sid, bytes.fromhex(case["nonce"]))
    assert ct.hex() == case["ciphertext"]


@pytest.mark.parametrize("case", load_vectors("ons", "decrypt_fail"), ids=lambda c: c["name"])
def test_vector_must_fail(case: dict[str, Any]) -> None:
    with pytest.raises((DecryptionError, ValueError)):
        names.decrypt_value(
            case["name_utf8"], bytes.fromhex(case["ciphertext"]), bytes.fromhex(case["nonce"])
        )


def test_wrong_name_or_tamper_fails() -> None:
    sid = Identity().session_id
    ct, nonce = names.encrypt_value("alice", sid)
    assert names.decrypt_value("alice", ct, nonce) == sid
    with pytest.raises(DecryptionError):
        names.decrypt_value("alicf", ct, nonce)
    with pytest.raises(DecryptionError):
        names.decrypt_value("alice", bytes([ct[0] ^ 1]) + ct[1:], nonce)


@pytest.mark.parametrize(
    ("text", "want"),
    [("Alice", "alice"), ("@bob_1", "bob_1"), (" a-b ", "a-b"), ("x", "x"), ("_", "_")],
)
def test_names_are_normalised(text: str, want: str) -> None:
    assert names.normalize_name(text) == want


@pytest.mark.parametrize(
    "text", ["", "@", "-a", "a-", "a b", "a.b", "é", "a" * 65, "a/b", "\u202eab"]
)
def test_malformed_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidName):
        names.normalize_name(text)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def _reg(tmp_path: Path, clock: Clock, term: int = 1000) -> Registry:
    return Registry(tmp_path, seed="names", clock=clock, name_term=term)


def _ms(clock: Clock, plus: int = 0) -> int:
    return int(clock.t * 1000) + plus


def test_first_come_first_served_and_renewal(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock)
    alice, mallory = Identity(), Identity()
    rec = reg.register_name(names.build_register(alice, "Alice", timestamp=_ms(clock)))
    assert rec.expiry == int(clock.t) + 1000
    with pytest.raises(NameTaken):
        reg.register_name(names.build_register(mallory, "alice", timestamp=_ms(clock)))
    with pytest.raises(InvalidSignature):
        reg.renew_name(names.build_renew(mallory, "alice", timestamp=_ms(clock, 1)))
    clock.t += 500
    renewed = reg.renew_name(names.build_renew(alice, "alice", timestamp=_ms(clock)))
    assert renewed.expiry == int(clock.t) - 500 + 2000
    with pytest.raises(RegistryError) as e:
        reg.renew_name(names.build_renew(alice, "nobody", timestamp=_ms(clock, 1)))
    assert e.value.status == 404
    # expired: anyone may take the name
    clock.t += 2000
    taken = reg.register_name(names.build_register(mallory, "alice", timestamp=_ms(clock, 2)))
    assert taken.owner == mallory.ed25519_public.hex()
    # persisted with the registry's state; the state file never holds the name
    again = _reg(tmp_path, clock)
    assert again.names[names.name_hash_b64("alice")].owner == taken.owner
    assert again.names_revision == reg.names_revision
    assert b"alice" not in (tmp_path / "registry.msgpack").read_bytes()


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock)
    alice = Identity()
    good = names.build_register(alice, "alice", timestamp=_ms(clock))
    replay = dict(good)
    reg.register_name(good)
    with pytest.raises(RegistryError):  # replayed
        reg.register_name(replay)
    stale = names.build_register(alice, "alice", timestamp=_ms(clock) - 3_600_000)
    with pytest.raises(InvalidInput):  # InvalidInput: not fresh
        reg.register_name(stale)
    forged = names.build_register(alice, "carol", timestamp=_ms(clock, 5))
    forged["signature"] = "00" * 64
    with pytest.raises(InvalidSignature):
        reg.register_name(forged)
    # a value that is not the owner's own Session ID
    other = Identity()
    doc = names.build_register(alice, "dave", timestamp=_ms(clock, 6))
    ct, nonce = names.encrypt_value("dave", other.session_id)
    doc.update(encrypted_value=ct.hex(), nonce=nonce.hex())
    doc.pop("signature")
    doc["signature"] = alice.sign(
        names._payload(names.REGISTER_TAG, doc, names.REGISTER_FIELDS)
    ).hex()
    with pytest.raises(InvalidSignature):
        reg.register_name(doc)
    bads: list[Any] = [
        {},
        [],
        {"name": "ALICE"},
        {**good, "name": "Alice"},
        {**good, "name_hash": "x"},
    ]
    for bad in bads:
        with pytest.raises((DecodeError, InvalidName)):
            reg.register_name(bad)


def test_mirror_answers_ons_resolve(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, term=100)
    alice = Identity()
    reg.register_name(names.build_register(alice, "alice", timestamp=_ms(clock)))
    asked: list[int] = []

    async def fetch(since: int) -> dict[str, Any]:
        asked.append(since)
        return reg.names_since({"since": since})

    mono = [0.0]
    mirror = NameMirror(fetch, clock=lambda: mono[0], wall=clock)

    async def go() -> None:
        h = names.name_hash_b64("alice")
        got = await mirror.resolve({"type": 0, "name_hash": h})
        assert (
            names.decrypt_value(
                "alice", bytes.fromhex(got["encrypted_value"]), bytes.fromhex(got["nonce"])
            )
            == alice.session_id
        )
        assert await mirror.resolve({"type": 0, "name_hash": names.name_hash_b64("bob")}) == {}
        # a name registered after the last refresh is found once the miss interval passed
        bob = Identity()
        reg.register_name(names.build_register(bob, "bob", timestamp=_ms(clock, 1)))
        mono[0] += 2.0
        got = await mirror.resolve({"type": 0, "name_hash": names.name_hash_b64("bob")})
        assert "encrypted_value" in got
        assert asked[-1] == 1  # incremental: only records after revision 1
        clock.t += 200
        assert await mirror.resolve({"type": 0, "name_hash": h}) == {"expired": True}
        # taken over after it lapsed: the next lookup refreshes and finds the new owner's value
        carol = Identity()
        reg.register_name(names.build_register(carol, "alice", timestamp=_ms(clock, 9)))
        mono[0] += 2.0
        got = await mirror.resolve({"type": 0, "name_hash": h})
        assert (
            names.decrypt_value(
                "alice", bytes.fromhex(got["encrypted_value"]), bytes.fromhex(got["nonce"])
            )
            == carol.session_id
        )
        bads: list[Any] = [{"type": 1, "name_hash": h}, {"type": 0}, [], {"name_hash": "zz"}]
        for bad in bads:
            with pytest.raises(RpcStatusError):
                await mirror.resolve(bad)

    asyncio.run(go())


def test_mirror_without_registry_says_unavailable() -> None:
    calls = []

    async def fetch(since: int) -> dict[str, Any]:
        calls.append(since)
        raise RegistryError("registry at x is unreachable: refused", 0)

    async def go() -> None:
        mono = [0.0]
        mirror = NameMirror(fetch, clock=lambda: mono[0])
        for _ in range(3):  # answered at once, and the registry is not hammered
            with pytest.raises(RpcStatusError) as e:
                await mirror.resolve({"type": 0, "name_hash": names.name_hash_b64("a")})
            assert e.value.status == 503
        assert calls == [0]

    asyncio.run(go())
