"""The community server's routes (SOGS v3, client spec §4.4) and the running service.

Every route is one :class:`~session.service.onion.Routes` table, served as plain HTTP(S) and
behind ``POST /oxen/v4/lsrpc`` as a v4 onion destination opened with the server's X25519 key
(the ``public_key`` of its join URLs). A route authenticates its request (:mod:`.auth`), then
runs its handler, which is synchronous: handlers run one at a time on a worker thread, each
against the one SQLite store, so a handler sees and leaves the database consistent. ``/batch``
and ``/sequence`` run their subrequests as the outer request's signer, in the same way.

Errors are one sentence with SOGS's status: 400 bad input, 401/425 authentication, 403 not
allowed or banned, 404 missing, 413 too large, 429 rate limited, 503 storage failure, 507 the
server's storage budget (``max_storage_bytes``) is spent.

Logs carry counts and sizes only: no member ID, room content or header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote

from session.blinding import verify_blinded
from session.community.auth import AuthError, authenticate
from session.community.config import CommunityConfig, LimitsConfig, max_request_body
from session.community.store import (
    CommunityStore,
    Forbidden,
    NonceReused,
    NotFound,
    Perms,
    RateLimited,
    Room,
    TooLarge,
    User,
    check_id,
    check_token,
    keys_for_id,
    member_key,
)
from session.errors import InvalidInput, InvalidSignature, StorageError
from session.http1 import server as http1
from session.identity import Identity
from session.service.admin import admin_routes
from session.service.metrics import Counter, Gauge, Registry
from session.service.onion import Routes, V4Request, V4Response, store_failed
from session.service.server import Served
from session.service.site import load_site_identity, raw_bodies_only, run_standalone, start_site
from session.service.tasks import cancel_and_wait, on_worker_exclusive, spawn

log = logging.getLogger("session.community")

#: What ``GET /capabilities`` lists (``blind`` only on a server that requires blinding).
CAPABILITIES = ("blind", "reactions", "sogs")
#: Longest reaction, in code points (pysogs's rule).
MAX_REACTION_CHARS = 12
#: Most reactors ``GET /room/T/reactors/ID/EMOJI`` lists.
MAX_REACTORS = 10_000
#: Longest timed ban, in seconds (100 years); a longer one is a ban without end.
MAX_BAN_TIMEOUT = 100 * 365 * 86_400

SyncHandler = Callable[[V4Request, "User | None"], V4Response]
T = TypeVar("T")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _jsonable(value: Any) -> Any:
    """``value`` with every ``bytes`` as base64 (how SOGS returns data and signatures)."""
    if isinstance(value, bytes):
        return _b64(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _ok(doc: Any, status: int = 200) -> V4Response:
    return V4Response.of_json(_jsonable(doc), status)


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string")
    v = value.strip()
    try:
        return base64.b64decode(
            v + "=" * (-len(v) % 4), altchars=b"-_" if ("-" in v or "_" in v) else None,
            validate=True,
        )  # fmt: skip
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base64") from None


def _int(value: str, what: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 15:  # not "²" or "١٢"
        raise InvalidInput(f"{what} must be a non-negative whole number")
    return int(value)


def _row_id(value: Any, what: str) -> int:
    """A JSON number naming a stored row (a file id): a whole number SQLite can hold."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise InvalidInput(f"{what} must be a file id (a non-negative whole number)")
    return value


