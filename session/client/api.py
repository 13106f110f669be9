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
import dataclasses
import hashlib
import io
import json
import logging
import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from session import attachments as A
from session import avatar as avatar_mod
from session.client import files, names
from session.client import messages as M
from session.client.attachments import check_upload_size, content_type_for, pointer, safe_filename
from session.client.community import CommunityManager
from session.client.configsync import ConfigSync, StoredRow
from session.client.db import (
    Attachment,
    Contact,
    ConversationSummary,
    Database,
    Message,
    Sealer,
    derive_db_key,
)
from session.client.events import EventHub, EventStream, MessageDeleted
from session.client.groups import GroupManager
from session.client.identity_store import IdentityStore, ed25519_seed32
from session.client.loops import COMMUNITY_POLL_INTERVAL_S, BackgroundLoops
from session.client.network import (
    REFRESH_SOURCES,
    NetworkClock,
    NodeDirectory,
    fetch_registry,
    load_nodes_json,
)
from session.client.outbox import Outbox
from session.client.paths import OnionPath, PathManager
from session.client.poller import Poller
from session.client.receive import Receiver
from session.client.sender import Connectivity, Sender
from session.client.transport import OnionTransport, SwarmRPC
from session.errors import InvalidInput, SessionError
from session.identity import parse_session_id
from session.proto import session_pb2 as pb
from session.proto.snodes import FileServer, ServiceNode, parse_file_servers

log = logging.getLogger("session.client")
#: How often our profile picture's file is extended on the file server.
AVATAR_EXTEND_EVERY_MS = 24 * 3600 * 1000

NetworkSource = str | Path | Sequence[ServiceNode] | None

#: Fewer nodes than this from a refresh means the answers disagree: use the bootstrap source.
MIN_REFRESH_NODES = 3
#: Seconds to wait for a node's time before stamping a message.
CLOCK_SYNC_TIMEOUT_S = 5.0
#: Pause between flush attempts while :meth:`Client.drain` waits (seconds).
DRAIN_RETRY_S = 0.2


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRequest:
    """A sender we have not accepted (nor blocked) and the messages they sent us."""

    session_id: str
    name: str | None
    messages: list[Message]


