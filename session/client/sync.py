"""The 1:1 user configs our devices share (spec client.md §6.7, TV-24/TV-25): what their data
holds and how they are stored. The config messages themselves, their merge and their sealing are
:mod:`session.groups.config` (libsession's rules), the same code the group configs use.

* namespace 2, domain ``UserProfile``: ``n`` display name, ``p``/``q`` profile picture (file
  URL, 32-byte profile key: both or neither, as libsession's ``set_profile_pic``); other keys are
  kept as other clients set them;
* namespace 3, domain ``Contacts``: ``c`` → {33-byte Session ID → {``n`` name, ``p``/``q`` the
  contact's profile picture, ``a`` approved, ``A`` approved me, ``b`` blocked, ``e`` expiration
  type, ``E`` timer, and the keys other clients set, kept untouched}};
* namespace 4, domain ``ConvoInfoVolatile``: ``1`` → {Session ID (hex) → {``r`` last-read
  time (ms), ``u`` marked unread}}: how far each 1:1 conversation was read on any device
  (``o``/``g`` entries of communities and groups are kept as other clients set them).

A stored config is :func:`session.groups.config.seal` of the serialized message under the
account's Ed25519 seed; :func:`open_config` also accepts the older protobuf-wrapped form.
"""

from __future__ import annotations

from typing import Any

from session import protocol
from session.client.db import Contact
from session.client.messages import unpad
from session.errors import DecodeError, DecryptionError
from session.groups.config import ConfigData, open_sealed
from session.identity import Identity
from session.proto import session_pb2 as pb

NS_USER_PROFILE = 2
NS_CONTACTS = 3
NS_CONVO_INFO = 4
DOMAINS = {
    NS_USER_PROFILE: "UserProfile",
    NS_CONTACTS: "Contacts",
    NS_CONVO_INFO: "ConvoInfoVolatile",
}

#: Contact flags and their keys in a contact's config entry.
_FLAGS = (("a", "approved"), ("A", "approved_me"), ("b", "blocked"))
#: A profile picture: (file URL, 32-byte profile key), spec client.md §6.9.
Pic = tuple[str, bytes]
#: Longest picture URL libsession keeps (``profile_pic::MAX_URL_LENGTH``).
MAX_PIC_URL = 223


def open_config(
    namespace: int, blob: bytes, seed32: bytes, identity: Identity | None = None
) -> bytes:
    """The serialized config message stored as ``blob`` in ``namespace`` (sealed, or the older
    self-addressed protobuf wrapping when ``identity`` is given). Raises DecryptionError /
    DecodeError."""
    domain = DOMAINS[namespace]
    try:
        return open_sealed(blob, [seed32], domain)
    except DecryptionError:
        if identity is None:
            raise
        return open_sealed(_unwrap(blob, identity), [seed32], domain)


def _unwrap(blob: bytes, identity: Identity) -> bytes:
    """Older libsession wrapped configs in a self-addressed Session message."""
    ws = pb.WebSocketMessage.FromString(blob)
    env = pb.Envelope.FromString(ws.request.body)
    pt, _ = protocol.decrypt_incoming(identity, env.content)
    content = pb.Content.FromString(unpad(bytes(pt)))
    if not content.HasField("sharedConfigMessage"):
        raise DecodeError("wrapped config has no sharedConfigMessage")
    return bytes(content.sharedConfigMessage.data)


# ------------------------------------------------------------------------------ UserProfile


def set_display_name(data: ConfigData, name: str | None) -> None:
    """Sets (or, for an empty name, removes) the display name in UserProfile data."""
    if name:
        data[b"n"] = name.encode()
    else:
        data.pop(b"n", None)


def display_name(data: ConfigData) -> str | None:
    """The display name in UserProfile data, if any."""
    name = data.get(b"n")
    return name.decode(errors="replace") if isinstance(name, bytes) and name else None


def _set_pic(d: dict[bytes, Any], pic: Pic | None) -> None:
    """Sets ``p``/``q`` of ``d`` to ``pic``, or removes both (libsession keeps the pair only
    when the URL is non-empty and the key is 32 bytes)."""
    if pic is not None and pic[0] and len(pic[0].encode()) <= MAX_PIC_URL and len(pic[1]) == 32:
        d[b"p"], d[b"q"] = pic[0].encode(), bytes(pic[1])
    else:
        d.pop(b"p", None)
        d.pop(b"q", None)


def _pic(d: dict[bytes, Any]) -> Pic | None:
    """The ``p``/``q`` pair of ``d`` when both are valid (libsession's ``get_profile_pic``)."""
    url, key = d.get(b"p"), d.get(b"q")
    if isinstance(url, bytes) and url and isinstance(key, bytes) and len(key) == 32:
        return url.decode(errors="replace"), key
    return None


def set_profile_pic(data: ConfigData, pic: Pic | None) -> None:
    """Sets (or, for None, removes) our profile picture in UserProfile data."""
    _set_pic(data, pic)


def profile_pic(data: ConfigData) -> Pic | None:
    """Our profile picture in UserProfile data, if any."""
    return _pic(data)


# ------------------------------------------------------------------------------ Contacts


