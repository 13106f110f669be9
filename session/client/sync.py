"""Multi-device sync through the user config namespaces (spec client.md §6.7, TV-24).

A config push is a bencoded dict ``{"#": seqno, "&": data, "<": [], "=": {}}`` (libsession's
message shape; we send an empty diff list, i.e. every push is a full snapshot), prefix-padded
with zeros to libsession's buckets, encrypted with ``config_crypto.encrypt(padded, seed32,
domain)`` and stored (authenticated, 30-day TTL) in the own swarm:

* namespace 2, domain ``UserProfile``: ``n`` display name;
* namespace 3, domain ``Contacts``: ``c`` → {33-byte Session ID → {``n`` name, ``a`` approved,
  ``A`` approved me, ``b`` blocked, ``e`` expiration type, ``E`` timer}}.

Merging is "highest seqno wins" (a full snapshot each time), which is what two devices of one
user need when they don't edit the same config at the same instant; libsession's diff replay for
concurrent edits is not implemented. Receivers also accept the older protobuf-wrapped form.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from session.errors import DecodeError, SessionError

NS_USER_PROFILE = 2
NS_CONTACTS = 3
DOMAINS = {NS_USER_PROFILE: "UserProfile", NS_CONTACTS: "Contacts"}
ENCRYPT_OVERHEAD = 40


# --------------------------------------------------------------------------- bencode


def bencode(v: Any) -> bytes:
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:%s" % (len(v), bytes(v))
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted(((k.encode() if isinstance(k, str) else bytes(k)), x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(f"cannot bencode {type(v).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one bencoded value (strings stay bytes); raises DecodeError."""
    try:
        v, end = _bdec(data, 0, 0)
    except (IndexError, ValueError) as e:
        raise DecodeError(f"bad bencoding: {e}") from None
    if end != len(data):
        raise DecodeError("trailing bytes after bencoded value")
    return v


def _bdec(d: bytes, i: int, depth: int) -> tuple[Any, int]:
    if depth > 32:
        raise ValueError("nesting too deep")
    c = d[i : i + 1]
    if c == b"i":
        j = d.index(b"e", i)
        return int(d[i + 1 : j]), j + 1
    if c == b"l":
        out = []
        i += 1
        while d[i : i + 1] != b"e":
            v, i = _bdec(d, i, depth + 1)
            out.append(v)
        return out, i + 1
    if c == b"d":
        res: dict[bytes, Any] = {}
        i += 1
        while d[i : i + 1] != b"e":
            k, i = _bdec(d, i, depth + 1)
            if not isinstance(k, bytes):
                raise ValueError("dict key is not a string")
            res[k], i = _bdec(d, i, depth + 1)
        return res, i + 1
    if c.isdigit():
        j = d.index(b":", i)
        n = int(d[i:j])
        if n < 0 or j + 1 + n > len(d):
            raise ValueError("string runs past the end")
        return d[j + 1 : j + 1 + n], j + 1 + n
    raise ValueError(f"unexpected byte {c!r}")


# --------------------------------------------------------------------------- config messages


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigMessage:
    namespace: int
    seqno: int
    data: dict[bytes, Any]


def encode_config(namespace: int, seqno: int, data: dict[str, Any], seed32: bytes) -> bytes:
    """Serialize, pad and encrypt one config push (returns raw bytes to base64 and store)."""
    from session import config_crypto

    msg = bencode({"#": seqno, "&": data, "<": [], "=": {}})
    size = int(config_crypto.padded_size(len(msg), ENCRYPT_OVERHEAD))
    padded = b"\x00" * (size - len(msg)) + msg
    return bytes(config_crypto.encrypt(padded, seed32, DOMAINS[namespace]))


def decode_config(
    namespace: int, blob: bytes, seed32: bytes, identity: Any = None
) -> ConfigMessage:
    """Decrypt one stored config message (raw or protobuf-wrapped)."""
    from session import config_crypto

    domain = DOMAINS[namespace]
    try:
        plain = bytes(config_crypto.decrypt(blob, seed32, domain))
    except SessionError:
        if identity is None:
            raise
        plain = bytes(config_crypto.decrypt(_unwrap(blob, identity), seed32, domain))
    plain = plain.lstrip(b"\x00")
    if plain[:1] == b"z":
        raise DecodeError("compressed config messages are not supported")
    doc = bdecode(plain)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get(b"#"), int)
        or not isinstance(doc.get(b"&"), dict)
    ):
        raise DecodeError("config message lacks seqno or data")
    return ConfigMessage(namespace, doc[b"#"], doc[b"&"])


def _unwrap(blob: bytes, identity: Any) -> bytes:
    """Older libsession wrapped configs in a self-addressed Session message."""
    from session import protocol
    from session.client.messages import unpad
    from session.proto import session_pb2 as pb

    ws = pb.WebSocketMessage.FromString(blob)
    env = pb.Envelope.FromString(ws.request.body)
    pt, _ = protocol.decrypt_incoming(identity, env.content)
    content = pb.Content.FromString(unpad(bytes(pt)))
    if not content.HasField("sharedConfigMessage"):
        raise DecodeError("wrapped config has no sharedConfigMessage")
    return bytes(content.sharedConfigMessage.data)


def profile_data(display_name: str | None) -> dict[str, Any]:
    return {"n": display_name} if display_name else {}


def contacts_data(contacts: list[dict[str, Any]]) -> dict[str, Any]:
    c: dict[bytes, Any] = {}
    for row in contacts:
        entry: dict[str, Any] = {"n": row.get("name") or ""}
        for key, col in (("a", "approved"), ("A", "approved_me"), ("b", "blocked")):
            if row.get(col):
                entry[key] = 1
        if row.get("exp_mode"):
            entry["e"] = 2 if row["exp_mode"] == 1 else 1  # contacts config: 1 = DaS, 2 = DaR
            entry["E"] = int(row.get("exp_seconds", 0))
        c[bytes.fromhex(row["session_id"])] = entry
    return {"c": c} if c else {}


def parse_contacts(data: dict[bytes, Any]) -> list[dict[str, Any]]:
    out = []
    for sid, entry in (data.get(b"c") or {}).items():
        if not isinstance(sid, bytes) or len(sid) != 33 or not isinstance(entry, dict):
            continue
        e_type = int(entry.get(b"e", 0) or 0)
        out.append(
            {
                "session_id": sid.hex(),
                "name": (entry.get(b"n") or b"").decode(errors="replace") or None,
                "approved": int(bool(entry.get(b"a"))),
                "approved_me": int(bool(entry.get(b"A"))),
                "blocked": int(bool(entry.get(b"b"))),
                "exp_mode": {1: 2, 2: 1}.get(e_type, 0),
                "exp_seconds": int(entry.get(b"E", 0) or 0) if e_type else 0,
            }
        )
    return out
