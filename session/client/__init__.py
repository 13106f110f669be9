"""Embeddable async Session client: ``async with Client.open(profile_dir, network) as c: ...``.

See docs/client.md. Public names: :class:`Client`, :class:`IdentityStore`, the event classes
of :mod:`session.client.events`, and :class:`Expiration` / :class:`ExpirationMode`.
"""

from session.client.api import Client
from session.client.events import (
    ContactsSynced,
    Event,
    ExpirationChanged,
    MessageDeleted,
    MessageFailed,
    MessageRead,
    MessageReceived,
    MessageSent,
    ProfileChanged,
    RequestAccepted,
    Typing,
)
from session.client.identity_store import IdentityNotFound, IdentityStore
from session.client.messages import Expiration, ExpirationMode

__all__ = [
    "Client",
    "ContactsSynced",
    "Event",
    "Expiration",
    "ExpirationChanged",
    "ExpirationMode",
    "IdentityNotFound",
    "IdentityStore",
    "MessageDeleted",
    "MessageFailed",
    "MessageRead",
    "MessageReceived",
    "MessageSent",
    "ProfileChanged",
    "RequestAccepted",
    "Typing",
]
