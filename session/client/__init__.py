"""Embeddable async Session client: ``async with Client.open(profile_dir, network) as c: ...``.

See docs/client.md. Public names: :class:`Client`, :class:`IdentityStore`, the event classes
of :mod:`session.client.events`, the rows the client returns (:class:`Contact`,
:class:`Message`, :class:`ConversationSummary`, :class:`MessageRequest`) and
:class:`Expiration` / :class:`ExpirationMode`.
"""

from session.client.api import Client, MessageRequest
from session.client.db import Contact, ConversationSummary, Message
from session.client.events import (
    AvatarChanged,
    CommunityDMReceived,
    CommunityPostReceived,
    CommunityRoomUpdated,
    ConnectionChanged,
    ContactsSynced,
    Event,
    ExpirationChanged,
    MessageDeleted,
    MessageFailed,
    MessageRead,
    MessageReceived,
    MessageSent,
    ProfileChanged,
    ReadElsewhere,
    RequestAccepted,
    Typing,
)
from session.client.identity_store import IdentityNotFound, IdentityStore
from session.client.messages import Expiration, ExpirationMode

__all__ = [
    "AvatarChanged",
    "Client",
    "CommunityDMReceived",
    "CommunityPostReceived",
    "CommunityRoomUpdated",
    "ConnectionChanged",
    "Contact",
    "ContactsSynced",
    "ConversationSummary",
    "Event",
    "Expiration",
    "ExpirationChanged",
    "ExpirationMode",
    "IdentityNotFound",
    "IdentityStore",
    "Message",
    "MessageDeleted",
    "MessageFailed",
    "MessageRead",
    "MessageReceived",
    "MessageRequest",
    "MessageSent",
    "ProfileChanged",
    "ReadElsewhere",
    "RequestAccepted",
    "Typing",
]
