"""Swarm math shared by service nodes and clients (network spec §2.1–2.2, §4.5).

* :func:`swarm_space` — an account's 64-bit position: the XOR of the four big-endian 8-byte
  words of its 32-byte key (the prefix byte is ignored, so ``05…``, ``03…``, ``15…`` and any
  other prefix are accepted, as the storage server does).
* :func:`closest_swarm` — the swarm responsible for an account: nearest swarm id on the 2^64
  ring (distances wrap around), ties going to the lower ("left") swarm. Swarm ids may come in
  any order; ``2**64 - 1`` marks unassigned nodes and is rejected.
* :class:`SwarmIndex` — the same lookup over a fixed swarm list, sorted once in Rust and
  searched by bisection: build it when the swarm list changes, call ``.closest(account_id)``
  per request.
* :func:`message_hash` — the storage server's message id: unpadded base64 of
  BLAKE2b-256(33-byte account ‖ decimal namespace (omitted for 0) ‖ data).

Bad account ids raise :class:`session.errors.InvalidSessionID`; bad swarm ids and namespaces
raise :class:`session.errors.InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Iterable

from session import _core
from session._core import SwarmIndex
from session.proto.rpc.namespaces import NAMESPACE_MAX, NAMESPACE_MIN
from session.proto.snodes import INVALID_SWARM_ID


def swarm_space(account_id: str) -> int:
    """The account's position in the 64-bit swarm space (66 hex digits, any prefix)."""
    return _core.swarm_space(account_id)


def closest_swarm(account_id: str, swarm_ids: Iterable[int]) -> int:
    """The id of the swarm responsible for ``account_id`` among ``swarm_ids`` (any order;
    a list or tuple is fastest, any iterable of ints works).

    For many lookups over the same list, build a :class:`SwarmIndex` once instead.
    """
    return _core.closest_swarm(account_id, swarm_ids)


def message_hash(account_id: str, namespace: int, data: bytes | bytearray | memoryview) -> str:
    """The storage message hash (43 characters of unpadded base64)."""
    return _core.message_hash(account_id, namespace, bytes(data))


__all__ = [
    "INVALID_SWARM_ID",
    "NAMESPACE_MAX",
    "NAMESPACE_MIN",
    "SwarmIndex",
    "closest_swarm",
    "message_hash",
    "swarm_space",
]
