"""Real nodes in one event loop (HTTPS sites and node links on 127.0.0.1, in-memory stores)
with a node list the caller controls: for tests and benchmarks that need swarm changes, odd
node lists or a node's internals at hand, which a registry-driven devnet cannot give cheaply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from session.identity import Identity
from session.node.config import (
    AdminConfig,
    LimitsConfig,
    NetworkConfig,
    NodeConfig,
    RegistryConfig,
)
from session.node.daemon import Node
from session.proto.snodes import ServiceNode
from session.storage.memory import MemoryMessageStore


class MiniNet:
    """Nodes added one by one under ``tmp``; :meth:`set_swarms` decides the node list."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.nodes: list[Node] = []
        self.listed: list[ServiceNode] = []

    async def fetch(self) -> list[ServiceNode]:
        return list(self.listed)

    async def add(self, limits: LimitsConfig | None = None, shutdown_timeout: float = 2.0) -> Node:
        """Start one more node (not listed until :meth:`set_swarms` lists it)."""
        i = len(self.nodes)
        cfg = NodeConfig(
            data_dir=self.tmp / f"n{i}",
            network=NetworkConfig(
                listen_host="127.0.0.1", https_port=0, zmq_port=0, public_ip="127.0.0.1"
            ),
            admin=AdminConfig(port=0),
            registry=RegistryConfig(poll_interval=0.2),
            limits=limits or LimitsConfig(),
            shutdown_timeout=shutdown_timeout,
        )
        node = Node(
            cfg,
            identity=Identity.generate(),
            store=MemoryMessageStore(),
            fetch_nodes=self.fetch,
            register=False,
        )
        await node.start()
        self.nodes.append(node)
        return node

    def entry(self, node: Node, swarm_id: int) -> ServiceNode:
        """The node-list entry of ``node`` in swarm ``swarm_id``."""
        return ServiceNode(
            pubkey_ed25519=node.identity.ed25519_public.hex(),
            pubkey_x25519=node.identity.x25519_public.hex(),
            public_ip="127.0.0.1",
            storage_port=node.https_port,
            storage_lmq_port=node.zmq_port,
            swarm_id=swarm_id,
        )

    async def set_swarms(self, swarms: dict[int, int], extra: Sequence[ServiceNode] = ()) -> None:
        """node index -> swarm id (plus ``extra`` entries); every node refreshes at once."""
        self.listed = [self.entry(self.nodes[i], sid) for i, sid in swarms.items()] + list(extra)
        await asyncio.gather(*(n.view.refresh() for n in self.nodes))

    def url(self, i: int) -> str:
        return f"https://127.0.0.1:{self.nodes[i].https_port}"

    async def close(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes))
