"""What a relay answers when it cannot pass an onion request on, shared by the node that
answers (:mod:`session.node.relay`) and the client that reads it (:mod:`session.client.transport`).

Session's wording names the next hop by its Ed25519 key (``502 Next node not found: <hex>``),
so a client can leave that node out of its next paths. :func:`next_node_error` writes such a
body and :func:`named_next_node` reads the key back; nothing else needs to know the text.
"""

from __future__ import annotations

#: 502 body prefix: the relay does not know the next hop (not in its node list).
NEXT_NODE_NOT_FOUND = "Next node not found"
#: 502 body prefix: the relay knows the next hop but could not reach it.
NEXT_NODE_UNREACHABLE = "Next node unreachable"
#: The status of both.
NEXT_NODE_STATUS = 502

_PREFIXES = tuple(f"{p}: ".encode() for p in (NEXT_NODE_NOT_FOUND, NEXT_NODE_UNREACHABLE))
_HEX = frozenset(b"0123456789abcdef")


def next_node_error(what: str, ed25519_hex: str, detail: str | None = None) -> bytes:
    """The 502 body naming the next hop: ``"<what>: <ed25519 hex>"``, then `` (detail)``."""
    text = f"{what}: {ed25519_hex}"
    if detail:
        text += f" ({detail})"
    return text.encode("utf-8", "replace")


def named_next_node(status: int, body: bytes) -> str | None:
    """The Ed25519 key (64 lowercase hex) of the next hop a relay on the path could not use,
    when ``status``/``body`` is one of these answers; else None."""
    if status != NEXT_NODE_STATUS:
        return None
    for prefix in _PREFIXES:
        if body.startswith(prefix):
            key = body[len(prefix) : len(prefix) + 64]
            if len(key) == 64 and set(key) <= _HEX:
                return key.decode()
    return None


__all__ = [
    "NEXT_NODE_NOT_FOUND",
    "NEXT_NODE_STATUS",
    "NEXT_NODE_UNREACHABLE",
    "named_next_node",
    "next_node_error",
]
