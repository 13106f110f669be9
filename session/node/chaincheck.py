"""A node's own check of the registry's node list against the staking contract.

For operators who run or trust a chain node: with ``registry.chain_rpc`` and
``registry.chain_contract`` set, the node follows the contract itself (the registry's own
:class:`~session.registry.chain.ChainFollower` driving a shadow
:class:`~session.registry.state.Registry` in memory) and refuses a list from the registry that
disagrees: a listed node the contract does not list at the list's height, or, when the list is
the chain's alone (its block hash is the chain block's), any difference in who is listed, their
addresses and their swarms. A refused list is not used; the node keeps the one it had.

Imported by the daemon only when the option is set: web3 stays off a node's start-up path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping, Sequence
from typing import Any

from web3 import Web3

from session.errors import RegistryError
from session.proto.snodes import INVALID_SWARM_ID, ServiceNode
from session.registry.chain import ChainFollower, ChainReader, connect
from session.registry.state import Registry

#: How many past node lists (one per change block) the check keeps to compare older lists.
HISTORY = 64

Listing = dict[str, tuple[str, str, int, int, int]]  # key → (x25519, ip, ports, swarm)


def _listing(nodes: Sequence[ServiceNode]) -> Listing:
    return {
        n.pubkey_ed25519: (
            n.pubkey_x25519,
            n.public_ip,
            n.storage_port,
            n.storage_lmq_port,
            n.swarm_id,
        )
        for n in nodes
        if n.swarm_id != INVALID_SWARM_ID
    }


class ChainCheck:
    """Follows the contract and judges the registry's lists against it."""

    def __init__(
        self, w3: Web3, contract: str, *, start_block: int = 0, min_tokens: int = 0
    ) -> None:
        self._w3 = w3
        self._contract = contract
        self._start_block = start_block
        self._min_tokens = min_tokens
        self._shadow = Registry()
        self._follower: ChainFollower | None = None
        #: block → (block hash, the list at that block)
        self._history: collections.OrderedDict[int, tuple[bytes, Listing]] = (
            collections.OrderedDict()
        )

    @classmethod
    def from_url(cls, url: str, contract: str, **kw: Any) -> ChainCheck:
        return cls(connect(url), contract, **kw)

    def _reader(self, min_tokens: int) -> ChainReader:
        return ChainReader(
            self._w3, self._contract, min_tokens=min_tokens, start_block=self._start_block
        )

    async def sync(self, min_tokens: int) -> None:
        """Read the chain up to its head (web3 blocks: in a thread)."""
        if self._follower is None:
            reader = await asyncio.to_thread(self._reader, min_tokens)
            self._follower = ChainFollower(self._shadow, reader)
        points = await asyncio.to_thread(self._follower.reader.sync)
        for p in points:
            if self._follower.apply([p]) or p.block not in self._history:
                shadow = self._shadow
                self._history[p.block] = (p.block_hash, _listing(shadow.nodes(active_only=True)))
                while len(self._history) > HISTORY:
                    self._history.popitem(last=False)

    async def verify(self, result: Mapping[str, Any], nodes: Sequence[ServiceNode]) -> None:
        """Raise :class:`RegistryError` unless the registry's list (``result`` is its
        ``get_n_service_nodes`` answer, ``nodes`` the parsed entries) agrees with the chain."""
        try:
            height = int(result["height"])
            block_hash = bytes.fromhex(str(result["block_hash"]))
            requirement = int(result.get("stake_requirement", self._min_tokens))
        except (KeyError, TypeError, ValueError):
            raise RegistryError("the registry's list has no height or block hash", 502) from None
        await self.sync(requirement)
        listed = _listing(nodes)
        if not listed and not self._history:
            return  # nothing staked yet, nothing listed
        at = self._history.get(height)
        if at is None:
            raise RegistryError(
                f"the registry's node list is at block {height}, where the staking contract's "
                f"list did not change (this node has read the chain to block "
                f"{self._follower.reader.synced if self._follower else '?'}); list refused",
                502,
            )
        chain_hash, chain_listing = at
        strangers = sorted(set(listed) - set(chain_listing))
        if strangers:
            raise RegistryError(
                f"the registry lists {len(strangers)} node(s) the staking contract does not list "
                f"at block {height} (first: {strangers[0]}); list refused",
                502,
            )
        moved = [k for k in listed if listed[k][:4] != chain_listing[k][:4]]
        if moved:
            raise RegistryError(
                f"the registry gives node {moved[0]} another key or address than its stake on "
                f"the contract; list refused",
                502,
            )
        if block_hash == chain_hash and listed != chain_listing:
            raise RegistryError(
                f"the registry's list at block {height} differs from the one the chain gives "
                f"(members or swarms); list refused",
                502,
            )


__all__ = ["HISTORY", "ChainCheck"]
