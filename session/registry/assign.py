"""Swarm assignment: which active service node belongs to which swarm.

Pure and deterministic. Follows oxen-core's published swarm rules (network.md §2.3):
minimum swarm size 5, new swarms of 7, new and unassigned nodes go into the smallest quarter
of swarms, starving swarms are topped up from the largest ones ("Robin Hood") or else dissolved
and their nodes spread over the smallest swarms, and new swarm ids bisect the largest gap of the
id ring. Randomness is oxend's: a 64-bit Mersenne Twister (``std::mt19937_64``) seeded from a
block hash, drawing indices with oxen's "portable uniform" rejection rule.

Our registry has no blocks; its "block hash" is BLAKE2b over the registry's genesis seed and a
height counter that increments on every registry change (:func:`block_hash`), so the same
registration history always gives the same swarms.

One documented deviation: oxend sorts swarms by size with ``std::sort`` (not stable); we use a
stable sort by (size, position in id order). libstdc++ sorts ranges of up to 16 elements by
insertion sort, which is stable, so the results agree with oxend whenever there are at most 16
swarms.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping, Sequence

from session.proto.snodes import INVALID_SWARM_ID as UNASSIGNED_SWARM_ID

#: Largest usable swarm id (the id ring is [0, MAX_ID]).
MAX_ID = UNASSIGNED_SWARM_ID - 1

MIN_SWARM_SIZE = 5
IDEAL_SWARM_MARGIN = 2
IDEAL_SWARM_SIZE = 7
NEW_SWARM_SIZE = IDEAL_SWARM_SIZE
EXCESS_BASE = MIN_SWARM_SIZE
FILL_SWARM_LOWER_PERCENTILE = 25
STEALING_SWARM_UPPER_PERCENTILE = 75
DECOMMISSIONED_REDISTRIBUTION_LOWER_PERCENTILE = 0

_M64 = 2**64 - 1

SwarmMapping = dict[int, list[str]]


class Mt19937_64:
    """The 64-bit Mersenne Twister of C++ ``<random>`` (``std::mt19937_64``).

    Not a cryptographic generator: it only makes the assignment reproducible, exactly as
    oxend uses it for consensus.
    """

    _N = 312
    _M = 156
    _MATRIX_A = 0xB5026F5AA96619E9
    _UPPER = 0xFFFFFFFF80000000
    _LOWER = 0x7FFFFFFF

    def __init__(self, seed: int = 5489) -> None:
        mt = [0] * self._N
        mt[0] = seed & _M64
        for i in range(1, self._N):
            prev = mt[i - 1]
            mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & _M64
        self._mt = mt
        self._index = self._N

    def _twist(self) -> None:
        mt, n, m = self._mt, self._N, self._M
        for i in range(n):
            x = (mt[i] & self._UPPER) | (mt[(i + 1) % n] & self._LOWER)
            xa = x >> 1
            if x & 1:
                xa ^= self._MATRIX_A
            mt[i] = mt[(i + m) % n] ^ xa
        self._index = 0

    def __call__(self) -> int:
        if self._index >= self._N:
            self._twist()
        y = self._mt[self._index]
        self._index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & _M64


def uniform_index(rng: Mt19937_64, n: int) -> int:
    """A uniform integer in ``[0, n)``: oxen's ``uniform_distribution_portable``."""
    if n <= 0:
        raise ValueError("cannot draw from an empty range")
    secure_max = _M64 - _M64 % n
    while True:
        x = rng()
        if x < secure_max:
            return x // (secure_max // n)


def block_hash(genesis_seed: bytes, height: int) -> bytes:
    """The registry's stand-in for a block hash: BLAKE2b-256(genesis seed ‖ height as u64 LE)."""
    if not (0 <= height < 2**64):
        raise ValueError("height must be an unsigned 64-bit integer")
    h = hashlib.blake2b(digest_size=32, person=b"session-swarms")
    h.update(bytes(genesis_seed))
    h.update(height.to_bytes(8, "little"))
    return h.digest()


