"""Closed groups (03 IDs, Session's "groups v2") for one client: create, invite, join, send,
read, and the admin operations, over the sans-I/O pieces of :mod:`session.groups`.

State lives in the identity's database (tables ``groups`` and ``group_msgs``): a group's row
(name, our secret for it: the admin seed or a member's auth data, status) and the key and
config messages fetched from (or pushed to) its swarm. On load the key messages are replayed
into :class:`~session.groups.keys.GroupKeys` and the config messages merged into the signed
Info and Members configs, so a client can be closed and reopened at any point.

Swarm traffic: group messages, control messages and config pushes go through the client's
outbox (``dest`` = the group ID), signed with the group key (admins) or the member's
subaccount (:class:`~session.groups.auth.SubaccountSigner`); invites and promotions go 1:1.
Each poll retrieves namespaces 12, 14, 13 and 11 of every joined group. What fails a check —
a key message or config the group did not sign, a message no key opens, a control message
without a valid admin signature — is dropped with a logged reason; the rest goes on.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError as _PbDecodeError

from session.client import messages as M
from session.client.attachments import MAX_ATTACHMENTS
from session.client.events import MessageReceived
from session.client.poller import Poller
from session.client.transport import AccountSigner
from session.errors import (
    DecryptionError,
    GroupError,
    GroupFull,
    InvalidInput,
    InvalidSignature,
    NodeRequestFailed,
    SessionError,
)
from session.groups import control, user_groups
from session.groups.auth import SubaccountSigner, member_auth_data, member_token
from session.groups.config import ConfigMessage, ConfigParseError, merge, open_sealed, seal
from session.groups.configs import (
    INFO_DOMAIN,
    MAX_MEMBERS,
    MEMBERS_DOMAIN,
    NS_INFO,
    NS_KEYS,
    NS_MEMBERS,
    NS_MESSAGES,
    GroupInfo,
    GroupMember,
    SignedConfig,
    get_members,
    remove_member,
    set_member,
)
from session.groups.crypto import GroupIdentity, parse_group_id
from session.groups.keys import GroupKeys, NoGroupKey
from session.identity import parse_session_id
from session.proto import session_pb2 as pb
from session.proto.rpc import Signer
from session.swarm import message_hash
from session.text import duration

if TYPE_CHECKING:
    from session.client.api import Client
    from session.client.db import Message

log = logging.getLogger("session.client.groups")

__all__ = ["GROUP_SCHEMA", "Group", "GroupManager"]

GROUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    name BLOB,                  -- sealed
    secret BLOB NOT NULL,       -- sealed: the admin seed (32 B) or our member auth data (100 B)
    admin INTEGER NOT NULL,
    status TEXT NOT NULL,       -- invited | joined | removed
    invited_by TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS group_msgs (
    group_id TEXT NOT NULL,
    namespace INTEGER NOT NULL,
    hash TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    data BLOB NOT NULL,         -- as stored in the swarm (already encrypted for the group)
    PRIMARY KEY (group_id, hash)
);
"""
#: Config messages of one namespace kept for replay (newest first).
KEEP_CONFIGS = 8
#: Polled namespaces, keys first (messages and configs need them).
POLLED = (NS_KEYS, NS_MEMBERS, NS_INFO, NS_MESSAGES)
_MEMBER_CHANGE = {
    control.MemberChange.ADDED: pb.GroupUpdateMemberChangeMessage.ADDED,
    control.MemberChange.REMOVED: pb.GroupUpdateMemberChangeMessage.REMOVED,
    control.MemberChange.PROMOTED: pb.GroupUpdateMemberChangeMessage.PROMOTED,
}
CONTROL = "control"  # Message.status of a control line ("Alice removed Carol")


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    """What a person sees of one group."""

    group_id: str
    name: str
    description: str
    admin: bool
    status: str  # invited | joined | removed
    members: list[str]
    admins: list[str]
    invited_by: str | None
    disappear_after_send: int  # seconds; 0 = off

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _State:
    """One group in memory: its keys, configs and our credentials."""

    def __init__(self, gid: str, me: Any, secret: bytes, admin: bool) -> None:
        self.gid = gid
        self.admin_key = GroupIdentity(secret) if admin else None
        self.member: SubaccountSigner | None = None if admin else SubaccountSigner(me, gid, secret)
        self.keys = GroupKeys(gid, me, admin=self.admin_key)
        self.info = SignedConfig(gid, INFO_DOMAIN, admin=self.admin_key)
        self.members = SignedConfig(gid, MEMBERS_DOMAIN, admin=self.admin_key)
        #: Members whose leave message arrived, with its sent time (an admin removes them
        #: after the poll, unless they came back after it: :meth:`GroupManager._still_gone`).
        self.left: dict[str, int] = {}
        #: When an admin's "added" message last named each member (a member who left and was
        #: invited back is not removed again by their old leave, replayed on a new device).
        self.added: dict[str, int] = {}

    @property
    def signer(self) -> Signer | AccountSigner:
        if self.admin_key is not None:
            return self.admin_key
        assert self.member is not None
        return self.member


