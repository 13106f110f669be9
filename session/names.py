"""Session names (ONS / SNS, client spec §6.8): the name rule, the name hash, the encrypted
Session ID, and the signed requests that register and renew a name at the registry.

A name maps to a Session ID exactly as Session's name service stores it: the lookup key is
``name_hash = BLAKE2b-256(name)`` (unkeyed, of the lower-cased UTF-8 name) and the value is the
33-byte Session ID encrypted with XChaCha20-Poly1305 under ``BLAKE2b-256(name; key=name_hash)``
with a random 24-byte nonce. Whoever knows the name can decrypt; whoever holds only the hash
(a node answering lookups, the registry's state file) cannot.

Registration requests carry the name itself so that the registry can check the name rule, the
hash and that the value decrypts to the owner's own Session ID; the registry keeps only the hash.
The crypto is the native core's (``session._core``: RustCrypto BLAKE2b and XChaCha20-Poly1305).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from session import _core
from session.errors import DecodeError, DecryptionError, InvalidName, InvalidSignature
from session.identity import ed25519_to_x25519, verify
from session.registry.messages import Signer, now_ms

#: Longest name accepted (Session's name service limit for Session names).
MAX_NAME_LENGTH = 64
#: ``type`` of a Session name in ``ons_resolve`` (0 = Session; oxend also knows wallets, Lokinet).
SESSION_TYPE = 0
NONCE_LEN = 24
#: Length of an encrypted value: 33-byte Session ID + 16-byte Poly1305 tag.
VALUE_LEN = 49

# §6.8's rule ``^\w([\w-]*[\w])?$`` with JavaScript's ASCII-only ``\w`` (Session desktop).
_NAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?", re.ASCII)

REGISTER_TAG = b"session-registry/v1/name-register\n"
RENEW_TAG = b"session-registry/v1/name-renew\n"
REGISTER_FIELDS = ("name", "name_hash", "encrypted_value", "nonce", "owner", "timestamp")
RENEW_FIELDS = ("name_hash", "owner", "timestamp")


def normalize_name(text: str) -> str:
    """The canonical (lower-case) form of a name a person typed (a leading ``@`` and
    surrounding blanks are dropped); raises :class:`InvalidName` saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidName("a name must be text")
    name = text.strip()
    name = name.removeprefix("@")
    if not name:
        raise InvalidName("the name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"a name has at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if not _NAME_RE.fullmatch(name):
        raise InvalidName("a name uses only letters a-z, digits, '_' and '-' (not first or last)")
    return name.lower()


def name_hash(name: str) -> bytes:
    """The 32-byte lookup key of a (normalised) name."""
    return bytes(_core.ons_name_hash(name))


def name_hash_b64(name: str) -> str:
    """The name hash as sent in ``ons_resolve`` (standard padded base64)."""
    return base64.b64encode(name_hash(name)).decode()


def encrypt_value(name: str, session_id: str, nonce: bytes | None = None) -> tuple[bytes, bytes]:
    """``(ciphertext, nonce)`` of ``session_id`` (66 hex characters) under the name's key."""
    nonce = secrets.token_bytes(NONCE_LEN) if nonce is None else nonce
    try:
        raw = bytes.fromhex(session_id)
    except ValueError:
        raise DecodeError("a Session ID is 66 hex characters") from None
    return bytes(_core.ons_encrypt(name, raw, nonce)), nonce


def decrypt_value(name: str, ciphertext: bytes, nonce: bytes) -> str:
    """The Session ID (hex) a name's value holds; raises :class:`DecryptionError` when the
    value does not belong to this name or was tampered with."""
    return bytes(_core.ons_decrypt(name, ciphertext, nonce)).hex()


def parse_hash(value: Any, field: str = "name_hash") -> str:
    """A name hash from JSON (base64 of 32 bytes, or 64 hex characters) as canonical base64."""
    if not isinstance(value, str) or len(value) > 100:
        raise DecodeError(f"{field} must be the base64 of 32 bytes")
    raw: bytes | None = None
    if len(value) == 64:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError(f"{field} must be the base64 of 32 bytes") from None
    if len(raw) != 32:
        raise DecodeError(f"{field} must be the base64 of 32 bytes")
    return base64.b64encode(raw).decode()


def _hex_field(doc: Mapping[str, Any], field: str, nbytes: int) -> bytes:
    value = doc[field]
    if not isinstance(value, str) or len(value) != 2 * nbytes:
        raise DecodeError(f"{field} must be {2 * nbytes} hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"{field} must be {2 * nbytes} hex characters") from None


def _timestamp(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise DecodeError("timestamp must be a non-negative integer (Unix milliseconds)")
    return value


def _payload(tag: bytes, doc: Mapping[str, Any], fields: tuple[str, ...]) -> bytes:
    body = {k: doc[k] for k in fields}
    return tag + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def register_payload(doc: Mapping[str, Any]) -> bytes:
    """The bytes a registration's signature covers (tag + canonical JSON of its fields)."""
    return _payload(REGISTER_TAG, doc, REGISTER_FIELDS)


def owner_session_id(owner_hex: str) -> str:
    """The Session ID that belongs to an Ed25519 owner key (hex)."""
    try:
        return "05" + bytes(ed25519_to_x25519(bytes.fromhex(owner_hex))).hex()
    except (ValueError, DecodeError):
        raise InvalidSignature("owner is not a valid Ed25519 public key") from None


def build_register(identity: Signer, name: str, *, timestamp: int | None = None) -> dict[str, Any]:
    """A signed request registering ``name`` for ``identity``'s own Session ID."""
    name = normalize_name(name)
    owner = bytes(identity.ed25519_public).hex()
    value, nonce = encrypt_value(name, owner_session_id(owner))
    doc: dict[str, Any] = {
        "name": name,
        "name_hash": name_hash_b64(name),
        "encrypted_value": value.hex(),
        "nonce": nonce.hex(),
        "owner": owner,
        "timestamp": now_ms() if timestamp is None else int(timestamp),
    }
    doc["signature"] = bytes(identity.sign(_payload(REGISTER_TAG, doc, REGISTER_FIELDS))).hex()
    return doc


def build_renew(identity: Signer, name: str, *, timestamp: int | None = None) -> dict[str, Any]:
    """A signed request renewing ``identity``'s registration of ``name``."""
    name = normalize_name(name)
    doc: dict[str, Any] = {
        "name_hash": name_hash_b64(name),
        "owner": bytes(identity.ed25519_public).hex(),
        "timestamp": now_ms() if timestamp is None else int(timestamp),
    }
    doc["signature"] = bytes(identity.sign(_payload(RENEW_TAG, doc, RENEW_FIELDS))).hex()
    return doc


def _require(doc: Any, fields: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise DecodeError(f"a {what} must be a JSON object")
    missing = [f for f in (*fields, "signature") if f not in doc]
    if missing:
        raise DecodeError(f"the {what} is missing {', '.join(missing)}")
    return doc


def _check_signature(doc: Mapping[str, Any], payload: bytes) -> bytes:
    owner = _hex_field(doc, "owner", 32)
    sig = _hex_field(doc, "signature", 64)
    try:
        verify(owner, payload, sig)
    except InvalidSignature:
        raise InvalidSignature("the signature does not verify with the owner key") from None
    except (ValueError, DecodeError):
        raise InvalidSignature("owner is not a valid Ed25519 public key") from None
    return owner


def verify_register(doc: Any) -> dict[str, Any]:
    """Check a registration request: shape, name rule, hash, signature, and that the value
    decrypts to the owner's own Session ID. Returns the normalised fields (without the name)."""
    d = _require(doc, REGISTER_FIELDS, "name registration")
    raw_name = d["name"]
    if not isinstance(raw_name, str):
        raise InvalidName("name must be text")
    name = normalize_name(raw_name)
    if name != raw_name:
        raise InvalidName("the name must be sent lower-case, without '@' or blanks")
    if parse_hash(d["name_hash"]) != name_hash_b64(name):
        raise DecodeError("name_hash is not the hash of the name")
    value = _hex_field(d, "encrypted_value", VALUE_LEN)
    nonce = _hex_field(d, "nonce", NONCE_LEN)
    timestamp = _timestamp(d["timestamp"])
    owner = _check_signature(d, _payload(REGISTER_TAG, d, REGISTER_FIELDS))
    try:
        sid = decrypt_value(name, value, nonce)
    except DecryptionError:
        raise DecodeError("encrypted_value does not decrypt under the name's key") from None
    if sid != owner_session_id(owner.hex()):
        raise InvalidSignature("a name can only be registered for the owner's own Session ID")
    return {
        "name_hash": name_hash_b64(name),
        "encrypted_value": value,
        "nonce": nonce,
        "owner": owner.hex(),
        "timestamp": timestamp,
    }


def verify_renew(doc: Any) -> dict[str, Any]:
    """Check a renewal request; returns ``{"name_hash", "owner", "timestamp"}``."""
    d = _require(doc, RENEW_FIELDS, "name renewal")
    h = parse_hash(d["name_hash"])
    if h != d["name_hash"]:
        raise DecodeError("name_hash must be the padded base64 of 32 bytes")
    timestamp = _timestamp(d["timestamp"])
    owner = _check_signature(d, _payload(RENEW_TAG, d, RENEW_FIELDS))
    return {"name_hash": h, "owner": owner.hex(), "timestamp": timestamp}


__all__ = [
    "MAX_NAME_LENGTH",
    "SESSION_TYPE",
    "build_register",
    "build_renew",
    "decrypt_value",
    "encrypt_value",
    "name_hash",
    "name_hash_b64",
    "normalize_name",
    "owner_session_id",
    "parse_hash",
    "register_payload",
    "verify_register",
    "verify_renew",
]
