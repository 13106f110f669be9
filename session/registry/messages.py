"""Signed registry requests (sans-I/O): building, signing and checking them.

A registration says "node <ed25519> with onion/ZeroMQ key <x25519> serves HTTPS at
<ip>:<https_port> and ZeroMQ at <ip>:<zmq_port>, backed by <stake>, as of <timestamp>", signed
by the node's Ed25519 key. A deregistration says "remove node <ed25519>, as of <timestamp>".
Timestamps are Unix milliseconds.

The signed bytes are a domain tag followed by the canonical JSON of every field except the
signature (sorted keys, no spaces, ASCII), so what is signed is exactly what is sent.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from session.errors import DecodeError, InvalidInput, InvalidSignature
from session.identity import ed25519_to_x25519, verify

REGISTER_TAG = b"session-registry/v1/register\n"
DEREGISTER_TAG = b"session-registry/v1/deregister\n"

#: How far a request's timestamp may be from the registry's clock, in seconds.
DEFAULT_FRESHNESS = 300

_last_timestamp_ms = 0


def now_ms() -> int:
    """Current time in milliseconds, strictly increasing within this process (so two
    requests built in the same millisecond are still ordered)."""
    global _last_timestamp_ms
    ts = max(int(time.time() * 1000), _last_timestamp_ms + 1)
    _last_timestamp_ms = ts
    return ts


REGISTRATION_FIELDS = (
    "pubkey_ed25519",
    "pubkey_x25519",
    "public_ip",
    "storage_port",
    "storage_lmq_port",
    "stake",
    "timestamp",
)
DEREGISTRATION_FIELDS = ("pubkey_ed25519", "timestamp")

_HEX = frozenset("0123456789abcdef")


class Signer(Protocol):
    """What signing needs from :class:`session.identity.Identity`."""

    @property
    def ed25519_public(self) -> bytes: ...

    @property
    def x25519_public(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


def _canonical(doc: Mapping[str, Any], fields: tuple[str, ...]) -> bytes:
    return json.dumps(
        {k: doc[k] for k in fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def registration_payload(doc: Mapping[str, Any]) -> bytes:
    """The bytes a registration signature covers."""
    return REGISTER_TAG + _canonical(doc, REGISTRATION_FIELDS)


def deregistration_payload(doc: Mapping[str, Any]) -> bytes:
    """The bytes a deregistration signature covers."""
    return DEREGISTER_TAG + _canonical(doc, DEREGISTRATION_FIELDS)


def _hex(value: Any, field: str, nbytes: int) -> str:
    if not isinstance(value, str) or len(value) != 2 * nbytes or not set(value) <= _HEX:
        raise DecodeError(f"{field} must be {2 * nbytes} lowercase hex characters")
    return value


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{field} must be an integer")
    if not (low <= value <= high):
        raise DecodeError(f"{field} must be between {low} and {high}")
    return value


def _ip(value: Any) -> str:
    if not isinstance(value, str):
        raise DecodeError("public_ip must be a string")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise DecodeError(f"public_ip {value!r} is not an IPv4 or IPv6 address") from None
    if addr.is_unspecified or addr.is_multicast:
        raise DecodeError("public_ip must be a unicast address")
    return str(addr)


def build_registration(
    identity: Signer,
    *,
    public_ip: str,
    storage_port: int,
    storage_lmq_port: int,
    stake: int,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A signed registration document for ``identity`` (JSON-ready)."""
    doc: dict[str, Any] = {
        "pubkey_ed25519": bytes(identity.ed25519_public).hex(),
        "pubkey_x25519": bytes(identity.x25519_public).hex(),
        "public_ip": public_ip,
        "storage_port": int(storage_port),
        "storage_lmq_port": int(storage_lmq_port),
        "stake": int(stake),
        "timestamp": now_ms() if timestamp is None else int(timestamp),
    }
    check_registration_fields(doc)
    doc["signature"] = bytes(identity.sign(registration_payload(doc))).hex()
    return doc


def build_deregistration(identity: Signer, *, timestamp: int | None = None) -> dict[str, Any]:
    """A signed deregistration document for ``identity``."""
    doc: dict[str, Any] = {
        "pubkey_ed25519": bytes(identity.ed25519_public).hex(),
        "timestamp": now_ms() if timestamp is None else int(timestamp),
    }
    doc["signature"] = bytes(identity.sign(deregistration_payload(doc))).hex()
    return doc


