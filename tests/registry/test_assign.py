"""Swarm assignment (session.registry.assign): oxen's rules, determinism, minimal movement.

Upstream vectors: the C++ standard's check value for mt19937_64 and oxen-core's
``tests/unit_tests/service_nodes_swarm.cpp`` (swarm-id allocation and the swarm-count step
function); the rest are properties of the published rules (network.md §2.3).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session.registry.assign import (
    IDEAL_SWARM_MARGIN,
    IDEAL_SWARM_SIZE,
    MAX_ID,
    MIN_SWARM_SIZE,
    NEW_SWARM_SIZE,
    UNASSIGNED_SWARM_ID,
    Mt19937_64,
    assign_swarms,
    block_hash,
    calc_swarm_changes,
    new_swarm_id,
    seed_from_hash,
    swarm_members,
    uniform_index,
)


def keys(n: int, tag: str = "n") -> list[str]:
    return [hashlib.blake2b(f"{tag}{i}".encode(), digest_size=32).hexdigest() for i in range(n)]


def excess(swarms: dict[int, list[str]]) -> int:
    return sum(max(0, len(v) - MIN_SWARM_SIZE) for v in swarms.values())


# -- RNG -----------------------------------------------------------------------------------


def test_mt19937_64_standard_check_value() -> None:
    # [rand.predef]: the 10000th output of a default-constructed mt19937_64.
    rng = Mt19937_64()
    for _ in range(9999):
        rng()
    assert rng() == 9981545732273789042


def test_mt19937_64_seeded_differs_and_repeats() -> None:
    a, b, c = Mt19937_64(42), Mt19937_64(42), Mt19937_64(43)
    xs = [a() for _ in range(400)]  # crosses one twist
    assert xs == [b() for _ in range(400)]
    assert xs != [c() for _ in range(400)]
    assert all(0 <= x < 2**64 for x in xs)


@given(st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1))
def test_uniform_index_in_range(seed: int, n: int) -> None:
    rng = Mt19937_64(seed)
    assert 0 <= uniform_index(rng, n) < n


def test_uniform_index_rejects_empty_range() -> None:
    with pytest.raises(ValueError):
        uniform_index(Mt19937_64(1), 0)


def test_uniform_index_covers_small_range() -> None:
    rng = Mt19937_64(7)
    counts = Counter(uniform_index(rng, 4) for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 800


# -- swarm ids (oxen-core unit test "unassigned_swarm_bug" and "deterministic_swarm_ids") ---


def test_new_swarm_id_oxen_cases() -> None:
    ids: list[int] = []
    a = new_swarm_id(ids)
    assert a == 0
    ids.append(a)
    b = new_swarm_id(ids)
    assert b == MAX_ID // 2
    ids.append(b)
    c = new_swarm_id(ids)
    assert c == MAX_ID // 2 + MAX_ID // 4 + 1
    ids.append(c)
    d = new_swarm_id(ids)
    assert d == MAX_ID // 4
    assert new_swarm_id([b]) == MAX_ID
    assert new_swarm_id([MAX_ID // 4]) == MAX_ID // 2 + MAX_ID // 4
    assert new_swarm_id([12345678901234567890]) == 12345678901234567890 - MAX_ID // 2 - 1
    assert new_swarm_id([MAX_ID // 2 - 100, MAX_ID // 2 + 100]) == MAX_ID
    assert new_swarm_id([MAX_ID // 2 - 100, MAX_ID // 2 + 101]) == 0
    assert new_swarm_id([MAX_ID // 2 - 101, MAX_ID // 2 + 101]) == MAX_ID
    assert new_swarm_id([MAX_ID // 2 - 101, MAX_ID // 2 + 102]) == 0


def test_new_swarm_id_deterministic_sequence_matches_oxen() -> None:
    rng = Mt19937_64(12345)
    ids: list[int] = []
    for _ in range(10000):
        n = rng()
        if n < (1 << 62):
            assert ids
            ids.pop(n % len(ids))
        else:
            new = new_swarm_id(ids)
            i = bisect.bisect_left(ids, new)
            assert i == len(ids) or ids[i] != new
            ids.insert(i, new)
    assert len(ids) == 5048
    expected = {
        0: 1548112371908607,
        1: 4398046511103999,
        2: 7247980650299391,
        3: 10097914789494783,
        4: 12947848928690175,
        25: 72796465851793407,
        29: 84196202408574975,
        42: 121245346218115071,
        99: 283691592152252415,
        404: 1203745330089164798,
        888: 2829738309616402430,
        999: 3243154681660178430,
        2000: 6581905302285713406,
        3000: 10403878089179267070,
        3333: 11669248846982021118,
        4567: 16860997617805426686,
        5000: 18311495347400081406,
        5045: 18439742383663874046,
        5046: 18442592317803069438,
        5047: 18445442251942264830,
    }
    for i, v in expected.items():
        assert ids[i] == v, i


# -- seeds -----------------------------------------------------------------------------------


def test_block_hash_and_seed() -> None:
    g = bytes(32)
    h0, h1 = block_hash(g, 0), block_hash(g, 1)
    assert len(h0) == 32 and h0 != h1 and h0 != block_hash(b"\x01" * 32, 0)
    assert block_hash(g, 1) == h1
    assert seed_from_hash(h1) == int.from_bytes(h1[:8], "little")
    with pytest.raises(ValueError):
        block_hash(g, -1)
    with pytest.raises(ValueError):
        seed_from_hash(b"short")


# -- the algorithm ------------------------------------------------------------------------


def expected_swarm_count(n: int) -> int:
    return 1 + max(n - IDEAL_SWARM_SIZE, 0) // IDEAL_SWARM_SIZE


def test_register_one_by_one_swarm_count_step_function() -> None:
    # oxen-core "register_snodes_one_by_one": with no deregistrations the number of swarms is
    # 1 + max(0, n - 7) // 7 and the excess is 2 per swarm plus n mod 7.
    swarms: dict[int, list[str]] = {}
    nodes = keys(40 * IDEAL_SWARM_SIZE)
    for i, node in enumerate(nodes):
        swarms = calc_swarm_changes(swarms, [node], seed=i)
        n = i + 1
        assert len(swarms) == expected_swarm_count(n), n
        if n >= IDEAL_SWARM_SIZE:
            assert excess(swarms) == len(swarms) * IDEAL_SWARM_MARGIN + n % IDEAL_SWARM_SIZE, n


def test_register_in_bulk_swarm_count() -> None:
    swarms: dict[int, list[str]] = {}
    total = 0
    pool = iter(keys(200))
    for step, batch in enumerate([1, 3, 19, 4, 8, 13, 1, 22, 1, 7, 2, 1, 11, 18, 6, 10]):
        swarms = calc_swarm_changes(swarms, [next(pool) for _ in range(batch)], seed=step)
        total += batch
        assert len(swarms) == expected_swarm_count(total)
        assert sum(len(v) for v in swarms.values()) == total


def _grown(n: int, seed: int = 0) -> dict[int, list[str]]:
    return calc_swarm_changes({}, keys(n), seed)


def test_stealing_from_rich_swarms() -> None:
    swarms = _grown(10 * IDEAL_SWARM_SIZE)
    before = {k: list(v) for k, v in swarms.items()}
    victim = min(swarms)
    while len(swarms[victim]) >= MIN_SWARM_SIZE:
        swarms[victim].pop()
    after = calc_swarm_changes(swarms, [], seed=99)
    assert len(after[victim]) >= MIN_SWARM_SIZE
    shrunk = [k for k in after if k != victim and len(after[k]) < len(before[k])]
    assert len(shrunk) == 1
    assert len(after[shrunk[0]]) == len(before[shrunk[0]]) - 1 >= MIN_SWARM_SIZE


def test_starving_swarm_is_dissolved_when_nobody_can_donate() -> None:
    swarms = _grown(10 * IDEAL_SWARM_SIZE)
    for members in swarms.values():
        del members[MIN_SWARM_SIZE:]
    victim = min(swarms)
    orphans = swarms[victim][:-1]
    swarms[victim].pop()
    after = calc_swarm_changes(swarms, [], seed=5)
    assert len(after) == len(swarms) - 1
    assert victim not in after
    placed = {n for v in after.values() for n in v}
    assert set(orphans) <= placed
    assert all(len(v) >= MIN_SWARM_SIZE for v in after.values())


def test_shrinking_to_minimum_leaves_other_swarms_alone() -> None:
    swarms = _grown(10 * IDEAL_SWARM_SIZE)
    first = min(swarms)
    seed = 100
    while len(swarms[first]) > MIN_SWARM_SIZE:
        before = {k: list(v) for k, v in swarms.items()}
        swarms[first].pop()
        swarms = calc_swarm_changes(swarms, [], seed)
        seed += 1
        assert set(swarms) == set(before)
        assert all(swarms[k] == before[k] for k in swarms if k != first)


def test_new_nodes_fill_the_smallest_swarms() -> None:
    # oxen-core "assign_snodes": placement step alone (before Robin Hood / dissolving).
    from session.registry.assign import FILL_SWARM_LOWER_PERCENTILE, _assign

    swarms = {0: keys(3, "a"), 1: keys(1, "b"), 2: keys(5, "c"), 3: keys(2, "d")}
    rng = Mt19937_64(42)
    _assign(["x1"], swarms, rng, FILL_SWARM_LOWER_PERCENTILE)
    assert len(swarms[1]) == 2  # the only swarm in the lowest quarter
    _assign(["x2"], swarms, rng, FILL_SWARM_LOWER_PERCENTILE)
    _assign(["x3"], swarms, rng, FILL_SWARM_LOWER_PERCENTILE)
    assert len(swarms[1]) == 3 and len(swarms[3]) == 3
    assert [len(swarms[0]), len(swarms[2])] == [3, 5]


def test_full_round_tops_up_or_dissolves_starving_swarms() -> None:
    swarms = {0: keys(3, "a"), 1: keys(1, "b"), 2: keys(5, "c"), 3: keys(2, "d")}
    out = calc_swarm_changes(swarms, ["x1"], seed=42)
    assert sum(len(v) for v in out.values()) == 12
    assert all(len(v) >= MIN_SWARM_SIZE for v in out.values())


def test_fewer_than_min_nodes_share_swarm_zero() -> None:
    out = calc_swarm_changes({}, keys(3), seed=1)
    assert out == {0: keys(3)}
    assert calc_swarm_changes({}, [], seed=1) == {}


def test_inputs_are_not_modified() -> None:
    swarms = {0: keys(6)}
    snapshot = {0: list(swarms[0])}
    calc_swarm_changes(swarms, keys(20, "new"), seed=3)
    assert swarms == snapshot


# -- assign_swarms: properties ---------------------------------------------------------------


def _check_rules(assignment: dict[str, int], active: set[str]) -> None:
    assert set(assignment) == active  # every active node in exactly one swarm
    assert UNASSIGNED_SWARM_ID not in assignment.values()
    members = swarm_members(assignment)
    if len(active) >= MIN_SWARM_SIZE:
        assert all(len(v) >= MIN_SWARM_SIZE for v in members.values())
    else:
        assert len(members) <= 1


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 59)), min_size=1, max_size=80),
    st.binary(min_size=1, max_size=8),
)
def test_history_properties(events: list[tuple[bool, int]], genesis: bytes) -> None:
    """Any join/leave history: rules hold after every step, and replay is identical."""
    pool = keys(60, "h")

    def replay() -> list[dict[str, int]]:
        active: set[str] = set()
        assignment: dict[str, int] = {}
        out = []
        for height, (join, idx) in enumerate(events, start=1):
            (active.add if join else active.discard)(pool[idx])
            assignment = assign_swarms(
                assignment, active, seed_from_hash(block_hash(genesis, height))
            )
            _check_rules(assignment, active)
            out.append(dict(assignment))
        return out

    assert replay() == replay()


@given(st.integers(5, 120), st.integers(0, 2**64 - 1))
def test_one_join_moves_little(n: int, seed: int) -> None:
    nodes = keys(n, "j")
    base = assign_swarms({}, nodes, seed)
    newcomer = keys(1, "newcomer")[0]
    after = assign_swarms(base, [*nodes, newcomer], seed ^ 1)
    moved = [k for k in nodes if after[k] != base[k]]
    # Joining places the newcomer; existing nodes move only when a new swarm of 7 is split off.
    split = len(set(after.values())) > len(set(base.values()))
    assert len(moved) <= (NEW_SWARM_SIZE if split else 0)
    _check_rules(after, {*nodes, newcomer})


@given(st.integers(6, 120), st.integers(0, 2**64 - 1), st.data())
def test_one_leave_moves_little(n: int, seed: int, data: st.DataObject) -> None:
    nodes = keys(n, "l")
    base = assign_swarms({}, nodes, seed)
    leaver = data.draw(st.sampled_from(nodes))
    rest = [k for k in nodes if k != leaver]
    after = assign_swarms(base, rest, seed ^ 2)
    moved = [k for k in rest if after[k] != base[k]]
    # Either one node is stolen to refill the leaver's swarm, or the leaver's swarm (at most
    # MIN_SWARM_SIZE - 1 remaining members) is dissolved and its members re-placed.
    assert len(moved) <= MIN_SWARM_SIZE - 1
    _check_rules(after, set(rest))


def test_assignment_ignores_input_order() -> None:
    nodes = keys(40)
    a = assign_swarms({}, nodes, 77)
    b = assign_swarms({}, list(reversed(nodes)), 77)
    assert a == b
    assert assign_swarms({}, nodes, 78) != a  # the seed matters


def test_left_nodes_are_dropped_and_swarm_ids_kept() -> None:
    nodes = keys(30)
    base = assign_swarms({}, nodes, 1)
    after = assign_swarms(base, nodes[:-1], 2)
    assert nodes[-1] not in after
    assert set(after.values()) <= set(base.values()) | {new_swarm_id(set(base.values()))}