def seed_from_hash(block: bytes) -> int:
    """oxend's RNG seed: the first 8 bytes of the block hash as a little-endian integer."""
    if len(block) < 8:
        raise ValueError("block hash must be at least 8 bytes")
    return int.from_bytes(block[:8], "little")


def new_swarm_id(ids: Iterable[int]) -> int:
    """The id for a new swarm: the middle of the largest gap on the id ring (oxen's rule)."""
    all_ids = sorted(ids)
    if not all_ids:
        return 0
    max_dist = 0
    best = 0
    for i in range(len(all_ids) - 1):
        dist = all_ids[i + 1] - all_ids[i]
        if dist > max_dist:
            max_dist, best = dist, i
    # The wrap-around gap; MAX_ID and 0 count as one apart.
    dist = MAX_ID - all_ids[-1] + all_ids[0] + 1
    if dist > max_dist:
        max_dist, best = dist, len(all_ids) - 1
    diff = max_dist // 2
    to_max = MAX_ID - all_ids[best]
    if diff > to_max:
        return diff - to_max - 1
    return all_ids[best] + diff


# ------------------------------------------------------------------------------------------
# The algorithm, on a mapping swarm id -> ordered list of node ids. ``swarms`` is mutated.


def _excess(swarms: SwarmMapping) -> int:
    return sum(max(0, len(v) - EXCESS_BASE) for v in swarms.values())


def _threshold(swarms: SwarmMapping) -> int:
    return NEW_SWARM_SIZE + len(swarms) * IDEAL_SWARM_MARGIN


def _sorted_sizes(swarms: SwarmMapping) -> list[tuple[int, int]]:
    """(swarm id, size) by ascending size; ties keep ascending id order (stable sort)."""
    return sorted(((sid, len(swarms[sid])) for sid in sorted(swarms)), key=lambda t: t[1])


def _excess_pool(threshold: int, swarms: SwarmMapping) -> tuple[list[tuple[str, int]], int]:
    """Nodes of swarms larger than ``threshold`` (picking one is proportional to swarm size),
    and the number of nodes those swarms hold above the minimum."""
    pool: list[tuple[str, int]] = []
    excess = 0
    if threshold < MIN_SWARM_SIZE:
        return pool, excess
    for sid in sorted(swarms):
        members = swarms[sid]
        if len(members) > threshold:
            excess += len(members) - MIN_SWARM_SIZE
            pool.extend((node, sid) for node in members)
    return pool, excess


def _take(pool: list[tuple[str, int]], swarms: SwarmMapping, rng: Mt19937_64) -> str:
    node, sid = pool[uniform_index(rng, len(pool))]
    swarms[sid].remove(node)
    return node


def _create_swarms_from_excess(swarms: SwarmMapping, rng: Mt19937_64) -> None:
    if any(len(v) < MIN_SWARM_SIZE for v in swarms.values()):
        return
    while _excess(swarms) >= _threshold(swarms):
        members: list[str] = []
        while len(members) < NEW_SWARM_SIZE:
            pool, _ = _excess_pool(EXCESS_BASE, swarms)
            if not pool:  # cannot happen while the excess covers the threshold
                return
            members.append(_take(pool, swarms, rng))
        sid = new_swarm_id(swarms)
        if sid in swarms:  # pragma: no cover - new_swarm_id never returns a used id
            raise AssertionError("new swarm id collides with an existing swarm")
        swarms[sid] = members


def _assign(nodes: Sequence[str], swarms: SwarmMapping, rng: Mt19937_64, percentile: int) -> None:
    for node in nodes:
        sizes = _sorted_sizes(swarms)
        p_index = percentile * (len(sizes) - 1) // 100
        p_value = sizes[p_index][1]
        upper = len(sizes) - 1
        for i in range(p_index, len(sizes)):
            if sizes[i][1] > p_value:
                upper = i - 1
                break
        sid = sizes[uniform_index(rng, upper + 1)][0]
        swarms[sid].append(node)
        _create_swarms_from_excess(swarms, rng)


