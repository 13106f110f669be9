"""Response bodies of the storage RPC: the fields every response carries, swarm and message
JSON, the oxend node list, the texts each swarm member signs, and failure entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from session.proto.rpc.codec import b64, base32z
from session.proto.snodes import INVALID_SWARM_ID, ServiceNode
from session.version import STORAGE_SERVER_VERSION


def misc_fields(now_ms: int, hf: Sequence[int]) -> dict[str, Any]:
    """``t`` (the node's time) and ``hf`` (its hard fork), carried by most responses."""
    return {"t": now_ms, "hf": list(hf)}


def snode_json(node: ServiceNode) -> dict[str, Any]:
    """One ``snodes`` entry of get_swarm / 421 bodies for a :class:`ServiceNode`. We have no
    legacy (Monero-style) keys: the Ed25519 key stands in for ``pubkey_legacy``/``address``."""
    ed = bytes.fromhex(node.pubkey_ed25519)
    return {
        "address": base32z(ed) + ".snode",
        "pubkey_legacy": node.pubkey_ed25519,
        "pubkey_x25519": node.pubkey_x25519,
        "pubkey_ed25519": node.pubkey_ed25519,
        "port": str(node.storage_port),
        "port_https": node.storage_port,
        "port_omq": node.storage_lmq_port,
        "port_quic": node.storage_lmq_port,
        "ip": node.public_ip,
    }


def swarm_json(swarm_id: int | None, nodes: Iterable[ServiceNode]) -> dict[str, Any]:
    """``{"snodes": [...], "swarm": "<hex id>"}`` (unknown swarm: empty list, ffff…)."""
    if swarm_id is None:
        return {"snodes": [], "swarm": format(INVALID_SWARM_ID, "x")}
    return {"snodes": [snode_json(n) for n in nodes], "swarm": format(swarm_id, "x")}


def message_json(m: Any) -> dict[str, Any]:
    """A retrieve item (note the key ``expiration``)."""
    return {
        "hash": m.hash,
        "timestamp": m.timestamp_ms,
        "expiration": m.expiry_ms,
        "data": b64(m.data),
    }


def service_nodes_result(
    nodes: Iterable[ServiceNode], params: Any, *, height: int = 0
) -> dict[str, Any]:
    """An oxend ``get_service_nodes`` result built from our node list (for ``oxend_request``).
    Honours ``fields`` (dict of name → bool, or list of names) and ``active_only``."""
    fields = None
    active_only = False
    if isinstance(params, dict):
        f = params.get("fields")
        if isinstance(f, dict):
            fields = {k for k, v in f.items() if v}
        elif isinstance(f, list):
            fields = {k for k in f if isinstance(k, str)}
        active_only = bool(params.get("active_only", False))
    version = list(STORAGE_SERVER_VERSION)
    states = []
    for n in nodes:
        if active_only and not n.active:
            continue
        entry = {
            "service_node_pubkey": n.pubkey_ed25519,
            "pubkey_ed25519": n.pubkey_ed25519,
            "pubkey_x25519": n.pubkey_x25519,
            "public_ip": n.public_ip,
            "storage_port": n.storage_port,
            "storage_lmq_port": n.storage_lmq_port,
            "swarm_id": n.swarm_id,
            "storage_server_version": version,
            "active": n.active,
            "funded": True,
        }
        if fields is not None:
            entry = {k: v for k, v in entry.items() if k in fields}
        states.append(entry)
    return {"service_node_states": states, "height": height, "status": "OK"}


# Per-node result signature texts (what each swarm member signs; clients verify these).


def store_result_text(hash: str) -> bytes:
    return hash.encode()


def delete_result_text(pubkey_hex: str, requested: Sequence[str], deleted: Sequence[str]) -> bytes:
    return (pubkey_hex + "".join(requested) + "".join(deleted)).encode()


def ns_action_result_text(pubkey_hex: str, value: int, sorted_hashes: Sequence[str]) -> bytes:
    """delete_all (value = timestamp), delete_before (before), expire_all (expiry)."""
    return (pubkey_hex + str(value) + "".join(sorted_hashes)).encode()


def expire_result_text(
    pubkey_hex: str,
    expiries: Sequence[int],
    requested: Sequence[str],
    updated: Sequence[str],
    unchanged: Mapping[str, int],
) -> bytes:
    return (
        pubkey_hex
        + "".join(str(e) for e in expiries)
        + "".join(requested)
        + "".join(updated)
        + "".join(f"{h}{e}" for h, e in sorted(unchanged.items()))
    ).encode()


def revoke_result_text(pubkey_hex: str, timestamp: int, tokens: Sequence[bytes]) -> bytes:
    return (pubkey_hex + str(timestamp)).encode() + b"".join(tokens)


def affected_by_namespace(
    affected: Iterable[tuple[int, str]], all_ns: bool
) -> tuple[list[str], Any]:
    """Sorted hashes (for the signature) and the JSON value: a sorted list (one namespace) or
    ``{"ns": [sorted hashes]}`` (all namespaces)."""
    items = sorted(affected, key=lambda a: a[1])
    hashes = [h for _, h in items]
    if not all_ns:
        return hashes, hashes
    by_ns: dict[str, list[str]] = {}
    for ns, h in items:
        by_ns.setdefault(str(ns), []).append(h)
    return hashes, by_ns


def swarm_status(swarm: Mapping[str, Mapping[str, Any]]) -> int:
    """200 if any member succeeded, else 500."""
    return 200 if any("failed" not in r for r in swarm.values()) else 500


def failed_entry(
    *, timeout: bool = False, code: int | None = None, reason: str | None = None
) -> dict[str, Any]:
    """A per-member failure entry of a recursive response."""
    d: dict[str, Any] = {"failed": True}
    if timeout:
        d["timeout"] = True
    elif code is not None:
        d["code"] = code
        d["reason"] = reason or ""
    elif reason is not None:
        d["reason"] = reason
    else:
        d["bad_peer_response"] = True
    return d


__all__ = [
    "affected_by_namespace",
    "delete_result_text",
    "expire_result_text",
    "failed_entry",
    "message_json",
    "misc_fields",
    "ns_action_result_text",
    "revoke_result_text",
    "service_nodes_result",
    "snode_json",
    "store_result_text",
    "swarm_json",
    "swarm_status",
]
