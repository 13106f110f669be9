"""A node checking the registry's list against the staking contract itself
(``registry.chain_rpc``): an honest list passes; a list with a node the contract does not list,
a moved address, other swarms, or a height where the contract's list did not change is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from session.errors import RegistryError
from session.node.chaincheck import ChainCheck
from session.proto.snodes import parse_node_list
from session.registry.chain import ChainFollower, ChainReader
from session.registry.devchain import DevChain
from session.registry.state import Registry
from stakelib import node_identity, operator, stake


@pytest.fixture(scope="module")
def world() -> tuple[DevChain, Registry]:
    chain = DevChain("chaincheck", unlock_blocks=2)
    for i in range(14):
        stake(chain, operator(chain, i), node_identity(), 25_000, port=33000 + 10 * i)
    registry = Registry()
    reader = ChainReader(
        chain.w3, chain.contract, min_tokens=25_000, start_block=chain.deploy_block
    )
    ChainFollower(registry, reader).sync()
    return chain, registry


def check(chain: DevChain) -> ChainCheck:
    return ChainCheck(chain.w3, chain.contract, start_block=chain.deploy_block)


async def verify(chain: DevChain, doc: dict[str, Any]) -> None:
    await check(chain).verify(doc, parse_node_list(doc))


async def test_an_honest_list_passes(world: tuple[DevChain, Registry]) -> None:
    chain, registry = world
    doc = registry.get_n_service_nodes({})
    assert len({s["swarm_id"] for s in doc["service_node_states"]}) >= 2
    await verify(chain, doc)


async def test_a_node_the_contract_does_not_list_is_refused(
    world: tuple[DevChain, Registry],
) -> None:
    chain, registry = world
    doc = copy.deepcopy(registry.get_n_service_nodes({}))
    fake = dict(doc["service_node_states"][0])
    ident = node_identity()
    fake["pubkey_ed25519"] = bytes(ident.ed25519_public).hex()
    fake["pubkey_x25519"] = bytes(ident.x25519_public).hex()
    fake["storage_port"] = 1234
    doc["service_node_states"].append(fake)
    with pytest.raises(RegistryError, match="the staking contract does not list"):
        await verify(chain, doc)


async def test_a_moved_address_or_other_swarms_are_refused(
    world: tuple[DevChain, Registry],
) -> None:
    chain, registry = world
    doc = copy.deepcopy(registry.get_n_service_nodes({}))
    doc["service_node_states"][0]["storage_port"] += 1
    with pytest.raises(RegistryError, match="another key or address"):
        await verify(chain, doc)
    doc = copy.deepcopy(registry.get_n_service_nodes({}))
    states = doc["service_node_states"]
    other = next(s["swarm_id"] for s in states if s["swarm_id"] != states[0]["swarm_id"])
    states[0]["swarm_id"] = other
    with pytest.raises(RegistryError, match="members or swarms"):
        await verify(chain, doc)


async def test_a_height_where_the_list_did_not_change_is_refused(
    world: tuple[DevChain, Registry],
) -> None:
    chain, registry = world
    doc = copy.deepcopy(registry.get_n_service_nodes({}))
    doc["height"] = chain.deploy_block
    with pytest.raises(RegistryError, match="did not change"):
        await verify(chain, doc)


async def test_an_off_chain_removal_is_accepted(world: tuple[DevChain, Registry]) -> None:
    """Uptime and decommissioning stay off chain: a list without a staked node, its block hash
    mixed with an off-chain change, is still the contract's list minus that node."""
    chain, registry = world
    doc = copy.deepcopy(registry.get_n_service_nodes({}))
    doc["service_node_states"] = doc["service_node_states"][1:]
    doc["block_hash"] = "00" * 32
    await verify(chain, doc)
