"""Path selection rules, node directory and the network clock (no network)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session.client.network import NetworkClock, NodeDirectory
from session.client.paths import (
    HOPS,
    NotEnoughNodes,
    PathManager,
    diversity_key,
    valid_path,
)
from session.proto.snodes import ServiceNode


def node(i: int, ip: str | None = None, port: int = 22021, swarm: int = 0) -> ServiceNode:
    return ServiceNode(
        pubkey_ed25519=f"{i:064x}",
        pubkey_x25519=f"{i + 1000:064x}",
        public_ip=ip or f"10.{i // 250}.{i % 250}.1",
        storage_port=port,
        storage_lmq_port=22020,
        swarm_id=swarm,
    )


def public(i: int) -> ServiceNode:
    return node(i, ip=f"44.{i // 250}.{i % 250}.7")


def test_diversity_key_public_vs_loopback() -> None:
    assert diversity_key(public(1)) == "44.0.1.7"
    assert diversity_key(node(1, "127.0.0.1", 5000)) == "127.0.0.1:5000"


def test_paths_are_three_distinct_ips_and_disjoint() -> None:
    nodes = [public(i) for i in range(20)]
    pm = PathManager(nodes, rng=random.Random(1))
    paths = pm.ensure_paths()
    assert len(paths) == 2
    for p in paths:
        assert valid_path(p.hops) and len(p.hops) == HOPS
    assert not (paths[0].keys() & paths[1].keys())
    assert set(pm.guards) == {p.guard.pubkey_ed25519 for p in paths}


def test_same_ip_nodes_never_share_a_path() -> None:
    # 6 nodes but only 2 distinct public IPs: no valid path exists
    nodes = [node(i, ip=f"44.0.0.{i % 2}") for i in range(6)]
    with pytest.raises(NotEnoughNodes):
        PathManager(nodes, rng=random.Random(2)).ensure_paths()


def test_guards_are_kept_across_restarts() -> None:
    nodes = [public(i) for i in range(12)]
    pm = PathManager(nodes, rng=random.Random(3))
    pm.ensure_paths()
    guards, paths = pm.snapshot()
    pm2 = PathManager(nodes, guards=guards, paths=paths, rng=random.Random(99))
    assert pm2.snapshot() == (guards, paths)
    # even if saved paths are lost, the same guards start new paths
    pm3 = PathManager(nodes, guards=guards, rng=random.Random(7))
    assert {p.guard.pubkey_ed25519 for p in pm3.ensure_paths()} == set(guards)


def test_dead_guard_is_replaced() -> None:
    nodes = [public(i) for i in range(12)]
    pm = PathManager(nodes, rng=random.Random(4))
    p = pm.choose()
    dead = p.guard.pubkey_ed25519
    pm.guard_unreachable(p)
    assert dead not in pm.guards and dead in pm.bad
    for _ in range(20):
        assert dead not in pm.choose().ids()


def test_path_dropped_after_three_failures() -> None:
    nodes = [public(i) for i in range(12)]
    pm = PathManager(nodes, rng=random.Random(5), paths_wanted=1)
    p = pm.choose()
    pm.path_failed(p)
    pm.path_failed(p)
    assert p in pm.paths
    pm.path_failed(p)
    assert p not in pm.paths
    # a named relay failing three times is excluded
    q = pm.choose()
    relay = q.hops[2].pubkey_ed25519
    for _ in range(3):
        pm.path_failed(pm.paths[0], relay)
    assert relay in pm.bad
    assert all(relay not in x.ids() for x in pm.ensure_paths())


def test_destination_is_not_on_the_path() -> None:
    nodes = [public(i) for i in range(5)]
    pm = PathManager(nodes, rng=random.Random(6))
    for d in nodes:
        assert d not in pm.choose(d)


@given(st.integers(min_value=4, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_any_pool_gives_valid_paths(n: int, seed: int) -> None:
    nodes = [node(i, "127.0.0.1", 30000 + i) for i in range(n)]
    pm = PathManager(nodes, rng=random.Random(seed))
    dest = nodes[seed % n]
    p = pm.choose(dest)
    assert valid_path(p.hops) and dest not in p


def test_clock_offset_from_t() -> None:
    base = 1_700_000_000_000  # local clock (ms), 5 minutes fast relative to the network
    clock = NetworkClock(lambda: base / 1000)
    assert not clock.synced and clock.now_ms() == base
    true_ms = base - 300_000
    clock.observe(true_ms + 50, base, base + 100)
    assert clock.synced and clock.offset_ms == -300_000
    assert abs(clock.now_ms() - true_ms) <= 100
    # one outlier does not move the median
    for _ in range(4):
        clock.observe(true_ms + 50, base, base + 100)
    clock.observe(true_ms + 10**7, base, base + 100)
    assert clock.offset_ms == -300_000
    clock.observe(5, base, base + 1)  # not a ms timestamp: ignored
    clock.observe(true_ms, base, base - 1)  # local clock jumped back: ignored
    assert clock.offset_ms == -300_000


def test_node_directory_swarm_and_421() -> None:
    nodes = [node(i, swarm=(0 if i < 3 else 2**63)) for i in range(6)]
    d = NodeDirectory(nodes, fetched_ms=0)
    sid = "05" + "00" * 32
    assert {n.swarm_id for n in d.swarm(sid)} == {0}
    moved = d.learn_swarm(
        sid, {"snodes": [{"pubkey_ed25519": nodes[4].pubkey_ed25519}], "swarm": "8000000000000000"}
    )
    assert moved == [nodes[4]] and d.swarm(sid) == [nodes[4]]
    assert d.stale(10**9)  # fewer than 12 nodes
    assert NodeDirectory.intersect([nodes[:4], nodes[2:], nodes[1:5]]) == nodes[2:4]


def test_timeout_drops_path_and_counts_every_hop() -> None:
    nodes = [public(i) for i in range(12)]
    pm = PathManager(nodes, rng=random.Random(8), paths_wanted=1)
    p = pm.choose()
    pm.path_timed_out(p)
    assert p not in pm.paths
    assert all(pm.node_failures[n.pubkey_ed25519] == 1 for n in p.hops)
    assert p.guard.pubkey_ed25519 in pm.guards  # one timeout does not condemn the guard


def test_failure_counts_are_forgiven_when_the_pool_runs_dry() -> None:
    nodes = [node(i, "127.0.0.1", 30000 + i) for i in range(5)]
    pm = PathManager(nodes, rng=random.Random(9), paths_wanted=1)
    dead = pm.choose()
    pm.guard_unreachable(dead)
    for _ in range(3):  # timeouts blame every hop until too few nodes look usable
        pm.path_timed_out(pm.choose())
    p = pm.choose()  # still builds, never through the unreachable guard
    assert dead.guard.pubkey_ed25519 not in p.ids() and valid_path(p.hops)


@pytest.mark.parametrize("seed", range(20))
def test_unreachable_guard_of_a_one_off_path_leaves_no_kept_path(seed: int) -> None:
    """The flake of test_guard_killed_during_send: a request to a node on our only kept path
    uses a one-off path around it whose guard may be a *relay* of the kept path. When that
    guard dies, the kept path through it must go too."""
    nodes = [public(i) for i in range(6)]
    pm = PathManager(nodes, rng=random.Random(seed), paths_wanted=1)
    (kept,) = pm.ensure_paths()
    dest = kept.guard  # every kept path contains the destination: a one-off path is built
    one_off = pm.choose(dest)
    assert dest not in one_off and one_off is not kept
    pm.guard_unreachable(one_off)
    dead = one_off.guard.pubkey_ed25519
    assert all(dead not in p.ids() for p in pm.paths)
    assert all(dead not in p.ids() for p in pm.ensure_paths())
