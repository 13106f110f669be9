"""Message storage of a service node: the :class:`MessageStore` interface and its back ends.

``SqliteMessageStore`` (persistent, one writer thread with group commit) and
``MemoryMessageStore`` (tests, ephemeral nodes) behave identically.
"""

from __future__ import annotations

from session.proto.rpc.namespaces import is_public_outbox_namespace
from session.storage.base import (
    DEFAULT_MSG_OVERHEAD,
    MessageStore,
    StoredMessage,
    StoreResult,
    StoreStats,
)
from session.storage.memory import MemoryMessageStore
from session.storage.sqlite import SqliteMessageStore

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