class Client:
    """A Session client for one identity. Create it with :meth:`open` and use it as an async
    context manager (or call :meth:`start` / :meth:`close`).

    The parts: :class:`~session.client.receive.Receiver` (polling and applying messages),
    :class:`~session.client.sender.Sender` (delivering the outbox),
    :class:`~session.client.configsync.ConfigSync` (profile and contacts on our devices),
    :class:`~session.client.loops.BackgroundLoops` (the loops repeating :meth:`poll_once`,
    :meth:`flush_outbox` and :meth:`sweep_expired`), over the identity's
    :class:`~session.client.db.Database`."""

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
        community_poll_interval: float = COMMUNITY_POLL_INTERVAL_S,
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
        #: Every random choice of the client (paths, swarm members, node-list refresh).
        self.rng = rng or random.SystemRandom()
        self.db = Database(
            self.store.dir_of(self.session_id) / "state.db", Sealer(derive_db_key(self._seed32))
        )
        self.outbox = Outbox(self.db)
        self.clock = NetworkClock(clock) if clock is not None else NetworkClock()
        self.network_source = network
        if isinstance(network, (str, Path)):
            self.remember_bootstrap(network)
        self.directory = NodeDirectory(
            [ServiceNode.from_json(e) for e in self.db.load_nodes()],
            int(self.db.get("nodes_ms", 0)),
        )
        self.paths = PathManager(
            self.directory.nodes,
            guards=self.db.load_guards(),
            paths=self.db.load_paths(),
            rng=self.rng,
        )
        self.transport = OnionTransport(self.paths, self.clock)
        self.rpc = SwarmRPC(self.transport, self.directory, self.clock, rng=self.rng)
        self.hub = EventHub()
        self.connectivity = Connectivity(self.hub)
        self.config = ConfigSync(
            self.db, self.outbox, self.identity, self._seed32, self.clock, self.hub
        )
        self.receiver = Receiver(
            self.db,
            self.identity,
            self.clock,
            self.hub,
            Poller(self.rpc, self.db, self.identity, rng=self.rng),
            self.config,
        )
        self.sender = Sender(
            self.db, self.outbox, self.rpc, self.identity, self.clock, self.hub, self.connectivity
        )
        #: Closed groups (03 IDs): create, invite, send, admin operations (see groups.py).
        self.groups = GroupManager(self)
        self.receiver.on_group_update = self.groups.on_direct
        #: Communities (SOGS rooms): join, poll, post, react, blinded DMs (see community.py).
        self.communities = CommunityManager(self)
        self.communities.on_change = self.groups.push_user_groups
        self.sender.signer_for = self._signer_for
        self.poll_interval = poll_interval
        #: Seconds between the background polls of joined communities.
        self.community_poll_interval = community_poll_interval
        self.background = background
        self.loops = BackgroundLoops(self)
        self._last_sent_ms = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, profile_dir: str | Path, network: NetworkSource = None, **kw: Any) -> Client:
        """Open (creating if needed) the current identity of ``profile_dir``.

        ``network``: a devnet/registry ``nodes.json`` path, a registry URL (``https://…``), a
        list of :class:`ServiceNode`, or None to use only the cached node list. Keywords:
        ``identity`` (Session ID to use), ``mnemonic`` (restore this phrase), ``create``,
        ``clock`` (local clock function, seconds), ``poll_interval``,
        ``community_poll_interval``, ``background``, ``rng``
        (the randomness of every choice the client makes: paths, swarm members, the nodes a
        node-list refresh asks; for deterministic tests)."""
        return cls(profile_dir, network, **kw)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Delete what disappeared while the client was closed, load/refresh the node list and
        start the background loops (unless ``background`` is False: then call
        :meth:`start_background`, or run the steps yourself)."""
        self.sweep_expired()
        await self._bootstrap()
        if self.background:
            self.start_background()

    def start_background(self) -> None:
        """Start the poll, outbox and sweep loops (if they are not running)."""
        if not self.loops.tasks:
            self.loops.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.loops.stop()
        self.save_paths()
        await self.transport.close()
        self.hub.close()
        self.db.close()

    def events(self) -> EventStream:
        """Stream of :mod:`session.client.events` from now on (one stream per consumer).
        Subscribed when called, so no event emitted afterwards is missed."""
        return EventStream(self.hub)

    def on_request(
        self, observer: Callable[[ServiceNode, str, Mapping[str, Any], OnionPath], None]
    ) -> None:
        """Call ``observer(destination, method, params, path)`` before every onion request
        (tracing, e.g. the demo's route printout)."""
        self.transport.observers.append(observer)

    @property
    def online(self) -> bool:
        """Whether the last poll or delivery reached the network."""
        return self.connectivity.online

    @property
    def failed_nodes(self) -> frozenset[str]:
        """Ed25519 keys (hex) of nodes that kept failing and are left out of new paths."""
        return frozenset(self.paths.bad)

    @property
    def onion_paths(self) -> list[list[str]]:
        """The kept onion paths, each as the Ed25519 keys (hex) of its hops, guard first."""
        return [p.ids() for p in self.paths.paths]

    @property
    def node_count(self) -> int:
        """How many nodes the client knows (0: no network known yet)."""
        return len(self.directory.nodes)

    @property
    def clock_offset_ms(self) -> int:
        """Network time minus local time (ms), as learned from the nodes' replies."""
        return self.clock.offset_ms

    def save_paths(self) -> None:
        """Persist the guards and kept paths (done by the poll loop and on close)."""
        guards, paths = self.paths.snapshot()
        try:
            self.db.save_guards(guards)
            self.db.save_paths(paths)
        except sqlite3.Error as e:  # a full disk must not stop the client; paths are rebuilt
            log.warning("could not save onion paths: %s", e)

    # ------------------------------------------------------------------ nodes

    def remember_bootstrap(self, source: str | Path) -> None:
        """Keep ``source`` (a ``nodes.json`` path or registry URL) as where to re-read the node
        list when the cached one has gone stale and the known nodes no longer answer (e.g.
        every node restarted elsewhere); a client opened later without ``network`` uses it."""
        self.db.put("bootstrap_source", str(source))

    @property
    def bootstrap_source(self) -> str | None:
        """The remembered ``nodes.json`` path or registry URL (see :meth:`remember_bootstrap`)."""
        saved = self.db.get("bootstrap_source")
        return saved if isinstance(saved, str) else None

    async def _load_source(self, *, remembered: bool = False) -> list[ServiceNode]:
        src: NetworkSource = self.network_source
        if src is None and remembered:
            src = self.bootstrap_source
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
            except SessionError as e:  # offline start is fine: the cached list is used
                log.warning("bootstrap failed: %s", e)
                nodes = []
            if nodes:
                self._set_nodes(nodes)

    async def refresh_nodes(self) -> int:
        """Refresh the node list from up to ``REFRESH_SOURCES`` (3) random known nodes (keeping
        the nodes all of them list); falls back to the bootstrap source when fewer than 3 nodes
        are agreed on (the ``network`` given at open, else the remembered
        :attr:`bootstrap_source`). Returns the new node count."""
        pool = sorted(self.directory.nodes, key=lambda n: n.pubkey_ed25519)
        self.rng.shuffle(pool)
        answers: list[list[ServiceNode]] = []
        for node in pool[:REFRESH_SOURCES]:
            try:
                answers.append(await self.rpc.service_nodes(node))
            except SessionError as e:
                log.debug("node list from %s… failed: %s", node.pubkey_ed25519[:8], e)
        nodes = NodeDirectory.intersect(answers) if answers else []
        if len(nodes) < MIN_REFRESH_NODES:
            nodes = await self._load_source(remembered=True)
        if nodes:
            self._set_nodes(nodes)
        return len(self.directory.nodes)

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

    def preference(self, key: str, default: Any = None) -> Any:
        """An application's saved setting on this device (``session tui``'s bell and desktop
        notifications): a JSON value kept in the client's database, never synced."""
        return self.db.get("pref:" + key, default)

    def set_preference(self, key: str, value: Any) -> None:
        """Save an application's setting (a JSON value) for :meth:`preference`."""
        self.db.put("pref:" + key, value)

    async def set_display_name(self, name: str) -> None:
        """Set our display name (sent with messages; synced to our other devices)."""
        name = M.check_display_name(name)
        with self.db.tx():
            self.db.put_secret("display_name", name)
            self.config.push_profile(name)
        self.loops.wake.set()

    @property
    def avatar(self) -> tuple[str, bytes] | None:
        """Our profile picture: (file URL, 32-byte profile key), or None."""
        return self.db.avatar()

    async def set_avatar(self, path: str | Path | None) -> tuple[str, bytes] | None:
        """Set our profile picture from the image at ``path`` (None removes it): resized to
        600 px, encrypted under a fresh profile key (§6.9), uploaded through an onion path;
        its URL and key go with our messages from then on and into our UserProfile config
        (``p``/``q``), so our other devices show it too. Returns (URL, key) or None."""
        ref: tuple[str, bytes] | None = None
        if path is not None:
            pic = avatar_mod.prepare(path)
            key = avatar_mod.new_profile_key()
            blob = avatar_mod.encrypt(pic.data, key)
            servers = self.file_servers()
            up = await files.upload(
                self.transport, blob, server=servers[0] if servers else files.DEFAULT_FILE_SERVER
            )
            ref = (up.url, key)
        with self.db.tx():
            self.db.put_avatar(None, ref)
            self.db.put("avatar_extended_ms", self.clock.local_ms())
            self.config.push_avatar(ref)
        self.loops.wake.set()
        return ref

    async def keep_avatar_alive(self, *, force: bool = False) -> files.RemoteFile | None:
        """Extend our profile picture's file on the server (§6.9: clients keep it alive while
        in use) when the last upload or extension is over a day old, or ``force``; returns
        the server's new expiry info, or None when nothing was due."""
        ref = self.avatar
        if ref is None:
            return None
        now = self.clock.local_ms()
        last = self.db.get("avatar_extended_ms")
        if not force and isinstance(last, int) and now - last < AVATAR_EXTEND_EVERY_MS:
            return None
        info = await files.extend(self.transport, ref[0], known=self.file_servers())
        self.db.put("avatar_extended_ms", now)
        return info

    def contact_avatar_ref(self, session_id: str) -> tuple[str, bytes] | None:
        """The profile picture (URL, key) a contact last sent us or our other devices synced
        (our own when ``session_id`` is ours), or None."""
        return self.avatar if session_id == self.session_id else self.db.avatar(session_id)

    async def contact_avatar(self, session_id: str) -> Path | None:
        """A contact's (or our own) profile picture as a local file (downloaded through an
        onion path, decrypted, cached under the profile directory; fetched again when it
        changed)."""
        ref = self.contact_avatar_ref(session_id)
        if ref is None:
            return None
        url, key = ref
        cache = self.store.dir_of(self.session_id) / "avatars"
        cache.mkdir(mode=0o700, exist_ok=True)
        target = cache / f"{session_id}-{hashlib.sha256(url.encode() + key).hexdigest()[:16]}"
        if not target.exists():
            blob = await files.download(self.transport, url, known=self.file_servers())
            data = avatar_mod.decrypt(blob, key)
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        return target

    # ------------------------------------------------------------------ sending

    def _check_peer(self, session_id: str) -> str:
        parse_session_id(session_id)
        if not session_id.startswith("05"):
            raise InvalidInput("1:1 messages go to 05-prefixed Session IDs")
        return session_id

    def _next_sent_ms(self) -> int:
        t = max(self.clock.now_ms(), self._last_sent_ms + 1)
        self._last_sent_ms = t
        return t

    def _enqueue(
        self,
        kind: str,
        dest: str,
        content: pb.Content,
        sent_ms: int,
        ttl_ms: int,
        message_id: int | None = None,
    ) -> None:
        data = M.seal(self.identity, dest, content, sent_ms)
        self.outbox.enqueue(
            kind=kind,
            dest=dest,
            namespace=0,
            data=data,
            timestamp_ms=sent_ms,
            ttl_ms=ttl_ms,
            message_id=message_id,
        )

    def _signer_for(self, dest: str) -> Any:
        """Signer of stores to ``dest``'s private namespaces: a group's, or ours."""
        return self.groups.signer_for(dest) if dest.startswith("03") else self.identity

    async def _ensure_clock(self) -> None:
        """Learn the network time before stamping a message (best effort; offline is fine)."""
        if self.clock.synced or not self.directory.nodes:
            return
        node = self.rng.choice(sorted(self.directory.nodes, key=lambda n: n.pubkey_ed25519))
        try:
            await asyncio.wait_for(self.rpc.sync_clock(node), CLOCK_SYNC_TIMEOUT_S)
        except (TimeoutError, SessionError) as e:
            log.debug("no network time yet: %s", e)

    async def send(
        self,
        to: str,
        text: str,
        *,
        expiration: M.Expiration | None = None,
        attachments: Sequence[pb.AttachmentPointer] = (),
        reply_to: Message | None = None,
    ) -> int:
        """Queue a text message to ``to``; returns its local message id. The message is
        encrypted and committed at once and delivered by the outbox (also after a restart).

        ``attachments`` are pointers to files already encrypted and uploaded (see
        :func:`session.client.attachments.pointer`); ``text`` is then their caption and may be
        empty. ``reply_to``: the message this one answers (quoted, as Session quotes: its sent
        time and author)."""
        self._check_peer(to)
        await self._ensure_clock()
        contact = self.db.contact(to)
        if contact and contact.blocked:
            raise InvalidInput("this contact is blocked: unblock it first")
        exp = (
            expiration
            if expiration is not None
            else (
                M.Expiration(M.ExpirationMode(contact.exp_mode), contact.exp_seconds)
                if contact and contact.exp_mode
                else M.OFF
            )
        )
        sent_ms = self._next_sent_ms()
        name = self.display_name
        quote = None if reply_to is None else (reply_to.sent_ms, reply_to.author)
        content = M.text(
            text,
            sent_ms=sent_ms,
            display_name=name,
            expiration=exp,
            attachments=attachments,
            avatar=self.avatar,
            quote=quote,
        )
        expires_at = (
            sent_ms + exp.seconds * 1000 if exp.mode == M.ExpirationMode.AFTER_SEND else None
        )
        with self.db.tx():
            contact_changed = not contact or not contact.approved
            self.db.upsert_contact(to, approved=1)  # writing (or replying) approves the contact
            mid = self.db.add_message(
                conversation=to,
                author=self.session_id,
                sent_ms=sent_ms,
                outgoing=True,
                body=text,
                status="pending",
                exp_mode=int(exp.mode),
                exp_seconds=exp.seconds,
                expires_at_ms=expires_at,
                quote=quote,
            )
            assert mid is not None
            if attachments:
                self.db.add_attachments(mid, [p.SerializeToString() for p in attachments])
            self._enqueue("message", to, content, sent_ms, exp.ttl_ms(), mid)
            if to != self.session_id:
                sync = M.text(
                    text,
                    sent_ms=sent_ms,
                    display_name=name,
                    expiration=exp,
                    sync_target=to,
                    attachments=attachments,
                    quote=quote,
                )
                self._enqueue("sync", self.session_id, sync, sent_ms, exp.ttl_ms(), mid)
            if contact_changed:
                self.config.push_contacts()
        self.loops.wake.set()
        return mid

    # ------------------------------------------------------------------ attachments

    def file_servers(self) -> list[FileServer]:
        """File servers this client knows besides Session's own: those its ``nodes.json``
        names (a devnet's), remembered across runs. Uploads go to the first one, else to
        Session's."""
        src = self.network_source
        if isinstance(src, (str, Path)) and not str(src).startswith(("http://", "https://")):
            try:
                doc = json.loads(Path(str(src)).read_text())
            except (OSError, ValueError):
                doc = None
            if isinstance(doc, dict):
                self.remember_file_servers(parse_file_servers(doc))
        saved = self.db.get_secret("file_servers")
        return [] if saved is None else [FileServer.from_json(e) for e in json.loads(saved)]

    def remember_file_servers(self, servers: Sequence[FileServer]) -> None:
        """Keep the file servers a node list named (the CLI passes those of ``--network``)."""
        if servers:
            self.db.put_secret("file_servers", json.dumps([fs.to_json() for fs in servers]))

    async def send_file(
        self,
        to: str,
        path: str | Path,
        *,
        caption: str = "",
        voice: bool = False,
        progress: A.Progress | None = None,
    ) -> int:
        """Encrypt and pad the file at ``path`` (§5.1-5.2), upload it through an onion path
        and send its AttachmentPointer to ``to`` (a Session ID, or a closed group's 03 ID) with
        ``caption`` as the message text; returns the local message id. A file over 10,000,000
        bytes is refused before anything is encrypted or sent. ``progress`` is called with the
        bytes encrypted so far."""
        group = to.startswith("03")
        if group:
            to = self.groups.resolve(to)
        else:
            self._check_peer(to)
        src = Path(path)
        try:
            st = src.stat()
        except OSError as e:
            raise InvalidInput(f"cannot read {src}: {e.strerror}") from None
        if not src.is_file():
            raise InvalidInput(f"{src} is not a regular file")
        check_upload_size(st.st_size)
        buf = io.BytesIO()
        try:
            sealed = A.encrypt_file(src, buf, progress=progress)
        except OSError as e:
            raise InvalidInput(f"cannot read {src}: {e.strerror}") from None
        ctype = content_type_for(src.name)
        width = height = None
        if ctype.startswith("image/"):
            # Pillow only here and in session.avatar: measured 1.8 MB of idle RSS otherwise
            from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

            try:
                with Image.open(src) as img:
                    width, height = img.size
            except (UnidentifiedImageError, OSError):
                pass  # not a readable image after all: sent without dimensions
        servers = self.file_servers()
        up = await files.upload(
            self.transport,
            buf.getvalue(),
            server=servers[0] if servers else files.DEFAULT_FILE_SERVER,
        )
        ptr = pointer(
            sealed,
            up,
            file_name=src.name,
            content_type=ctype,
            width=width,
            height=height,
            voice=voice,
            caption=caption or None,
        )
        if group:
            return await self.groups.send(to, caption, attachments=[ptr])
        return await self.send(to, caption, attachments=[ptr])

    def attachment(self, attachment_id: int) -> Attachment | None:
        """One attachment (of a message we sent or received) by its local id."""
        return self.db.attachment(attachment_id)

    async def save_attachment(
        self,
        attachment_id: int,
        directory: str | Path = ".",
        *,
        force: bool = False,
        progress: A.Progress | None = None,
    ) -> Path:
        """Download an attachment through an onion path, check its digest and MAC, decrypt it
        and write it into ``directory`` under its sanitised name; returns the path. Never
        replaces an existing file unless ``force``. A tampered blob raises DecryptionError
        and writes nothing; a file no longer on the server raises FileExpired."""
        att = self.db.attachment(attachment_id)
        if att is None:
            raise InvalidInput(f"there is no attachment #{attachment_id}")
        if not Path(directory).is_dir():
            raise InvalidInput(f"{directory} is not a directory")
        target = Path(directory) / safe_filename(att.file_name)
        if target.exists() and not force:
            raise InvalidInput(f"{target} already exists (use --force to replace it)")
        blob = await files.download(self.transport, att.url, known=self.file_servers())
        try:
            return A.decrypt_file(
                io.BytesIO(blob),
                target,
                att.key,
                att.digest,
                att.size,
                overwrite=force,
                progress=progress,
            )
        except FileExistsError:
            raise InvalidInput(f"{target} already exists (use --force to replace it)") from None
        except OSError as e:
            raise InvalidInput(f"cannot write {target}: {e.strerror}") from None

    async def send_typing(self, to: str, started: bool = True) -> None:
        """Send a typing indicator (20 s TTL); no-op when typing indicators are off."""
        self._check_peer(to)
        if not self.typing_indicators:
            return
        sent_ms = self._next_sent_ms()
        with self.db.tx():
            self._enqueue(
                "typing", to, M.typing(started, sent_ms=sent_ms), sent_ms, M.TTL_TYPING_MS
            )
        self.loops.wake.set()

    async def mark_read(self, conversation: str) -> list[int]:
        """Mark every received message of ``conversation`` read. Sends a read receipt (if
        enabled and the contact is accepted) and starts delete-after-read timers. Returns the
        sent timestamps marked."""
        now = self.clock.now_ms()
        rows = [
            m for m in self.db.messages(conversation) if not m.outgoing and m.status == "received"
        ]
        if not rows:
            return []
        contact = self.db.contact(conversation)
        dar_hashes: dict[int, list[str]] = {}
        with self.db.tx():
            for m in rows:
                fields: dict[str, Any] = {"status": "read", "read_ms": now}
                if m.exp_mode == M.ExpirationMode.AFTER_READ:
                    exp_at = now + m.exp_seconds * 1000
                    fields["expires_at_ms"] = exp_at
                    if m.hash:
                        dar_hashes.setdefault(exp_at, []).append(m.hash)
                self.db.update_message(m.id, **fields)
            ts = [m.sent_ms for m in rows]
            if conversation[:2] in ("05", "03"):  # our other devices learn how far we read
                self.config.push_read(conversation, max(ts))
            if self.read_receipts and contact and contact.approved and not contact.blocked:
                sent_ms = self._next_sent_ms()
                self._enqueue(
                    "receipt",
                    conversation,
                    M.read_receipt(ts, sent_ms=sent_ms),
                    sent_ms,
                    M.TTL_CONTENT_MS,
                )
        self.loops.wake.set()
        for exp_at, hashes in dar_hashes.items():
            try:
                await self.rpc.expire(self.identity, hashes, exp_at, shorten=True)
            except SessionError as e:  # best effort: the local timer deletes it anyway
                log.debug("could not shorten the swarm expiry: %s", e)
        return ts

    async def set_disappearing(self, conversation: str, expiration: M.Expiration) -> None:
        """Set a conversation's disappearing-message mode and tell the peer (and our devices)."""
        self._check_peer(conversation)
        sent_ms = self._next_sent_ms()
        with self.db.tx():
            self.db.upsert_contact(
                conversation, exp_mode=int(expiration.mode), exp_seconds=expiration.seconds
            )
            if conversation != self.session_id:
                self._enqueue(
                    "control",
                    conversation,
                    M.expiration_update(sent_ms=sent_ms, expiration=expiration),
                    sent_ms,
                    M.TTL_CONTENT_MS,
                )
            self._enqueue(
                "sync",
                self.session_id,
                M.expiration_update(
                    sent_ms=sent_ms, expiration=expiration, sync_target=conversation
                ),
                sent_ms,
                M.TTL_CONTENT_MS,
            )
            self.config.push_contacts()
        self.loops.wake.set()

    async def unsend(self, message_id: int) -> None:
        """Delete one of our messages for everyone: tell the peer and our devices, delete our
        stored copies from the swarm (best effort) and locally."""
        m = self.db.message(message_id)
        if m is None or not m.outgoing:
            raise InvalidInput("only messages we sent can be unsent")
        sent_ms = self._next_sent_ms()
        req = M.unsend(m.sent_ms, self.session_id, sent_ms=sent_ms)
        own_hashes = [e.hash for e in self.outbox.entries_for_message(message_id) if e.hash]
        with self.db.tx():
            if m.conversation != self.session_id:
                self._enqueue("control", m.conversation, req, sent_ms, M.TTL_CONTENT_MS)
            self._enqueue("control", self.session_id, req, sent_ms, M.TTL_CONTENT_MS)
            self.db.delete_message(message_id)
        self.loops.wake.set()
        self.hub.emit(MessageDeleted(m.conversation, message_id, "unsend"))
        if own_hashes:
            try:
                await self.rpc.delete(self.identity, own_hashes)
            except SessionError as e:  # best effort: the unsend request reaches the peer anyway
                log.debug("could not delete our stored copies: %s", e)

    async def accept_request(self, session_id: str) -> None:
        """Accept a message request: the sender becomes a contact and is told so."""
        self._check_peer(session_id)
        sent_ms = self._next_sent_ms()
        with self.db.tx():
            self.db.upsert_contact(session_id, approved=1)
            self._enqueue(
                "control",
                session_id,
                M.request_response(
                    sent_ms=sent_ms, display_name=self.display_name, avatar=self.avatar
                ),
                sent_ms,
                M.TTL_CONTENT_MS,
            )
            self.config.push_contacts()
        self.loops.wake.set()

    async def decline_request(self, session_id: str) -> None:
        """Drop a message request and its messages (the sender is not told; our other devices
        drop it too)."""
        with self.db.tx():
            for m in self.db.messages(session_id):
                self.db.delete_message(m.id)
            self.db.delete_request(session_id)
            self.config.push_contacts()

    async def block(self, session_id: str) -> None:
        """Block ``session_id``: its messages are dropped on arrival."""
        self._check_peer(session_id)
        with self.db.tx():
            self.db.upsert_contact(session_id, blocked=1)
            self.config.push_contacts()
        self.loops.wake.set()

    async def unblock(self, session_id: str) -> None:
        with self.db.tx():
            self.db.upsert_contact(session_id, blocked=0)
            self.config.push_contacts()
        self.loops.wake.set()

    # ------------------------------------------------------------------ reading state

    def conversations(self) -> list[ConversationSummary]:
        """Accepted conversations and the groups we are in (with last message time, count,
        unread count)."""
        groups = {g.group_id for g in self.groups.all() if g.status != "invited"}
        out = []
        for c in self.db.conversations():
            contact = self.db.contact(c.conversation)
            if (
                c.conversation == self.session_id
                or c.conversation in groups
                or (contact and contact.approved and not contact.blocked)
            ):
                out.append(c)
        return out

    def requests(self) -> list[MessageRequest]:
        """Message requests: senders we have not accepted (nor blocked), with their messages,
        then the groups we are invited to (the group ID and name; no messages yet)."""
        return [
            MessageRequest(c.session_id, c.name, self.db.messages(c.session_id))
            for c in self.db.contacts()
            if not c.approved and not c.blocked and self.db.has_messages(c.session_id)
        ] + [MessageRequest(g.group_id, g.name, []) for g in self.groups.invites()]

    def messages(
        self, conversation: str, limit: int = 1000, *, before: Message | None = None
    ) -> list[Message]:
        """The last ``limit`` messages of a conversation, oldest first (ordered by sent time).
        ``before``: only messages older than that one (the next page back, for a history view
        that loads as it scrolls). Messages whose disappearing timer ran out are deleted
        first, so none is shown after its time."""
        self.sweep_expired()
        cursor = None if before is None else (before.sent_ms, before.id)
        return self.db.messages(conversation, limit, cursor)

    def message_count(self, conversation: str) -> int:
        """How many messages are stored for ``conversation``."""
        return self.db.message_count(conversation)

    def message(self, message_id: int) -> Message | None:
        """One stored message by its local id (None if deleted or unknown)."""
        return self.db.message(message_id)

    def quoted(self, message: Message) -> Message | None:
        """The message ``message`` replies to, if it quotes one we have stored."""
        if message.quote is None:
            return None
        return self.db.find_message(message.conversation, message.quote[1], message.quote[0])

    def nickname(self, session_id: str) -> str | None:
        """The name we gave ``session_id`` ourselves (this device only), or None."""
        return self.db.get_secret(f"nickname:{session_id}") or None

    def set_nickname(self, session_id: str, name: str | None) -> None:
        """Call ``session_id`` ``name`` on this device (shown instead of the name they chose;
        None or blank removes it). Kept on this device only."""
        parse_session_id(session_id)
        if name is not None and name.strip():
            name = M.check_display_name(name.strip())
        self.db.put_secret(f"nickname:{session_id}", (name or "").strip())

    def contacts(self) -> list[Contact]:
        """Everyone we know of: contacts, message requests, blocked senders."""
        return self.db.contacts()

    def contact(self, session_id: str) -> Contact | None:
        """What we know of ``session_id`` (None if nothing)."""
        return self.db.contact(session_id)

    def queued(self) -> int:
        """How many outgoing items (messages, receipts, config pushes, …) wait for delivery."""
        return self.outbox.pending_count()

    def delivery_states(self, message_id: int) -> list[str]:
        """The delivery state (``pending``, ``done``, ``failed``) of every copy of one of our
        messages: the recipient's, then our other devices' sync copy."""
        return [e.state for e in self.outbox.entries_for_message(message_id)]

    def delivery_error(self, message_id: int) -> str | None:
        """Why delivering message ``message_id`` failed so far (None if no attempt failed)."""
        return self.outbox.last_error(message_id)

    # --------------------------------------------------------- steps (the loops repeat these)

    async def resolve_name(self, name: str) -> str:
        """The Session ID registered under ``name`` (§6.8: three random nodes, through onion
        requests, must agree). Raises InvalidName, NameNotFound, NameExpired or
        NameLookupFailed (see :func:`session.client.names.resolve`)."""
        return await names.resolve(self.transport, self.directory.nodes, name, rng=self.rng)

    async def poll_once(self) -> int:
        """Retrieve and process new messages of namespaces 0, 2, 3; returns how many new
        stored messages were seen. Raises NetworkError (NotEnoughNodes included) when the
        own swarm cannot be reached."""
        try:
            total = await self.receiver.poll_once()
        except SessionError as e:
            self.connectivity.update(False, str(e))
            raise
        self.connectivity.update(True)
        return total + await self.groups.poll_all()

    def process_stored(self, rows: Sequence[StoredRow]) -> list[M.Incoming]:
        """Decrypt (batch), verify, dedupe and apply stored namespace-0 messages in sent order."""
        return self.receiver.process_stored(rows)

    async def flush_outbox(self, *, ignore_backoff: bool = True) -> int:
        """Try every due outbox entry once (``ignore_backoff``: also entries still waiting to
        retry); returns how many were delivered."""
        return await self.sender.flush(ignore_backoff=ignore_backoff)

    async def drain(self, timeout: float) -> int:
        """Flush the outbox until nothing is queued or ``timeout`` seconds passed; returns how
        many items are still queued."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.queued() and loop.time() < deadline:
            try:
                await asyncio.wait_for(self.flush_outbox(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
            if self.queued():
                await asyncio.sleep(DRAIN_RETRY_S)
        return self.queued()

    def sweep_expired(self) -> int:
        """Delete messages whose disappearing timer ran out; returns how many."""
        rows = self.db.expired_messages(self.clock.now_ms())
        for m in rows:
            self.db.delete_message(m.id)
            self.hub.emit(MessageDeleted(m.conversation, m.id, "expired"))
        return len(rows)
