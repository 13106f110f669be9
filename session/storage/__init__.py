"""Message storage of a service node: the :class:`MessageStore` interface and its back ends.

``SqliteMessageStore`` (persistent, one writer thread with group commit) and
``MemoryMessageStore`` (tests, ephemeral nodes) behave identically. The back ends are imported on
first use so that importing :mod:`session.storage` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from session.proto.rpc.namespaces import is_public_outbox_namespace
from session.storage.base import (
    DEFAULT_MSG_OVERHEAD,
    MessageStore,
    StoredMessage,
    StoreResult,
    StoreStats,
)

if TYPE_CHECKING:
    from session.storage.memory import MemoryMessageStore
    from session.storage.sqlite import SqliteMessageStore


def __getattr__(name: str) -> Any:
    if name == "SqliteMessageStore":
        from session.storage.sqlite import SqliteMessageStore

        return SqliteMessageStore
    if name == "MemoryMessageStore":
        from session.storage.memory import MemoryMessageStore

        return MemoryMessageStore
    raise AttributeError(f"module 'session.storage' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MSG_OVERHEAD",
    "MemoryMessageStore",
    "MessageStore",
    "SqliteMessageStore",
    "StoreResult",
    "StoreStats",
    "StoredMessage",
    "is_public_outbox_namespace",
]