def contact_entry(
    contact: Contact, existing: dict[bytes, Any] | None = None, pic: Pic | None = None
) -> dict[bytes, Any]:
    """The config entry of ``contact``: ``existing`` (keys other clients set are kept) with our
    fields set, an absent or false field removed (libsession stores no defaults); ``pic``, the
    contact's picture as we know it, replaces the entry's (None keeps what the entry has: a
    picture we have not seen is not one removed)."""
    entry = dict(existing or {})
    if pic is not None:
        _set_pic(entry, pic)
    fields = contact.to_dict()
    if contact.name:
        entry[b"n"] = contact.name.encode()
    else:
        entry.pop(b"n", None)
    for key, col in _FLAGS:
        if fields[col]:
            entry[key.encode()] = 1
        else:
            entry.pop(key.encode(), None)
    if contact.exp_mode:
        entry[b"e"] = 2 if contact.exp_mode == 1 else 1  # contacts config: 1 = DaS, 2 = DaR
        entry[b"E"] = int(contact.exp_seconds)
    else:
        entry.pop(b"e", None)
        entry.pop(b"E", None)
    return entry


def set_contacts(
    data: ConfigData, contacts: list[Contact], me: str, pics: dict[str, Pic] | None = None
) -> None:
    """Makes the ``c`` dict of Contacts data hold exactly ``contacts`` (never ``me``), with the
    pictures ``pics`` (by Session ID) we know of them."""
    pics = pics or {}
    old = data.get(b"c")
    old = old if isinstance(old, dict) else {}
    new: dict[bytes, Any] = {}
    for contact in contacts:
        if contact.session_id == me:
            continue
        sid = bytes.fromhex(contact.session_id)
        prev = old.get(sid)
        new[sid] = contact_entry(
            contact, prev if isinstance(prev, dict) else None, pics.get(contact.session_id)
        )
    if new:
        data[b"c"] = new
    else:
        data.pop(b"c", None)


def contacts_of(data: ConfigData) -> dict[str, dict[str, Any]]:
    """The contacts in Contacts data by Session ID, as contact fields (malformed entries are
    skipped)."""
    out: dict[str, dict[str, Any]] = {}
    c = data.get(b"c")
    if not isinstance(c, dict):
        return out
    for sid, entry in c.items():
        if not isinstance(sid, bytes) or len(sid) != 33 or not isinstance(entry, dict):
            continue
        e = entry.get(b"e")
        e_type = e if isinstance(e, int) else 0
        timer = entry.get(b"E")
        name = entry.get(b"n")
        out[sid.hex()] = {
            "name": name.decode(errors="replace") if isinstance(name, bytes) and name else None,
            "approved": int(bool(entry.get(b"a"))),
            "approved_me": int(bool(entry.get(b"A"))),
            "blocked": int(bool(entry.get(b"b"))),
            "exp_mode": {1: 2, 2: 1}.get(e_type, 0),
            "exp_seconds": timer if e_type in (1, 2) and isinstance(timer, int) else 0,
        }
    return out


def contact_pics(data: ConfigData) -> dict[str, Pic]:
    """The contacts' profile pictures in Contacts data, by Session ID."""
    c = data.get(b"c")
    if not isinstance(c, dict):
        return {}
    out: dict[str, Pic] = {}
    for sid, entry in c.items():
        if isinstance(sid, bytes) and len(sid) == 33 and isinstance(entry, dict):
            pic = _pic(entry)
            if pic is not None:
                out[sid.hex()] = pic
    return out


#: ConvoInfoVolatile's dict of each kind of conversation, by the first byte of its ID.
_CONVO_KINDS = {"05": b"1", "03": b"g"}


def set_last_read(data: ConfigData, conversation: str, read_ms: int) -> None:
    """Record in ConvoInfoVolatile data that a 1:1 conversation (``05…``) or a group
    (``03…``) was read up to ``read_ms`` (never moving backwards; other keys of the entry
    kept). Keyed as libsession keys it: the ID's 33 bytes, under ``1`` or ``g``."""
    kind = _CONVO_KINDS.get(conversation[:2])
    if kind is None:
        raise ValueError("only 1:1 conversations and groups have a read mark here")
    convos = data.get(kind)
    convos = convos if isinstance(convos, dict) else {}
    key = bytes.fromhex(conversation)
    legacy = convos.pop(conversation.encode(), None)  # (keyed in hex by an earlier version)
    entry = convos.get(key, legacy)
    entry = dict(entry) if isinstance(entry, dict) else {}
    reads = [read_ms] + [
        e.get(b"r") for e in (entry, legacy) if isinstance(e, dict) and isinstance(e.get(b"r"), int)
    ]
    entry[b"r"] = max(r for r in reads if isinstance(r, int))
    entry.pop(b"u", None)  # read now, so no longer marked unread
    convos[key] = entry
    data[kind] = convos


def last_read(data: ConfigData) -> dict[str, int]:
    """The last-read time (ms) of each 1:1 conversation and group in ConvoInfoVolatile data,
    by its hex ID (keys of 33 bytes, as libsession writes them, or of 66 hex digits, as an
    earlier version of ours did; malformed entries skipped)."""
    out: dict[str, int] = {}
    for prefix, kind in _CONVO_KINDS.items():
        convos = data.get(kind)
        if not isinstance(convos, dict):
            continue
        for key, entry in convos.items():
            if not isinstance(key, bytes) or not isinstance(entry, dict):
                continue
            if len(key) == 33:
                cid = key.hex()
            else:
                try:
                    cid = key.decode("ascii").lower()
                    if len(cid) != 66:
                        continue
                    bytes.fromhex(cid)
                except (UnicodeDecodeError, ValueError):
                    continue
            r = entry.get(b"r")
            if cid.startswith(prefix) and isinstance(r, int) and r > 0:
                out[cid] = max(r, out.get(cid, 0))
    return out
