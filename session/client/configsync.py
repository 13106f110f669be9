"""Config sync of one client: pushing our profile and contacts to our own swarm and applying
what our other devices pushed (the wire format is :mod:`session.client.sync`)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

from session.client import messages as M
from session.client import sync as S
from session.client.db import Database
from session.client.events import ContactsSynced, EventHub, ProfileChanged
from session.client.network import NetworkClock
from session.client.outbox import Outbox
from session.errors import SessionError
from session.identity import Identity

log = logging.getLogger("session.client")

#: A stored row of the own swarm: (hash, base64 data, expiry ms).
StoredRow = tuple[str, str, int]


class ConfigSync:
    """Full-snapshot config pushes (highest seqno wins) for the profile and contacts."""

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

    def _seqno(self, ns: int) -> int:
        return int(self.db.get(f"config_seqno_{ns}", 0))

    def push(self, ns: int, data: dict[str, Any]) -> None:
        """Queue a new snapshot of namespace ``ns`` (call in the transaction that changed it)."""
        seqno = self._seqno(ns) + 1
        self.db.put(f"config_seqno_{ns}", seqno)
        raw = S.encode_config(ns, seqno, data, self.seed32)
        self.outbox.enqueue(
            kind="config",
            dest=self.identity.session_id,
            namespace=ns,
            data=base64.b64encode(raw).decode(),
            timestamp_ms=self.clock.now_ms(),
            ttl_ms=M.TTL_CONFIG_MS,
        )

    def push_profile(self, name: str) -> None:
        self.push(S.NS_USER_PROFILE, S.profile_data(name))

    def push_contacts(self) -> None:
        self.push(S.NS_CONTACTS, S.contacts_data([c.to_dict() for c in self.db.contacts()]))

    def apply(self, rows: Sequence[StoredRow], ns: int) -> None:
        """Apply the newest decodable snapshot among ``rows`` if it is newer than ours."""
        best: S.ConfigMessage | None = None
        for _h, data, _exp in rows:
            try:
                msg = S.decode_config(ns, base64.b64decode(data), self.seed32, self.identity)
            except (SessionError, ValueError) as e:
                log.debug("undecodable config message: %s", e)
                continue
            if best is None or msg.seqno > best.seqno:
                best = msg
        if best is None or best.seqno <= self._seqno(ns):
            return
        with self.db.tx():
            self.db.put(f"config_seqno_{ns}", best.seqno)
            if ns == S.NS_USER_PROFILE:
                name = best.data.get(b"n")
                if isinstance(name, bytes) and name:
                    self.db.put_secret("display_name", name.decode(errors="replace"))
                    self.hub.emit(
                        ProfileChanged(self.identity.session_id, name.decode(errors="replace"))
                    )
            elif ns == S.NS_CONTACTS:
                entries = S.parse_contacts(best.data)
                for entry in entries:
                    sid = entry.pop("session_id")
                    if sid != self.identity.session_id:
                        self.db.upsert_contact(sid, **entry)
                self.hub.emit(ContactsSynced(len(entries)))