def _qint(req: V4Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise InvalidInput(f"the {name} parameter must be a whole number") from None
    return max(lo, min(hi, v))


def _json(req: V4Request) -> Any:
    """The body as JSON whose every string is valid Unicode (JSON's ``\\ud800`` escapes can
    spell lone surrogates, which no UTF-8 text, database or log can hold)."""
    doc = req.json()
    try:
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise InvalidInput("the request body holds text that is not valid Unicode") from None
    return doc


def _obj(req: V4Request) -> dict[str, Any]:
    doc = _json(req)
    if not isinstance(doc, dict):
        raise InvalidInput("the request body must be a JSON object")
    return doc


def _reaction(raw: str) -> str:
    if not raw or len(raw) > MAX_REACTION_CHARS:
        raise InvalidInput(f"a reaction is 1 to {MAX_REACTION_CHARS} characters")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in raw):
        raise InvalidInput("a reaction may not hold control characters")
    return raw


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*UTF-8''([^;]+)", re.IGNORECASE)
_FILENAME = re.compile(r'filename\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def _filename(disposition: str | None) -> str | None:
    """The upload's file name from its ``Content-Disposition`` (``filename*=UTF-8''…`` or
    ``filename="…"``), cleaned of path separators and control characters, at most 200."""
    if not disposition:
        return None
    m = _FILENAME_STAR.search(disposition)
    if m:
        name = unquote(m.group(1).strip(), errors="replace")
    else:
        m2 = _FILENAME.search(disposition)
        if not m2:
            return None
        name = m2.group(1).strip()
    name = "".join(
        "\ufffd" if c in "/\\\0" or ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF else c for c in name
    )[:200]
    return name or None


class CommunityService:
    """The routes over one :class:`CommunityStore`."""

    def __init__(self, store: CommunityStore, server_pk: bytes, limits: LimitsConfig) -> None:
        self.store = store
        self.server_pk = server_pk
        self.server_pk_hex = server_pk.hex()
        self.limits = limits
        self._lock = asyncio.Lock()
        self.routes = Routes()
        self._sync: dict[Any, SyncHandler] = {}
        self.registry = Registry()
        self.requests = Counter(
            "community_requests_total", "Requests answered, by status class", ["status"],
            registry=self.registry,
        )  # fmt: skip
        self.posts = Counter("community_posts_total", "Posts stored", registry=self.registry)
        # Set by each sweep (the admin site must not touch the store: it is the worker's).
        self.rooms_gauge = Gauge(
            "community_rooms", "Rooms on the server at the last sweep", registry=self.registry
        )
        r = self._route
        r("GET", "/capabilities", self.capabilities)
        r("GET", "/rooms", self.get_rooms)
        r("GET", "/room/{token}", self.get_room)
        r("PUT", "/room/{token}", self.update_room)
        r("GET", "/room/{token}/pollInfo/{info}", self.poll_info)
        r("GET", "/room/{token}/messages/recent", self.messages_recent)
        r("GET", "/room/{token}/messages/before/{id}", self.messages_before)
        r("GET", "/room/{token}/messages/since/{seqno}", self.messages_since)
        r("GET", "/room/{token}/message/{id}", self.message_single)
        r("POST", "/room/{token}/message", self.post_message)
        r("PUT", "/room/{token}/message/{id}", self.edit_message)
        r("DELETE", "/room/{token}/message/{id}", self.delete_message)
        r("PUT", "/room/{token}/reaction/{id}/{emoji}", self.react)
        r("DELETE", "/room/{token}/reaction/{id}/{emoji}", self.unreact)
        r("DELETE", "/room/{token}/reactions/{id}/{emoji}", self.clear_reactions)
        r("DELETE", "/room/{token}/reactions/{id}", self.clear_reactions)
        r("GET", "/room/{token}/reactors/{id}/{emoji}", self.reactors)
        r("POST", "/room/{token}/pin/{id}", self.pin)
        r("POST", "/room/{token}/unpin/{id}", self.unpin)
        r("POST", "/room/{token}/file", self.upload)
        r("GET", "/room/{token}/file/{id}", self.download)
        r("GET", "/room/{token}/file/{id}/{filename}", self.download)
        r("DELETE", "/room/{token}/all/{sid}", self.delete_all_room)
        r("DELETE", "/rooms/all/{sid}", self.delete_all_rooms)
        r("GET", "/room/{token}/permissions", self.get_permissions)
        r("GET", "/room/{token}/permissions/{sid}", self.get_user_permissions)
        r("POST", "/room/{token}/permissions/{sid}", self.set_permissions)
        r("POST", "/user/{sid}/ban", self.ban)
        r("POST", "/user/{sid}/unban", self.unban)
        r("POST", "/user/{sid}/moderator", self.set_moderator)
        r("GET", "/inbox", self.inbox)
        r("GET", "/inbox/since/{id}", self.inbox)
        r("GET", "/outbox", self.outbox)
        r("GET", "/outbox/since/{id}", self.outbox)
        r("POST", "/inbox/{sid}", self.send_dm)
        r("DELETE", "/inbox", self.delete_inbox)
        r("POST", "/batch", self.batch)
        r("POST", "/sequence", self.sequence)

    # -- plumbing -------------------------------------------------------------------------------
    def _route(self, method: str, pattern: str, fn: SyncHandler) -> None:
        async def handle(req: V4Request) -> V4Response:
            resp = await self._on_worker(self._outer, req, fn)
            self.requests.labels(f"{resp.status // 100}xx").inc()
            return resp

        self.routes.add(method, pattern, handle)
        self._sync[handle] = fn

    async def _on_worker(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a worker thread, one at a time (the lock is held until the thread
        is done even when the caller is cancelled: :func:`on_worker_exclusive`)."""
        return await on_worker_exclusive(self._lock, call, *args)

    def _outer(self, req: V4Request, fn: SyncHandler) -> V4Response:
        """Authenticate ``req`` and run ``fn`` (on the worker thread)."""

        def run() -> V4Response:
            signer = authenticate(
                req.headers, req.method, req.path, req.query_string, req.body, self.server_pk,
                require_blind=self.limits.require_blind,
            )  # fmt: skip
            user = None
            if signer is not None:
                user = self.store.user(signer.session_id)
                assert user is not None  # created
                self.store.use_nonce(signer.pubkey, signer.nonce, signer.nonce_expires)
                if self.store.banned(user.key):
                    return V4Response.error(403, "Banned")
                self.store.touch_user(user)
            return fn(req, user)

        return self._guard(run)

    def _guard(self, run: Callable[[], V4Response]) -> V4Response:
        """``run()`` with our errors turned into answers (never a 500)."""
        try:
            return run()
        except AuthError as e:
            return V4Response.error(e.status, str(e))
        except NonceReused as e:
            return V4Response.error(425, f"Invalid authentication: {e}")
        except InvalidInput as e:
            return V4Response.error(400, str(e))
        except UnicodeError:  # a lone surrogate that reached the database
            return V4Response.error(400, "the request holds text that is not valid Unicode")
        except NotFound as e:
            return V4Response.error(404, str(e))
        except Forbidden as e:
            return V4Response.error(403, str(e))
        except RateLimited as e:
            return V4Response.error(429, str(e))
        except TooLarge as e:
            return V4Response.error(413, str(e))
        except sqlite3.Error as e:
            log.error("community database failed: %s", type(e).__name__)
            return V4Response.error(503, "the community server cannot store this right now")
        except (StorageError, OSError) as e:
            return store_failed(e, "community server", log)

    def _room(self, req: V4Request, user: User | None) -> tuple[Room, Perms]:
        """The request's room and the member's permissions there (a missing permission is
        each endpoint's 403, as in SOGS)."""
        room = self.store.room(check_token(req.params["token"]))
        return room, self.store.perms(room, user)

    def _readable(self, req: V4Request, user: User | None) -> tuple[Room, Perms]:
        room, perms = self._room(req, user)
        if not perms.read:
            raise Forbidden(self._refusal(perms, "read"))
        return room, perms

    @staticmethod
    def _refusal(perms: Perms, what: str) -> str:
        if perms.banned:
            return "You are banned from this room"
        return f"This endpoint requires room '{what}' permission"

    @staticmethod
    def _need_user(user: User | None) -> User:
        if user is None:
            raise AuthError(401, "X-SOGS-* request authentication required")
        return user

    def _need_blinded(self, user: User | None) -> User:
        u = self._need_user(user)
        if not u.session_id.startswith("15"):
            raise AuthError(401, "This endpoint requires blinded pubkeys be used")
        return u

    def _mod_room(self, req: V4Request, user: User | None, *, admin: bool = False) -> Room:
        u = self._need_user(user)
        room, perms = self._room(req, u)
        if not (perms.admin if admin else perms.moderator):
            raise Forbidden(
                f"This endpoint requires {'admin' if admin else 'moderator'} room permissions"
            )
        return room

    def _keys(self, sid: str) -> list[str]:
        return keys_for_id(sid, self.server_pk_hex, require_blind=self.limits.require_blind)

    # -- general ----------------------------------------------------------------------------------
    def caps(self) -> list[str]:
        return [c for c in CAPABILITIES if c != "blind" or self.limits.require_blind]

    def capabilities(self, req: V4Request, user: User | None) -> V4Response:
        caps = self.caps()
        doc: dict[str, Any] = {"capabilities": caps}
        needed = req.query.get("required")
        if needed:
            missing = [c for c in needed.split(",") if c not in caps]
            if missing:
                doc["missing"] = missing
                return _ok(doc, 412)
        return _ok(doc)

    # -- rooms ------------------------------------------------------------------------------------
    def room_info(self, room: Room, perms: Perms, user: User | None) -> dict[str, Any]:
        mods: list[str] = []
        admins: list[str] = []
        hidden_mods: list[str] = []
        hidden_admins: list[str] = []
        for sid, is_admin, visible, _global in self.store.moderators(room):
            if visible:
                (admins if is_admin else mods).append(sid)
            else:
                (hidden_admins if is_admin else hidden_mods).append(sid)
        info: dict[str, Any] = {
            "token": room.token,
            "name": room.name,
            "info_updates": room.info_updates,
            "message_sequence": room.message_sequence,
            "created": room.created,
            "active_users": self.store.active_users(room, self.limits.active_users_cutoff),
            "active_users_cutoff": self.limits.active_users_cutoff,
            "moderators": sorted(set(mods)),
            "admins": sorted(set(admins)),
            "read": perms.read,
            "write": perms.write,
            "upload": perms.upload,
        }
        if room.description is not None:
            info["description"] = room.description
        if room.image_id is not None:
            info["image_id"] = room.image_id
        pinned = self.store.pinned(room)
        if pinned:
            info["pinned_messages"] = pinned
        if perms.moderator:
            if hidden_mods:
                info["hidden_moderators"] = sorted(set(hidden_mods))
            if hidden_admins:
                info["hidden_admins"] = sorted(set(hidden_admins))
            info["moderator"] = True
            info.update(self._defaults(room))
        if perms.admin:
            info["admin"] = True
        if user is not None:
            gmod, gadmin = self.store.is_global_mod(user.key)
            if gmod:
                info["global_moderator"] = True
            if gadmin:
                info["global_admin"] = True
        return info

    @staticmethod
    def _defaults(room: Room) -> dict[str, bool]:
        return {
            "default_read": room.default_read,
            "default_accessible": room.default_accessible,
            "default_write": room.default_write,
            "default_upload": room.default_upload,
        }

    def get_rooms(self, req: V4Request, user: User | None) -> V4Response:
        out = []
        for room in self.store.rooms():
            perms = self.store.perms(room, user)
            if perms.read or perms.accessible:
                out.append(self.room_info(room, perms, user))
        return _ok(out)

    def get_room(self, req: V4Request, user: User | None) -> V4Response:
        room, perms = self._room(req, user)
        if not (perms.accessible or perms.read):  # as if it did not exist (SOGS: 404)
            raise NotFound(f"no room {room.token!r} on this server")
        return _ok(self.room_info(room, perms, user))

    def poll_info(self, req: V4Request, user: User | None) -> V4Response:
        room, perms = self._readable(req, user)
        info_updated = _int(req.params["info"], "info_updates")
        if user is not None:
            self.store.touch_room(room, user)
        doc: dict[str, Any] = {
            "token": room.token,
            "active_users": self.store.active_users(room, self.limits.active_users_cutoff),
            "read": perms.read,
            "write": perms.write,
            "upload": perms.upload,
        }
        if room.info_updates != info_updated:
            doc["details"] = self.room_info(room, perms, user)
        if perms.moderator:
            doc["moderator"] = True
            doc.update(self._defaults(room))
        if perms.admin:
            doc["admin"] = True
        return _ok(doc)

    def update_room(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user, admin=True)
        doc = _obj(req)
        fields: dict[str, Any] = {}
        if "name" in doc:
            name = doc["name"]
            if isinstance(name, str):
                name = "".join(c for c in name if ord(c) >= 32)
            if not isinstance(name, str) or not name.strip() or len(name) > 100:
                raise InvalidInput("name must be a string of 1 to 100 characters")
            fields["name"] = name
        if "description" in doc:
            d = doc["description"]
            if d is not None and (not isinstance(d, str) or len(d) > 2000):
                raise InvalidInput("description must be a string of at most 2000 characters")
            if d is not None:
                d = "".join(c for c in d if ord(c) >= 32 or c in "\t\n") or None
            fields["description"] = d
        if "image" in doc:
            img = _row_id(doc["image"], "image")
            self.store.file(room, img)  # 404 unless it exists here
            if room.image_id is not None and room.image_id != img:  # as SOGS: it now expires
                self.store.expire_file(room.image_id, self.limits.posted_file_ttl)
            self.store.keep_file(img)
            fields["image_id"] = img
        for p in ("read", "accessible", "write", "upload"):
            v = doc.get("default_" + p)
            if v is None:
                continue
            if not isinstance(v, (bool, int)):
                raise InvalidInput(f"default_{p} must be true or false")
            fields[p] = bool(v)
        if not fields:
            raise InvalidInput("a room update must change at least one field")
        room = self.store.update_room(room, **fields)
        return _ok({"info_updates": room.info_updates})

    # -- messages -------------------------------------------------------------------------------
    def _messages(self, req: V4Request, user: User | None, **how: Any) -> V4Response:
        room, perms = self._readable(req, user)
        limit = _qint(req, "limit", 100, 1, 256)
        reactors = _qint(req, "reactors", 4, 0, 20)
        msgs = self.store.messages(
            room, user, perms.moderator, limit=limit, reactors=reactors, **how
        )
        return _ok(msgs)

    def messages_recent(self, req: V4Request, user: User | None) -> V4Response:
        return self._messages(req, user, recent=True)

    def messages_before(self, req: V4Request, user: User | None) -> V4Response:
        return self._messages(req, user, before=_int(req.params["id"], "message id"))

    def messages_since(self, req: V4Request, user: User | None) -> V4Response:
        return self._messages(
            req,
            user,
            since=_int(req.params["seqno"], "seqno"),
            reaction_updates=req.query.get("t") == "r",
        )

    def message_single(self, req: V4Request, user: User | None) -> V4Response:
        room, perms = self._readable(req, user)
        msgs = self.store.messages(
            room, user, perms.moderator, single=_int(req.params["id"], "message id"),
            reactors=_qint(req, "reactors", 4, 0, 20),
        )  # fmt: skip
        if not msgs:
            raise NotFound("no such message in this room")
        return _ok(msgs[0])

    def _post_body(self, req: V4Request, user: User) -> tuple[bytes, bytes, list[int]]:
        doc = _obj(req)
        data = _unb64(doc.get("data"), "data")
        sig = _unb64(doc.get("signature"), "signature")
        if not data:
            raise InvalidInput("data must not be empty")
        if len(data) > self.limits.max_post_bytes:
            raise TooLarge(
                f"post too large: {len(data)} bytes, the limit is {self.limits.max_post_bytes}"
            )
        if len(sig) != 64:
            raise InvalidInput("signature must be 64 bytes")
        if user.session_id.startswith("15"):
            try:
                verify_blinded(user.session_id, data, sig)
            except InvalidSignature:
                raise InvalidInput("signature does not verify for data under your key") from None
        files = doc.get("files", [])
        if not isinstance(files, list):
            raise InvalidInput("files must be a list of file ids")
        if len(files) > 100:
            raise InvalidInput("a post may reference at most 100 files")
        return data, sig, [_row_id(f, "each of files") for f in files]

    def post_message(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, perms = self._room(req, u)
        if not perms.write:
            raise Forbidden(self._refusal(perms, "write"))
        data, sig, files = self._post_body(req, u)
        doc = _obj(req)
        whisper_mods = bool(doc.get("whisper_mods"))
        whisper_to = None
        if doc.get("whisper_to") is not None:
            whisper_to = self.store.user_by_key(member_key(check_id(str(doc["whisper_to"]))))
            if whisper_to is None:
                raise NotFound("whisper_to names nobody this server knows")
        if (whisper_to or whisper_mods) and not perms.moderator:
            raise Forbidden("only moderators may whisper")
        limit = None if perms.admin else (
            self.limits.rate_limit_posts, self.limits.rate_limit_interval
        )  # fmt: skip
        mid = self.store.add_post(
            room, u, data, sig, whisper_to=whisper_to, whisper_mods=whisper_mods, files=files,
            rate_limit=limit, file_ttl=self.limits.posted_file_ttl,
        )  # fmt: skip
        self.store.touch_room(room, u)
        self.posts.inc()
        log.info("post stored (%d bytes)", len(data))
        msgs = self.store.messages(room, u, True, single=mid, reactors=0)
        return _ok(msgs[0], 201)

    def edit_message(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, perms = self._room(req, u)
        if not perms.write:
            raise Forbidden(self._refusal(perms, "write"))
        data, sig, files = self._post_body(req, u)
        self.store.edit_post(
            room, u, _int(req.params["id"], "message id"), data, sig, files,
            self.limits.posted_file_ttl,
        )  # fmt: skip
        return _ok({})

    def delete_message(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, perms = self._room(req, u)
        if not perms.write and not perms.moderator:
            raise Forbidden(self._refusal(perms, "write"))
        self.store.delete_post(room, u, _int(req.params["id"], "message id"),
                               moderator=perms.moderator)  # fmt: skip
        return _ok({})

    def _may_delete_all(self, room: Room, user: User, keys_: list[str]) -> str | None:
        """Why ``user`` may not delete every post of ``keys_`` in ``room`` (SOGS's rules: their
        own, or a moderator's power, and an admin's to delete an admin's), or None."""
        if user.key in keys_:
            return None
        perms = self.store.perms(room, user)
        if not perms.moderator:
            return "This endpoint requires moderator room permissions"
        roles = [self.store.role(room, k) for k in keys_]
        if not perms.admin and any(r is not None and r[0] for r in roles):
            return "only admins may delete all posts of an admin"
        return None

    def delete_all_room(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, _ = self._room(req, u)
        keys_ = self._keys(req.params["sid"])
        refusal = self._may_delete_all(room, u, keys_)
        if refusal is not None:
            raise Forbidden(refusal)
        n = 0
        for key in keys_:
            n += self.store.delete_posts(room, self.store.posts_of(room, key))
        return _ok({"messages_deleted": n})

    def delete_all_rooms(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        n = 0
        keys_ = self._keys(req.params["sid"])
        for room in self.store.rooms():
            if self._may_delete_all(room, u, keys_) is not None:
                continue
            for key in keys_:
                n += self.store.delete_posts(room, self.store.posts_of(room, key))
        return _ok({"messages_deleted": n})

    # -- reactions and pins ----------------------------------------------------------------
    def react(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, _ = self._readable(req, u)
        added, seqno = self.store.add_reaction(
            room, u, _int(req.params["id"], "message id"), _reaction(req.params["emoji"])
        )
        return _ok({"added": added, "seqno": seqno})

    def unreact(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, _ = self._readable(req, u)
        n, seqno = self.store.remove_reactions(
            room, _int(req.params["id"], "message id"), _reaction(req.params["emoji"]), u
        )
        return _ok({"removed": n > 0, "seqno": seqno})

    def clear_reactions(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user)
        emoji = req.params.get("emoji")
        n, seqno = self.store.remove_reactions(
            room, _int(req.params["id"], "message id"),
            None if emoji is None else _reaction(emoji), None,
        )  # fmt: skip
        return _ok({"removed": n, "seqno": seqno})

    def reactors(self, req: V4Request, user: User | None) -> V4Response:
        room, _ = self._readable(req, user)
        # SOGS's "no limit" (0, the default) is MAX_REACTORS: an answer stays bounded.
        limit = _qint(req, "limit", 0, 0, MAX_REACTORS) or MAX_REACTORS
        return _ok(
            self.store.reactors(
                room, _int(req.params["id"], "message id"), _reaction(req.params["emoji"]), limit
            )
        )

    def pin(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user, admin=True)
        assert user is not None
        info = self.store.pin(room, user, _int(req.params["id"], "message id"))
        return _ok({"info_updates": info})

    def unpin(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user, admin=True)
        raw = req.params["id"]
        if raw == "all":
            n, info = self.store.unpin(room, None)
            return _ok({"unpinned": n, "info_updates": info})
        n, info = self.store.unpin(room, _int(raw, "message id"))
        return _ok({"unpinned": n > 0, "info_updates": info})

    # -- files ------------------------------------------------------------------------------------
    def upload(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        room, perms = self._room(req, u)
        if not perms.upload:
            raise Forbidden(self._refusal(perms, "upload"))
        if not req.body:
            raise InvalidInput("the upload is empty: send the file's bytes as the request body")
        if len(req.body) > self.limits.max_file_size:
            raise TooLarge(
                f"file too large: {len(req.body)} bytes, the limit is {self.limits.max_file_size}"
            )
        name = _filename(req.headers.get("content-disposition"))
        limit = None if perms.admin else (
            self.limits.rate_limit_uploads, self.limits.rate_limit_uploads_interval
        )  # fmt: skip
        fid = self.store.put_file(room, u, req.body, name, self.limits.file_ttl, rate_limit=limit)
        log.info("stored a room file of %d bytes", len(req.body))
        return _ok({"id": fid}, 201)

    def download(self, req: V4Request, user: User | None) -> V4Response:
        room, _ = self._readable(req, user)
        info, blob = self.store.file(room, _int(req.params["id"], "file id"))
        headers = {"content-type": "application/octet-stream"}
        if info.filename:
            headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(info.filename)}"
        return V4Response(200, blob, headers)

    # -- moderation -------------------------------------------------------------------------------
    def _target_rooms(self, doc: dict[str, Any], user: User, *, admin: bool) -> list[Room] | None:
        """The rooms a moderation request names (``None``: global), after checking that the
        caller moderates (``admin``: administers) all of them."""
        tokens, glob = doc.get("rooms"), doc.get("global", False)
        if tokens is not None and not isinstance(tokens, list):
            raise InvalidInput("rooms must be a list of room tokens")
        if tokens and glob:
            raise InvalidInput("give either rooms or global, not both")
        if not tokens and not glob:
            raise InvalidInput('give rooms (a list of tokens, or ["*"]) or global: true')
        if glob:
            gmod, gadmin = self.store.is_global_mod(user.key)
            if not gmod or (admin and not gadmin):
                raise Forbidden("global moderation needs a global moderator or admin")
            return None
        assert isinstance(tokens, list)
        if "*" in tokens:
            if tokens != ["*"]:
                raise InvalidInput("room '*' must be the only rooms value")
            rooms = []
            for room in self.store.rooms():
                p = self.store.perms(room, user)
                if p.admin if admin else p.moderator:
                    rooms.append(room)
            if not rooms:
                raise Forbidden("you moderate no room on this server")
            return rooms
        rooms = []
        for t in tokens:
            if not isinstance(t, str):
                raise InvalidInput("rooms must be a list of room tokens")
            room = self.store.room(check_token(t))
            p = self.store.perms(room, user)
            if not (p.admin if admin else p.moderator):
                raise Forbidden(f"you are not {'an admin' if admin else 'a moderator'} there")
            rooms.append(room)
        return rooms

    def ban(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        keys_ = self._keys(req.params["sid"])
        doc = _obj(req)
        rooms = self._target_rooms(doc, u, admin=False)
        timeout = doc.get("timeout")
        if timeout is not None and (
            not isinstance(timeout, (int, float))
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_BAN_TIMEOUT  # also refuses NaN (Python's JSON reads it)
        ):
            raise InvalidInput(
                "timeout must be a positive number of seconds, at most 100 years"
                " (leave it out for a ban without end)"
            )
        self._check_bannable(u, keys_, rooms)
        for room in _each(rooms):
            self.store.ban(keys_, room, timeout)
        return _ok({})

    def _check_bannable(self, user: User, keys_: list[str], rooms: list[Room] | None) -> None:
        """SOGS's rules: nobody bans themselves or a global moderator, and only a room's
        admins ban its moderators (who then stop being moderators there)."""
        if user.key in keys_:
            raise Forbidden("you cannot ban yourself")
        for key in keys_:
            if self.store.is_global_mod(key)[0]:
                raise Forbidden(
                    "a global moderator or admin cannot be banned: remove them as moderator first"
                )
            for room in rooms or []:
                is_mod = self.store.role(room, key) is not None
                if is_mod and not self.store.perms(room, user).admin:
                    raise Forbidden(f"only admins of room {room.token!r} may ban its moderators")

    def unban(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        keys_ = self._keys(req.params["sid"])
        rooms = self._target_rooms(_obj(req), u, admin=False)
        for room in _each(rooms):
            self.store.unban(keys_, room)
        return _ok({})

    def set_moderator(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_user(user)
        keys_ = self._keys(req.params["sid"])
        doc = _obj(req)
        rooms = self._target_rooms(doc, u, admin=True)
        mod, admin, visible = (
            None if doc.get(k) is None else bool(doc[k]) for k in ("moderator", "admin", "visible")
        )
        if mod is None and admin is None:
            raise InvalidInput("give moderator and/or admin")
        if admin is True and mod is False:
            raise InvalidInput("an admin is always a moderator: admin true with moderator false")
        if visible is None:
            visible = rooms is not None
        for room in _each(rooms):
            if admin or mod:
                if admin is False:
                    self.store.remove_moderator(keys_, room, admin_only=True)
                self.store.set_moderator(keys_, room, admin=bool(admin), visible=visible)
            elif admin is False and mod is None:
                self.store.remove_moderator(keys_, room, admin_only=True)
            else:
                self.store.remove_moderator(keys_, room)
        targets = rooms if rooms is not None else self.store.rooms()
        return _ok({"info_updates": {r.token: self.store.room(r.token).info_updates
                                     for r in targets}})  # fmt: skip

    def get_permissions(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user)
        return _ok(self.store.permission_overrides(room))

    def _user_perms(self, room: Room, sid: str) -> dict[str, Any]:
        key = self._keys(sid)[0]
        member = self.store.user_by_key(key)
        p = self.store.perms(room, member) if member else self.store.perms(room, None)
        out: dict[str, Any] = {
            "read": p.read, "accessible": p.accessible, "write": p.write, "upload": p.upload,
        }  # fmt: skip
        if p.banned:
            out["banned"] = True
        if p.moderator:
            out["admin" if p.admin else "moderator"] = True
        return out

    def get_user_permissions(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user)
        return _ok(self._user_perms(room, req.params["sid"]))

    def set_permissions(self, req: V4Request, user: User | None) -> V4Response:
        room = self._mod_room(req, user)
        doc = _obj(req)
        perms: dict[str, bool | None] = {}
        for p in ("read", "accessible", "write", "upload"):
            v, default = doc.get(p), bool(doc.get("default_" + p))
            if v is not None and default:
                raise InvalidInput(f"give {p} or default_{p}, not both")
            if v is not None:
                if not isinstance(v, (bool, int)):
                    raise InvalidInput(f"{p} must be true or false")
                perms[p] = bool(v)
            elif default:
                perms[p] = None
        if not perms:
            raise InvalidInput("give at least one of read, accessible, write, upload")
        for key in self._keys(req.params["sid"]):
            self.store.set_permissions(room, key, perms)
        return _ok(self._user_perms(room, req.params["sid"]))

    # -- direct messages -------------------------------------------------------------------
    def _box(self, req: V4Request, user: User | None, outbox: bool) -> V4Response:
        u = self._need_blinded(user)
        since = req.params.get("id")
        msgs = self.store.dms(
            u, outbox=outbox, since=None if since is None else _int(since, "message id"),
            limit=_qint(req, "limit", 100, 1, 256),
        )  # fmt: skip
        if since is not None and not msgs:
            return V4Response(304, b"", {})
        return _ok(msgs)

    def inbox(self, req: V4Request, user: User | None) -> V4Response:
        return self._box(req, user, outbox=False)

    def outbox(self, req: V4Request, user: User | None) -> V4Response:
        return self._box(req, user, outbox=True)

    def send_dm(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_blinded(user)
        sid = check_id(req.params["sid"])
        recipient = self.store.user(sid, create=False) or self.store.user_by_key(member_key(sid))
        if recipient is None or self.store.banned(recipient.key):
            raise NotFound("no such recipient on this server")
        data = _unb64(_obj(req).get("message"), "message")
        if not data:
            raise InvalidInput("message must not be empty")
        if len(data) > self.limits.max_post_bytes:
            raise TooLarge(f"message too large: the limit is {self.limits.max_post_bytes} bytes")
        limit = None if self.store.is_global_mod(u.key)[1] else (
            self.limits.rate_limit_dms, self.limits.rate_limit_dms_interval
        )  # fmt: skip
        dm = self.store.send_dm(u, recipient, data, self.limits.dm_ttl, rate_limit=limit)
        return _ok(dm, 201)

    def delete_inbox(self, req: V4Request, user: User | None) -> V4Response:
        u = self._need_blinded(user)
        return _ok({"deleted": self.store.delete_inbox(u)})

    # -- batches ----------------------------------------------------------------------------------
    def batch(self, req: V4Request, user: User | None) -> V4Response:
        return self._batch(req, user, sequential=False)

    def sequence(self, req: V4Request, user: User | None) -> V4Response:
        return self._batch(req, user, sequential=True)

    def _batch(self, req: V4Request, user: User | None, *, sequential: bool) -> V4Response:
        doc = _json(req)
        if not isinstance(doc, list):
            raise InvalidInput("the body must be a JSON list of subrequests")
        cap = self.limits.max_subrequests
        if len(doc) > cap:
            raise InvalidInput(f"a batch may hold at most {cap} subrequests, not {len(doc)}")
        subs = [self._subrequest(i, s) for i, s in enumerate(doc)]
        out: list[dict[str, Any]] = []
        # The answers together stay within what one request may carry (a batch of 64
        # downloads of a 10 MB file would otherwise build a reply of most of a gigabyte).
        room_left = max_request_body(self.limits)
        for sub in subs:
            resp = self._run_sub(sub, user)
            room_left -= len(resp.body)
            if room_left < 0:
                resp = V4Response.error(
                    413, "the answers of this batch are too large together: ask for this one alone"
                )
            body: Any
            ctype = resp.header_map().get("content-type", "")
            if ctype.startswith("application/json") and resp.body:
                body = json.loads(resp.body)
            else:
                body = _b64(resp.body)
            out.append({"code": resp.status, "headers": resp.header_map(), "body": body})
            if sequential and not 200 <= resp.status < 300:
                break
        return V4Response.of_json(out)

    def _run_sub(self, sub: V4Request, user: User | None) -> V4Response:
        found = self.routes.resolve(sub.method, sub.path)
        if isinstance(found, V4Response):
            return found
        handler, params = found
        fn = self._sync[handler]
        if fn in (self.batch, self.sequence):
            return V4Response.error(400, "a batch cannot hold /batch or /sequence")
        full = V4Request(
            sub.method, sub.path, sub.query, sub.headers, sub.body, params, sub.query_string
        )
        return self._guard(lambda: fn(full, user))

    @staticmethod
    def _subrequest(i: int, sub: Any) -> V4Request:
        where = f"subrequest {i}"
        if not isinstance(sub, dict):
            raise InvalidInput(f"{where} is not a JSON object")
        method, path = sub.get("method"), sub.get("path")
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise InvalidInput(f"{where}: method must be GET, POST, PUT or DELETE")
        if not isinstance(path, str) or not path.startswith("/") or len(path) > 2000:
            raise InvalidInput(f"{where}: path must be a string starting with /")
        headers = sub.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise InvalidInput(f"{where}: headers must be an object of strings")
        bodies = [k for k in ("json", "b64", "bytes") if k in sub]
        if len(bodies) > 1:
            raise InvalidInput(f"{where}: give at most one of json, b64, bytes")
        body = b""
        if method in ("POST", "PUT"):
            if not bodies:
                raise InvalidInput(f"{where}: {method} needs one of json, b64, bytes")
            if bodies[0] == "json":
                body = json.dumps(sub["json"], separators=(",", ":")).encode()
            elif bodies[0] == "b64":
                body = _unb64(sub["b64"], f"{where}: b64")
            else:
                if not isinstance(sub["bytes"], str):
                    raise InvalidInput(f"{where}: bytes must be a string")
                body = sub["bytes"].encode()
        elif bodies:
            raise InvalidInput(f"{where}: {method} cannot have a body")
        raw_path, _, query = path.partition("?")
        try:
            decoded = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: path is not valid percent-encoded UTF-8") from None
        return V4Request(
            method, decoded, dict(parse_qsl(query)),
            {k.lower(): v for k, v in headers.items()}, body, {}, query,
        )  # fmt: skip

    def _sweep(self) -> tuple[int, int, int]:
        got = self.store.sweep()
        self.rooms_gauge.set(len(self.store.rooms()))
        return got

    async def close(self) -> None:
        """Close the store once no worker thread uses it."""
        async with self._lock:
            self.store.close()

    async def sweep(self) -> tuple[int, int, int]:
        """Delete what expired (files, DMs, bans, nonces); refresh the rooms gauge."""
        try:
            return await self._on_worker(self._sweep)
        except sqlite3.Error as e:
            log.error("community sweep failed: %s", type(e).__name__)
            return 0, 0, 0


def _each(rooms: list[Room] | None) -> list[Room | None]:
    """The rooms of a moderation request, or ``[None]`` for a global one."""
    return [None] if rooms is None else list(rooms)


def load_identity(cfg: CommunityConfig) -> Identity:
    """The server's key (``data_dir/keys/ed25519.key``; its X25519 key, derived, is the
    ``public_key`` of join URLs and what members blind with), created if missing
    (:func:`~session.service.site.load_site_identity`)."""
    return load_site_identity(cfg.data_dir)


def open_store(cfg: CommunityConfig) -> CommunityStore:
    return CommunityStore(cfg.data_dir / "store", max_storage_bytes=cfg.limits.max_storage_bytes)


@dataclass
class RunningCommunity:
    """A started community server: URLs, keys and service (for tests and the devnet)."""

    url: str
    identity: Identity
    service: CommunityService
    served: Served
    admin: http1.Served | None
    sweeper: asyncio.Task[None]

    @property
    def pubkey_hex(self) -> str:
        """The X25519 key of join URLs (``public_key``)."""
        return bytes(self.identity.x25519_public).hex()

    @property
    def admin_url(self) -> str:
        return "" if self.admin is None else f"http://127.0.0.1:{self.admin.port}"

    async def close(self) -> None:
        await cancel_and_wait([self.sweeper])
        if self.admin is not None:
            await self.admin.close()
        await self.served.close()
        await self.service.close()


async def _sweep_forever(service: CommunityService, interval: float) -> None:
    while True:
        files, dms, _ = await service.sweep()
        if files or dms:
            log.info("swept %d expired files and %d expired direct messages", files, dms)
        await asyncio.sleep(interval)


#: Signatures cover the body as sent.
_raw_bodies_only = raw_bodies_only("drop the Content-Encoding header: bodies are raw")


async def start(cfg: CommunityConfig) -> RunningCommunity:
    """Open the store and start listening; raises ``OSError`` if it cannot listen."""
    identity = await asyncio.to_thread(load_identity, cfg)
    store = await asyncio.to_thread(open_store, cfg)
    service = CommunityService(store, bytes(identity.x25519_public), cfg.limits)
    body_cap = max_request_body(cfg.limits)
    served, url = await start_site(
        service.routes, identity, network=cfg.network, data_dir=cfg.data_dir,
        limits=cfg.connections, max_body=body_cap, middlewares=[_raw_bodies_only],
    )  # fmt: skip
    admin = None
    if cfg.network.admin_port >= 0:
        try:
            admin = await http1.serve(
                admin_routes(service.registry.render, lambda: None),
                "127.0.0.1",
                cfg.network.admin_port,
            )
        except OSError:
            await served.close()
            store.close()
            raise
    sweeper = spawn(_sweep_forever(service, cfg.limits.sweep_interval), log, "the expiry sweep")
    return RunningCommunity(url, identity, service, served, admin, sweeper)


async def run(cfg: CommunityConfig, on_ready: Callable[[RunningCommunity], None]) -> None:
    """Serve until SIGTERM/SIGINT."""
    await run_standalone(
        lambda: start(cfg), on_ready, log, "community server", cfg.data_dir, "session-community"
    )


__all__ = [
    "CAPABILITIES",
    "CommunityService",
    "RunningCommunity",
    "load_identity",
    "open_store",
    "run",
    "start",
]