def _robin_hood(swarms: SwarmMapping, rng: Mt19937_64) -> None:
    sizes = _sorted_sizes(swarms)
    for sid, size in sizes:
        if size >= MIN_SWARM_SIZE:
            break
        poor = swarms[sid]
        insufficient = False
        while True:
            p_index = STEALING_SWARM_UPPER_PERCENTILE * (len(sizes) - 1) // 100
            p_value = max(MIN_SWARM_SIZE, sizes[p_index][1] - 1)
            pool, excess = _excess_pool(p_value, swarms)
            insufficient = excess < MIN_SWARM_SIZE - len(poor)
            if insufficient:
                break
            poor.append(_take(pool, swarms, rng))
            if len(poor) >= MIN_SWARM_SIZE:
                break
        if insufficient:
            break


def calc_swarm_changes(
    swarms: Mapping[int, Sequence[str]], unassigned: Sequence[str], seed: int
) -> SwarmMapping:
    """One round of oxend's swarm maintenance.

    ``swarms`` maps existing swarm ids to their member node ids (ordered; oxend lists them in
    pubkey order), ``unassigned`` lists nodes to place (new or returning), ``seed`` seeds the
    RNG. Returns the new mapping; the inputs are not modified.
    """
    out: SwarmMapping = {int(k): list(v) for k, v in swarms.items() if k != UNASSIGNED_SWARM_ID}
    todo = list(unassigned)
    if UNASSIGNED_SWARM_ID in swarms:
        todo = list(swarms[UNASSIGNED_SWARM_ID]) + todo
    if not out and not todo:
        return out
    rng = Mt19937_64(seed & _M64)
    if not out:  # 0. there is always at least one swarm
        out[new_swarm_id(())] = []
    _assign(todo, out, rng, FILL_SWARM_LOWER_PERCENTILE)  # 1. place new nodes
    _robin_hood(out, rng)  # 2. top up starving swarms from rich ones
    _create_swarms_from_excess(out, rng)  # 3. split off new swarms
    if len(out) > 1:  # 4. dissolve swarms that are still starving
        while True:
            starving = next((sid for sid in sorted(out) if len(out[sid]) < MIN_SWARM_SIZE), None)
            if starving is None:
                break
            orphans = out.pop(starving)
            _assign(orphans, out, rng, DECOMMISSIONED_REDISTRIBUTION_LOWER_PERCENTILE)
    return out


def assign_swarms(previous: Mapping[str, int], active: Iterable[str], seed: int) -> dict[str, int]:
    """Swarm id of every active node after one maintenance round.

    ``previous`` maps node ids to the swarm they were in (nodes missing from it, or mapped to
    :data:`UNASSIGNED_SWARM_ID`, are new); ``active`` lists the nodes that must be placed (nodes
    in ``previous`` but not active have left and are dropped). Node ids are compared as strings
    and processed in sorted order, so the result only depends on the sets and the seed.
    """
    active_sorted = sorted(set(active))
    swarms: SwarmMapping = {}
    unassigned: list[str] = []
    for node in active_sorted:
        sid = previous.get(node, UNASSIGNED_SWARM_ID)
        if sid == UNASSIGNED_SWARM_ID:
            unassigned.append(node)
        else:
            swarms.setdefault(sid, []).append(node)
    result = calc_swarm_changes(swarms, unassigned, seed)
    return {node: sid for sid, members in result.items() for node in members}


def swarm_members(assignment: Mapping[str, int]) -> dict[int, list[str]]:
    """Invert an assignment: swarm id -> sorted member ids."""
    out: dict[int, list[str]] = {}
    for node, sid in assignment.items():
        bisect.insort(out.setdefault(sid, []), node)
    return out


__all__ = [
    "EXCESS_BASE",
    "IDEAL_SWARM_MARGIN",
    "IDEAL_SWARM_SIZE",
    "MAX_ID",
    "MIN_SWARM_SIZE",
    "NEW_SWARM_SIZE",
    "UNASSIGNED_SWARM_ID",
    "Mt19937_64",
    "assign_swarms",
    "block_hash",
    "calc_swarm_changes",
    "new_swarm_id",
    "seed_from_hash",
    "swarm_members",
    "uniform_index",
]
