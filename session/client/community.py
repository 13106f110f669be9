"""Communities (SOGS v3 open groups, client spec §4): join by URL, poll, post, react, edit,
delete, blinded direct messages, room attachments, and the joined rooms in the UserGroups
config so every device of the account has them.

The sans-I/O half (URL parsing, request and post building, parsing and verifying what a server
answers) is plain functions; :class:`CommunityManager` (``Client.communities``) adds the
requests and the client's SQLite.

How requests travel: every request is a v4 onion request through a 3-hop path to the server's
X25519 key (from the join URL), so the server sees the last node's address, never ours. Each
authenticated request carries the ``X-SOGS-*`` headers signed with the account's 15-blinded
key for that server (:func:`session.blinding.sogs_auth_headers`), so the server only ever sees
the blinded id, never the Session ID.

Polling: one ``POST /batch`` per server, as Session Desktop does: ``/capabilities``, per room
``/room/R/pollInfo/N`` and ``/room/R/messages/since/S?t=r&reactors=5`` (``/recent`` the first
time), and ``/inbox/since/I`` + ``/outbox/since/O`` on blinded servers. (``/sequence`` would stop
at the first non-2xx answer, and ``inbox/since`` answers 304 when there is nothing new, which
would starve the outbox.)

Posts: ``data`` = base64(pad160(Content)) with a 15-blinded signature over those bytes.
Receivers verify every post under its sender id and drop those that fail: ``15``/``25`` ids as
plain Ed25519 under the blinded key, unblinded ``05`` ids with XEd25519 under the X25519 key.

Servers without the ``blind`` capability (older SOGS) see the Session ID, as Session does
there: requests are signed with the ``00``-prefixed Ed25519 key and posts with XEd25519, and
our id in the room is our ``05`` Session ID. Until a server's capabilities are known (the
join request) we sign blinded.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from google.protobuf.message import DecodeError as _PbDecodeError

from session import blinding, onion
from session.client import messages as M
from session.client.attachments import check_upload_size, content_type_for, safe_filename
from session.client.events import (
    CommunityDMReceived,
    CommunityPostReceived,
    CommunityRoomUpdated,
    Event,
)
from session.client.transport import PathFailure
from session.errors import (
    CommunityError,
    CommunityNotJoined,
    DecryptionError,
    InvalidCommunityURL,
    InvalidInput,
    InvalidSessionID,
    InvalidSignature,
    SessionError,
)
from session.groups.user_groups import CommunityEntry
from session.identity import verify_many as ed25519_verify_many
from session.proto import session_pb2 as pb

if TYPE_CHECKING:
    from session.client.api import Client
    from session.client.transport import OnionTransport
    from session.identity import Identity

log = logging.getLogger("session.client.community")

#: Room tokens (desktop ``OpenGroupUtils``).
ROOM_TOKEN = re.compile(r"[0-9a-zA-Z_-]{1,64}\Z")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")
#: Reactors listed per reaction in polls (desktop's ``SOGSReactorsFetchCount``).
REACTORS = 5
#: Messages asked for per room and poll (SOGS's maximum is 256).
POLL_LIMIT = 256
#: Paths tried per request before giving up.
ATTEMPTS = 3
#: Seconds one request may take (a room attachment of 10 MB through three hops).
REQUEST_TIMEOUT = 120.0
#: Largest room attachment (SOGS's default upload limit).
MAX_FILE_SIZE = 10_000_000
#: A reaction is 1–12 code points (SOGS).
MAX_REACTION_CODEPOINTS = 12

COMMUNITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS community_servers (
    base_url TEXT PRIMARY KEY,
    pubkey TEXT NOT NULL,              -- X25519, hex (from the join URL)
    capabilities TEXT NOT NULL DEFAULT '[]',
    inbox_id INTEGER NOT NULL DEFAULT 0,
    outbox_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS community_rooms (
    base_url TEXT NOT NULL REFERENCES community_servers(base_url),
    token TEXT NOT NULL,
    name BLOB,                         -- sealed room name
    info_updates INTEGER NOT NULL DEFAULT 0,
    seqno INTEGER,                     -- NULL until the first poll
    joined_ms INTEGER NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',   -- last room details (moderators, permissions, ...)
    PRIMARY KEY (base_url, token)
);
CREATE TABLE IF NOT EXISTS community_posts (
    base_url TEXT NOT NULL,
    token TEXT NOT NULL,
    id INTEGER NOT NULL,
    seqno INTEGER NOT NULL,
    author TEXT NOT NULL,              -- blinded id (15/25) as the server lists it
    posted REAL NOT NULL,
    edited REAL,
    sent_ms INTEGER NOT NULL DEFAULT 0,  -- the Content's own timestamp (quotes refer to it)
    body BLOB,                         -- sealed text
    name BLOB,                         -- sealed sender display name
    quote TEXT,                        -- JSON {id, author, text} or NULL
    files TEXT NOT NULL DEFAULT '[]',  -- JSON list of attachments
    reactions TEXT NOT NULL DEFAULT '{}',
    whisper INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (base_url, token, id)
);
CREATE TABLE IF NOT EXISTS community_dms (
    base_url TEXT NOT NULL,
    id INTEGER NOT NULL,
    outgoing INTEGER NOT NULL,
    peer TEXT NOT NULL,                -- the other side's blinded id
    sender_session_id TEXT,            -- the sender's real 05 id, from the decrypted message
    posted REAL NOT NULL,
    body BLOB,                         -- sealed text
    name BLOB,                         -- sealed sender display name
    PRIMARY KEY (base_url, id)
);
"""


# ---------------------------------------------------------------------------- URLs


@dataclasses.dataclass(frozen=True, slots=True)
class CommunityURL:
    """A parsed join URL: canonical base URL, room token, the server's X25519 key (hex)."""

    base_url: str
    room: str
    pubkey: str

    @property
    def join_url(self) -> str:
        return f"{self.base_url}/{self.room}?public_key={self.pubkey}"


def canonical_base_url(url: str) -> str:
    """``scheme://host[:port]`` in lower case, the scheme's default port left out (libsession's
    canonical form, the key of the UserGroups config)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidCommunityURL("a community URL starts with http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise InvalidCommunityURL("the community URL has an invalid port") from None
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None:
        raise InvalidCommunityURL("the community URL has no host (or has user:password@)")
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def parse_join_url(url: str) -> CommunityURL:
    """Parse ``http(s)://host[:port]/ROOM?public_key=<64 hex>`` (also ``…/r/ROOM``). Raises
    InvalidCommunityURL with the reason."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidCommunityURL("a community URL is text of at most 2048 characters")
    parts = urlsplit(url.strip())
    base = canonical_base_url(url)
    segs = [s for s in parts.path.split("/") if s]
    if len(segs) == 2 and segs[0] == "r":
        segs = segs[1:]
    if len(segs) != 1 or not ROOM_TOKEN.match(segs[0]):
        raise InvalidCommunityURL(
            "the community URL must end in /ROOM, a room token of 1-64 letters, digits, _ or -"
        )
    keys = parse_qs(parts.query).get("public_key", [])
    if len(keys) != 1 or not _HEX64.match(keys[0]):
        raise InvalidCommunityURL(
            "the community URL needs ?public_key= with the server's key (64 hex digits)"
        )
    return CommunityURL(base, segs[0], keys[0].lower())


