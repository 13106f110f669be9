"""Checking the ``X-SOGS-*`` signature of a community request (client spec §4.3).

A signed request carries ``X-SOGS-Pubkey`` (``15`` + blinded key, or ``00`` + Ed25519 key),
``X-SOGS-Timestamp`` (Unix seconds), ``X-SOGS-Nonce`` (16 bytes, base64 or hex) and
``X-SOGS-Signature`` (64 bytes, base64 or hex) over
``server_pk ‖ nonce ‖ timestamp ‖ METHOD ‖ path[?query] [‖ BLAKE2b-512(body)]`` where the path
is URL-decoded. The answers are SOGS's: 400 malformed (and an unblinded key on a server that
requires blinding), 425 a timestamp more than 24 h off or a reused nonce, 401 a signature that
does not verify. Whether the key is banned (403) and the nonce's reuse are the store's part
(:meth:`session.community.server.CommunityService`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import nacl.bindings
import nacl.exceptions
import nacl.signing

from session.blinding import verify_blinded
from session.errors import InvalidSignature, SessionError

#: How far a request's timestamp may be from the server's clock.
MAX_CLOCK_SKEW = 24 * 3600
HEADERS = ("x-sogs-pubkey", "x-sogs-nonce", "x-sogs-timestamp", "x-sogs-signature")


class AuthError(SessionError):
    """A request's authentication was refused: ``status`` (400/401/425) and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed a request: the ID it is known by (``15…``, or ``05…`` for a ``00`` key), the
    header's key, and the nonce (which the caller records to refuse its reuse)."""

    session_id: str
    pubkey: str
    nonce: bytes
    timestamp: int

    @property
    def nonce_expires(self) -> int:
        """When the request stops being acceptable (its timestamp a day old): until then its
        nonce must be remembered."""
        return self.timestamp + MAX_CLOCK_SKEW + 1


def _hex_or_b64(value: str, size: int) -> bytes:
    """``value`` as ``size`` bytes given in hex or (standard or URL-safe) base64."""
    v = value.strip()
    if len(v) == 2 * size:
        try:
            return bytes.fromhex(v)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_" if "-" in v or "_" in v
                               else None, validate=True)  # fmt: skip
    except (binascii.Error, ValueError):
        raise ValueError("not hex or base64") from None
    if len(raw) != size:
        raise ValueError("wrong size")
    return raw


def signed_message(
    server_pk: bytes, nonce: bytes, ts: str, method: str, path: str, query: str, body: bytes
) -> bytes:
    """The bytes a request's signature covers."""
    msg = server_pk + nonce + ts.encode() + method.encode() + path.encode()
    if query:
        msg += b"?" + query.encode()
    if body:
        msg += hashlib.blake2b(body, digest_size=64).digest()
    return msg


def authenticate(
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: str,
    body: bytes,
    server_pk: bytes,
    *,
    require_blind: bool,
    now: float | None = None,
) -> Signer | None:
    """The signer of a request, ``None`` when it has no ``X-SOGS-*`` headers at all; raises
    :class:`AuthError` with SOGS's status otherwise. ``headers`` have lower-case names."""
    values = [headers.get(h, "") for h in HEADERS]
    missing = sum(1 for v in values if not v)
    if missing == 4:
        return None
    if missing:
        raise AuthError(
            400, f"Invalid authentication headers: missing {missing}/4 required X-SOGS-* headers"
        )
    pk_s, nonce_s, ts_s, sig_s = values
    try:
        pk = _hex_or_b64(pk_s, 33)
    except ValueError:
        raise AuthError(
            400, "Invalid authentication: X-SOGS-Pubkey is not a valid 66-hex digit id"
        ) from None
    if pk[0] not in (0x00, 0x15):
        raise AuthError(400, "Invalid authentication: X-SOGS-Pubkey must be 00- or 15- prefixed")
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(pk[1:]):
        raise AuthError(
            400, "Invalid authentication: given X-SOGS-Pubkey is not a valid Ed25519 pubkey"
        )
    if pk[0] == 0x00 and require_blind:
        raise AuthError(400, "Invalid authentication: this server requires the use of blinded ids")
    try:
        nonce = _hex_or_b64(nonce_s, 16)
    except ValueError:
        raise AuthError(
            400, "Invalid authentication: X-SOGS-Nonce must be 16 bytes (encoded as base64 or hex)"
        ) from None
    try:
        sig = _hex_or_b64(sig_s, 64)
    except ValueError:
        raise AuthError(400, "Invalid authentication: X-SOGS-Signature is not base64[88]") from None
    if not (ts_s.isascii() and ts_s.isdigit()) or len(ts_s) > 12:
        raise AuthError(400, "Invalid authentication: X-SOGS-Timestamp is not a valid timestamp")
    now = time.time() if now is None else now
    if abs(int(ts_s) - now) > MAX_CLOCK_SKEW:
        raise AuthError(
            425, "Invalid authentication: X-SOGS-Timestamp is too far from current time"
        )
    if pk[0] == 0x15:
        session_id = "15" + pk[1:].hex()
    else:
        try:
            x25519 = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(pk[1:])
        except nacl.exceptions.RuntimeError:
            raise AuthError(
                400, "Invalid authentication: given X-SOGS-Pubkey is not a valid Ed25519 pubkey"
            ) from None
        session_id = "05" + x25519.hex()
    # The query as sent, or decoded (clients differ in which form they sign).
    queries = [query] if query == unquote(query) else [query, unquote(query)]
    for q in queries:
        msg = signed_message(server_pk, nonce, ts_s, method, path, q, body)
        if _verifies(pk, msg, sig):
            return Signer(session_id, pk.hex(), nonce, int(ts_s))
    raise AuthError(401, "Invalid authentication: X-SOGS-Signature verification failed")


def _verifies(pk: bytes, msg: bytes, sig: bytes) -> bool:
    if pk[0] == 0x15:
        try:
            verify_blinded("15" + pk[1:].hex(), msg, sig)
        except InvalidSignature:
            return False
        return True
    try:
        nacl.signing.VerifyKey(pk[1:]).verify(msg, sig)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


__all__ = ["HEADERS", "MAX_CLOCK_SKEW", "AuthError", "Signer", "authenticate", "signed_message"]
