"""A local network ("devnet") on 127.0.0.1: a registry, one file server and N service nodes
(and, as they come, the other services), each its own process. It starts every kind of
service, so it lives beside them rather than inside one.

:class:`Devnet` is the Python API (tests use it as a fixture)::

    with Devnet(tmp_path, nodes=5) as net:
        net.node_list()            # the registry's get_n_service_nodes result
        n = net.add_node()         # waits until it is ready and listed with a swarm
        net.remove_node(n)         # its exit on the staking contract, then SIGTERM

:func:`main` (``session-node devnet``, ``python -m session.devnet``) runs one until
SIGINT/SIGTERM: it writes ``DIR/nodes.json`` (the registry's complete ``get_n_service_nodes``
JSON, rewritten on every change, plus our ``file_servers`` field: ``[{"url", "pubkey_ed25519",
"pubkey_x25519"}]`` of the devnet's file server, read by
:func:`session.proto.snodes.parse_file_servers`, and ``community_servers``: ``[{"url",
"public_key", "pubkey_ed25519", "rooms": {"lobby": join URL}}]`` of its community server, read
by :func:`session.proto.snodes.parse_community_servers`, and ``chain``: the devnet chain's
``rpc``, ``chain_id``, ``contract``, ``token`` and ``height``), prints where everything is, and
serves a loopback control endpoint:

* ``GET  /nodes``          → the node list JSON
* ``POST /add``            → start one more node, answers its entry
* ``POST /remove/<index>`` → run node ``<index>``'s exit on the contract, stop it, withdraw

The registry runs the devnet's chain in its own process (``--devnet-chain``); the devnet funds one
operator account per node and stakes each node through the staking contract once the node has
reported its ports (:meth:`Devnet.stake_nodes`).

Every process gets its own ports (bound as port 0 and reported back, see
:mod:`session.devnet.net`) and data directory under ``DIR``; logs go to
``DIR/<name>/process.log``.

Every process ends when the process running the devnet ends, however it ends (SIGKILL, a
crash): each watches a lifeline pipe whose write end only the devnet's process holds, stops
itself gracefully when it closes and is killed 20 s later if it hangs
(:mod:`session.service.lifeline`, which says why not ``PR_SET_PDEATHSIG``).

The file server (``Devnet.file_server``, a :class:`DevnetFileServer`; ``file_server=False``
leaves it out) keeps its data under ``DIR/fileserver/``, starts before the nodes and is added
to their ``proxy_allow``; ``stop_file_server(kill=...)`` and ``start_file_server()`` stop and
restart it on the same port and data.

The community server (``Devnet.community``, a :class:`DevnetCommunity`; ``community=False``
leaves it out) serves plain HTTP, keeps its data under ``DIR/community/`` with a room
``lobby``, starts before the nodes and is added to their ``proxy_allow`` too;
``stop_community()``/``start_community()`` as for the file server.

Nodes proxy onion requests only to the servers named in ``proxy_allow`` (``"host:port"``
entries: the devnet's own file and community servers), never to public or other local
addresses (``network.proxy_public = false``).

Health rules (``health=``): ``DEVNET_HEALTH`` by default, the registry's windows shortened to
seconds so a dead node leaves its swarm quickly; :data:`STEADY_HEALTH` for devnets whose
tests or benchmarks kill, freeze and restart members on purpose and then need every member in
its swarm (proofs and reachability tests still run and are reported, nobody is decommissioned
within an hour).
"""

from __future__ import annotations

from session.devnet.control import main
from session.devnet.net import (
    STEADY_HEALTH,
    Devnet,
    DevnetCommunity,
    DevnetError,
    DevnetFileServer,
    DevnetNode,
)

__all__ = [
    "STEADY_HEALTH",
    "Devnet",
    "DevnetCommunity",
    "DevnetError",
    "DevnetFileServer",
    "DevnetNode",
    "main",
]