def destination(base_url: str, pubkey_hex: str) -> onion.ServerDestination:
    """The server as a v4 onion destination (the last node proxies to host:port)."""
    parts = urlsplit(base_url)
    if parts.hostname is None:
        raise InvalidCommunityURL(f"the community URL {base_url!r} has no host")
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    return onion.ServerDestination(
        parts.hostname, "/oxen/v4/lsrpc", bytes.fromhex(pubkey_hex), scheme, port
    )


def wire_path(path: str) -> str:
    """The endpoint as sent (non-ASCII percent-encoded); the signature covers ``path`` as it
    is (the URL-decoded UTF-8 form, client spec §4.3)."""
    return quote(path, safe="/?=&:,;+@!$'()*-._~%")


# ---------------------------------------------------------------------------- rows


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    """A joined room."""

    base_url: str
    token: str
    pubkey: str
    name: str | None
    info_updates: int
    seqno: int | None
    joined_ms: int
    info: dict[str, Any]

    @property
    def join_url(self) -> str:
        return f"{self.base_url}/{self.token}?public_key={self.pubkey}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "room": self.token,
            "name": self.name,
            "url": self.join_url,
            "seqno": self.seqno,
            "joined_ms": self.joined_ms,
            "active_users": self.info.get("active_users"),
            "read": self.info.get("read"),
            "write": self.info.get("write"),
            "upload": self.info.get("upload"),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class DirectMessage:
    """One blinded DM (received, or sent from any of our devices)."""

    base_url: str
    id: int
    outgoing: bool
    peer: str
    sender_session_id: str | None
    posted: float
    body: str | None
    name: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a server brought: new or changed posts, deleted posts, new DMs."""

    posts: int = 0
    deleted: int = 0
    dropped: int = 0
    dms: int = 0


# ---------------------------------------------------------------------------- posts


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedPost:
    """A room's message object that verified, with its Content decoded (``Post`` adds where
    it is stored)."""

    id: int
    seqno: int
    author: str
    posted: float
    edited: float | None
    sent_ms: int
    body: str | None
    name: str | None
    quote: dict[str, Any] | None
    files: list[dict[str, Any]]
    reactions: dict[str, Any]
    whisper: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Post(ParsedPost):
    """One verified post of a stored room. ``author`` is the blinded id the server lists;
    ``name``, ``body``, ``quote``, ``files`` and ``reactions`` were chosen by others: print them
    only through :func:`session.text.for_terminal`."""

    base_url: str
    room: str
    mine: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def encode_post(content: pb.Content) -> bytes:
    """The bytes a post's ``data`` carries: pad160(Content) (posts are not encrypted)."""
    return M.pad(content.SerializeToString())


def post_content(
    body: str,
    *,
    sent_ms: int,
    display_name: str | None,
    quote: tuple[int, str, str | None] | None = None,
    attachments: Sequence[pb.AttachmentPointer] = (),
) -> pb.Content:
    """A community post's Content: text, our display name, an optional quote (id, author,
    text) and attachment pointers to files on the room."""
    c = M.text(
        body,
        sent_ms=sent_ms,
        display_name=display_name,
        attachments=attachments,
    )
    c.dataMessage.timestamp = sent_ms
    if quote is not None:
        c.dataMessage.quote.id, c.dataMessage.quote.author = quote[0], quote[1]
        if quote[2]:
            c.dataMessage.quote.text = quote[2]
    return c


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base64") from None


#: Ids, seqnos and counters a server may send: what SQLite's INTEGER holds.
MAX_COUNTER = 2**63 - 1


def counter(value: Any) -> int | None:
    """A non-negative integer id/seqno/counter of a server's answer, or None (wrong type, bool,
    negative or beyond SQLite's INTEGER)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNTER:
        return value
    return None


def _num(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        f = float(value) if abs(value) < 1e300 else default
        return f if f is None or math.isfinite(f) else default
    return default


def verify_post(author: str, data: bytes, signature: bytes) -> None:
    """Check a post's signature under its sender id: 15/25 ids as plain Ed25519 under the
    blinded key, 05 ids as XEd25519 under the X25519 key. Raises InvalidSignature."""
    if not isinstance(author, str) or not _AUTHOR.match(author):
        raise InvalidSignature("the post's sender is not a 05, 15 or 25 id")
    try:
        if author.startswith("05"):
            blinding.xed25519_verify(author, data, signature)
        else:
            blinding.verify_blinded(author, data, signature)
    except InvalidSessionID:
        raise InvalidSignature("the post's sender is not a valid id") from None


def _content_of(data: bytes) -> pb.Content:
    try:
        return pb.Content.FromString(M.unpad(data))
    except (_PbDecodeError, SessionError, ValueError):
        raise InvalidInput("the post's data is not a Session Content message") from None


def attachment_doc(p: pb.AttachmentPointer) -> dict[str, Any]:
    """What we keep of an attachment pointer of a post."""
    return {
        "url": p.url,
        "file_name": p.fileName if p.HasField("fileName") else None,
        "content_type": p.contentType,
        "size": p.size,
    }


#: A post's sender: a 15/25-blinded id, or an unblinded 05 Session ID.
_AUTHOR = re.compile(r"(?:[12]5|05)[0-9a-fA-F]{64}\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class SignedPost:
    """The signed parts of a room's message object, decoded but not yet verified."""

    id: int
    author: str
    data: bytes
    signature: bytes


def signed_parts(msg: Mapping[str, Any]) -> SignedPost:
    """Decode a message object's id, author, data and signature (not a deletion, not
    reactions only). Raises InvalidInput, or InvalidSignature for a sender that is not a
    05/15/25 id."""
    post_id = counter(msg.get("id"))
    if post_id is None:
        raise InvalidInput("the post has no valid id")
    author = msg.get("session_id")
    if not isinstance(author, str) or not _AUTHOR.match(author):
        raise InvalidSignature("the post's sender is not a 05, 15 or 25 id")
    data = _b64(msg.get("data"), "the post's data")
    signature = _b64(msg.get("signature"), "the post's signature")
    return SignedPost(post_id, author, data, signature)


def verify_many(posts: Sequence[SignedPost]) -> list[bool]:
    """Check many posts' signatures at once, with :func:`verify_post`'s rules: blinded senders
    as one batch (Ed25519 under each blinded key, in parallel without the GIL), 05 senders
    one by one with XEd25519."""
    blinded = [i for i, p in enumerate(posts) if not p.author.startswith("05")]
    ok = [False] * len(posts)
    checks = ed25519_verify_many(
        [(bytes.fromhex(posts[i].author[2:]), posts[i].data, posts[i].signature) for i in blinded]
    )
    for i, good in zip(blinded, checks, strict=True):
        ok[i] = good
    for i, p in enumerate(posts):
        if p.author.startswith("05"):
            try:
                blinding.xed25519_verify(p.author, p.data, p.signature)
            except (InvalidSignature, InvalidSessionID):
                continue
            ok[i] = True
    return ok


