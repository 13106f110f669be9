"""Where the nodes are and what time it is on the network.

* :class:`NetworkClock` learns the offset between the local clock and the nodes' clocks from
  the ``t`` (server time, ms) every storage-RPC reply carries, so a device whose clock is minutes
  off still signs requests and stamps messages the nodes accept (they allow ±60 s).
* :class:`NodeDirectory` holds the node list: bootstrapped from a devnet ``nodes.json`` file or
  a registry URL, cached in the identity database, refreshed from several nodes
  (``oxend_request get_service_nodes``, keeping only nodes that every answer lists), and
  per-account swarm lookups (updated from 421 replies).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from session.errors import DecodeError, HttpError, HttpTimeout, NetworkError
from session.http1.client import HttpClient
from session.proto.snodes import ServiceNode, SwarmMap, parse_node_list
from session.service.tls import client_ssl_context

#: Refresh the node list after this long (libsession: 2 h) or below this many nodes.
REFRESH_AFTER_MS = 2 * 3600 * 1000
MIN_NODES = 12
#: How many nodes a refresh asks (intersection of their answers is kept).
REFRESH_SOURCES = 3
#: Largest node list read from a registry (thousands of nodes are a few MB).
REGISTRY_MAX_ANSWER = 32 * 1024 * 1024


class NetworkClock:
    """Local clock plus an offset learned from the nodes.

    ``local`` is the local wall clock in seconds (injectable, e.g. to simulate a skewed device).
    The offset is the median of the last ``window`` samples, each
    ``t_server − midpoint(request sent, reply received)``.
    """

    def __init__(self, local: Callable[[], float] = time.time, window: int = 9) -> None:
        self.local = local
        self.window = window
        self.samples: list[int] = []
        self.offset_ms = 0

    def local_ms(self) -> int:
        return int(self.local() * 1000)

    def now_ms(self) -> int:
        """Network time in ms."""
        return self.local_ms() + self.offset_ms

    def observe(self, server_ms: int, sent_local_ms: int, received_local_ms: int) -> None:
        if server_ms < 1_000_000_000_000 or received_local_ms < sent_local_ms:
            return  # not a ms timestamp, or a clock jump during the request
        mid = (sent_local_ms + received_local_ms) // 2
        self.samples.append(server_ms - mid)
        del self.samples[: -self.window]
        self.offset_ms = int(statistics.median(self.samples))

    @property
    def synced(self) -> bool:
        return bool(self.samples)


def load_nodes_json(path: Path | str) -> list[ServiceNode]:
    """Nodes of a devnet/registry ``nodes.json`` (``get_n_service_nodes`` result)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DecodeError(f"cannot read node list {path}: {e}") from None
    try:
        return parse_node_list(doc)
    except DecodeError as e:
        raise DecodeError(f"{path} is not a node list: {e}") from None


async def fetch_registry(url: str, timeout: float = 10.0) -> list[ServiceNode]:
    """Nodes from a registry: JSON-RPC ``get_n_service_nodes`` POSTed to ``URL/json_rpc``, or a
    GET of a URL ending in ``.json``. Raises NetworkError (unreachable, refused, timed out, not
    JSON) or DecodeError (not a node list)."""
    try:
        async with HttpClient(ssl_context=client_ssl_context(), timeout=timeout) as http:
            if url.endswith(".json"):
                r = await http.request("GET", url, max_size=REGISTRY_MAX_ANSWER)
            else:
                rpc_url = (
                    url if url.rstrip("/").endswith("json_rpc") else url.rstrip("/") + "/json_rpc"
                )
                body = {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "get_n_service_nodes",
                    "params": {"active_only": True},
                }
                r = await http.request(
                    "POST",
                    rpc_url,
                    body=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                    max_size=REGISTRY_MAX_ANSWER,
                )
    except HttpTimeout:
        raise NetworkError(f"the registry at {url} did not answer within {timeout:g} s") from None
    except (HttpError, ValueError) as e:  # ValueError: InvalidInput, a URL that is not usable
        raise NetworkError(f"the registry at {url} failed ({type(e).__name__}: {e})") from None
    if r.status >= 400:
        raise NetworkError(f"the registry at {url} failed (HTTP status {r.status})")
    try:
        doc = json.loads(r.body)
    except ValueError as e:
        raise NetworkError(f"the registry at {url} failed (not JSON: {e})") from None
    try:
        return parse_node_list(doc)
    except DecodeError as e:
        raise DecodeError(f"the registry at {url} sent no node list: {e}") from None


class NodeDirectory:
    """The node list and swarm lookups of one client."""

    def __init__(self, nodes: Iterable[ServiceNode] = (), fetched_ms: int = 0) -> None:
        self.map = SwarmMap(nodes)
        self.fetched_ms = fetched_ms
        #: Swarm members learned from 421 replies, per account (override the computed swarm).
        self.swarm_override: dict[str, list[ServiceNode]] = {}

    @property
    def nodes(self) -> Sequence[ServiceNode]:
        return self.map.nodes

    def replace(self, nodes: Iterable[ServiceNode], fetched_ms: int) -> None:
        self.map = SwarmMap(nodes)
        self.fetched_ms = fetched_ms
        self.swarm_override.clear()

    def stale(self, now_ms: int) -> bool:
        return len(self.map) < MIN_NODES or now_ms - self.fetched_ms > REFRESH_AFTER_MS

    def swarm(self, account_id: str) -> list[ServiceNode]:
        if account_id in self.swarm_override:
            return list(self.swarm_override[account_id])
        try:
            return list(self.map.members_for(account_id))
        except (LookupError, KeyError):
            return []

    def learn_swarm(self, account_id: str, reply: Mapping[str, Any]) -> list[ServiceNode]:
        """Apply a 421 / ``get_swarm`` body: ``{"snodes": [...], "swarm": hex}``."""
        members: list[ServiceNode] = []
        for e in reply.get("snodes", []) or []:
            if not isinstance(e, Mapping):
                continue
            node = self.map.by_ed25519.get(str(e.get("pubkey_ed25519", "")))
            if node is None:
                try:
                    node = ServiceNode(
                        pubkey_ed25519=str(e["pubkey_ed25519"]),
                        pubkey_x25519=str(e["pubkey_x25519"]),
                        public_ip=str(e["ip"]),
                        storage_port=int(e.get("port_https", e.get("port", 0))),
                        storage_lmq_port=int(e.get("port_omq", 0)),
                    )
                except (KeyError, ValueError, TypeError):
                    continue
            members.append(node)
        if members:
            self.swarm_override[account_id] = members
        return members

    @staticmethod
    def intersect(answers: Sequence[Sequence[ServiceNode]]) -> list[ServiceNode]:
        """Nodes present (same keys, address and swarm) in every answer."""
        if not answers:
            return []
        common = set(answers[0])
        for a in answers[1:]:
            common &= set(a)
        return sorted(common, key=lambda n: n.pubkey_ed25519)