class GroupManager:
    """The groups of one :class:`~session.client.api.Client` (its ``groups`` attribute)."""

    def __init__(self, client: Client) -> None:
        self.c = client
        self.db = client.db
        self.me = client.session_id
        self.db.conn.executescript(GROUP_SCHEMA)
        self._states: dict[str, _State] = {}
        self._pollers: dict[str, Poller] = {}
        self._seed32: bytes = client._seed32
        stored = self.db.get_secret("user_groups_config")
        #: Our UserGroups config (namespace 5): the groups and their secrets, for our devices.
        self._ug = merge([base64.b64decode(stored)]) if stored else ConfigMessage(signer=None)

    # ------------------------------------------------------------------ state

    def _row(self, gid: str) -> Any:
        return self.db.conn.execute("SELECT * FROM groups WHERE group_id=?", (gid,)).fetchone()

    def _state(self, gid: str) -> _State:
        st = self._states.get(gid)
        if st is not None:
            return st
        row = self._row(gid)
        if row is None:
            raise GroupError(f"unknown group {gid[:12]}…")
        st = _State(gid, self.c.identity, self.db.sealer.open(row["secret"]), bool(row["admin"]))
        rows = self.db.conn.execute(
            "SELECT namespace, hash, timestamp_ms, data FROM group_msgs WHERE group_id=?"
            " ORDER BY timestamp_ms",
            (gid,),
        ).fetchall()
        for r in rows:
            if r["namespace"] == NS_KEYS:
                self._load_key(st, r["hash"], bytes(r["data"]), r["timestamp_ms"])
        keys = st.keys.group_keys()
        for ns, cfg in ((NS_INFO, st.info), (NS_MEMBERS, st.members)):
            sealed = [bytes(r["data"]) for r in rows if r["namespace"] == ns]
            if sealed:
                for why in cfg.merge_fetched(sealed, keys):
                    log.info("group config message dropped on load: %s", why)
        self._states[gid] = st
        return st

    def _load_key(self, st: _State, h: str, data: bytes, ts: int) -> None:
        try:
            st.keys.load_key_message(h, data, ts)
        except (InvalidSignature, InvalidInput) as e:
            log.info("group key message %s dropped: %s", h[:10], e)

    def _keep(self, gid: str, ns: int, h: str, ts: int, data: bytes) -> None:
        self.db.conn.execute(
            "INSERT OR IGNORE INTO group_msgs VALUES (?,?,?,?,?)", (gid, ns, h, ts, data)
        )
        if ns in (NS_INFO, NS_MEMBERS):
            self.db.conn.execute(
                "DELETE FROM group_msgs WHERE group_id=? AND namespace=? AND hash NOT IN"
                " (SELECT hash FROM group_msgs WHERE group_id=? AND namespace=?"
                "  ORDER BY timestamp_ms DESC LIMIT ?)",
                (gid, ns, gid, ns, KEEP_CONFIGS),
            )

    def resolve(self, ref: str) -> str:
        """A group ID from a full ID, a group's whole name (when no other group has that name)
        or a unique prefix of a group's name or ID (GroupError if none or several match)."""
        rows = self.db.conn.execute("SELECT group_id, name FROM groups").fetchall()
        if any(r["group_id"] == ref for r in rows):
            return ref
        want = ref.casefold()
        names = [
            (r["group_id"], (self.db.sealer.open_str(r["name"]) or "").casefold()) for r in rows
        ]
        exact = [gid for gid, name in names if name == want]
        if want and len(exact) == 1:
            return exact[0]
        hits = [gid for gid, name in names if name.startswith(want) or gid.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise GroupError(f"no group is named or identified by {ref!r}")
        raise GroupError(f"{len(hits)} groups match {ref!r}: give more of the name or the ID")

    def signer_for(self, gid: str) -> Signer | AccountSigner | None:
        """Who signs stores to the group's swarm (the sender's ``signer_for``)."""
        try:
            return self._state(gid).signer
        except GroupError:
            return None

    def info(self, ref: str) -> Group:
        gid = self.resolve(ref)
        row = self._row(gid)
        st = self._state(gid)
        gi = GroupInfo.from_data(st.info.data)
        mem = get_members(st.members.data)
        active = [m for m in mem.values() if m.removed_status is None]
        return Group(
            gid,
            gi.name or self.db.sealer.open_str(row["name"]) or "",
            gi.description,
            bool(row["admin"]),
            row["status"],
            sorted(m.session_id for m in active),
            sorted(m.session_id for m in active if m.admin),
            row["invited_by"],
            gi.disappear_after_send or 0,
        )

    def all(self) -> list[Group]:
        rows = self.db.conn.execute("SELECT group_id FROM groups ORDER BY created_ms").fetchall()
        return [self.info(r["group_id"]) for r in rows]

    def invites(self) -> list[Group]:
        """Groups we are invited to and have not accepted nor declined (message requests)."""
        return [g for g in self.all() if g.status == "invited"]

    def _admin(self, gid: str) -> _State:
        st = self._state(gid)
        if st.admin_key is None:
            raise GroupError("only an admin of this group can do this")
        return st

    # ------------------------------------------------------------------ pushing

    def _store(
        self,
        gid: str,
        ns: int,
        data: bytes,
        sent_ms: int,
        *,
        message_id: int | None = None,
        kind: str = "group",
    ) -> None:
        """Queue ``data`` for the group's swarm (inside the caller's transaction); key and
        config messages are also kept locally (so they are replayed before the poll sees
        them)."""
        if ns in (NS_KEYS, NS_INFO, NS_MEMBERS):
            self._keep(gid, ns, message_hash(gid, ns, data), sent_ms, data)
        self.c.outbox.enqueue(
            kind=kind,
            dest=gid,
            namespace=ns,
            data=base64.b64encode(data).decode(),
            timestamp_ms=sent_ms,
            ttl_ms=M.TTL_CONFIG_MS if ns != NS_MESSAGES else M.TTL_CONTENT_MS,
            message_id=message_id,
        )

    def _push_configs(self, st: _State, sent_ms: int) -> None:
        key = st.keys.encryption_key
        for ns, cfg in ((NS_INFO, st.info), (NS_MEMBERS, st.members)):
            if cfg.needs_push:
                self._store(st.gid, ns, cfg.push(key), sent_ms)
                cfg.confirm_pushed()

    def _rekey(self, st: _State, member_ids: Sequence[str], sent_ms: int) -> None:
        """A new key for ``member_ids``; both configs go out again under it (the caller
        pushes them), so a member who holds only the new key reads them too."""
        msg = st.keys.rekey(member_ids)
        h = message_hash(st.gid, NS_KEYS, msg)
        self._store(st.gid, NS_KEYS, msg, sent_ms)
        self._load_key(st, h, msg, sent_ms)
        st.info.edit()
        st.members.edit()

    def _group_content(self, st: _State, content: pb.Content, sent_ms: int) -> bytes:
        env = pb.Envelope(
            type=pb.Envelope.CLOSED_GROUP_MESSAGE,
            source=st.gid,
            timestamp=sent_ms,
            content=content.SerializeToString(),
        )
        return st.keys.encrypt_message(env.SerializeToString())

    def _announce(self, st: _State, update: pb.GroupUpdateMessage, sent_ms: int, line: str) -> None:
        """Send a control message to the group and show its line here."""
        content = pb.Content()
        content.dataMessage.groupUpdateMessage.CopyFrom(update)
        content.sigTimestamp = sent_ms
        self._store(
            st.gid, NS_MESSAGES, self._group_content(st, content, sent_ms), sent_ms, kind="control"
        )
        self.db.add_message(
            conversation=st.gid,
            author=self.me,
            sent_ms=sent_ms,
            outgoing=True,
            body=line,
            status=CONTROL,
        )

    def _name_of(self, sid: str) -> str:
        if sid == self.me:
            return "You"
        c = self.db.contact(sid)
        return c.name if c and c.name else sid[:10] + "…"

    # ------------------------------------------------------------------ our other devices

    def _ug_entries(self) -> dict[str, user_groups.UserGroup]:
        out = {}
        for r in self.db.conn.execute("SELECT * FROM groups").fetchall():
            secret = self.db.sealer.open(r["secret"])
            admin = bool(r["admin"])
            out[r["group_id"]] = user_groups.UserGroup(
                r["group_id"],
                admin_seed=secret if admin else b"",
                auth_data=b"" if admin else secret,
                name=self.db.sealer.open_str(r["name"]) or "",
                removed_status=1 if r["status"] == "removed" else 0,
                invited=r["status"] == "invited",
                joined_at=r["created_ms"] // 1000,
            )
        return out

    def push_user_groups(self) -> None:
        """Queue our UserGroups config with every group we have (inside the caller's
        transaction): our other devices learn the groups, their keys and their state."""
        nxt = self._ug.increment()
        nxt.data.pop(b"g", None)
        for entry in self._ug_entries().values():
            user_groups.set_group(nxt.data, entry)
        nxt.data.pop(b"o", None)
        for room in self.c.communities.config_entries():
            user_groups.set_community(nxt.data, room)
        raw = nxt.serialize()
        self._save_ug(merge([raw]))
        sealed = seal(raw, self._seed32, user_groups.DOMAIN)
        self.c.outbox.enqueue(
            kind="config",
            dest=self.me,
            namespace=user_groups.NAMESPACE,
            data=base64.b64encode(sealed).decode(),
            timestamp_ms=self.c.clock.now_ms(),
            ttl_ms=M.TTL_CONFIG_MS,
        )

    def _save_ug(self, msg: ConfigMessage) -> None:
        self._ug = msg
        self.db.put_secret("user_groups_config", base64.b64encode(msg.serialize()).decode())

    def apply_user_groups(self, rows: Sequence[tuple[str, str, int]]) -> None:
        """Merge UserGroups configs our other devices pushed; adopt the groups they have."""
        opened = []
        for h, data, _exp in rows:
            try:
                opened.append(
                    open_sealed(base64.b64decode(data), [self._seed32], user_groups.DOMAIN)
                )
            except (SessionError, ValueError) as e:
                log.info("UserGroups config %s dropped: %s", h[:10], e)
        if not opened:
            return
        try:
            merged = merge([self._ug.serialize(), *opened])
        except ConfigParseError as e:
            log.info("UserGroups configs dropped: %s", e)
            return
        with self.db.tx():
            self._save_ug(merged)
            for gid, entry in user_groups.get_groups(merged.data).items():
                row = self._row(gid)
                if row is not None:
                    # another device of ours accepted the invitation, or was removed
                    if row["status"] == "invited" and not entry.invited:
                        self.db.conn.execute(
                            "UPDATE groups SET status=? WHERE group_id=?",
                            ("removed" if entry.removed_status else "joined", gid),
                        )
                    continue
                if entry.removed_status:
                    continue
                secret = entry.admin_seed if entry.is_admin else entry.auth_data
                if not secret:
                    continue
                self.db.conn.execute(
                    "INSERT INTO groups VALUES (?,?,?,?,?,?,?)",
                    (
                        gid,
                        self.db.sealer.seal(entry.name),
                        self.db.sealer.seal(secret),
                        int(entry.is_admin),
                        "invited" if entry.invited else "joined",
                        None,
                        entry.joined_at * 1000,
                    ),
                )
            self.c.communities.adopt_config(user_groups.get_communities(merged.data))
            if merged.merged:
                self.push_user_groups()

    # ------------------------------------------------------------------ operations

    async def create(self, name: str, members: Sequence[str] = (), description: str = "") -> str:
        """Create a group (we are its admin), invite ``members``; returns the group ID."""
        name = name.strip()
        if not name:
            raise InvalidInput("a group needs a name")
        ids = self._check_ids(members)
        if len(ids) + 1 > MAX_MEMBERS:
            raise GroupFull(
                f"a group has at most {MAX_MEMBERS} members (you and {MAX_MEMBERS - 1}"
                f" others); {len(ids)} were given"
            )
        await self.c._ensure_clock()
        g = GroupIdentity.generate()
        sent_ms = self.c._next_sent_ms()
        with self.db.tx():
            self.db.conn.execute(
                "INSERT INTO groups VALUES (?,?,?,?,?,?,?)",
                (
                    g.group_id,
                    self.db.sealer.seal(name),
                    self.db.sealer.seal(g.seed()),
                    1,
                    "joined",
                    None,
                    sent_ms,
                ),
            )
            st = self._state(g.group_id)
            GroupInfo(name=name, description=description, created=sent_ms // 1000).write(
                st.info.edit()
            )
            data = st.members.edit()
            set_member(data, GroupMember(self.me, name=self.c.display_name or "", admin=True))
            for m in ids:
                set_member(data, GroupMember(m, name=self._name_of_raw(m), invite_status=1))
            self._rekey(st, [self.me, *ids], sent_ms)
            self._push_configs(st, sent_ms)
            self.db.add_message(
                conversation=g.group_id,
                author=self.me,
                sent_ms=sent_ms,
                outgoing=True,
                body=f"You created the group {name}",
                status=CONTROL,
            )
            for m in ids:
                self._invite(st, m, name, sent_ms)
            self.push_user_groups()
        self.c.loops.wake.set()
        return g.group_id

    def _name_of_raw(self, sid: str) -> str:
        c = self.db.contact(sid)
        return c.name if c and c.name else ""

    def _check_ids(self, ids: Sequence[str]) -> list[str]:
        out: list[str] = []
        for sid in ids:
            parse_session_id(sid)
            if not sid.startswith("05"):
                raise InvalidInput(f"group members are 05 Session IDs, not {sid[:10]}…")
            if sid != self.me and sid not in out:
                out.append(sid)
        return out

    def _invite(self, st: _State, sid: str, name: str, sent_ms: int) -> None:
        assert st.admin_key is not None
        content = pb.Content()
        inv = content.dataMessage.groupUpdateMessage.inviteMessage
        inv.groupSessionId = st.gid
        inv.name = name
        inv.memberAuthData = member_auth_data(st.admin_key, sid)
        inv.adminSignature = control.sign(st.admin_key, control.invite_text(sid, sent_ms))
        content.sigTimestamp = sent_ms
        M.set_profile(content.dataMessage, self.c.display_name, self.c.avatar)
        self.c._enqueue("control", sid, content, sent_ms, M.TTL_CONTENT_MS)

    async def invite(
        self, ref: str, members: Sequence[str], *, share_history: bool = True
    ) -> list[str]:
        """Admin: add and invite members. ``share_history``: they get the current keys (a key
        supplement) and so can read the messages still in the group's swarm; otherwise the
        group gets a new key for everyone (a rekey) and they read only what is sent from now
        on, as Session's "share new messages only"."""
        gid = self.resolve(ref)
        st = self._admin(gid)
        ids = [m for m in self._check_ids(members)]
        current = get_members(st.members.data)
        new = [m for m in ids if m not in current or current[m].removed_status is not None]
        if not new:
            return []
        active = [m for m in current.values() if m.removed_status is None]
        if len(active) + len(new) > MAX_MEMBERS:
            raise GroupFull(
                f"a group has at most {MAX_MEMBERS} members: it has {len(active)},"
                f" {len(new)} more were asked for"
            )
        # First (a failure here changes nothing, and the invitation can simply be made
        # again): a member removed earlier, or who left (the admins then revoke the token), is
        # let into the group's swarm again; for one never in the group this changes nothing.
        admin = st.admin_key
        assert admin is not None  # (_admin)
        await self.c.rpc.unrevoke_subaccounts(admin, [member_token(admin, m) for m in new])
        sent_ms = self.c._next_sent_ms()
        name = GroupInfo.from_data(st.info.data).name
        with self.db.tx():
            data = st.members.edit()
            for m in new:
                set_member(
                    data,
                    GroupMember(
                        m, name=self._name_of_raw(m), invite_status=1, supplement=share_history
                    ),
                )
            if share_history:
                supp = st.keys.key_supplement(new)
                self._store(gid, NS_KEYS, supp, sent_ms)
                self._load_key(st, message_hash(gid, NS_KEYS, supp), supp, sent_ms)
            else:
                self._rekey(st, sorted(get_members(st.members.data)), sent_ms)
            self._push_configs(st, sent_ms)
            for m in new:
                self._invite(st, m, name, sent_ms)
            self._member_change(st, control.MemberChange.ADDED, new, sent_ms)
        self.c.loops.wake.set()
        return new

    def _member_change(
        self, st: _State, change: control.MemberChange, ids: Sequence[str], sent_ms: int
    ) -> None:
        assert st.admin_key is not None
        up = pb.GroupUpdateMessage()
        up.memberChangeMessage.type = _MEMBER_CHANGE[change]
        up.memberChangeMessage.memberSessionIds.extend(ids)
        up.memberChangeMessage.adminSignature = control.sign(
            st.admin_key, control.member_change_text(change, sent_ms)
        )
        self._announce(st, up, sent_ms, self._member_line(self.me, change, ids))

    def _member_line(self, actor: str, change: control.MemberChange, ids: Sequence[str]) -> str:
        who = ", ".join("you" if i == self.me else self._name_of(i) for i in ids)
        verb = {
            control.MemberChange.ADDED: "added",
            control.MemberChange.REMOVED: "removed",
            control.MemberChange.PROMOTED: "promoted",
        }[change]
        return f"{self._name_of(actor)} {verb} {who}" + (
            " to admin" if change == control.MemberChange.PROMOTED else ""
        )

    async def accept(self, ref: str) -> None:
        """Join a group we were invited to (its messages are polled from now on)."""
        gid = self.resolve(ref)
        row = self._row(gid)
        if row["status"] != "invited":
            raise GroupError("there is no pending invitation to this group")
        with self.db.tx():
            self.db.conn.execute("UPDATE groups SET status='joined' WHERE group_id=?", (gid,))
            if row["invited_by"]:
                self.db.upsert_contact(row["invited_by"], approved=1)
            self.push_user_groups()
        try:
            await self.poll(gid)
        except SessionError as e:  # the loop polls again; the answer waits for a key
            log.info("first poll of a joined group failed: %s", e)
        st = self._state(gid)
        try:
            sent_ms = self.c._next_sent_ms()
            up = pb.GroupUpdateMessage()
            up.inviteResponse.isApproved = True
            content = pb.Content()
            content.dataMessage.groupUpdateMessage.CopyFrom(up)
            M.set_profile(content.dataMessage, self.c.display_name, self.c.avatar)
            with self.db.tx():
                self._store(
                    gid,
                    NS_MESSAGES,
                    self._group_content(st, content, sent_ms),
                    sent_ms,
                    kind="control",
                )
        except NoGroupKey:
            log.info("joined a group whose keys are not fetched yet")
        self.c.loops.wake.set()

    async def decline(self, ref: str) -> None:
        """Drop an invitation (the group is forgotten; nobody is told)."""
        gid = self.resolve(ref)
        if self._row(gid)["status"] != "invited":
            raise GroupError("there is no pending invitation to this group")
        self._forget(gid)

    def _forget(self, gid: str) -> None:
        with self.db.tx():
            for m in self.db.messages(gid):
                self.db.delete_message(m.id)
            self.db.conn.execute("DELETE FROM groups WHERE group_id=?", (gid,))
            self.db.conn.execute("DELETE FROM group_msgs WHERE group_id=?", (gid,))
            self.push_user_groups()
        self._states.pop(gid, None)
        self._pollers.pop(gid, None)

    async def send(
        self,
        ref: str,
        text: str,
        *,
        attachments: Sequence[pb.AttachmentPointer] = (),
        reply_to: Message | None = None,
    ) -> int:
        """Send a text message (with optional attachment pointers: the text is then their
        caption) to the group; returns its local message id. ``reply_to``: a message of the
        group this one answers (quoted as in 1:1 conversations: its sent time and author)."""
        gid = self.resolve(ref)
        status = self._row(gid)["status"]
        if status == "removed":
            raise GroupError("you were removed from this group: an admin can invite you back")
        if status != "joined":
            raise GroupError("you are not a member of this group (accept its invitation first)")
        st = self._state(gid)
        await self.c._ensure_clock()
        sent_ms = self.c._next_sent_ms()
        if reply_to is not None and reply_to.conversation != gid:
            raise InvalidInput("the message replied to is not in this group")
        quote = None if reply_to is None else (reply_to.sent_ms, reply_to.author)
        gi = GroupInfo.from_data(st.info.data)
        exp = (
            # (a timer out of range, set by another admin's client, is taken as its nearest
            # bound: the group can still send, and its messages still disappear; 0 or less
            # is off, as libsession reads it)
            M.Expiration(
                M.ExpirationMode.AFTER_SEND,
                min(max(gi.disappear_after_send, M.TIMER_MIN_S), M.TIMER_MAX_S),
            )
            if gi.disappear_after_send and gi.disappear_after_send > 0
            else M.OFF
        )
        content = M.text(
            text,
            sent_ms=sent_ms,
            display_name=self.c.display_name,
            avatar=self.c.avatar,
            expiration=exp,
            attachments=attachments,
            quote=quote,
        )
        data = self._group_content(st, content, sent_ms)
        expires = sent_ms + exp.seconds * 1000 if exp.seconds else None
        with self.db.tx():
            mid = self.db.add_message(
                conversation=gid,
                author=self.me,
                sent_ms=sent_ms,
                outgoing=True,
                body=text,
                status="pending",
                exp_mode=int(exp.mode),
                exp_seconds=exp.seconds,
                expires_at_ms=expires,
                quote=quote,
            )
            assert mid is not None
            if attachments:
                self.db.add_attachments(mid, [p.SerializeToString() for p in attachments])
            self._store(gid, NS_MESSAGES, data, sent_ms, message_id=mid, kind="message")
        self.c.loops.wake.set()
        return mid

    async def remove(
        self, ref: str, members: Sequence[str], *, delete_messages: bool = False
    ) -> None:
        """Admin: remove members; a new key generation they cannot read, their tokens revoked
        on the group's swarm; with ``delete_messages`` their messages are deleted too."""
        gid = self.resolve(ref)
        st = self._admin(gid)
        ids = self._check_ids(members)
        current = get_members(st.members.data)
        gone = [m for m in ids if m in current]
        if not gone:
            raise GroupError("none of them is a member of this group")
        sent_ms = self.c._next_sent_ms()
        assert st.admin_key is not None
        with self.db.tx():
            data = st.members.edit()
            for m in gone:
                remove_member(data, m)
            remaining = sorted(get_members(st.members.data))
            self._member_change(st, control.MemberChange.REMOVED, gone, sent_ms)
            self._rekey(st, remaining, sent_ms)
            self._push_configs(st, sent_ms)
            if delete_messages:
                hashes = [m.hash for m in self.db.messages(gid) if m.author in gone and m.hash]
                up = pb.GroupUpdateMessage()
                dmc = up.deleteMemberContent
                dmc.memberSessionIds.extend(gone)
                dmc.messageHashes.extend(hashes)
                dmc.adminSignature = control.sign(
                    st.admin_key, control.delete_content_text(sent_ms, gone, hashes)
                )
                content = pb.Content()
                content.dataMessage.groupUpdateMessage.CopyFrom(up)
                content.sigTimestamp = sent_ms
                self._store(
                    gid,
                    NS_MESSAGES,
                    self._group_content(st, content, sent_ms),
                    sent_ms,
                    kind="control",
                )
                self._delete_by(gid, gone)
        await self.c.rpc.revoke_subaccounts(
            st.admin_key, [member_token(st.admin_key, m) for m in gone]
        )
        self.c.loops.wake.set()

    def _delete_by(self, gid: str, authors: Sequence[str]) -> None:
        for m in self.db.messages(gid):
            if m.author in authors and m.status != CONTROL:
                self.db.delete_message(m.id)

    async def promote(self, ref: str, member: str) -> None:
        """Admin: make a member an admin (they get the group key 1:1)."""
        gid = self.resolve(ref)
        st = self._admin(gid)
        assert st.admin_key is not None
        cur = get_members(st.members.data).get(member)
        if cur is None:
            raise GroupError("only a member of the group can be promoted")
        sent_ms = self.c._next_sent_ms()
        name = GroupInfo.from_data(st.info.data).name
        with self.db.tx():
            set_member(st.members.edit(), dataclasses.replace(cur, admin=True, promotion_status=1))
            self._push_configs(st, sent_ms)
            content = pb.Content()
            pm = content.dataMessage.groupUpdateMessage.promoteMessage
            pm.groupIdentitySeed = st.admin_key.seed()
            pm.name = name
            self.c._enqueue("control", member, content, sent_ms, M.TTL_CONTENT_MS)
            self._member_change(st, control.MemberChange.PROMOTED, [member], sent_ms)
        self.c.loops.wake.set()

    async def rename(self, ref: str, name: str) -> None:
        gid = self.resolve(ref)
        st = self._admin(gid)
        name = name.strip()
        if not name:
            raise InvalidInput("a group needs a name")
        sent_ms = self.c._next_sent_ms()
        assert st.admin_key is not None
        with self.db.tx():
            gi = GroupInfo.from_data(st.info.data)
            gi.name = name
            gi.write(st.info.edit())
            self._push_configs(st, sent_ms)
            self.db.conn.execute(
                "UPDATE groups SET name=? WHERE group_id=?", (self.db.sealer.seal(name), gid)
            )
            up = pb.GroupUpdateMessage()
            up.infoChangeMessage.type = pb.GroupUpdateInfoChangeMessage.NAME
            up.infoChangeMessage.updatedName = name
            up.infoChangeMessage.adminSignature = control.sign(
                st.admin_key, control.info_change_text(control.InfoChange.NAME, sent_ms)
            )
            self._announce(st, up, sent_ms, f"You renamed the group to {name}")
        self.c.loops.wake.set()

    async def set_description(self, ref: str, description: str) -> None:
        gid = self.resolve(ref)
        st = self._admin(gid)
        sent_ms = self.c._next_sent_ms()
        with self.db.tx():
            gi = GroupInfo.from_data(st.info.data)
            gi.description = description
            gi.write(st.info.edit())
            self._push_configs(st, sent_ms)
        self.c.loops.wake.set()

    async def set_disappearing(self, ref: str, seconds: int) -> None:
        """Admin: messages disappear ``seconds`` after sending (0: off)."""
        if seconds and not M.TIMER_MIN_S <= seconds <= M.TIMER_MAX_S:
            raise InvalidInput("a disappearing-message timer must be between 10 s and 14 days")
        gid = self.resolve(ref)
        st = self._admin(gid)
        assert st.admin_key is not None
        sent_ms = self.c._next_sent_ms()
        with self.db.tx():
            gi = GroupInfo.from_data(st.info.data)
            gi.disappear_after_send = seconds or None
            gi.write(st.info.edit())
            self._push_configs(st, sent_ms)
            up = pb.GroupUpdateMessage()
            up.infoChangeMessage.type = pb.GroupUpdateInfoChangeMessage.DISAPPEARING_MESSAGES
            up.infoChangeMessage.updatedExpiration = seconds
            up.infoChangeMessage.adminSignature = control.sign(
                st.admin_key,
                control.info_change_text(control.InfoChange.DISAPPEARING_MESSAGES, sent_ms),
            )
            line = (
                f"You set messages to disappear {duration(seconds)} after sending"
                if seconds
                else "You turned off disappearing messages"
            )
            self._announce(st, up, sent_ms, line)
        self.c.loops.wake.set()

    async def leave(self, ref: str) -> None:
        """Leave the group: the others are told, and it is forgotten here."""
        gid = self.resolve(ref)
        row = self._row(gid)
        if row["status"] == "joined":
            st = self._state(gid)
            sent_ms = self.c._next_sent_ms()
            up = pb.GroupUpdateMessage()
            up.memberLeftMessage.SetInParent()
            content = pb.Content()
            content.dataMessage.groupUpdateMessage.CopyFrom(up)
            try:
                data = self._group_content(st, content, sent_ms)
            except NoGroupKey:
                data = b""
            if data:
                try:
                    await self.c.rpc.store(
                        gid,
                        NS_MESSAGES,
                        base64.b64encode(data).decode(),
                        sent_ms + M.TTL_CONTENT_MS,
                        identity=st.signer,
                    )
                except SessionError as e:
                    log.info("could not tell the group we left: %s", e)
        self._forget(gid)

    # ------------------------------------------------------------------ receiving

    def on_direct(self, inc: M.Incoming, up: Any) -> list[Any]:
        """An invite or promotion that came 1:1 (inside the receiver's transaction)."""
        if up.HasField("inviteMessage"):
            self._on_invite(inc, up.inviteMessage)
        elif up.HasField("promoteMessage"):
            self._on_promote(inc, up.promoteMessage)
        return []

    def _on_invite(self, inc: M.Incoming, inv: Any) -> None:
        gid = inv.groupSessionId
        try:
            parse_group_id(gid)
            control.verify(gid, control.invite_text(self.me, inc.sent_ms), inv.adminSignature)
            SubaccountSigner(self.c.identity, gid, inv.memberAuthData)
        except SessionError as e:
            log.info("group invite dropped: %s", e)
            return
        row = self._row(gid)
        if row is not None and row["status"] != "removed":
            return  # already in (or invited to) this group
        self.db.conn.execute(
            "INSERT OR REPLACE INTO groups VALUES (?,?,?,?,?,?,?)",
            (
                gid,
                self.db.sealer.seal(inv.name[:100]),
                self.db.sealer.seal(inv.memberAuthData),
                0,
                "invited",
                inc.sender,
                inc.sent_ms,
            ),
        )
        self._states.pop(gid, None)
        self.push_user_groups()

    def _on_promote(self, inc: M.Incoming, pm: Any) -> None:
        try:
            g = GroupIdentity(pm.groupIdentitySeed)
        except SessionError as e:
            log.info("group promotion dropped: %s", e)
            return
        row = self._row(g.group_id)
        if row is None:
            return
        self.db.conn.execute(
            "UPDATE groups SET secret=?, admin=1 WHERE group_id=?",
            (self.db.sealer.seal(g.seed()), g.group_id),
        )
        self._states.pop(g.group_id, None)
        self._pollers.pop(g.group_id, None)
        self.push_user_groups()

    async def poll_all(self) -> int:
        """Poll our UserGroups config, then every joined group; a failing group is logged
        and skipped."""
        ug_rows = await self.c.receiver.poller.poll(user_groups.NAMESPACE)
        if ug_rows:
            self.apply_user_groups(ug_rows)
            self.db.mark_seen([r[0] for r in ug_rows])
        rows = self.db.conn.execute("SELECT group_id FROM groups WHERE status='joined'").fetchall()
        total = 0
        for r in rows:
            try:
                total += await self.poll(r["group_id"])
            except NodeRequestFailed as e:
                if e.status == 401:
                    self._removed(r["group_id"], "our access to the group's swarm was revoked")
                else:
                    log.info("group poll failed: %s", e)
            except SessionError as e:
                log.info("group poll failed: %s", e)
        return total

    def _removed(self, gid: str, why: str) -> None:
        log.info("removed from a group: %s", why)
        with self.db.tx():
            self.db.conn.execute("UPDATE groups SET status='removed' WHERE group_id=?", (gid,))

    async def poll(self, gid: str) -> int:
        """Retrieve and apply the group's new key, config and message namespaces."""
        st = self._state(gid)
        poller = self._pollers.get(gid)
        if poller is None:
            poller = self._pollers[gid] = Poller(self.c.rpc, self.db, st.signer, rng=self.c.rng)
        total = 0
        events: list[Any] = []
        for ns in POLLED:
            rows = await poller.poll(ns)
            if not rows:
                continue
            total += len(rows)
            with self.db.tx():
                events += self._apply(st, ns, rows)
                self.db.mark_seen([r[0] for r in rows])
                if ns == NS_MESSAGES:  # (read on another device of ours before they came)
                    read = self.c.config.read_marks().get(gid)
                    if read:
                        self.db.mark_read_until(gid, read)
        for ev in events:
            self.c.hub.emit(ev)
        if st.admin_key is not None:
            await self._admin_upkeep(st)
        return total

    async def _admin_upkeep(self, st: _State) -> None:
        """An admin after a poll: remove members who left (rekey, revoke), issue a fresh key
        generation when two admins rekeyed at once (both arrive at the same key: it is derived
        from the merged membership), and push configs a merge changed."""
        assert st.admin_key is not None
        members = get_members(st.members.data)
        left = [m for m, t in st.left.items() if m in members and self._still_gone(st, m, t)]
        st.left.clear()
        if not (left or st.keys.needs_rekey() or st.info.needs_push or st.members.needs_push):
            return
        sent_ms = self.c._next_sent_ms()
        with self.db.tx():
            if left:
                data = st.members.edit()
                for m in left:
                    remove_member(data, m)
            if left or st.keys.needs_rekey():
                self._rekey(st, sorted(get_members(st.members.data)), sent_ms)
            if st.info.needs_push or st.members.needs_push:
                self._push_configs(st, sent_ms)
        if left:
            await self.c.rpc.revoke_subaccounts(
                st.admin_key, [member_token(st.admin_key, m) for m in left]
            )
        self.c.loops.wake.set()

    def _note_added(
        self, st: _State, sent_ms: int, change: control.MemberChange, ids: Sequence[str]
    ) -> None:
        """Remember when an admin's member change (its signature checked) last added each
        member it names (:meth:`_still_gone`)."""
        if change == control.MemberChange.ADDED:
            for m in ids:
                st.added[m] = max(st.added.get(m, 0), sent_ms)

    def _still_gone(self, st: _State, member: str, left_ms: int) -> bool:
        """Whether a leave sent at ``left_ms`` still stands: nothing later shows the member
        back (an admin's "added" naming them, or anything they wrote since: their acceptance,
        a message). A device restored from the phrase fetches the group's whole history, old
        leaves included, and would otherwise remove a member who was invited back."""
        if st.added.get(member, 0) > left_ms:
            return False
        return not self.db.wrote_since(st.gid, member, left_ms)

    def _apply(self, st: _State, ns: int, rows: Sequence[tuple[str, str, int]]) -> list[Any]:
        now = self.c.clock.now_ms()
        decoded = []
        for h, b64, _exp in rows:
            try:
                decoded.append((h, base64.b64decode(b64, validate=True)))
            except ValueError:
                log.info("group message %s dropped: not base64", h[:10])
        if ns == NS_KEYS:
            for h, data in decoded:
                self._keep(st.gid, ns, h, now, data)
                self._load_key(st, h, data, now)
            return []
        if ns in (NS_INFO, NS_MEMBERS):
            cfg = st.info if ns == NS_INFO else st.members
            for h, data in decoded:
                self._keep(st.gid, ns, h, now, data)
            for why in cfg.merge_fetched([d for _, d in decoded], st.keys.group_keys()):
                log.info("group config message dropped: %s", why)
            if ns == NS_MEMBERS and st.admin_key is None:
                mine = get_members(st.members.data).get(self.me)
                if st.members.current.seqno > 0 and (mine is None or mine.removed_status):
                    self.db.conn.execute(
                        "UPDATE groups SET status='removed' WHERE group_id=?", (st.gid,)
                    )
                    self.push_user_groups()
            if ns == NS_INFO:
                name = GroupInfo.from_data(st.info.data).name
                if name:
                    self.db.conn.execute(
                        "UPDATE groups SET name=? WHERE group_id=?",
                        (self.db.sealer.seal(name), st.gid),
                    )
            return []
        out: list[Any] = []
        for h, data in decoded:
            out += self._message(st, h, data)
        return out

    def _message(self, st: _State, h: str, data: bytes) -> list[Any]:
        try:
            gm = st.keys.decrypt_message(data)
        except (DecryptionError, NoGroupKey) as e:
            log.info("group message %s dropped: %s", h[:10], e)
            return []
        try:
            env = pb.Envelope.FromString(gm.plaintext)
            content = pb.Content.FromString(env.content)
        except _PbDecodeError as e:
            log.info("group message %s dropped: not a Session envelope (%s)", h[:10], e)
            return []
        sent_ms = env.timestamp
        if sent_ms > M.MAX_TIMESTAMP_MS or M._has_invalid_text(content):
            log.info("group message %s dropped: impossible timestamp or text", h[:10])
            return []
        sender = gm.sender
        if sender == self.me:
            # (ours: shown when we sent it; but an "added" of ours still tells a device restored
            # from the phrase that a member who left came back: _still_gone)
            up = content.dataMessage.groupUpdateMessage
            if not up.HasField("memberChangeMessage"):
                return []
            mc = up.memberChangeMessage
            try:
                change = control.MemberChange(mc.type)
                text = control.member_change_text(change, sent_ms)
                control.verify(st.gid, text, mc.adminSignature)
            except (InvalidSignature, InvalidInput, ValueError):
                return []  # (not an admin's: nothing to note)
            self._note_added(st, sent_ms, change, mc.memberSessionIds)
            return []
        dm = content.dataMessage
        if dm.HasField("profile") and dm.profile.displayName:
            c = self.db.contact(sender)
            if c is None or c.name != dm.profile.displayName[:100]:
                self.db.upsert_contact(sender, name=dm.profile.displayName[:100])
        avatar = self.c.config.saw_profile(sender, dm)
        return ([avatar] if avatar else []) + self._content(st, sender, sent_ms, h, content)

    def _content(self, st: _State, sender: str, sent_ms: int, h: str, content: Any) -> list[Any]:
        """Apply one group message's content from ``sender`` (a control or a visible one)."""
        dm = content.dataMessage
        members = get_members(st.members.data)
        if dm.HasField("groupUpdateMessage"):
            return self._control(st, sender, sent_ms, h, dm.groupUpdateMessage)
        if members and sender not in members:
            log.info("group message %s dropped: its author is not a member", h[:10])
            return []
        if not dm.body and not dm.attachments:
            return []
        exp = M.expiration_of(content)
        expires = sent_ms + exp.seconds * 1000 if exp.mode == M.ExpirationMode.AFTER_SEND else None
        mid = self.db.add_message(
            conversation=st.gid,
            author=sender,
            sent_ms=sent_ms,
            outgoing=False,
            body=dm.body,
            status="received",
            hash=h,
            exp_mode=int(exp.mode),
            exp_seconds=exp.seconds,
            expires_at_ms=expires,
            quote=M.quote_of(dm),
        )
        if mid is None:
            return []
        if dm.attachments:
            pointers = dm.attachments[:MAX_ATTACHMENTS]
            self.db.add_attachments(mid, [p.SerializeToString() for p in pointers])
        return [MessageReceived(st.gid, mid, sender, sent_ms, dm.body, False, False)]

    def _control(self, st: _State, sender: str, sent_ms: int, h: str, up: Any) -> list[Any]:
        line: str | None = None
        try:
            if up.HasField("infoChangeMessage"):
                ic = up.infoChangeMessage
                control.verify(
                    st.gid, control.info_change_text(ic.type, sent_ms), ic.adminSignature
                )
                if ic.type == control.InfoChange.NAME:
                    line = f"{self._name_of(sender)} renamed the group to {ic.updatedName}"
                elif ic.type == control.InfoChange.DISAPPEARING_MESSAGES:
                    line = (
                        f"{self._name_of(sender)} set messages to disappear"
                        f" {duration(ic.updatedExpiration)} after sending"
                        if ic.updatedExpiration > 0
                        else f"{self._name_of(sender)} turned off disappearing messages"
                    )
                else:
                    line = f"{self._name_of(sender)} changed the group picture"
            elif up.HasField("memberChangeMessage"):
                mc = up.memberChangeMessage
                change = control.MemberChange(mc.type)
                control.verify(
                    st.gid, control.member_change_text(change, sent_ms), mc.adminSignature
                )
                line = self._member_line(sender, change, list(mc.memberSessionIds))
                self._note_added(st, sent_ms, change, mc.memberSessionIds)
            elif up.HasField("deleteMemberContent"):
                d = up.deleteMemberContent
                control.verify(
                    st.gid,
                    control.delete_content_text(sent_ms, d.memberSessionIds, d.messageHashes),
                    d.adminSignature,
                )
                self._delete_by(st.gid, list(d.memberSessionIds))
                for mh in d.messageHashes:
                    for m in self.db.messages(st.gid):
                        if m.hash == mh:
                            self.db.delete_message(m.id)
            elif up.HasField("memberLeftMessage"):
                line = f"{self._name_of(sender)} left the group"
                st.left[sender] = max(st.left.get(sender, 0), sent_ms)
            elif up.HasField("inviteResponse") and up.inviteResponse.isApproved:
                line = f"{self._name_of(sender)} joined the group"
                if st.admin_key is not None:
                    cur = get_members(st.members.data).get(sender)
                    if cur is not None and cur.invite_status is not None:
                        set_member(st.members.edit(), dataclasses.replace(cur, invite_status=None))
                        self._push_configs(st, self.c._next_sent_ms())
        except (InvalidSignature, InvalidInput, ValueError) as e:
            log.info("group control message %s dropped: %s", h[:10], e)
            return []
        if line is None:
            return []
        mid = self.db.add_message(
            conversation=st.gid,
            author=sender,
            sent_ms=sent_ms,
            outgoing=False,
            body=line,
            status=CONTROL,
            hash=h,
        )
        if mid is None:
            return []
        return [MessageReceived(st.gid, mid, sender, sent_ms, line, False, False)]
