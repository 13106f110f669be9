"""Receiving: polling the own swarm and turning stored messages into local state and events.

:class:`Receiver` runs one poll step (:meth:`Receiver.poll_once`, which the client's background
poll loop repeats) and applies decrypted 1:1 messages: visible text, profile updates,
disappearing-message settings, read receipts, typing indicators, unsend requests and message
request responses. Config namespaces go to :class:`~session.client.configsync.ConfigSync`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from session.client import messages as M
from session.client import sync as S
from session.client.attachments import MAX_ATTACHMENTS
from session.client.configsync import ConfigSync, StoredRow
from session.client.db import Contact, Database
from session.client.events import (
    Event,
    EventHub,
    ExpirationChanged,
    MessageDeleted,
    MessageRead,
    MessageReceived,
    ProfileChanged,
    RequestAccepted,
    Typing,
)
from session.client.network import NetworkClock
from session.client.poller import Poller
from session.identity import Identity
from session.proto import session_pb2 as pb

log = logging.getLogger("session.client")

#: Longest display name kept from a peer's profile.
MAX_NAME_CHARS = 100
#: Namespaces a poll step retrieves, in order (profile and contacts before messages).
POLLED_NAMESPACES = (S.NS_USER_PROFILE, S.NS_CONTACTS, S.NS_CONVO_INFO, 0)


class Receiver:
    """Applies what the own swarm holds to one identity's database."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        clock: NetworkClock,
        hub: EventHub,
        poller: Poller,
        config: ConfigSync,
    ) -> None:
        self.db = db
        self.identity = identity
        self.me = identity.session_id
        self.clock = clock
        self.hub = hub
        self.poller = poller
        self.config = config
        #: Takes a 1:1 group update (invite, promotion): set by the client to its groups.
        self.on_group_update: Callable[[M.Incoming, Any], list[Event]] | None = None

    async def poll_once(self) -> int:
        """Retrieve and apply new messages of namespaces 2, 3, 4 and 0; returns how many new
        stored messages were seen. Raises NetworkError / NotEnoughNodes when offline."""
        total = 0
        for ns in POLLED_NAMESPACES:
            rows = await self.poller.poll(ns)
            if not rows:
                continue
            total += len(rows)
            if ns == 0:
                self.apply_unseen(rows)  # the poller returned only unseen hashes
            else:
                self.config.apply(rows, ns)
                self.db.mark_seen([r[0] for r in rows])
        return total

    def process_stored(self, rows: Sequence[StoredRow]) -> list[M.Incoming]:
        """Decrypt (batch), verify, dedupe and apply stored namespace-0 messages in sent order."""
        return self.apply_unseen([r for r in rows if not self.db.is_seen(r[0])])

    def apply_unseen(self, rows: Sequence[StoredRow]) -> list[M.Incoming]:
        """:meth:`process_stored` for rows already known to be unseen."""
        opened = M.open_many(self.identity, rows)
        good = sorted(
            (o for o in opened if isinstance(o, M.Incoming)), key=lambda i: (i.sent_ms, i.hash)
        )
        for o in opened:
            if isinstance(o, M.Undecryptable):
                log.debug("dropping undecryptable message %s: %s", o.hash, o.reason)
        # (what this writes comes from the swarm: a power loss that undoes it, cursor
        # included, makes the next poll fetch and apply it again)
        with self.db.tx(refetchable=True):
            self.db.mark_seen([r[0] for r in rows])
            events = [ev for inc in good for ev in self.handle(inc)]
            self._read_elsewhere({inc.sender for inc in good if inc.sender != self.me})
        for ev in events:
            self.hub.emit(ev)
        return good

    def _read_elsewhere(self, conversations: set[str]) -> None:
        """Messages just stored that another device of ours had read already (its read mark
        in our synced conversation info, applied before them: a restored device's first
        poll fetches the configs first) are read here too."""
        if not conversations:
            return
        reads = self.config.read_marks()
        for conv in conversations & reads.keys():
            self.db.mark_read_until(conv, reads[conv])

    # ------------------------------------------------------------------ one message

    def handle(self, inc: M.Incoming) -> list[Event]:
        """Apply one decrypted message (inside the caller's transaction); returns its events."""
        c = inc.content
        from_me = inc.sender == self.me
        contact = None if from_me else self.db.contact(inc.sender)  # looked up once per message
        if contact and contact.blocked:
            return []
        out: list[Event] = []
        if c.HasField("dataMessage"):
            out += self._data_message(inc, c.dataMessage, contact, from_me)
        if (
            c.HasField("receiptMessage")
            and c.receiptMessage.type == pb.ReceiptMessage.READ
            and not from_me
        ):
            out.append(self._read_receipt(inc, c.receiptMessage))
        if c.HasField("typingMessage") and not from_me:
            out.append(Typing(inc.sender, c.typingMessage.action == pb.TypingMessage.STARTED))
        if c.HasField("unsendRequest"):
            out += self._unsend(inc, c.unsendRequest)
        if (
            c.HasField("messageRequestResponse")
            and c.messageRequestResponse.isApproved
            and not from_me
        ):
            out.append(self._request_accepted(inc, c.messageRequestResponse))
            if changed := self.config.saw_profile(inc.sender, c.messageRequestResponse):
                out.append(changed)
        return out

    def _data_message(
        self, inc: M.Incoming, dm: Any, contact: Contact | None, from_me: bool
    ) -> list[Event]:
        out: list[Event] = []
        conv = dm.syncTarget if from_me and dm.syncTarget else inc.sender
        if dm.HasField("groupUpdateMessage"):
            if from_me or self.on_group_update is None:
                return out
            if dm.HasField("profile") and dm.profile.displayName:
                self.db.upsert_contact(inc.sender, name=dm.profile.displayName[:MAX_NAME_CHARS])
            return out + self.on_group_update(inc, dm.groupUpdateMessage)
        if not from_me and (changed := self.config.saw_profile(inc.sender, dm)):
            out.append(changed)
        if not from_me and dm.HasField("profile") and dm.profile.displayName:
            name = dm.profile.displayName[:MAX_NAME_CHARS]
            if not contact or contact.name != name:
                out.append(ProfileChanged(inc.sender, name))
            contact = self.db.upsert_contact(inc.sender, name=name)
        if dm.flags & pb.DataMessage.EXPIRATION_TIMER_UPDATE:
            exp = M.expiration_of(inc.content)
            self.db.upsert_contact(conv, exp_mode=int(exp.mode), exp_seconds=exp.seconds)
            out.append(ExpirationChanged(conv, exp, inc.sender))
            return out
        if not dm.body and not dm.attachments:
            return out
        exp = M.expiration_of(inc.content)
        expires = (
            inc.sent_ms + exp.seconds * 1000 if exp.mode == M.ExpirationMode.AFTER_SEND else None
        )
        if expires is not None and expires <= self.clock.now_ms():
            return out  # already expired
        is_request = False
        if not from_me:
            contact = contact or self.db.upsert_contact(inc.sender)
            is_request = not contact.approved
        mid = self.db.add_message(
            conversation=conv,
            author=inc.sender,
            sent_ms=inc.sent_ms,
            outgoing=from_me,
            body=dm.body,
            status="sent" if from_me else "received",
            hash=inc.hash,
            exp_mode=int(exp.mode),
            exp_seconds=exp.seconds,
            expires_at_ms=expires,
            quote=M.quote_of(dm),
        )
        if mid is not None and dm.attachments:
            pointers = dm.attachments[:MAX_ATTACHMENTS]
            self.db.add_attachments(mid, [p.SerializeToString() for p in pointers])
        if mid is not None:
            out.append(
                MessageReceived(conv, mid, inc.sender, inc.sent_ms, dm.body, from_me, is_request)
            )
        return out

    def _read_receipt(self, inc: M.Incoming, receipt: Any) -> Event:
        stamps = tuple(int(t) for t in receipt.timestamp if t <= M.MAX_TIMESTAMP_MS)
        for t in stamps:
            m = self.db.find_message(inc.sender, self.me, t)
            if m is None:
                continue
            fields: dict[str, Any] = {"status": "read", "read_ms": inc.sent_ms}
            if m.exp_mode == M.ExpirationMode.AFTER_READ:
                fields["expires_at_ms"] = inc.sent_ms + m.exp_seconds * 1000
            self.db.update_message(m.id, **fields)
        return MessageRead(inc.sender, stamps)

    def _unsend(self, inc: M.Incoming, u: Any) -> list[Event]:
        if u.author != inc.sender or u.timestamp > M.MAX_TIMESTAMP_MS:  # only the author may unsend
            return []
        out: list[Event] = []
        for m in self.db.messages_by(u.author, u.timestamp):
            self.db.delete_message(m.id)
            out.append(MessageDeleted(m.conversation, m.id, "unsend"))
        return out

    def _request_accepted(self, inc: M.Incoming, resp: Any) -> Event:
        fields: dict[str, Any] = {"approved_me": 1}
        if resp.profile.displayName:
            fields["name"] = resp.profile.displayName[:MAX_NAME_CHARS]
        self.db.upsert_contact(inc.sender, **fields)
        return RequestAccepted(inc.sender)
