"""The service-node list: the ``get_n_service_nodes`` JSON shape and the swarm map built on it.

Sans-I/O: the registry serves this JSON, nodes poll it, clients receive it (from the registry
once, then from nodes). Every party builds the same :class:`SwarmMap` from the same list, so
everyone agrees on which swarm stores an account.

Entry fields follow Session's ``service_node_states`` entries (``public_ip``, ``storage_port``,
``storage_lmq_port``, ``pubkey_ed25519``, ``pubkey_x25519``, ``swarm_id``) plus our registry's
``stake`` (atomic units) and ``active``. A list document may also carry ``file_servers``
(ours, written by the devnet): ``[{"url", "pubkey_ed25519", "pubkey_x25519"}]``, read with
:func:`parse_file_servers`, and ``community_servers``: ``[{"url", "public_key",
"pubkey_ed25519", "rooms": {token: join URL}}]``, read with :func:`parse_community_servers`;
:func:`parse_node_list` ignores both.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from session.errors import DecodeError

#: The swarm id Session uses for "not in any swarm".
INVALID_SWARM_ID = 2**64 - 1

_HEX = frozenset("0123456789abcdef")


def _hex32(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise DecodeError(f"{field} must be 64 lowercase hex characters")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceNode:
    """One registered service node, as listed by the registry."""

    pubkey_ed25519: str  # hex; signs results, names the node in onion layers
    pubkey_x25519: str  # hex; onion-layer and node-link key
    public_ip: str
    storage_port: int  # HTTPS (client RPC, onion requests)
    storage_lmq_port: int  # node links (node-to-node; OxenMQ in Session)
    swarm_id: int = INVALID_SWARM_ID
    stake: int = 0
    active: bool = True

    @property
    def x25519(self) -> bytes:
        return bytes.fromhex(self.pubkey_x25519)

    @property
    def ed25519(self) -> bytes:
        return bytes.fromhex(self.pubkey_ed25519)

    @property
    def https_url(self) -> str:
        return f"https://{self._host}:{self.storage_port}"

    @property
    def zmq_address(self) -> str:
        return f"tcp://{self._host}:{self.storage_lmq_port}"

    @property
    def _host(self) -> str:
        """``public_ip`` as a URL's host: an IPv6 address in brackets (``[::1]``), as URLs
        and node-link endpoints need it."""
        return f"[{self.public_ip}]" if ":" in self.public_ip else self.public_ip

    def to_json(self) -> dict[str, Any]:
        return {
            "pubkey_ed25519": self.pubkey_ed25519,
            "pubkey_x25519": self.pubkey_x25519,
            "public_ip": self.public_ip,
            "storage_port": self.storage_port,
            "storage_lmq_port": self.storage_lmq_port,
            "swarm_id": self.swarm_id,
            "stake": self.stake,
            "active": self.active,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ServiceNode:
        """One ``service_node_states`` entry; raises DecodeError on any malformed entry."""
        if not isinstance(entry, Mapping):
            raise DecodeError("service node entry is not a JSON object")
        try:
            swarm_id = int(entry.get("swarm_id", INVALID_SWARM_ID))
            node = cls(
                pubkey_ed25519=_hex32(entry["pubkey_ed25519"], "pubkey_ed25519"),
                pubkey_x25519=_hex32(entry["pubkey_x25519"], "pubkey_x25519"),
                public_ip=str(entry["public_ip"]),
                storage_port=int(entry["storage_port"]),
                storage_lmq_port=int(entry.get("storage_lmq_port", 0)),
                swarm_id=swarm_id,
                stake=int(entry.get("stake", 0)),
                active=bool(entry.get("active", True)),
            )
        except KeyError as e:
            raise DecodeError(f"service node entry is missing {e.args[0]!r}") from None
        except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(Infinity)
            if isinstance(e, DecodeError):
                raise
            raise DecodeError(f"service node entry has a bad value: {e}") from None
        try:  # (it reaches links and HTTP as it is: a host name or junk would be looked up)
            ipaddress.ip_address(node.public_ip)
        except ValueError:
            raise DecodeError("service node public_ip must be an IPv4 or IPv6 address") from None
        if not (0 < node.storage_port < 65536) or not (0 <= node.storage_lmq_port < 65536):
            raise DecodeError("service node ports must be between 1 and 65535")
        if not (0 <= node.swarm_id < 2**64):
            raise DecodeError("swarm_id must be an unsigned 64-bit integer")
        return node


def parse_node_list(doc: Mapping[str, Any]) -> list[ServiceNode]:
    """Parse a ``get_n_service_nodes`` result (``{"service_node_states": [...]}``), or the full
    JSON-RPC response (``{"result": {...}}``). Anything else raises DecodeError."""
    if not isinstance(doc, Mapping):
        raise DecodeError("node list is not a JSON object")
    if "result" in doc and isinstance(doc["result"], Mapping):
        doc = doc["result"]
    states = doc.get("service_node_states")
    if not isinstance(states, list):
        raise DecodeError("node list has no 'service_node_states' array")
    return [ServiceNode.from_json(e) for e in states]


@dataclasses.dataclass(frozen=True, slots=True)
class FileServer:
    """A file server a node list names (our ``file_servers`` field, e.g. a devnet's):
    clients reach it through onion paths to ``pubkey_x25519``; ``pubkey_ed25519`` is the key
    attachment URLs carry (``#p=``, client spec §5.4)."""

    url: str  # "https://127.0.0.1:22040"
    pubkey_ed25519: str
    pubkey_x25519: str

    @classmethod
    def from_json(cls, entry: Any) -> FileServer:
        """One ``file_servers`` entry; raises DecodeError on any malformed entry."""
        if not isinstance(entry, Mapping):
            raise DecodeError("file server entry is not a JSON object")
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DecodeError("file server url must be an http:// or https:// URL")
        return cls(
            url.rstrip("/"),
            _hex32(entry.get("pubkey_ed25519"), "pubkey_ed25519"),
            _hex32(entry.get("pubkey_x25519"), "pubkey_x25519"),
        )

    def to_json(self) -> dict[str, str]:
        return {
            "url": self.url,
            "pubkey_ed25519": self.pubkey_ed25519,
            "pubkey_x25519": self.pubkey_x25519,
        }


def _extra_entries(doc: Mapping[str, Any], key: str) -> list[Any]:
    """The array ``key`` of a node list document (top level, or inside ``result``); empty
    when absent."""
    if not isinstance(doc, Mapping):
        raise DecodeError("node list is not a JSON object")
    entries = doc.get(key)
    if entries is None and isinstance(doc.get("result"), Mapping):
        entries = doc["result"].get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DecodeError(f"'{key}' must be an array")
    return entries


def parse_file_servers(doc: Mapping[str, Any]) -> list[FileServer]:
    """The ``file_servers`` array of a node list document (top level, or inside ``result``);
    an empty list when there is none (Session's own lists have none). Raises DecodeError on
    a malformed one."""
    return [FileServer.from_json(e) for e in _extra_entries(doc, "file_servers")]


@dataclasses.dataclass(frozen=True, slots=True)
class CommunityServer:
    """A community server a node list names (our ``community_servers`` field, e.g. a
    devnet's): clients reach ``url`` through onion paths to ``public_key`` (its X25519 key,
    the ``public_key`` of its join URLs and what members blind with); ``rooms`` maps each room
    token listed to its join URL (``<url>/<token>?public_key=<hex>``)."""

    url: str  # "http://127.0.0.1:22050"
    public_key: str
    pubkey_ed25519: str
    rooms: Mapping[str, str]

    @classmethod
    def from_json(cls, entry: Any) -> CommunityServer:
        """One ``community_servers`` entry; raises DecodeError on any malformed entry."""
        if not isinstance(entry, Mapping):
            raise DecodeError("community server entry is not a JSON object")
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DecodeError("community server url must be an http:// or https:// URL")
        rooms = entry.get("rooms", {})
        if not isinstance(rooms, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in rooms.items()
        ):
            raise DecodeError("community server rooms must map room tokens to join URLs")
        return cls(
            url.rstrip("/"),
            _hex32(entry.get("public_key"), "public_key"),
            _hex32(entry.get("pubkey_ed25519"), "pubkey_ed25519"),
            dict(rooms),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "public_key": self.public_key,
            "pubkey_ed25519": self.pubkey_ed25519,
            "rooms": dict(self.rooms),
        }


def parse_community_servers(doc: Mapping[str, Any]) -> list[CommunityServer]:
    """The ``community_servers`` array of a node list document (top level, or inside
    ``result``); empty when there is none. Raises DecodeError on a malformed one."""
    return [CommunityServer.from_json(e) for e in _extra_entries(doc, "community_servers")]


def node_list_json(nodes: Iterable[ServiceNode], **extra: Any) -> dict[str, Any]:
    """The ``get_n_service_nodes`` result document for ``nodes``."""
    return {"service_node_states": [n.to_json() for n in nodes], **extra}


class SwarmMap:
    """Active nodes grouped by swarm, with the closest-swarm lookup for accounts."""

    def __init__(self, nodes: Iterable[ServiceNode]) -> None:
        # Lazy: session.swarm imports session.proto.rpc, which imports this module.
        from session.swarm import SwarmIndex  # noqa: PLC0415

        self.nodes: tuple[ServiceNode, ...] = tuple(n for n in nodes if n.active)
        swarms: dict[int, list[ServiceNode]] = {}
        for n in self.nodes:
            if n.swarm_id != INVALID_SWARM_ID:
                swarms.setdefault(n.swarm_id, []).append(n)
        self.swarms: dict[int, tuple[ServiceNode, ...]] = {
            k: tuple(sorted(v, key=lambda n: n.pubkey_ed25519)) for k, v in swarms.items()
        }
        self.by_ed25519: dict[str, ServiceNode] = {n.pubkey_ed25519: n for n in self.nodes}
        self.by_x25519: dict[str, ServiceNode] = {n.pubkey_x25519: n for n in self.nodes}
        self._index = SwarmIndex(sorted(self.swarms)) if self.swarms else None

    def swarm_id_for(self, account_id: str) -> int:
        """The swarm that stores ``account_id`` (raises if there are no swarms)."""
        if self._index is None:
            raise LookupError("the node list has no swarms yet")
        return int(self._index.closest(account_id))

    def members_for(self, account_id: str) -> Sequence[ServiceNode]:
        return self.swarms[self.swarm_id_for(account_id)]

    def __len__(self) -> int:
        return len(self.nodes)
