"""The embeddable async client.

::

    async with Client.open(profile_dir, "path/to/nodes.json") as c:
        await c.send(session_id, "hi")
        async for event in c.events():
            ...

One :class:`Client` drives one identity of a profile directory (several identities live side
by side, see :class:`~session.client.identity_store.IdentityStore`). Background tasks: the
outbox sender, the swarm poller and the disappearing-message sweeper. Every state change is in
the identity's SQLite database first, so a client can be closed and reopened at any point.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from session.client import messages as M
from session.client import sync as S
from session.client.db import Database, Sealer, derive_db_key
from session.client.events import (
    ContactsSynced,
    Event,
    EventHub,
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
from session.client.identity_store import IdentityStore, ed25519_seed32
from session.client.network import (
    REFRESH_SOURCES,
    NetworkClock,
    NodeDirectory,
    fetch_registry,
    load_nodes_json,
)
from session.client.outbox import Outbox, OutboxEntry
from session.client.paths import NotEnoughNodes, OnionPath, PathManager
from session.client.poller import Poller
from session.client.transport import OnionTransport, SwarmRPC
from session.errors import InvalidInput, NetworkError, SessionError
from session.proto import session_pb2 as pb
from session.proto.snodes import ServiceNode

log = logging.getLogger("session.client")

NetworkSource = str | Path | Sequence[ServiceNode] | None


class Client:
    """A Session client for one identity. Create it with :meth:`open` and use it as an async
    context manager (or call :meth:`start` / :meth:`close`)."""

    def __init__(
        self,
        profile_dir: str | Path,
        network: NetworkSource = None,
        *,
        identity: str | None = None,
        mnemonic: str | None = None,
        create: bool = True,
        clock: Callable[[], float] | None = None,
        poll_interval: float = 1.0,
        background: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.store = IdentityStore(profile_dir)
        if mnemonic is not None:
            ident = self.store.restore(mnemonic)
            identity = ident.session_id
        elif identity is None and self.store.current is None:
            if not create:
                raise InvalidInput(f"{profile_dir} has no identity (create=False)")
            identity = self.store.create().session_id
        self.identity = self.store.load(identity)
        self.session_id: str = self.identity.session_id
        self._seed32 = ed25519_seed32(self.identity)
        self.db = Database(self.store.dir_of(self.session_id) / "state.db", Sealer(derive_db_key(self._seed32)))
        self.outbox = Outbox(self.db)
        self.clock = NetworkClock(clock) if clock is not None else NetworkClock()
        self.network_source = network
        self.directory = NodeDirectory(
            [ServiceNode.from_json(e) for e in self.db.load_nodes()], int(self.db.get("nodes_ms", 0))
        )
        self.paths = PathManager(
            self.directory.nodes, guards=self.db.load_guards(), paths=self.db.load_paths(), rng=rng
        )
        self.transport = OnionTransport(self.paths, self.clock)
        self.rpc = SwarmRPC(self.transport, self.directory, self.clock)
        self.poller = Poller(self.rpc, self.db, self.identity)
        self.hub = EventHub()
        self.poll_interval = poll_interval
        self.background = background
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox_wake = asyncio.Event()
        self._last_sent_ms = 0
        self._closed = False
        self.online = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, profile_dir: str | Path, network: NetworkSource = None, **kw: Any) -> Client:
        """Open (creating if needed) the current identity of ``profile_dir``.

        ``network``: a devnet/registry ``nodes.json`` path, a registry URL (``https://…``), a
        list of :class:`ServiceNode`, or None to use only the cached node list. Keywords:
        ``identity`` (Session ID to use), ``mnemonic`` (restore this phrase), ``create``,
        ``clock`` (local clock function, seconds), ``poll_interval``, ``background``, ``rng``
        (path selection randomness, for tests)."""
        return cls(profile_dir, network, **kw)

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Load/refresh the node list and start the background tasks."""
        await self._bootstrap()
        if self.background:
            self._tasks = [
                asyncio.create_task(self._outbox_loop(), name="session-outbox"),
                asyncio.create_task(self._poll_loop(), name="session-poller"),
                asyncio.create_task(self._expiry_loop(), name="session-expiry"),
            ]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._save_paths()
        await self.transport.close()
        self.hub.close()
        self.db.close()

    def events(self) -> AsyncIterator[Event]:
        """Stream of :mod:`session.client.events` from now on (one iterator per consumer)."""
        return self.hub.stream()

    def on_request(self, observer: Callable[[ServiceNode, str, Mapping[str, Any], OnionPath], None]) -> None:
        """Call ``observer(destination, method, params, path)`` before every onion request
        (tracing, e.g. the demo's route printout)."""
        self.transport.observers.append(observer)

    @property
    def failed_nodes(self) -> frozenset[str]:
        """Ed25519 keys (hex) of nodes that kept failing and are left out of new paths."""
        return frozenset(self.paths.bad)

    def delivery_error(self, message_id: int) -> str | None:
        """Why delivering message ``message_id`` failed so far (None if no attempt failed)."""
        return self.outbox.last_error(message_id)

    # ------------------------------------------------------------------ nodes

    async def _load_source(self) -> list[ServiceNode]:
        src = self.network_source
        if src is None:
            return []
        if isinstance(src, (list, tuple)):
            return list(src)
        s = str(src)
        if s.startswith(("http://", "https://")):
            return await fetch_registry(s)
        return load_nodes_json(s)

    def _set_nodes(self, nodes: list[ServiceNode]) -> None:
        now = self.clock.local_ms()
        self.directory.replace(nodes, now)
        self.paths.update_pool(self.directory.nodes)
        self.db.save_nodes([n.to_json() for n in nodes])

    async def _bootstrap(self) -> None:
        if len(self.directory.nodes) == 0 or self.network_source is not None:
            try:
                nodes = await self._load_source()
            except (SessionError, OSError, Exception) as e:  # noqa: BLE001 - offline start is fine
                log.warning("bootstrap failed: %s", e)
                nodes = []
            if nodes:
                self._set_nodes(nodes)

    async def refresh_nodes(self) -> int:
        """Refresh the node list from up to ``REFRESH_SOURCES`` (3) random nodes (keeping the
        nodes all of them list); falls back to the bootstrap source. Returns the new node count."""
        pool = list(self.directory.nodes)
        random.shuffle(pool)
        answers: list[list[ServiceNode]] = []
        for node in pool[:REFRESH_SOURCES]:
            try:
                answers.append(await self.rpc.service_nodes(node))
            except (SessionError, NotEnoughNodes):
                continue
        nodes = NodeDirectory.intersect(answers) if answers else []
        if len(nodes) < 3:
            nodes = await self._load_source()
        if nodes:
            self._set_nodes(nodes)
        return len(self.directory.nodes)

    def _save_paths(self) -> None:
        guards, paths = self.paths.snapshot()
        with contextlib.suppress(Exception):
            self.db.save_guards(guards)
            self.db.save_paths(paths)

    # ------------------------------------------------------------------ settings / profile

    @property
    def display_name(self) -> str | None:
        return self.db.get_secret("display_name")

    @property
    def read_receipts(self) -> bool:
        return bool(self.db.get("read_receipts", True))

    @read_receipts.setter
    def read_receipts(self, on: bool) -> None:
        self.db.put("read_receipts", bool(on))

    @property
    def typing_indicators(self) -> bool:
        return bool(self.db.get("typing_indicators", True))

    @typing_indicators.setter
    def typing_indicators(self, on: bool) -> None:
        self.db.put("typing_indicators", bool(on))

    async def set_display_name(self, name: str) -> None:
        """Set our display name (sent with messages; synced to our other devices)."""
        name = M.check_display_name(name)
        with self.db.tx():
            self.db.put_secret("display_name", name)
            self._push_config(S.NS_USER_PROFILE, S.profile_data(name))
        self._outbox_wake.set()

    # ------------------------------------------------------------------ sending

    def _check_peer(self, session_id: str) -> str:
        from session.identity import parse_session_id

        parse_session_id(session_id)
        if not session_id.startswith("05"):
            raise InvalidInput("1:1 messages go to 05-prefixed Session IDs")
        return session_id

    def _next_sent_ms(self) -> int:
        t = max(self.clock.now_ms(), self._last_sent_ms + 1)
        self._last_sent_ms = t
        return t

    def _enqueue(self, kind: str, dest: str, content: pb.Content, sent_ms: int, ttl_ms: int,
                 message_id: int | None = None) -> None:
        data = M.seal(self.identity, dest, content, sent_ms)
        self.outbox.enqueue(kind=kind, dest=dest, namespace=0, data=data, timestamp_ms=sent_ms,
                            ttl_ms=ttl_ms, message_id=message_id)

    async def _ensure_clock(self) -> None:
        """Learn the network time before stamping a message (best effort; offline is fine)."""
        if self.clock.synced or not self.directory.nodes:
            return
        node = random.choice(list(self.directory.nodes))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.rpc.sync_clock(node), 5)

    async def send(self, to: str, text: str, *, expiration: M.Expiration | None = None) -> int:
        """Queue a text message to ``to``; returns its local message id. The message is
        encrypted and committed at once and delivered by the outbox (also after a restart)."""
        self._check_peer(to)
        await self._ensure_clock()
        contact = self.db.contact(to)
        if contact and contact["blocked"]:
            raise InvalidInput("this contact is blocked: unblock it first")
        exp = expiration if expiration is not None else (
            M.Expiration(M.ExpirationMode(contact["exp_mode"]), contact["exp_seconds"])
            if contact and contact["exp_mode"] else M.OFF
        )
        sent_ms = self._next_sent_ms()
        name = self.display_name
        content = M.text(text, sent_ms=sent_ms, display_name=name, expiration=exp)
        expires_at = sent_ms + exp.seconds * 1000 if exp.mode == M.ExpirationMode.AFTER_SEND else None
        with self.db.tx():
            contact_changed = not contact or not contact["approved"]
            self.db.upsert_contact(to, approved=1)  # writing (or replying) approves the contact
            mid = self.db.add_message(conversation=to, author=self.session_id, sent_ms=sent_ms,
                                      outgoing=True, body=text, status="pending",
                                      exp_mode=int(exp.mode), exp_seconds=exp.seconds,
                                      expires_at_ms=expires_at)
            assert mid is not None
            self._enqueue("message", to, content, sent_ms, exp.ttl_ms(), mid)
            if to != self.session_id:
                sync = M.text(text, sent_ms=sent_ms, display_name=name, expiration=exp, sync_target=to)
                self._enqueue("sync", self.session_id, sync, sent_ms, exp.ttl_ms(), mid)
            if contact_changed:
                self._push_contacts()
        self._outbox_wake.set()
        return mid

    async def send_typing(self, to: str, started: bool = True) -> None:
        """Send a typing indicator (20 s TTL); no-op when typing indicators are off."""
        self._check_peer(to)
        if not self.typing_indicators:
            return
        sent_ms = self._next_sent_ms()
        with self.db.tx():
            self._enqueue("typing", to, M.typing(started, sent_ms=sent_ms), sent_ms, M.TTL_TYPING_MS)
        self._outbox_wake.set()

    async def mark_read(self, conversation: str) -> list[int]:
        """Mark every received message of ``conversation`` read. Sends a read receipt (if
        enabled and the contact is accepted) and starts delete-after-read timers. Returns the
        sent timestamps marked."""
        now = self.clock.now_ms()
        rows = [m for m in self.db.messages(conversation) if not m["outgoing"] and m["status"] == "received"]
        if not rows:
            return []
        contact = self.db.contact(conversation)
        dar_hashes: dict[int, list[str]] = {}
        with self.db.tx():
            for m in rows:
                fields: dict[str, Any] = {"status": "read", "read_ms": now}
                if m["exp_mode"] == M.ExpirationMode.AFTER_READ:
                    exp_at = now + m["exp_seconds"] * 1000
                    fields["expires_at_ms"] = exp_at
                    if m["hash"]:
                        dar_hashes.setdefault(exp_at, []).append(m["hash"])
                self.db.update_message(m["id"], **fields)
            ts = [m["sent_ms"] for m in rows]
            if self.read_receipts and contact and contact["approved"] and not contact["blocked"]:
                sent_ms = self._next_sent_ms()
                self._enqueue("receipt", conversation, M.read_receipt(ts, sent_ms=sent_ms), sent_ms,
                              M.TTL_CONTENT_MS)
        self._outbox_wake.set()
        for exp_at, hashes in dar_hashes.items():
            with contextlib.suppress(SessionError, NotEnoughNodes):
                await self.rpc.expire(self.identity, hashes, exp_at, shorten=True)
        return ts

    async def set_disappearing(self, conversation: str, expiration: M.Expiration) -> None:
        """Set a conversation's disappearing-message mode and tell the peer (and our devices)."""
        self._check_peer(conversation)
        sent_ms = self._next_sent_ms()
        with self.db.tx():
            self.db.upsert_contact(conversation, exp_mode=int(expiration.mode), exp_seconds=expiration.seconds)
            if conversation != self.session_id:
                self._enqueue("control", conversation,
                              M.expiration_update(sent_ms=sent_ms, expiration=expiration), sent_ms, M.TTL_CONTENT_MS)
            self._enqueue("sync", self.session_id,
                          M.expiration_update(sent_ms=sent_ms, expiration=expiration, sync_target=conversation),
                          sent_ms, M.TTL_CONTENT_MS)
            self._push_contacts()
        self._outbox_wake.set()

    async def unsend(self, message_id: int) -> None:
        """Delete one of our messages for everyone: tell the peer and our devices, delete our
        stored copies from the swarm (best effort) and locally."""
        m = self.db.message(message_id)
        if m is None or not m["outgoing"]:
            raise InvalidInput("only messages we sent can be unsent")
        sent_ms = self._next_sent_ms()
        req = M.unsend(m["sent_ms"], self.session_id, sent_ms=sent_ms)
        own_hashes = [h for (state, h) in self.outbox.entries_for_message(message_id) if h]
        with self.db.tx():
            if m["conversation"] != self.session_id:
                self._enqueue("control", m["conversation"], req, sent_ms, M.TTL_CONTENT_MS)
            self._enqueue("control", self.session_id, req, sent_ms, M.TTL_CONTENT_MS)
            self.db.delete_message(message_id)
        self._outbox_wake.set()
        self.hub.emit(MessageDeleted(m["conversation"], message_id, "unsend"))
        if own_hashes:
            with contextlib.suppress(SessionError, NotEnoughNodes):
                await self.rpc.delete(self.identity, own_hashes)

    async def accept_request(self, session_id: str) -> None:
        """Accept a message request: the sender becomes a contact and is told so."""
        self._check_peer(session_id)
        sent_ms = self._next_sent_ms()
        with self.db.tx():
            self.db.upsert_contact(session_id, approved=1)
            self._enqueue("control", session_id,
                          M.request_response(sent_ms=sent_ms, display_name=self.display_name),
                          sent_ms, M.TTL_CONTENT_MS)
            self._push_contacts()
        self._outbox_wake.set()

    async def decline_request(self, session_id: str) -> None:
        """Drop a message request and its messages (the sender is not told)."""
        with self.db.tx():
            for m in self.db.messages(session_id):
                self.db.delete_message(m["id"])
            self.db.conn.execute("DELETE FROM contacts WHERE session_id=? AND approved=0", (session_id,))

    async def block(self, session_id: str) -> None:
        """Block ``session_id``: its messages are dropped on arrival."""
        self._check_peer(session_id)
        with self.db.tx():
            self.db.upsert_contact(session_id, blocked=1)
            self._push_contacts()
        self._outbox_wake.set()

    async def unblock(self, session_id: str) -> None:
        with self.db.tx():
            self.db.upsert_contact(session_id, blocked=0)
            self._push_contacts()
        self._outbox_wake.set()

    # ------------------------------------------------------------------ reading state

    def conversations(self) -> list[dict[str, Any]]:
        """Accepted conversations (with last message time, count, unread count)."""
        out = []
        for c in self.db.conversations():
            contact = self.db.contact(c["conversation"])
            if c["conversation"] == self.session_id or (contact and contact["approved"] and not contact["blocked"]):
                out.append(c)
        return out

    def requests(self) -> list[dict[str, Any]]:
        """Message requests: senders we have not accepted (nor blocked), with their messages."""
        return [
            {**c, "messages": self.db.messages(c["session_id"])}
            for c in self.db.contacts()
            if not c["approved"] and not c["blocked"] and self.db.messages(c["session_id"], 1)
        ]

    def messages(self, conversation: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Messages of a conversation, oldest first (ordered by sent time)."""
        return self.db.messages(conversation, limit)

    def contacts(self) -> list[dict[str, Any]]:
        return self.db.contacts()

    # ------------------------------------------------------------------ config sync

    def _push_config(self, ns: int, data: dict[str, Any]) -> None:
        seqno = int(self.db.get(f"config_seqno_{ns}", 0)) + 1
        self.db.put(f"config_seqno_{ns}", seqno)
        raw = S.encode_config(ns, seqno, data, self._seed32)
        now = self.clock.now_ms()
        self.outbox.enqueue(kind="config", dest=self.session_id, namespace=ns,
                            data=base64.b64encode(raw).decode(), timestamp_ms=now, ttl_ms=M.TTL_CONFIG_MS)

    def _push_contacts(self) -> None:
        self._push_config(S.NS_CONTACTS, S.contacts_data(self.db.contacts()))

    def _apply_config(self, rows: list[tuple[str, str, int]], ns: int) -> None:
        best: S.ConfigMessage | None = None
        for _h, data, _exp in rows:
            try:
                msg = S.decode_config(ns, base64.b64decode(data), self._seed32, self.identity)
            except (SessionError, ValueError) as e:
                log.debug("undecodable config message: %s", e)
                continue
            if best is None or msg.seqno > best.seqno:
                best = msg
        if best is None or best.seqno <= int(self.db.get(f"config_seqno_{ns}", 0)):
            return
        with self.db.tx():
            self.db.put(f"config_seqno_{ns}", best.seqno)
            if ns == S.NS_USER_PROFILE:
                name = best.data.get(b"n")
                if isinstance(name, bytes) and name:
                    self.db.put_secret("display_name", name.decode(errors="replace"))
                    self.hub.emit(ProfileChanged(self.session_id, name.decode(errors="replace")))
            elif ns == S.NS_CONTACTS:
                entries = S.parse_contacts(best.data)
                for entry in entries:
                    sid = entry.pop("session_id")
                    if sid != self.session_id:
                        self.db.upsert_contact(sid, **entry)
                self.hub.emit(ContactsSynced(len(entries)))

    # ------------------------------------------------------------------ receiving

    async def poll_once(self) -> int:
        """Retrieve and process new messages of namespaces 0, 2, 3; returns how many new
        stored messages were seen."""
        total = 0
        for ns in (S.NS_USER_PROFILE, S.NS_CONTACTS, 0):
            rows = await self.poller.poll(ns)
            if not rows:
                continue
            total += len(rows)
            if ns == 0:
                self._apply_stored(rows)  # the poller returned only unseen hashes
            else:
                self._apply_config(rows, ns)
                self.db.mark_seen([r[0] for r in rows])
        self.online = True
        return total

    def process_stored(self, rows: Sequence[tuple[str, str, int]]) -> list[M.Incoming]:
        """Decrypt (batch), verify, dedupe and apply stored namespace-0 messages in sent order."""
        return self._apply_stored([r for r in rows if not self.db.is_seen(r[0])])

    def _apply_stored(self, rows: Sequence[tuple[str, str, int]]) -> list[M.Incoming]:
        """:meth:`process_stored` for rows already known to be unseen."""
        opened = M.open_many(self.identity, rows)
        good = sorted((o for o in opened if isinstance(o, M.Incoming)), key=lambda i: (i.sent_ms, i.hash))
        for o in opened:
            if isinstance(o, M.Undecryptable):
                log.debug("dropping undecryptable message %s: %s", o.hash, o.reason)
        with self.db.tx():
            self.db.mark_seen([r[0] for r in rows])
            events = [ev for inc in good for ev in self._handle(inc)]
        for ev in events:
            self.hub.emit(ev)
        return good

    def _handle(self, inc: M.Incoming) -> list[Event]:
        c = inc.content
        me = self.session_id
        out: list[Event] = []
        from_me = inc.sender == me
        contact = None if from_me else self.db.contact(inc.sender)  # looked up once per message
        if contact and contact["blocked"]:
            return []
        if c.HasField("dataMessage"):
            dm = c.dataMessage
            conv = dm.syncTarget if from_me and dm.syncTarget else inc.sender
            if not from_me and dm.HasField("profile") and dm.profile.displayName:
                name = dm.profile.displayName[:100]
                if not contact or contact["name"] != name:
                    out.append(ProfileChanged(inc.sender, name))
                contact = self.db.upsert_contact(inc.sender, name=name)
            if dm.flags & pb.DataMessage.EXPIRATION_TIMER_UPDATE:
                exp = M.expiration_of(c)
                self.db.upsert_contact(conv, exp_mode=int(exp.mode), exp_seconds=exp.seconds)
                out.append(ExpirationChanged(conv, exp, inc.sender))
            elif dm.body:
                exp = M.expiration_of(c)
                expires = inc.sent_ms + exp.seconds * 1000 if exp.mode == M.ExpirationMode.AFTER_SEND else None
                if expires is not None and expires <= self.clock.now_ms():
                    return out  # already expired
                is_request = False
                if not from_me:
                    contact = contact or self.db.upsert_contact(inc.sender)
                    is_request = not contact["approved"]
                mid = self.db.add_message(
                    conversation=conv, author=inc.sender, sent_ms=inc.sent_ms, outgoing=from_me,
                    body=dm.body, status="sent" if from_me else "received", hash=inc.hash,
                    exp_mode=int(exp.mode), exp_seconds=exp.seconds, expires_at_ms=expires,
                )
                if mid is not None:
                    out.append(MessageReceived(conv, mid, inc.sender, inc.sent_ms, dm.body, from_me, is_request))
        if c.HasField("receiptMessage") and c.receiptMessage.type == pb.ReceiptMessage.READ and not from_me:
            stamps = tuple(int(t) for t in c.receiptMessage.timestamp)
            for t in stamps:
                m = self.db.find_message(inc.sender, me, t)
                if m is not None:
                    fields: dict[str, Any] = {"status": "read", "read_ms": inc.sent_ms}
                    if m["exp_mode"] == M.ExpirationMode.AFTER_READ:
                        fields["expires_at_ms"] = inc.sent_ms + m["exp_seconds"] * 1000
                    self.db.update_message(m["id"], **fields)
            out.append(MessageRead(inc.sender, stamps))
        if c.HasField("typingMessage") and not from_me:
            out.append(Typing(inc.sender, c.typingMessage.action == pb.TypingMessage.STARTED))
        if c.HasField("unsendRequest"):
            u = c.unsendRequest
            if u.author == inc.sender:  # only the author may unsend
                rows = self.db.conn.execute(
                    "SELECT id, conversation FROM messages WHERE author=? AND sent_ms=?", (u.author, u.timestamp)
                ).fetchall()
                for r in rows:
                    self.db.delete_message(r[0])
                    out.append(MessageDeleted(r[1], r[0], "unsend"))
        if c.HasField("messageRequestResponse") and c.messageRequestResponse.isApproved and not from_me:
            fields = {"approved_me": 1}
            if c.messageRequestResponse.profile.displayName:
                fields["name"] = c.messageRequestResponse.profile.displayName[:100]
            self.db.upsert_contact(inc.sender, **fields)
            out.append(RequestAccepted(inc.sender))
        return out

    # ------------------------------------------------------------------ background loops

    async def flush_outbox(self) -> int:
        """Try every due outbox entry once; returns how many were delivered."""
        delivered = 0
        for e in self.outbox.due(self.clock.local_ms() + 10**12):  # ignore backoff
            delivered += await self._deliver(e)
        return delivered

    async def _deliver(self, e: OutboxEntry) -> int:
        try:
            h = await self.rpc.store(e.dest, e.namespace, e.data, e.expiry_ms,
                                     identity=self.identity if e.namespace % 10 else None)
        except (SessionError, NotEnoughNodes) as err:
            self.online = not isinstance(err, (NetworkError, NotEnoughNodes))
            if not self.outbox.retry_later(e, self.clock.local_ms(), str(err)) and e.kind == "message" and e.message_id:
                m = self.db.message(e.message_id)
                self.db.update_message(e.message_id, status="failed")
                if m:
                    self.hub.emit(MessageFailed(m["conversation"], e.message_id, str(err)))
            return 0
        self.online = True
        with self.db.tx():
            self.outbox.done(e.id, h)
            if h and e.dest == self.session_id:
                self.db.mark_seen([h])  # our own sync copy: nothing to learn from it
            if e.kind == "message" and e.message_id:
                m = self.db.message(e.message_id)
                if m and m["status"] == "pending":
                    self.db.update_message(e.message_id, status="sent", hash=h)
                    self.hub.emit(MessageSent(m["conversation"], e.message_id, m["sent_ms"], h))
        return 1

    async def _outbox_loop(self) -> None:
        while True:
            try:
                due = self.outbox.due(self.clock.local_ms())
                for e in due:
                    await self._deliver(e)
                nxt = self.outbox.next_due_ms()
                wait = 1.0 if nxt is None else max(0.05, min(1.0, (nxt - self.clock.local_ms()) / 1000))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the loop alive, report
                log.exception("outbox loop error")
                wait = 1.0
            self._outbox_wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._outbox_wake.wait(), wait)

    async def _poll_loop(self) -> None:
        failures = 0
        while True:
            try:
                if self.directory.stale(self.clock.local_ms()) and self.network_source is not None and failures > 2:
                    await self.refresh_nodes()
                await self.poll_once()
                if failures:
                    self.outbox.wake_all()  # we are back online
                    self._outbox_wake.set()
                failures = 0
            except asyncio.CancelledError:
                raise
            except (SessionError, NotEnoughNodes) as e:
                failures += 1
                self.online = False
                log.debug("poll failed: %s", e)
                if failures % 3 == 0 and self.network_source is not None:
                    with contextlib.suppress(Exception):
                        await self.refresh_nodes()
            except Exception:  # noqa: BLE001
                failures += 1
                log.exception("poll loop error")
            self._save_paths()
            await asyncio.sleep(self.poll_interval * (1 if not failures else min(5, failures)))

    def sweep_expired(self) -> int:
        """Delete messages whose disappearing timer ran out; returns how many."""
        rows = self.db.expired_messages(self.clock.now_ms())
        for m in rows:
            self.db.delete_message(m["id"])
            self.hub.emit(MessageDeleted(m["conversation"], m["id"], "expired"))
        return len(rows)

    async def _expiry_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.sweep_expired()
            await asyncio.sleep(0.5)
