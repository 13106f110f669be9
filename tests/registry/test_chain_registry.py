"""The registry's node list from the staking contract (local chain in this process): who is
listed and why the others are not (in the log and in the reasons), exits, and a list that every
reader of the chain recomputes alike."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from session.errors import RegistryError
from session.proto.snodes import INVALID_SWARM_ID
from session.registry.assign import MIN_SWARM_SIZE
from session.registry.chain import ChainFollower, ChainReader, sign_stake
from session.registry.devchain import DevChain
from session.registry.health import HealthRules
from session.registry.messages import build_deregistration, build_registration
from session.registry.state import Registry
from stakelib import (
    TOKEN,
    mint,
    node_identity,
    operator,
    payload,
    rebuild_from_logs,
    stake,
)

UNLOCK = 3


def follower(chain: DevChain) -> tuple[Registry, ChainFollower]:
    reg = Registry()
    reader = ChainReader(
        chain.w3, chain.contract, min_tokens=25_000, start_block=chain.deploy_block
    )
    f = ChainFollower(reg, reader)
    f.sync()
    return reg, f


def listed(reg: Registry) -> dict[str, dict[str, object]]:
    return {
        n.pubkey_ed25519: {
            "pubkey_x25519": n.pubkey_x25519,
            "public_ip": n.public_ip,
            "storage_port": n.storage_port,
            "storage_lmq_port": n.storage_lmq_port,
            "stake": n.stake,
        }
        for n in reg.nodes(active_only=True)
    }


def test_only_valid_fully_staked_registrations_are_listed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = DevChain("listing", unlock_blocks=UNLOCK)
    reg, f = follower(chain)
    good, short, forged, unstaked = (node_identity() for _ in range(4))
    rid_good = stake(chain, operator(chain, 0), good, 25_000, port=30000)
    rid_short = stake(chain, operator(chain, 1), short, 24_999, port=30010)
    op = operator(chain, 2)
    mint(chain, op, 25_000)
    other = node_identity()  # signs in place of the node key
    p = dataclasses.replace(
        payload(op, forged, 25_000, port=30020),
        signature=sign_stake(other, chain.chain_id, chain.contract, op.address),
    )
    rid_forged = op.stake(p)
    rid_dup = stake(chain, operator(chain, 3), good, 25_000, port=30030)
    with caplog.at_level(logging.INFO, logger="session.registry"):
        f.sync()
    assert set(listed(reg)) == {bytes(good.ed25519_public).hex()}
    assert reg.node(bytes(good.ed25519_public).hex()).storage_port == 30000
    log = caplog.text
    why_short = f.reason(bytes(short.ed25519_public).hex())
    assert why_short == (
        f"registration #{rid_short}: its stake of 24,999 tokens is below the 25,000 required"
    )
    why_forged = f.reason(bytes(forged.ed25519_public).hex())
    assert why_forged is not None and "signature does not verify" in why_forged
    assert f"#{rid_forged}" in why_forged
    assert (
        f.verdict.refused[rid_dup]
        == f"its node key is already registered (registration #{rid_good})"
    )
    assert (
        f.reason(bytes(unstaked.ed25519_public).hex()) == "no registration on the staking contract"
    )
    for rid, why in ((rid_short, "below the 25,000 required"), (rid_forged, "does not verify"),
                     (rid_dup, "already registered")):  # fmt: skip
        assert f"registration #{rid} of node" in log and why in log
    # a node's own signed registration does not list it without the contract
    doc = build_registration(
        unstaked, public_ip="127.0.0.1", storage_port=30040, storage_lmq_port=30041, stake=10**9
    )
    node = reg.register(doc)
    assert not node.active and node.swarm_id == INVALID_SWARM_ID
    assert bytes(unstaked.ed25519_public).hex() not in listed(reg)
    # ... and a listed node's registration is its word that it is up
    doc = build_registration(
        good, public_ip="127.0.0.1", storage_port=30000, storage_lmq_port=30001, stake=1
    )
    assert reg.register(doc).active
    with pytest.raises(RegistryError, match="session-node unstake") as e:
        reg.deregister(build_deregistration(good))
    assert e.value.status == 403
    # topping up the short stake lists it
    mint(chain, operator(chain, 1), 1)
    operator(chain, 1).add_stake(rid_short, TOKEN)
    f.sync()
    assert bytes(short.ed25519_public).hex() in listed(reg)
    assert listed(reg) == rebuild_from_logs(chain.w3, chain.contract)


def test_exit_removes_the_node_at_the_unlock_block_and_refills_its_swarm() -> None:
    chain = DevChain("exits", unlock_blocks=UNLOCK)
    reg, f = follower(chain)
    ids = [node_identity() for _ in range(12)]
    rids = [stake(chain, operator(chain, i), ident, 25_000, port=31000 + 10 * i)
            for i, ident in enumerate(ids)]  # fmt: skip
    f.sync()
    assert len(listed(reg)) == 12
    leaving = bytes(ids[0].ed25519_public).hex()
    swarm = reg.node(leaving).swarm_id
    members = {n.pubkey_ed25519 for n in reg.nodes() if n.swarm_id == swarm}
    receipt = operator(chain, 0).request_exit(rids[0])
    f.sync()
    assert leaving in listed(reg), "listed until the unlock block"
    chain.tester.mine_blocks(UNLOCK - 1)
    f.sync()
    assert leaving in listed(reg)
    chain.tester.mine_blocks(1)
    f.sync()
    assert leaving not in listed(reg)
    assert reg.height == receipt["blockNumber"] + UNLOCK
    assert reg.block_hash == bytes(chain.w3.eth.get_block(reg.height)["hash"])
    assert f.reason(leaving) == f"registration #{rids[0]}: it exited at block {reg.height}"
    assert all(n.swarm_id != INVALID_SWARM_ID for n in reg.nodes())
    # the swarm it left is refilled to full size (or merged away, leaving only full swarms)
    sizes: dict[int, int] = {}
    for n in reg.nodes():
        sizes[n.swarm_id] = sizes.get(n.swarm_id, 0) + 1
    assert min(sizes.values()) >= MIN_SWARM_SIZE, sizes
    assert len(members - {leaving}) >= 1
    assert listed(reg) == rebuild_from_logs(chain.w3, chain.contract)
    operator(chain, 0).withdraw(rids[0])
    assert operator(chain, 0).token.functions.balanceOf(operator(chain, 0).address).call() == (
        25_000 * TOKEN
    )


def test_every_reader_of_the_chain_gets_the_same_list_and_swarms() -> None:
    chain = DevChain("replay", unlock_blocks=UNLOCK)
    live, f_live = follower(chain)
    ids = [node_identity() for _ in range(9)]
    rids = []
    for i, ident in enumerate(ids):
        rids.append(stake(chain, operator(chain, i), ident, 25_000, port=32000 + 10 * i))
        f_live.sync()  # one registry follows every block
    operator(chain, 3).request_exit(rids[3])
    chain.tester.mine_blocks(UNLOCK)
    f_live.sync()
    late, _ = follower(chain)  # another reads the whole history at once
    assert [dataclasses.astuple(n) for n in late.nodes()] == [
        dataclasses.astuple(n) for n in live.nodes()
    ]
    assert (late.height, late.block_hash) == (live.height, live.block_hash)
    assert listed(late) == rebuild_from_logs(chain.w3, chain.contract)
    doc = late.get_n_service_nodes({})
    assert doc["block_hash"] == bytes(chain.w3.eth.get_block(late.height)["hash"]).hex()


def test_a_node_the_health_rules_deregister_stays_out_while_its_stake_lasts() -> None:
    """Health stays off chain: a staked node deregistered for a long outage is not listed again
    at the next block, only once its registration has left the contract and it staked anew."""
    chain = DevChain("evict", unlock_blocks=UNLOCK)
    clock = [1_800_000_000.0]
    rules = HealthRules(proof_timeout=30.0, unreachable_after=10.0, report_window=60.0,
                        deregister_after=300.0, check_interval=1.0)  # fmt: skip
    reg = Registry(clock=lambda: clock[0], health=rules)
    reader = ChainReader(
        chain.w3, chain.contract, min_tokens=25_000, start_block=chain.deploy_block
    )
    f = ChainFollower(reg, reader)
    ids = [node_identity() for _ in range(6)]
    rids = [stake(chain, operator(chain, i), ident, 25_000, port=34000 + 10 * i)
            for i, ident in enumerate(ids)]  # fmt: skip
    f.sync()
    silent = bytes(ids[0].ed25519_public).hex()

    def advance(seconds: float) -> None:
        for _ in range(int(seconds)):
            clock[0] += 1
            for ident in ids[1:]:
                reg.health.registered(bytes(ident.ed25519_public).hex(), clock[0])  # proofs
            reg.check_health()

    advance(35)
    assert not reg.node(silent).active  # decommissioned
    advance(300)
    assert silent not in reg.entries
    stake(chain, operator(chain, 7), node_identity(), 25_000, port=34100)
    f.sync()  # a new block: still out
    assert silent not in listed(reg) and len(listed(reg)) == 6
    assert "health rules" in (reg.not_listed_reason(silent) or "")
    operator(chain, 0).request_exit(rids[0])
    chain.tester.mine_blocks(UNLOCK)
    f.sync()
    operator(chain, 0).withdraw(rids[0])
    stake(chain, operator(chain, 0), ids[0], 25_000, port=34000)
    f.sync()
    assert silent in listed(reg)
