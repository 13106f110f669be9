"""session.swarm: vectors (swarm_space.json, closest_swarm.json, message_hash.json), a
brute-force Python reference for closest-swarm selection, and a hashlib differential test
for the message hash."""

from __future__ import annotations

import base64
import hashlib

import nacl.encoding
import nacl.hash
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session.errors import InvalidInput, InvalidSessionID, SessionError
from session.swarm import (
    INVALID_SWARM_ID,
    SwarmIndex,
    closest_swarm,
    message_hash,
    swarm_space,
)
from vectorlib import case_ids, load_vectors

SPACE = load_vectors("swarm_space")
CLOSEST = load_vectors("closest_swarm")
HASHES = load_vectors("message_hash")
M64 = 2**64


# --- Python references (written from network spec §2.1-2.2, §4.5) -------------------------


def ref_space(account_id: str) -> int:
    key = bytes.fromhex(account_id)[1:]
    v = 0
    for i in range(0, 32, 8):
        v ^= int.from_bytes(key[i : i + 8], "big")
    return v


def ref_closest(v: int, ids: list[int]) -> int:
    """Brute force: smallest ring distance; on a tie the swarm below v (reached going down)."""

    def key(i: int) -> tuple[int, int]:
        up = (i - v) % M64  # distance going up from v to i
        down = (v - i) % M64  # distance going down from v to i
        return (min(up, down), 0 if down <= up else 1)

    return min(ids, key=key)


def account_for_space(v: int, prefix: str = "05") -> str:
    return prefix + "00" * 24 + v.to_bytes(8, "big").hex()


def ref_hash(account_id: str, namespace: int, data: bytes) -> str:
    ns = b"" if namespace == 0 else str(namespace).encode()
    d = hashlib.blake2b(bytes.fromhex(account_id) + ns + data, digest_size=32).digest()
    return base64.b64encode(d).decode().rstrip("=")


# --- vectors --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SPACE, ids=case_ids(SPACE))
def test_swarm_space_vectors(case: dict) -> None:
    assert swarm_space(case["account_id"]) == int(case["swarm_space"])
    assert f"{swarm_space(case['account_id']):016x}" == case["swarm_space_hex"]
    assert ref_space(case["account_id"]) == int(case["swarm_space"])


@pytest.mark.parametrize("case", CLOSEST, ids=case_ids(CLOSEST))
def test_closest_swarm_vectors(case: dict) -> None:
    ids = [int(x) for x in case["swarm_ids"]]
    want = int(case["expected_swarm_id"])
    acct = case["account_id"]
    assert swarm_space(acct) == int(case["swarm_space"])
    assert closest_swarm(acct, ids) == want
    assert closest_swarm(acct, list(reversed(ids))) == want
    assert closest_swarm(acct, tuple(ids)) == want
    assert SwarmIndex(ids).closest(acct) == want
    assert SwarmIndex(reversed(ids)).closest(acct) == want  # any iterable sequence
    assert ref_closest(int(case["swarm_space"]), ids) == want


@pytest.mark.parametrize("case", HASHES, ids=case_ids(HASHES))
def test_message_hash_vectors(case: dict) -> None:
    if "data_b64" in case:
        data = base64.b64decode(case["data_b64"])
    else:
        data = case["data_utf8"].encode()
    got = message_hash(case["account_id"], case["namespace"], data)
    assert got == case["hash_b64"]
    assert len(got) == 43
    assert ref_hash(case["account_id"], case["namespace"], data) == got


# --- properties -----------------------------------------------------------------------------

u64_ids = st.one_of(
    st.integers(0, M64 - 2),
    st.sampled_from([0, 1, 2, 2**63 - 1, 2**63, 2**63 + 1, M64 - 3, M64 - 2]),
)