def decode_post(msg: Mapping[str, Any], signed: SignedPost) -> ParsedPost:
    """The Content of a post whose signature was checked. Raises InvalidInput."""
    content = _content_of(signed.data)
    dm = content.dataMessage
    quote = None
    if dm.HasField("quote"):
        quote = {"id": dm.quote.id, "author": dm.quote.author, "text": dm.quote.text or None}
    posted = _num(msg.get("posted"), 0.0)
    assert posted is not None
    return ParsedPost(
        id=signed.id,
        seqno=counter(msg.get("seqno")) or 0,
        author=signed.author,
        posted=posted,
        edited=_num(msg.get("edited")),
        sent_ms=int(dm.timestamp or content.sigTimestamp or posted * 1000),
        body=dm.body if dm.HasField("body") else None,
        name=dm.profile.displayName if dm.profile.HasField("displayName") else None,
        quote=quote,
        files=[attachment_doc(a) for a in dm.attachments],
        reactions=reactions_of(msg),
        whisper=bool(msg.get("whisper")),
    )


def parse_post(msg: Mapping[str, Any]) -> ParsedPost:
    """Verify and decode one message object of a room (not a deletion, not reactions only).
    Raises InvalidSignature / InvalidInput: the caller drops the post."""
    signed = signed_parts(msg)
    verify_post(signed.author, signed.data, signed.signature)
    return decode_post(msg, signed)


def reactions_of(msg: Mapping[str, Any]) -> dict[str, Any]:
    """``{emoji: {count, reactors, you}}`` of a message object (malformed entries skipped)."""
    out: dict[str, Any] = {}
    raw = msg.get("reactions")
    if not isinstance(raw, dict):
        return out
    for emoji, r in raw.items():
        if isinstance(emoji, str) and isinstance(r, dict) and isinstance(r.get("count"), int):
            reactors = r.get("reactors")
            out[emoji] = {
                "count": r["count"],
                "reactors": [x for x in reactors if isinstance(x, str)]
                if isinstance(reactors, list)
                else [],
                "you": bool(r.get("you")),
            }
    return out


def check_emoji(emoji: str) -> str:
    """A reaction SOGS accepts: 1-12 code points, no path or control characters."""
    if not isinstance(emoji, str) or not 1 <= len(emoji) <= MAX_REACTION_CODEPOINTS:
        raise InvalidInput(f"a reaction is 1 to {MAX_REACTION_CODEPOINTS} characters")
    if any(ch in "/?#%" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in emoji):
        raise InvalidInput("a reaction cannot contain /, ?, #, % or control characters")
    return emoji


# ---------------------------------------------------------------------------- responses