def check_registration_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Shape checks of a registration (no signature check); returns the normalised fields."""
    if not isinstance(doc, Mapping):
        raise DecodeError("registration must be a JSON object")
    missing = [f for f in REGISTRATION_FIELDS if f not in doc]
    if missing:
        raise DecodeError(f"registration is missing {', '.join(missing)}")
    return {
        "pubkey_ed25519": _hex(doc["pubkey_ed25519"], "pubkey_ed25519", 32),
        "pubkey_x25519": _hex(doc["pubkey_x25519"], "pubkey_x25519", 32),
        "public_ip": _ip(doc["public_ip"]),
        "storage_port": _int(doc["storage_port"], "storage_port", 1, 65535),
        "storage_lmq_port": _int(doc["storage_lmq_port"], "storage_lmq_port", 1, 65535),
        "stake": _int(doc["stake"], "stake", 0, 2**63 - 1),
        "timestamp": _int(doc["timestamp"], "timestamp", 0, 2**63 - 1),
    }


def _check_fresh(timestamp_ms: int, now: float, freshness: float) -> None:
    skew = now - timestamp_ms / 1000
    if abs(skew) > freshness:
        raise InvalidInput(
            f"request timestamp is {int(skew)} s away from the registry's clock "
            f"(allowed: {int(freshness)} s); check the node's clock"
        )


def _check_signature(pubkey_hex: str, payload: bytes, sig: Any) -> None:
    sig_hex = _hex(sig, "signature", 64)
    try:
        verify(bytes.fromhex(pubkey_hex), payload, bytes.fromhex(sig_hex))
    except InvalidSignature:
        raise InvalidSignature("signature does not verify with pubkey_ed25519") from None
    except InvalidInput:
        raise InvalidSignature("pubkey_ed25519 is not a valid Ed25519 public key") from None


def verify_registration(
    doc: Mapping[str, Any], *, now: float | None = None, freshness: float = DEFAULT_FRESHNESS
) -> dict[str, Any]:
    """Check a registration: shape, freshness, X25519 = convert(Ed25519), signature.

    Returns the normalised fields. Raises :class:`DecodeError` / :class:`InvalidInput` for
    malformed or stale documents and :class:`InvalidSignature` for bad keys or signatures.
    """
    fields = check_registration_fields(doc)
    if "signature" not in doc:
        raise DecodeError("registration is missing signature")
    _check_fresh(fields["timestamp"], time.time() if now is None else now, freshness)
    try:
        expected_x = bytes(ed25519_to_x25519(bytes.fromhex(fields["pubkey_ed25519"]))).hex()
    except InvalidInput:
        raise InvalidSignature("pubkey_ed25519 is not a valid Ed25519 public key") from None
    if expected_x != fields["pubkey_x25519"]:
        raise InvalidSignature("pubkey_x25519 is not the X25519 conversion of pubkey_ed25519")
    _check_signature(fields["pubkey_ed25519"], registration_payload(doc), doc["signature"])
    return fields


def verify_deregistration(
    doc: Mapping[str, Any], *, now: float | None = None, freshness: float = DEFAULT_FRESHNESS
) -> dict[str, Any]:
    """Check a deregistration; returns ``{"pubkey_ed25519", "timestamp"}``."""
    if not isinstance(doc, Mapping):
        raise DecodeError("deregistration must be a JSON object")
    missing = [f for f in (*DEREGISTRATION_FIELDS, "signature") if f not in doc]
    if missing:
        raise DecodeError(f"deregistration is missing {', '.join(missing)}")
    key = _hex(doc["pubkey_ed25519"], "pubkey_ed25519", 32)
    timestamp = _int(doc["timestamp"], "timestamp", 0, 2**63 - 1)
    _check_fresh(timestamp, time.time() if now is None else now, freshness)
    _check_signature(key, deregistration_payload(doc), doc["signature"])
    return {"pubkey_ed25519": key, "timestamp": timestamp}


__all__ = [
    "DEFAULT_FRESHNESS",
    "build_deregistration",
    "build_registration",
    "check_registration_fields",
    "deregistration_payload",
    "now_ms",
    "registration_payload",
    "verify_deregistration",
    "verify_registration",
]
