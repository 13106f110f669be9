"""Events a :class:`session.client.Client` emits (``async for ev in client.events()``).

All are frozen dataclasses; ``conversation`` is always the other party's Session ID (our own ID
for note-to-self).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from session.client.messages import Expiration


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Base class of all client events."""


@dataclasses.dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A visible message arrived (``outgoing``: sent by another device of ours)."""

    conversation: str
    message_id: int
    author: str
    sent_ms: int
    body: str
    outgoing: bool = False
    is_request: bool = False  # the sender is not an accepted contact yet


@dataclasses.dataclass(frozen=True, slots=True)
class MessageSent(Event):
    """A message of ours reached the recipient's swarm."""

    conversation: str
    message_id: int
    sent_ms: int
    hash: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class MessageFailed(Event):
    """A message could not be delivered before its TTL ran out."""

    conversation: str
    message_id: int
    error: str


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRead(Event):
    """The peer read our messages sent at ``sent_ms`` (read receipt)."""

    conversation: str
    sent_ms: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Typing(Event):
    conversation: str
    started: bool


@dataclasses.dataclass(frozen=True, slots=True)
class MessageDeleted(Event):
    """A message was removed: ``reason`` is ``"unsend"`` or ``"expired"``."""

    conversation: str
    message_id: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ExpirationChanged(Event):
    conversation: str
    expiration: Expiration
    by: str


@dataclasses.dataclass(frozen=True, slots=True)
class RequestAccepted(Event):
    """``session_id`` accepted our message request."""

    session_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class ProfileChanged(Event):
    """A display name changed (``session_id`` may be ours, from another device)."""

    session_id: str
    display_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class AvatarChanged(Event):
    """A profile picture changed (``session_id`` may be ours, from another device): the file
    URL of the new one, or None when it was removed."""

    session_id: str
    url: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ContactsSynced(Event):
    """Contacts were merged from the config namespace (another device changed them)."""

    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReadElsewhere(Event):
    """Another device of ours read ``conversation`` up to ``read_ms`` (ConvoInfoVolatile):
    its messages up to then are marked read here too (no second read receipt)."""

    conversation: str
    read_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionChanged(Event):
    """The client went offline (a poll or a delivery could not reach the network; ``error``
    says why) or came back online (``error`` is empty)."""

    online: bool
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class CommunityPostReceived(Event):
    """A new verified post in a joined community room (``mine``: posted by us, perhaps from
    another device). ``author`` is the sender's id on that server (blinded, or 05)."""

    base_url: str
    room: str
    post_id: int
    author: str
    body: str | None
    name: str | None
    whisper: bool
    mine: bool


@dataclasses.dataclass(frozen=True, slots=True)
class CommunityRoomUpdated(Event):
    """A poll changed what a joined room shows (new, edited or deleted posts, reactions):
    an app redraws it from :meth:`CommunityManager.posts`. Sent once per room and poll, after
    any :class:`CommunityPostReceived` of that poll."""

    base_url: str
    room: str


@dataclasses.dataclass(frozen=True, slots=True)
class CommunityDMReceived(Event):
    """A new blinded DM on a community server (``outgoing``: sent by a device of ours).
    ``peer`` is the other side's blinded id; ``sender_session_id`` the sender's real id."""

    base_url: str
    dm_id: int
    peer: str
    sender_session_id: str | None
    body: str | None
    outgoing: bool


class EventStream:
    """One consumer's events from the moment it subscribed: ``async for ev in stream`` (ends
    when the client closes), :meth:`pending` for what already arrived without waiting, and
    :meth:`close` to unsubscribe."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._q = hub.subscribe()
        self._ended = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        ev = await self._q.get()
        if ev is None:
            self._ended = True
            self.close()
            raise StopAsyncIteration
        return ev

    def pending(self) -> list[Event]:
        """The events that arrived and were not consumed yet (does not wait)."""
        out: list[Event] = []
        while not self._q.empty():
            ev = self._q.get_nowait()
            if ev is None:
                self._ended = True
                break
            out.append(ev)
        return out

    def close(self) -> None:
        self._hub.unsubscribe(self._q)


class EventHub:
    """Fan-out of events to any number of ``events()`` iterators."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event | None]] = []

    def emit(self, ev: Event) -> None:
        for q in self._queues:
            q.put_nowait(ev)

    def close(self) -> None:
        for q in self._queues:
            q.put_nowait(None)

    async def stream(self) -> AsyncIterator[Event]:
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                ev = await q.get()
                if ev is None:
                    return
                yield ev
        finally:
            self._queues.remove(q)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        """A raw queue (for callers that prefer ``await q.get()``); see :meth:`unsubscribe`."""
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        if q in self._queues:
            self._queues.remove(q)