def _reason(body: bytes) -> str:
    text = body[:300].decode(errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if isinstance(doc, dict):
        for k in ("error", "message", "description"):
            if isinstance(doc.get(k), str):
                return str(doc[k])
    return text


_MEANING = {
    400: "the server refused the request as malformed",
    401: "the server did not accept our request signature",
    403: "the server refused: you are banned from this room or lack the permission",
    404: (
        "the server does not have it or hides it from you (unknown room, message or recipient;"
        " a member banned from a room no longer sees it)"
    ),
    406: "the server refused it",
    412: "the server lacks a required capability",
    413: "the server refused it as too large",
    425: "the server refused our request's timestamp or nonce (is the clock right?)",
    429: "the server refused it: too many requests, slow down",
}


def refusal(status: int, body: bytes) -> CommunityError:
    """The typed error for a non-2xx answer."""
    meaning = _MEANING.get(status, "the community server refused the request")
    reason = _reason(body)
    return CommunityError(status, f"{meaning} ({status}{': ' + reason if reason else ''})")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise CommunityError(200, "the community server answered something not JSON") from None


# ---------------------------------------------------------------------------- manager


def room_poll_requests(token: str, info_updates: int, seqno: int | None) -> list[dict[str, Any]]:
    """A room's part of a ``/batch`` poll: its ``pollInfo`` since ``info_updates`` and its
    messages (the recent ones before the first poll, then those since ``seqno``)."""
    if seqno is None:
        path = f"/room/{token}/messages/recent?limit={POLL_LIMIT}&reactors={REACTORS}"
    else:
        path = f"/room/{token}/messages/since/{seqno}?t=r&reactors={REACTORS}&limit={POLL_LIMIT}"
    return [
        {"method": "GET", "path": f"/room/{token}/pollInfo/{info_updates}"},
        {"method": "GET", "path": path},
    ]


def dm_poll_requests(inbox_id: int, outbox_id: int) -> list[dict[str, Any]]:
    """The blinded-DM part of a ``/batch`` poll (servers with the ``blind`` capability): the
    inbox and outbox since the last message id seen of each (all of it before the first)."""
    return [
        {"method": "GET", "path": f"/{box}/since/{last}" if last else f"/{box}"}
        for box, last in (("inbox", inbox_id), ("outbox", outbox_id))
    ]


async def server_request(
    transport: OnionTransport,
    identity: Identity,
    now_s: Callable[[], int],
    base_url: str,
    pubkey: str,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: bool = True,
    blinded: bool = True,
) -> tuple[int, bytes]:
    """One request to a community server through an onion path of ``transport`` (a fresh one
    on a path failure, re-signed with a fresh nonce), signed when ``auth`` with ``identity``'s
    15-blinded key for the server ``pubkey`` (its unblinded key when not ``blinded``) at
    ``now_s()`` (network seconds); returns (status, body) of a 2xx/304 answer, raises
    CommunityError for a refusal and the transport's PathFailure when no path got through.
    What :meth:`CommunityManager.request` sends; the load tool's community members
    (``bench/load/community.py``) use it directly."""
    dest = destination(base_url, pubkey)
    raw = b"" if body is None else bytes(body)
    hdrs = dict(headers or {})
    if json_body is not None:
        raw = json.dumps(json_body, separators=(",", ":")).encode()
        hdrs["Content-Type"] = "application/json"
    failure: PathFailure | None = None
    for _ in range(ATTEMPTS):
        signed = dict(hdrs)
        if auth:
            signed.update(
                blinding.sogs_auth_headers(
                    identity, pubkey, method, path, raw, blinded=blinded, timestamp=now_s()
                )
            )
        meta = {"method": method, "endpoint": wire_path(path), "headers": signed}
        try:
            status, _, payload = await transport.request_server(
                dest, meta, raw or None, timeout=REQUEST_TIMEOUT
            )
        except PathFailure as e:
            failure = e
            continue
        if 200 <= status < 300 or status == 304:
            return status, payload
        raise refusal(status, payload)
    assert failure is not None
    raise failure


def batch_answers(payload: bytes, count: int) -> list[tuple[int, Any]]:
    """The (status, body) of each of ``count`` subrequests from a ``POST /batch`` answer: a
    JSON body as parsed, another (an error's plain text, a file) as the bytes the server
    base64-encoded into the batch. Raises CommunityError when the answer does not match the
    request."""
    doc = _json(payload)
    if not isinstance(doc, list) or len(doc) != count:
        raise CommunityError(200, "the community server's batch answer does not match")
    out: list[tuple[int, Any]] = []
    for r in doc:
        code = r.get("code") if isinstance(r, dict) else None
        body = r.get("body") if isinstance(r, dict) else None
        headers = r.get("headers") if isinstance(r, dict) else None
        ctype = headers.get("content-type") if isinstance(headers, dict) else None
        if isinstance(body, str) and isinstance(ctype, str) and "json" not in ctype.lower():
            try:
                body = base64.b64decode(body, validate=True)
            except ValueError:
                pass  # (not base64 after all: kept as the server wrote it)
        out.append((int(code) if isinstance(code, int) else 500, body))
    return out


class CommunityManager:
    """The communities of one :class:`~session.client.api.Client` (``client.communities``)."""

    def __init__(self, client: Client) -> None:
        self.c = client
        self.db = client.db
        self.db.conn.executescript(COMMUNITY_SCHEMA)
        #: Called (inside the transaction) after joined rooms changed: pushes UserGroups.
        self.on_change: Callable[[], None] = lambda: None
        self._blinded: dict[str, str] = {}
        #: Events of the poll being applied, emitted once its transaction committed.
        self._events: list[Event] = []
        self._form_cache: dict[tuple[str, str], tuple[str, ...]] = {}

    # ------------------------------------------------------------------ state

    def _pubkey(self, base_url: str) -> str:
        row = self.db.conn.execute(
            "SELECT pubkey FROM community_servers WHERE base_url=?", (base_url,)
        ).fetchone()
        if row is None:
            raise CommunityNotJoined(f"no joined community on {base_url}")
        return str(row[0])

    def blinded_id(self, base_url: str) -> str:
        """Our id on this server (what the server and the room see): 15-blinded, or our 05
        Session ID on a server without the ``blind`` capability."""
        if not self.is_blinded(base_url):
            return self.c.identity.session_id
        if base_url not in self._blinded:
            self._blinded[base_url] = blinding.blinded15_id(self.c.identity, self._pubkey(base_url))
        return self._blinded[base_url]

    def is_blinded(self, base_url: str) -> bool:
        """Whether we talk to this server under our blinded id: yes unless it told us its
        capabilities and ``blind`` is not among them. Unknown capabilities (not joined yet, or
        a room adopted from another device's config and not polled yet) mean blinded: the
        Session ID is only shown to a server known not to blind."""
        row = self.db.conn.execute(
            "SELECT capabilities FROM community_servers WHERE base_url=?", (base_url,)
        ).fetchone()
        caps = [] if row is None else json.loads(row[0])
        return not caps or "blind" in caps

    def capabilities(self, base_url: str) -> list[str]:
        row = self.db.conn.execute(
            "SELECT capabilities FROM community_servers WHERE base_url=?", (base_url,)
        ).fetchone()
        return [] if row is None else list(json.loads(row[0]))

    def _room(self, row: sqlite3.Row) -> Room:
        return Room(
            base_url=row["base_url"],
            token=row["token"],
            pubkey=self._pubkey(row["base_url"]),
            name=self.db.sealer.open_str(row["name"]),
            info_updates=int(row["info_updates"]),
            seqno=None if row["seqno"] is None else int(row["seqno"]),
            joined_ms=int(row["joined_ms"]),
            info=json.loads(row["info"]),
        )

    def rooms(self) -> list[Room]:
        """Every joined room, by server then token."""
        rows = self.db.conn.execute(
            "SELECT * FROM community_rooms ORDER BY base_url, token"
        ).fetchall()
        return [self._room(r) for r in rows]

    def room(self, ref: str) -> Room:
        """The joined room named by ``ref``: a token (``lobby``), ``base_url/token``, or its
        join URL. Raises CommunityNotJoined when none or several match."""
        ref = ref.strip()
        if "://" in ref:
            try:
                u = parse_join_url(ref)
                base, token = u.base_url, u.room
            except InvalidCommunityURL:
                head, _, token = ref.rstrip("/").rpartition("/")
                base = canonical_base_url(head)
            found = [r for r in self.rooms() if r.base_url == base and r.token == token]
        else:
            found = [r for r in self.rooms() if r.token == ref]
            if not found:
                found = [r for r in self.rooms() if r.token.lower() == ref.lower()]
        if len(found) == 1:
            return found[0]
        if not found:
            raise CommunityNotJoined(f"you have not joined a room {ref!r} (see community list)")
        raise CommunityNotJoined(
            f"several joined rooms are called {ref!r}: name it as base_url/room"
        )

    def config_entries(self) -> list[CommunityEntry]:
        """Our joined rooms as UserGroups entries (for our other devices)."""
        return [
            CommunityEntry(r.base_url, r.token, bytes.fromhex(r.pubkey), 0, r.joined_ms // 1000)
            for r in self.rooms()
        ]

    def adopt_config(self, entries: Iterable[CommunityEntry]) -> int:
        """Make the joined rooms those of the merged UserGroups config (inside the caller's
        transaction): rooms another device joined are added (polled on the next poll), rooms
        another device left are removed. Returns how many changed."""
        wanted = {(e.base_url, e.room): e for e in entries}
        have = {(r.base_url, r.token) for r in self.rooms()}
        changed = 0
        for key, e in wanted.items():
            if key in have:
                continue
            try:
                base = canonical_base_url(e.base_url)
            except InvalidCommunityURL:
                continue
            if base != e.base_url or not ROOM_TOKEN.match(e.room):
                continue
            self._insert(CommunityURL(base, e.room, e.pubkey.hex()), e.joined_at * 1000)
            changed += 1
        for base, token in have - wanted.keys():
            self._forget(base, token)
            changed += 1
        return changed

    def _insert(self, u: CommunityURL, joined_ms: int) -> None:
        self.db.conn.execute(
            "INSERT INTO community_servers (base_url, pubkey) VALUES (?, ?)"
            " ON CONFLICT(base_url) DO UPDATE SET pubkey=excluded.pubkey",
            (u.base_url, u.pubkey),
        )
        self._blinded.pop(u.base_url, None)
        self._form_cache.clear()
        self.db.conn.execute(
            "INSERT OR IGNORE INTO community_rooms (base_url, token, joined_ms) VALUES (?,?,?)",
            (u.base_url, u.room, joined_ms),
        )

    def _forget(self, base_url: str, token: str) -> None:
        conn = self.db.conn
        conn.execute("DELETE FROM community_rooms WHERE base_url=? AND token=?", (base_url, token))
        conn.execute("DELETE FROM community_posts WHERE base_url=? AND token=?", (base_url, token))
        left = conn.execute(
            "SELECT 1 FROM community_rooms WHERE base_url=? LIMIT 1", (base_url,)
        ).fetchone()
        if left is None:
            conn.execute("DELETE FROM community_dms WHERE base_url=?", (base_url,))
            conn.execute("DELETE FROM community_servers WHERE base_url=?", (base_url,))
            self._blinded.pop(base_url, None)
            self._form_cache.clear()

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        base_url: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        pubkey: str | None = None,
    ) -> tuple[int, bytes]:
        """One request through an onion path (a fresh one on a path failure, re-signed with a
        fresh nonce); returns (status, body) of a 2xx/304 answer, raises CommunityError for a
        refusal and the transport's PathFailure when no path got through."""
        return await server_request(
            self.c.transport,
            self.c.identity,
            lambda: int(self.c.clock.now_ms() // 1000),
            base_url,
            pubkey or self._pubkey(base_url),
            method,
            path,
            json_body=json_body,
            body=body,
            headers=headers,
            auth=auth,
            blinded=self.is_blinded(base_url),
        )

    async def _batch(
        self, base_url: str, subrequests: list[dict[str, Any]], *, pubkey: str | None = None
    ) -> list[tuple[int, Any]]:
        """``POST /batch``: every subrequest's (status, body) in order."""
        _, payload = await self.request(
            base_url, "POST", "/batch", json_body=subrequests, pubkey=pubkey
        )
        return batch_answers(payload, len(subrequests))

    # ------------------------------------------------------------------ join / leave

    async def join(self, url: str) -> Room:
        """Join the room of a join URL: ask the server (capabilities and the room's info, which
        proves the key is the server's: the onion reply only opens with it), store the room,
        share it with our other devices, and fetch its recent posts."""
        u = parse_join_url(url)
        await self.c._ensure_clock()
        answers = await self._batch(
            u.base_url,
            [
                {"method": "GET", "path": "/capabilities"},
                {"method": "GET", "path": f"/room/{u.room}"},
            ],
            pubkey=u.pubkey,
        )
        (_, caps), (room_code, info) = answers
        if room_code != 200 or not isinstance(info, dict):
            reason = info if isinstance(info, bytes) else json.dumps(info).encode() if info else b""
            raise refusal(room_code, reason)
        capabilities = caps.get("capabilities") if isinstance(caps, dict) else None
        with self.db.tx():
            self._insert(u, self.c.clock.now_ms())
            self.db.conn.execute(
                "UPDATE community_servers SET capabilities=? WHERE base_url=?",
                (json.dumps(capabilities if isinstance(capabilities, list) else []), u.base_url),
            )
            self._apply_info(u.base_url, u.room, info)
            self.on_change()
        self.c.loops.wake.set()
        await self.poll(u.base_url)
        return self.room(u.join_url)

    async def leave(self, ref: str) -> Room:
        """Leave a room: forget it and its posts here and on our other devices."""
        room = self.room(ref)
        with self.db.tx():
            self._forget(room.base_url, room.token)
            self.on_change()
        self.c.loops.wake.set()
        return room

    def _apply_info(self, base_url: str, token: str, info: Mapping[str, Any]) -> None:
        name = info.get("name")
        keep = {
            k: info[k]
            for k in (
                "active_users",
                "read",
                "write",
                "upload",
                "moderators",
                "admins",
                "description",
                "message_sequence",
                "moderator",
                "admin",
                "pinned_messages",
            )
            if k in info
        }
        old = self.db.conn.execute(
            "SELECT info FROM community_rooms WHERE base_url=? AND token=?", (base_url, token)
        ).fetchone()
        merged = {**(json.loads(old[0]) if old else {}), **keep}
        self.db.conn.execute(
            "UPDATE community_rooms SET name=COALESCE(?, name), info=?,"
            " info_updates=MAX(info_updates, ?) WHERE base_url=? AND token=?",
            (
                self.db.sealer.seal(name) if isinstance(name, str) else None,
                json.dumps(merged),
                counter(info.get("info_updates")) or 0,
                base_url,
                token,
            ),
        )

    # ------------------------------------------------------------------ polling

    def _poll_requests(self, base_url: str) -> list[dict[str, Any]]:
        reqs: list[dict[str, Any]] = [{"method": "GET", "path": "/capabilities"}]
        for r in self.rooms():
            if r.base_url != base_url:
                continue
            reqs += room_poll_requests(r.token, r.info_updates, r.seqno)
        if self.is_blinded(base_url):
            row = self.db.conn.execute(
                "SELECT inbox_id, outbox_id FROM community_servers WHERE base_url=?", (base_url,)
            ).fetchone()
            reqs += dm_poll_requests(row[0], row[1])
        return reqs

    async def poll(self, base_url: str) -> PollResult:
        """One ``/batch`` poll of a server; stores what is new and returns the counts."""
        reqs = self._poll_requests(base_url)
        answers = await self._batch(base_url, reqs)
        return self.apply_poll(base_url, reqs, answers)

    def apply_poll(
        self, base_url: str, reqs: list[dict[str, Any]], answers: list[tuple[int, Any]]
    ) -> PollResult:
        """Store what a poll's answers (``(status, body)`` per subrequest of ``reqs``, as the
        server sent them: anything) bring, in one transaction; malformed parts are skipped."""
        posts = deleted = dropped = dms = 0
        self._events = []
        with self.db.tx():
            for req, (code, body) in zip(reqs, answers, strict=True):
                path = str(req["path"])
                if code == 304:
                    continue
                if code != 200:
                    log.info("community poll: %s answered %d", path.split("?")[0], code)
                    continue
                if path == "/capabilities" and isinstance(body, dict):
                    caps = body.get("capabilities")
                    if isinstance(caps, list):
                        self.db.conn.execute(
                            "UPDATE community_servers SET capabilities=? WHERE base_url=?",
                            (json.dumps([c for c in caps if isinstance(c, str)]), base_url),
                        )
                elif "/pollInfo/" in path and isinstance(body, dict):
                    token = path.split("/")[2]
                    details = body.get("details")
                    info = details if isinstance(details, dict) else body
                    self._apply_info(base_url, token, info)
                elif "/messages/" in path and isinstance(body, list):
                    token = path.split("/")[2]
                    p, d, x = self._apply_messages(base_url, token, body, first="/recent" in path)
                    posts, deleted, dropped = posts + p, deleted + d, dropped + x
                elif path.startswith(("/inbox", "/outbox")) and isinstance(body, list):
                    dms += self._apply_dms(base_url, body, outgoing=path.startswith("/outbox"))
        events, self._events = self._events, []
        for ev in events:
            self.c.hub.emit(ev)
        return PollResult(posts, deleted, dropped, dms)

    async def fetch_older(
        self, ref: str, *, before: int | None = None, limit: int = POLL_LIMIT
    ) -> int:
        """Read up to ``limit`` (≤ 256) posts older than post ``before`` (default: the oldest
        stored) from the room's server (``/room/R/messages/before/ID``) and store them with the
        rest of the room's history, verified as a poll's are. Returns how many the server
        listed: fewer than ``limit`` means the room's history is complete here. The room's poll
        position does not move (a post edited since may come back in a later poll too), and
        no events are emitted: these are not new posts."""
        room = self.room(ref)
        if not 1 <= limit <= POLL_LIMIT:
            raise InvalidInput(f"limit must be 1..{POLL_LIMIT}")
        if before is None:
            row = self.db.conn.execute(
                "SELECT MIN(id) FROM community_posts WHERE base_url=? AND token=?",
                (room.base_url, room.token),
            ).fetchone()
            if row[0] is None:
                return 0  # nothing stored yet: the first poll reads the recent posts
            before = int(row[0])
        if before <= 1:
            return 0
        await self.c._ensure_clock()
        _, payload = await self.request(
            room.base_url,
            "GET",
            f"/room/{room.token}/messages/before/{before}?limit={limit}&reactors={REACTORS}",
        )
        msgs = _json(payload)
        if not isinstance(msgs, list):
            raise CommunityError(200, "the community server's list of posts is not a list")
        with self.db.tx():
            self._apply_messages(room.base_url, room.token, msgs, first=False, history=True)
        return len(msgs)

    async def poll_all(self) -> PollResult:
        """Poll every server we have a room on; a server that fails is logged and skipped."""
        total = PollResult()
        bases = sorted({r.base_url for r in self.rooms()})
        for base in bases:
            try:
                got = await self.poll(base)
            except SessionError as e:
                log.info("community poll failed: %s", e)
                continue
            total = PollResult(
                total.posts + got.posts,
                total.deleted + got.deleted,
                total.dropped + got.dropped,
                total.dms + got.dms,
            )
        return total

    def _apply_messages(
        self, base_url: str, token: str, msgs: list[Any], *, first: bool, history: bool = False
    ) -> tuple[int, int, int]:
        """Store a room's message objects (verified in one batch); ``history``: older posts
        read back (:meth:`fetch_older`), which move neither the room's seqno nor emit events."""
        posts = deleted = dropped = reacted = 0
        seq_row = self.db.conn.execute(
            "SELECT seqno, info FROM community_rooms WHERE base_url=? AND token=?",
            (base_url, token),
        ).fetchone()
        if seq_row is None:
            return 0, 0, 0
        top = seq_row[0] or 0
        signed: dict[int, SignedPost] = {}
        for i, msg in enumerate(msgs):
            if isinstance(msg, dict) and msg.get("data") is not None and not msg.get("deleted"):
                try:
                    signed[i] = signed_parts(msg)
                except (InvalidSignature, InvalidInput) as e:
                    log.debug("community post dropped: %s", e)
        checks = verify_many(list(signed.values()))
        verified = {i for i, ok in zip(signed, checks, strict=True) if ok}
        for i, msg in enumerate(msgs):
            mid = counter(msg.get("id")) if isinstance(msg, dict) else None
            if mid is None:
                dropped += 1
                continue
            seqno = counter(msg.get("seqno"))
            if seqno is not None:
                top = max(top, seqno)
            key = (base_url, token, mid)
            if msg.get("deleted") or ("data" in msg and msg["data"] is None):
                cur = self.db.conn.execute(
                    "DELETE FROM community_posts WHERE base_url=? AND token=? AND id=?", key
                )
                deleted += cur.rowcount
                continue
            if "data" not in msg:  # a reaction-only update (t=r)
                reacted += 1
                self.db.conn.execute(
                    "UPDATE community_posts SET reactions=?, seqno=MAX(seqno, ?)"
                    " WHERE base_url=? AND token=? AND id=?",
                    (json.dumps(reactions_of(msg)), seqno or 0, *key),
                )
                continue
            if i not in verified:
                dropped += 1
                continue
            try:
                p = decode_post(msg, signed[i])
            except (InvalidInput, ValueError) as e:
                log.debug("community post dropped: %s", e)
                dropped += 1
                continue
            new = (
                self.db.conn.execute(
                    "SELECT 1 FROM community_posts WHERE base_url=? AND token=? AND id=?", key
                ).fetchone()
                is None
            )
            self._store_post(base_url, token, p)
            posts += 1
            if new and not history:
                self._events.append(
                    CommunityPostReceived(
                        base_url,
                        token,
                        p.id,
                        p.author,
                        p.body,
                        p.name,
                        p.whisper,
                        p.author == self.blinded_id(base_url),
                    )
                )
        if history:
            return posts, deleted, dropped
        if first and not msgs:
            info = json.loads(seq_row[1])
            top = max(top, counter(info.get("message_sequence")) or 0)
        self.db.conn.execute(
            "UPDATE community_rooms SET seqno=? WHERE base_url=? AND token=?",
            (top, base_url, token),
        )
        if posts or deleted or reacted:
            self._events.append(CommunityRoomUpdated(base_url, token))
        return posts, deleted, dropped

    def _store_post(self, base_url: str, token: str, p: ParsedPost) -> None:
        seal = self.db.sealer.seal
        self.db.conn.execute(
            "INSERT INTO community_posts (base_url, token, id, seqno, author, posted, edited,"
            " sent_ms, body, name, quote, files, reactions, whisper)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(base_url, token, id) DO UPDATE SET seqno=excluded.seqno,"
            " edited=excluded.edited, body=excluded.body, name=excluded.name,"
            " quote=excluded.quote, files=excluded.files, reactions=excluded.reactions,"
            " sent_ms=excluded.sent_ms",
            (
                base_url,
                token,
                p.id,
                p.seqno,
                p.author,
                p.posted,
                p.edited,
                p.sent_ms,
                None if p.body is None else seal(p.body),
                None if p.name is None else seal(p.name),
                None if p.quote is None else json.dumps(p.quote),
                json.dumps(p.files),
                json.dumps(p.reactions),
                int(p.whisper),
            ),
        )

    def _apply_dms(self, base_url: str, items: list[Any], *, outgoing: bool) -> int:
        pk = self._pubkey(base_url)
        col = "outbox_id" if outgoing else "inbox_id"
        last = 0
        added = 0
        for it in items:
            dm_id = counter(it.get("id")) if isinstance(it, dict) else None
            if dm_id is None:
                continue
            last = max(last, dm_id)
            sender, recipient = it.get("sender"), it.get("recipient")
            try:
                raw = _b64(it.get("message"), "the message")
                content_bytes, sender_sid = blinding.decrypt_blinded_dm(
                    self.c.identity, pk, str(sender), str(recipient), raw
                )
                content = _content_of(content_bytes)
            except (DecryptionError, InvalidInput) as e:
                log.debug("community DM dropped: %s", e)
                continue
            dm = content.dataMessage
            body = dm.body if dm.HasField("body") else None
            name = dm.profile.displayName if dm.profile.HasField("displayName") else None
            posted = _num(it.get("posted_at"), 0.0)
            cur = self.db.conn.execute(
                "INSERT OR IGNORE INTO community_dms VALUES (?,?,?,?,?,?,?,?)",
                (
                    base_url,
                    dm_id,
                    int(outgoing),
                    str(recipient if outgoing else sender),
                    sender_sid,
                    posted,
                    None if body is None else self.db.sealer.seal(body),
                    None if name is None else self.db.sealer.seal(name),
                ),
            )
            added += cur.rowcount
            if cur.rowcount:
                peer = str(recipient if outgoing else sender)
                self._events.append(
                    CommunityDMReceived(base_url, dm_id, peer, sender_sid, body, outgoing)
                )
        if last:
            self.db.conn.execute(
                f"UPDATE community_servers SET {col}=MAX({col}, ?) WHERE base_url=?",
                (last, base_url),
            )
        return added

    # ------------------------------------------------------------------ reading

    def _post(self, row: sqlite3.Row, me: str) -> Post:
        return Post(
            base_url=row["base_url"],
            room=row["token"],
            id=int(row["id"]),
            seqno=int(row["seqno"]),
            author=row["author"],
            posted=float(row["posted"]),
            edited=None if row["edited"] is None else float(row["edited"]),
            sent_ms=int(row["sent_ms"]),
            body=self.db.sealer.open_str(row["body"]),
            name=self.db.sealer.open_str(row["name"]),
            quote=None if row["quote"] is None else json.loads(row["quote"]),
            files=json.loads(row["files"]),
            reactions=json.loads(row["reactions"]),
            whisper=bool(row["whisper"]),
            mine=row["author"] == me,
        )

    def posts(
        self, ref: str, *, since: int = 0, before: int | None = None, limit: int = 100
    ) -> list[Post]:
        """The stored posts of a room with id > ``since`` (and < ``before``), oldest first (the
        last ``limit``). Older posts than the room's first poll brought are read from the
        server with :meth:`fetch_older`."""
        room = self.room(ref)
        rows = self.db.conn.execute(
            "SELECT * FROM (SELECT * FROM community_posts WHERE base_url=? AND token=? AND id>?"
            " AND id<? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (room.base_url, room.token, since, before if before is not None else 2**63 - 1, limit),
        ).fetchall()
        me = self.blinded_id(room.base_url)
        return [self._post(r, me) for r in rows]

    def post_by_id(self, ref: str, post_id: int) -> Post:
        room = self.room(ref)
        row = self.db.conn.execute(
            "SELECT * FROM community_posts WHERE base_url=? AND token=? AND id=?",
            (room.base_url, room.token, post_id),
        ).fetchone()
        if row is None:
            raise InvalidInput(f"no post #{post_id} in {room.token} (read the room first)")
        return self._post(row, self.blinded_id(room.base_url))

    def quoted(self, post: Post) -> Post | None:
        """The stored post ``post`` replies to (its quote names the quoted post's sent time and
        author, as Session quotes), or None when it quotes nothing or a post not stored here."""
        if not post.quote:
            return None
        sent_ms, author = post.quote.get("id"), post.quote.get("author")
        if not isinstance(sent_ms, int) or not isinstance(author, str):
            return None
        row = self.db.conn.execute(
            "SELECT * FROM community_posts WHERE base_url=? AND token=? AND sent_ms=?"
            " AND author=? ORDER BY id LIMIT 1",
            (post.base_url, post.room, sent_ms, author.lower()),
        ).fetchone()
        return None if row is None else self._post(row, self.blinded_id(post.base_url))

    def dms(self, base_url: str | None = None) -> list[DirectMessage]:
        """Stored blinded DMs (of one server, or all), oldest first."""
        q = "SELECT * FROM community_dms"
        args: tuple[Any, ...] = ()
        if base_url is not None:
            q += " WHERE base_url=?"
            args = (base_url,)
        rows = self.db.conn.execute(q + " ORDER BY posted, id", args).fetchall()
        return [
            DirectMessage(
                base_url=r["base_url"],
                id=int(r["id"]),
                outgoing=bool(r["outgoing"]),
                peer=r["peer"],
                sender_session_id=r["sender_session_id"],
                posted=float(r["posted"]),
                body=self.db.sealer.open_str(r["body"]),
                name=self.db.sealer.open_str(r["name"]),
            )
            for r in rows
        ]

    def match_contact(self, blinded_id: str, base_url: str) -> str | None:
        """The Session ID of a known contact (or of a DM sender we learned) whose blinded id on
        this server is ``blinded_id`` (either sign of a 15 id, or the 25 id), or None. Each
        Session ID's blinded forms are computed once per server and kept."""
        if blinded_id == self.blinded_id(base_url):
            return self.c.session_id
        pk = self._pubkey(base_url)
        known = {c.session_id for c in self.c.db.contacts()}
        for r in self.db.conn.execute(
            "SELECT DISTINCT sender_session_id FROM community_dms WHERE base_url=?"
            " AND sender_session_id IS NOT NULL",
            (base_url,),
        ):
            known.add(r[0])
        wanted = blinded_id.lower()
        for sid in sorted(known):
            if wanted in self._forms(sid, base_url, pk):
                return sid
        return None

    def _forms(self, session_id: str, base_url: str, pk: str) -> tuple[str, ...]:
        """The blinded ids a Session ID can have on a server (15 both signs, 25), cached."""
        key = (session_id, base_url)
        forms = self._form_cache.get(key)
        if forms is None:
            try:
                forms = (
                    *blinding.blinded15_ids_for_session_id(session_id, pk),
                    blinding.blinded25_id_for_session_id(session_id, pk),
                )
            except InvalidInput:
                forms = ()
            self._form_cache[key] = forms
        return forms

    # ------------------------------------------------------------------ writing

    def _sign(self, room: Room, data: bytes) -> str:
        if self.is_blinded(room.base_url):
            sig = blinding.blind15_sign(self.c.identity, room.pubkey, data)
        else:
            sig = blinding.xed25519_sign(self.c.identity, data)
        return base64.b64encode(sig).decode()

    async def post(
        self,
        ref: str,
        text: str,
        *,
        files: Sequence[str | Path] = (),
        reply_to: int | None = None,
    ) -> Post:
        """Post ``text`` to a room (optionally with files, uploaded to the room unencrypted as
        Session does, and a quote of post ``reply_to``); returns the stored post."""
        room = self.room(ref)
        await self.c._ensure_clock()
        pointers: list[pb.AttachmentPointer] = []
        file_ids: list[int] = []
        for f in files:
            fid, ptr = await self.upload(room, Path(f))
            file_ids.append(fid)
            pointers.append(ptr)
        quote = None
        if reply_to is not None:
            q = self.post_by_id(ref, reply_to)
            quote = (q.sent_ms, q.author, q.body)
        sent_ms = self.c._next_sent_ms()
        content = post_content(
            text,
            sent_ms=sent_ms,
            display_name=self.c.display_name,
            quote=quote,
            attachments=pointers,
        )
        data = encode_post(content)
        doc: dict[str, Any] = {
            "data": base64.b64encode(data).decode(),
            "signature": self._sign(room, data),
        }
        if file_ids:
            doc["files"] = file_ids
        _, payload = await self.request(
            room.base_url, "POST", f"/room/{room.token}/message", json_body=doc
        )
        msg = _json(payload)
        if not isinstance(msg, dict):
            raise CommunityError(201, "the community server's answer to a post is not an object")
        new_id = counter(msg.get("id"))
        if new_id is None:
            raise CommunityError(201, "the community server's answer to a post has no id")
        # Read it back with a poll rather than storing the answer: the room's seqno then
        # covers the post, so a later deletion of it (which SOGS lists only to members whose
        # seqno covers its creation) reaches us.
        try:
            await self.poll(room.base_url)
        except SessionError as e:
            log.info("community poll after posting failed: %s", e)
        if not self.db.conn.execute(
            "SELECT 1 FROM community_posts WHERE base_url=? AND token=? AND id=?",
            (room.base_url, room.token, new_id),
        ).fetchone():
            msg.setdefault("data", doc["data"])
            msg.setdefault("signature", doc["signature"])
            msg.setdefault("session_id", self.blinded_id(room.base_url))
            with self.db.tx():
                self._store_post(room.base_url, room.token, parse_post(msg))
        return self.post_by_id(ref, new_id)

    async def upload(self, room: Room, path: Path) -> tuple[int, pb.AttachmentPointer]:
        """Upload a file to the room (plain bytes: room files are public) and return its id
        and the AttachmentPointer a post carries."""
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {path.name}: {e.strerror}") from None
        if not data:
            raise InvalidInput(f"{path.name} is empty")
        check_upload_size(len(data))
        if len(data) > MAX_FILE_SIZE:
            raise InvalidInput(f"a room file is at most {MAX_FILE_SIZE:,} bytes")
        name = path.name
        headers = {
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "Content-Type": "application/octet-stream",
        }
        _, payload = await self.request(
            room.base_url, "POST", f"/room/{room.token}/file", body=data, headers=headers
        )
        doc = _json(payload)
        fid = counter(doc.get("id")) if isinstance(doc, dict) else None
        if fid is None:
            raise CommunityError(201, "the community server's upload answer has no file id")
        ptr = pb.AttachmentPointer(
            deprecated_id=fid,
            contentType=content_type_for(name),
            size=len(data),
            fileName=name,
            url=f"{room.base_url}/room/{room.token}/file/{fid}",
        )
        return fid, ptr

    async def download(self, ref: str, file_id: int) -> bytes:
        """The bytes of file ``file_id`` of a room (through an onion path)."""
        room = self.room(ref)
        _, payload = await self.request(room.base_url, "GET", f"/room/{room.token}/file/{file_id}")
        return payload

    def file_entry(self, ref: str, file_id: int) -> dict[str, Any]:
        """The attachment entry (name, size, type) of room file ``file_id`` as a stored post
        lists it; InvalidInput when no stored post of the room carries it."""
        room = self.room(ref)
        suffix = f"/room/{room.token}/file/{file_id}"
        for p in reversed(self.posts(ref, limit=10_000)):
            for f in p.files:
                if f.get("url") == room.base_url + suffix:
                    return f
        raise InvalidInput(f"no stored post of {room.token} carries file {file_id}")

    async def save_file(
        self, ref: str, file_id: int, directory: str | Path, *, force: bool = False
    ) -> Path:
        """Download room file ``file_id`` (through an onion path) into ``directory`` under the
        poster's file name made harmless (:func:`~session.client.attachments.safe_filename`);
        the size must match what the post says. Never replaces a file unless ``force``."""
        entry = self.file_entry(ref, file_id)
        folder = Path(directory)
        if not folder.is_dir():
            raise InvalidInput(f"{folder} is not a directory")
        target = folder / safe_filename(entry.get("file_name"), f"file-{file_id}")
        if target.exists() and not force:
            raise InvalidInput(f"{target} already exists (use --force to replace it)")
        data = await self.download(ref, file_id)
        size = entry.get("size")
        if isinstance(size, int) and size and len(data) != size:
            raise CommunityError(
                200, f"the server sent {len(data)} bytes for a file the post says has {size}"
            )
        tmp = target.with_name(f".{target.name}.part")
        try:
            tmp.write_bytes(data)
            if force:
                tmp.replace(target)
            else:
                try:
                    os.link(tmp, target)  # fails rather than replace a file made meanwhile
                except FileExistsError:
                    raise InvalidInput(f"{target} already exists (use --force)") from None
        finally:
            tmp.unlink(missing_ok=True)
        return target

    async def edit(self, ref: str, post_id: int, text: str) -> Post:
        """Replace the text of our post ``post_id`` (a new signed Content)."""
        room = self.room(ref)
        old = self.post_by_id(ref, post_id)
        content = post_content(text, sent_ms=old.sent_ms, display_name=self.c.display_name)
        data = encode_post(content)
        doc = {"data": base64.b64encode(data).decode(), "signature": self._sign(room, data)}
        await self.request(
            room.base_url, "PUT", f"/room/{room.token}/message/{post_id}", json_body=doc
        )
        await self.poll(room.base_url)
        return self.post_by_id(ref, post_id)

    async def delete(self, ref: str, post_id: int) -> None:
        """Delete a post (ours, or anyone's as a moderator)."""
        room = self.room(ref)
        await self.request(room.base_url, "DELETE", f"/room/{room.token}/message/{post_id}")
        with self.db.tx():
            self.db.conn.execute(
                "DELETE FROM community_posts WHERE base_url=? AND token=? AND id=?",
                (room.base_url, room.token, post_id),
            )

    async def react(self, ref: str, post_id: int, emoji: str, *, remove: bool = False) -> bool:
        """Add (or remove) our reaction to a post; returns whether it changed anything."""
        room = self.room(ref)
        check_emoji(emoji)
        path = f"/room/{room.token}/reaction/{post_id}/{emoji}"
        if remove:
            _, payload = await self.request(room.base_url, "DELETE", path)
            key = "removed"
        else:
            _, payload = await self.request(room.base_url, "PUT", path, json_body={})
            key = "added"
        doc = _json(payload)
        await self.poll(room.base_url)
        return bool(doc.get(key)) if isinstance(doc, dict) else False

    def _server_of(self, base_url_or_ref: str) -> str:
        """The base URL of a joined server named by its base URL or one of its rooms."""
        if "://" in base_url_or_ref:
            base = canonical_base_url(base_url_or_ref)
            self._pubkey(base)
            return base
        return self.room(base_url_or_ref).base_url

    def pinned(self, ref: str) -> list[int]:
        """The ids of a room's pinned posts, as the server's room info last listed them
        (oldest pin first)."""
        pins = self.room(ref).info.get("pinned_messages")
        if not isinstance(pins, list):
            return []
        out = [counter(p.get("id")) for p in pins if isinstance(p, dict)]
        return [i for i in out if i is not None]

    async def clear_inbox(self, base_url_or_ref: str) -> int:
        """``DELETE /inbox``: delete every DM we received on a server (there and here; sent
        ones stay). Returns how many the server deleted."""
        base = self._server_of(base_url_or_ref)
        if not self.is_blinded(base):
            raise CommunityError(412, "this server has no blinded direct messages")
        _, payload = await self.request(base, "DELETE", "/inbox")
        doc = _json(payload)
        deleted = counter(doc.get("deleted")) if isinstance(doc, dict) else None
        with self.db.tx():
            self.db.conn.execute(
                "DELETE FROM community_dms WHERE base_url=? AND outgoing=0", (base,)
            )
        return deleted or 0

    async def send_dm(self, base_url_or_ref: str, blinded_id: str, text: str) -> DirectMessage:
        """Send a blinded DM to the member ``blinded_id`` of a server we have a room on
        (``base_url_or_ref``: the server's base URL or one of its rooms)."""
        base = self._server_of(base_url_or_ref)
        pk = self._pubkey(base)
        await self.c._ensure_clock()
        sent_ms = self.c._next_sent_ms()
        content = post_content(text, sent_ms=sent_ms, display_name=self.c.display_name)
        sealed = blinding.encrypt_blinded_dm(
            self.c.identity, pk, blinded_id, M.pad(content.SerializeToString())
        )
        _, payload = await self.request(
            base,
            "POST",
            f"/inbox/{blinded_id}",
            json_body={"message": base64.b64encode(sealed).decode()},
        )
        doc = _json(payload)
        dm_id = counter(doc.get("id")) if isinstance(doc, dict) else None
        posted = _num(doc.get("posted_at") if isinstance(doc, dict) else None, time.time())
        assert posted is not None
        if dm_id is not None:
            with self.db.tx():
                self.db.conn.execute(
                    "INSERT OR IGNORE INTO community_dms VALUES (?,?,?,?,?,?,?,?)",
                    (
                        base,
                        dm_id,
                        1,
                        blinded_id,
                        self.c.session_id,
                        posted,
                        self.db.sealer.seal(text),
                        None,
                    ),
                )
        return DirectMessage(
            base,
            dm_id or 0,
            True,
            blinded_id,
            self.c.session_id,
            posted,
            text,
            None,
        )


__all__ = [
    "COMMUNITY_SCHEMA",
    "CommunityManager",
    "CommunityURL",
    "DirectMessage",
    "ParsedPost",
    "PollResult",
    "Post",
    "Room",
    "SignedPost",
    "canonical_base_url",
    "check_emoji",
    "decode_post",
    "destination",
    "encode_post",
    "parse_join_url",
    "parse_post",
    "post_content",
    "reactions_of",
    "refusal",
    "signed_parts",
    "verify_many",
    "verify_post",
    "wire_path",
]
