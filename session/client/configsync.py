"""Config sync of one client: the UserProfile (namespace 2: display name, profile picture) and
Contacts (namespace 3: contacts with their pictures) configs its devices share through its own
swarm (data layout: :mod:`session.client.sync`).

Each device keeps its current config message per namespace in its database. A local change
makes the next message (:meth:`~session.groups.config.ConfigMessage.increment`: next seqno,
the change as its diff, the previous diffs as lagged diffs) and pushes it. On poll, every
config message seen is merged with our own by :func:`session.groups.config.merge`
(libsession's rules): two devices that changed different things "at the same moment" (both
pushed the same seqno) both keep both changes; when the merge combined several messages, the
merged result is pushed so every device converges on it, as libsession clients do.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence

from session.client import messages as M
from session.client import sync as S
from session.client.db import Database
from session.client.events import (
    AvatarChanged,
    ContactsSynced,
    EventHub,
    ProfileChanged,
    ReadElsewhere,
)
from session.client.network import NetworkClock
from session.client.outbox import Outbox
from session.errors import SessionError
from session.groups.config import ConfigData, ConfigMessage, ConfigParseError, merge, seal
from session.identity import Identity
from session.proto import session_pb2 as pb

log = logging.getLogger("session.client")

#: A stored row of the own swarm: (hash, base64 data, expiry ms).
StoredRow = tuple[str, str, int]


class ConfigSync:
    """The profile and contacts configs of one device: edits pushed as config messages with
    diffs, other devices' messages merged with libsession's rules."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        identity: Identity,
        seed32: bytes,
        clock: NetworkClock,
        hub: EventHub,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.identity = identity
        self.seed32 = seed32
        self.clock = clock
        self.hub = hub
        self.me = identity.session_id

    def state(self, ns: int) -> ConfigMessage:
        """Our current config message of ``ns`` (an empty one before the first; a database
        from before config messages were kept starts at the seqno it last pushed)."""
        raw = self.db.config_state(ns)
        if raw is None:
            return ConfigMessage(int(self.db.get(f"config_seqno_{ns}", 0)))
        return ConfigMessage.parse(raw)

    def _enqueue(self, ns: int, raw: bytes) -> None:
        self.db.put_config_state(ns, raw)
        sealed = seal(raw, self.seed32, S.DOMAINS[ns])
        self.outbox.enqueue(
            kind="config",
            dest=self.identity.session_id,
            namespace=ns,
            data=base64.b64encode(sealed).decode(),
            timestamp_ms=self.clock.now_ms(),
            ttl_ms=M.TTL_CONFIG_MS,
        )

    def edit(self, ns: int, change: Callable[[ConfigData], None]) -> None:
        """Apply ``change`` to the data of the next message of ``ns`` and queue that message
        (call inside the transaction that made the change); nothing is pushed when the data
        did not change."""
        nxt = self.state(ns).increment()
        change(nxt.data)
        if not nxt.diff():
            return
        self._enqueue(ns, nxt.serialize())

    def push_profile(self, name: str) -> None:
        self.edit(S.NS_USER_PROFILE, lambda data: S.set_display_name(data, name))

    def push_avatar(self, pic: S.Pic | None) -> None:
        """Queue our profile picture (or its removal) in the UserProfile config."""
        self.edit(S.NS_USER_PROFILE, lambda data: S.set_profile_pic(data, pic))

    def push_contacts(self) -> None:
        contacts = self.db.contacts()
        me = self.identity.session_id
        pics = {c.session_id: p for c in contacts if (p := self.db.avatar(c.session_id))}
        self.edit(S.NS_CONTACTS, lambda data: S.set_contacts(data, contacts, me, pics))

    def saw_profile(
        self, sender: str, dm: pb.DataMessage | pb.MessageRequestResponse
    ) -> AvatarChanged | None:
        """Record the profile picture a message from ``sender`` carries (inside the caller's
        transaction); when it is new and ``sender`` an approved contact, our Contacts config
        gets it too (so a device restored later shows it). Returns the event to emit, if any."""
        if not dm.profile.profilePicture or len(dm.profileKey) != 32 or sender == self.me:
            return None
        pic = (dm.profile.profilePicture, bytes(dm.profileKey))
        if self.db.avatar(sender) == pic:
            return None
        self.db.put_avatar(sender, pic)
        contact = self.db.contact(sender)
        if contact is not None and contact.approved:
            self.push_contacts()
        return AvatarChanged(sender, pic[0])

    def apply(self, rows: Sequence[StoredRow], ns: int) -> None:
        """Merge the config messages in ``rows`` with ours; adopt what changed and push the
        merged message when the merge combined several."""
        opened: list[bytes] = []
        for h, data, _exp in rows:
            try:
                opened.append(S.open_config(ns, base64.b64decode(data), self.seed32, self.identity))
            except (SessionError, ValueError) as e:
                log.info("config message %s dropped: %s", h[:10], e)
        if not opened:
            return
        old = self.state(ns)
        mine = [old.serialize()] if old.seqno or old.data else []

        def dropped(index: int, error: Exception) -> None:
            log.info("config message dropped: %s", error)

        try:
            result = merge([*mine, *opened], on_error=dropped)
        except ConfigParseError as e:
            log.info("config messages dropped: %s", e)
            return
        if not result.merged and mine and result.unmerged_index == 0:
            return  # ours already includes everything seen
        with self.db.tx():
            if result.merged:
                self._enqueue(ns, result.serialize())
            else:
                self.db.put_config_state(ns, result.serialize())
            self._adopt(ns, old.data, result.data)

    def read_marks(self) -> dict[str, int]:
        """How far each 1:1 conversation and group was read on any of our devices (ms), as our
        synced conversation info says."""
        return S.last_read(self.state(S.NS_CONVO_INFO).data)

    def push_read(self, conversation: str, read_ms: int) -> None:
        """Tell our other devices the 1:1 conversation or group was read up to ``read_ms``."""
        self.edit(S.NS_CONVO_INFO, lambda data: S.set_last_read(data, conversation, read_ms))

    def _adopt(self, ns: int, old: ConfigData, new: ConfigData) -> None:
        """Write into the database what changed from ``old`` to ``new`` (inside a transaction)."""
        me = self.identity.session_id
        if ns == S.NS_CONVO_INFO:
            read_before = S.last_read(old)
            for sid, read_ms in S.last_read(new).items():
                if read_before.get(sid, 0) < read_ms and self.db.mark_read_until(sid, read_ms):
                    self.hub.emit(ReadElsewhere(sid, read_ms))
            return
        if ns == S.NS_USER_PROFILE:
            name = S.display_name(new)
            if name and name != S.display_name(old):
                self.db.put_secret("display_name", name)
                self.hub.emit(ProfileChanged(me, name))
            pic = S.profile_pic(new)
            if pic != S.profile_pic(old):
                self.db.put_avatar(None, pic)
                self.db.put("avatar_extended_ms", self.clock.local_ms())  # just uploaded
                self.hub.emit(AvatarChanged(me, pic[0] if pic else None))
            return
        before, after = S.contacts_of(old), S.contacts_of(new)
        changed = 0
        for sid, fields in after.items():
            if sid != me and before.get(sid) != fields:
                self.db.upsert_contact(sid, **fields)
                changed += 1
        pics_before, pics_after = S.contact_pics(old), S.contact_pics(new)
        for sid, pic in pics_after.items():
            if sid != me and pics_before.get(sid) != pic:
                self.db.put_avatar(sid, pic)
                self.hub.emit(AvatarChanged(sid, pic[0]))
        for sid in before.keys() - after.keys():
            self.db.delete_request(sid)  # another device declined it (accepted ones stay)
            changed += 1
        if changed:
            self.hub.emit(ContactsSynced(changed))