@st.composite
def space_and_ids(draw: st.DrawFn) -> tuple[int, list[int]]:
    ids = draw(st.lists(u64_ids, min_size=1, max_size=40))
    # Values that hit exact ids, midpoints (ties) and the wrap-around gap.
    a, b = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
    special = [
        a,
        (a + b) // 2,
        (a + b + 1) // 2,
        (a + (b - a) % M64 // 2) % M64,
        (a + ((b - a) % M64 + 1) // 2) % M64,
        (a - 1) % M64,
        (a + 1) % M64,
        M64 - 1,
        0,
    ]
    v = draw(st.one_of(st.sampled_from(special), st.integers(0, M64 - 1)))
    return v, ids


@given(space_and_ids(), st.sampled_from(["05", "03", "15", "25", "ff", "00"]))
def test_closest_matches_brute_force(data: tuple[int, list[int]], prefix: str) -> None:
    v, ids = data
    acct = account_for_space(v, prefix)
    want = ref_closest(v, ids)
    assert closest_swarm(acct, ids) == want
    assert SwarmIndex(ids).closest(acct) == want


@given(st.binary(min_size=33, max_size=33), st.lists(u64_ids, min_size=1, max_size=20))
def test_random_accounts(raw: bytes, ids: list[int]) -> None:
    acct = raw.hex()
    assert swarm_space(acct) == ref_space(acct)
    assert swarm_space(acct.upper()) == ref_space(acct)
    assert closest_swarm(acct, ids) == ref_closest(ref_space(acct), ids)


@given(st.binary(min_size=33, max_size=33), st.integers(-32768, 32767), st.binary(max_size=9000))
def test_message_hash_matches_hashlib_and_pynacl(raw: bytes, ns: int, data: bytes) -> None:
    got = message_hash(raw.hex(), ns, data)
    assert got == ref_hash(raw.hex(), ns, data)
    ns_bytes = b"" if ns == 0 else str(ns).encode()
    sodium = nacl.hash.blake2b(
        raw + ns_bytes + data, digest_size=32, encoder=nacl.encoding.RawEncoder
    )
    assert base64.b64decode(got + "=") == sodium


@given(st.lists(u64_ids, max_size=50))
def test_index_contents(ids: list[int]) -> None:
    idx = SwarmIndex(ids)
    assert idx.swarm_ids == sorted(set(ids))
    assert len(idx) == len(set(ids))
    for i in ids:
        assert i in idx
    assert -1 not in idx and "x" not in idx and INVALID_SWARM_ID not in idx
    assert repr(idx) == f"SwarmIndex({len(set(ids))} swarms)"


@given(st.text(max_size=70), st.lists(st.integers(-5, M64 + 5), max_size=5))
def test_garbage_never_crashes(text: str, ids: list[int]) -> None:
    for call in (
        lambda: swarm_space(text),
        lambda: closest_swarm(text, ids),
        lambda: SwarmIndex(ids).closest(text),
        lambda: message_hash(text, 0, b""),
    ):
        try:
            call()
        except SessionError:
            pass


# --- bad input ------------------------------------------------------------------------------

GOOD = "05" + "ab" * 32


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "05",
        "ab" * 32,
        GOOD + "00",
        GOOD[:-1],
        "05" + "zz" * 32,
        "05" + "é" * 32,
        " " + GOOD[1:],
    ],
)
def test_bad_account_ids(bad: str) -> None:
    with pytest.raises(InvalidSessionID, match="account ID"):
        swarm_space(bad)
    with pytest.raises(InvalidSessionID):
        closest_swarm(bad, [1, 2])
    with pytest.raises(InvalidSessionID):
        SwarmIndex([1]).closest(bad)
    with pytest.raises(InvalidSessionID):
        message_hash(bad, 0, b"x")


def test_bad_account_id_messages() -> None:
    with pytest.raises(InvalidSessionID, match=r"66 hex digits.*got 64"):
        swarm_space("ab" * 32)
    with pytest.raises(InvalidSessionID, match="not hex digits"):
        swarm_space("05" + "zz" * 32)


@pytest.mark.parametrize(
    "ids", [[], [1, INVALID_SWARM_ID], [-1], [M64], ["1"], "123", [1.5], [None]]
)
def test_bad_swarm_ids(ids: object) -> None:
    with pytest.raises(InvalidInput):
        closest_swarm(GOOD, ids)  # type: ignore[arg-type]
    if ids:
        with pytest.raises(InvalidInput):
            SwarmIndex(ids)  # type: ignore[arg-type]


def test_empty_index() -> None:
    idx = SwarmIndex([])
    assert len(idx) == 0
    with pytest.raises(InvalidInput, match="no swarms"):
        idx.closest(GOOD)


@pytest.mark.parametrize("ns", [32768, -32769, 2**70, True, 1.0, "0", None])
def test_bad_namespace(ns: object) -> None:
    with pytest.raises(InvalidInput, match="namespace"):
        message_hash(GOOD, ns, b"x")  # type: ignore[arg-type]


def test_namespace_bounds_and_types() -> None:
    assert message_hash(GOOD, -32768, b"") == ref_hash(GOOD, -32768, b"")
    assert message_hash(GOOD, 32767, b"") == ref_hash(GOOD, 32767, b"")
    assert message_hash(GOOD, 0, bytearray(b"ab")) == ref_hash(GOOD, 0, b"ab")
    assert message_hash(GOOD, 0, memoryview(b"ab")) == ref_hash(GOOD, 0, b"ab")
