"""Community (SOGS) blinded identities, blinded signatures and request headers
(client spec §4.2–4.3).

A community server only ever sees a *blinded* key: the account key multiplied by a factor
derived from the server's public key, so the same account looks unrelated on different
servers.

* **15-blinding** (what servers use today): ``k = BLAKE2b-512(server_pk) mod L``; the id is
  ``"15" + hex(k·a·B)``. From a Session ID alone the sign is unknown, so
  :func:`blinded15_ids_for_session_id` returns both candidates.
* **25-blinding** (libsession): ``k = BLAKE2b-512(05 ‖ x25519_pk ‖ server_pk) mod L``, the id
  is unique and computable from a Session ID.
* **Version blinding (07)**: the key Session uses for file-server version checks.

Blinded signatures verify as plain Ed25519 under the blinded key (:func:`verify_blinded`).
The identity's secret key stays inside the native core. For 15-blinded signatures the
deterministic nonce can be derived as libsession does (the default) or as Session Desktop
does (``nonce_derivation="desktop"``); both verify, the bytes differ.

Unblinded servers (no ``blind`` capability) see the ``05`` Session ID: posts there are
XEd25519-signed by the X25519 key (:func:`xed25519_sign`, :func:`xed25519_verify`).

Community direct messages between blinded ids (§4.6): :func:`encrypt_blinded_dm`,
:func:`decrypt_blinded_dm`.

Server public keys are 64 hex digits (the X25519 key from the community URL).
"""

from __future__ import annotations

import base64
import os
import time
from typing import TYPE_CHECKING, Literal

from session import _core
from session.errors import InvalidInput

if TYPE_CHECKING:
    from session.identity import Identity

NonceDerivation = Literal["libsession", "desktop"]

#: Length of the random SOGS request nonce.
SOGS_NONCE_SIZE: int = 16


def blinded15_id(identity: Identity, server_pubkey_hex: str) -> str:
    """The identity's 15-blinded id on this server (``"15"`` + 64 hex digits, exact sign)."""
    return _core.blinded15_id(identity, server_pubkey_hex)


def blinded25_id(identity: Identity, server_pubkey_hex: str) -> str:
    """The identity's 25-blinded id on this server (``"25"`` + 64 hex digits)."""
    return _core.blinded25_id(identity, server_pubkey_hex)


def blinded15_ids_for_session_id(session_id: str, server_pubkey_hex: str) -> tuple[str, str]:
    """Both possible 15-blinded ids ``(positive, negative)`` of a ``05`` Session ID."""
    return _core.blinded15_ids_for_session_id(session_id, server_pubkey_hex)


def blinded25_id_for_session_id(session_id: str, server_pubkey_hex: str) -> str:
    """The 25-blinded id of a ``05`` Session ID on this server."""
    return _core.blinded25_id_for_session_id(session_id, server_pubkey_hex)


def session_id_matches_blinded_id(session_id: str, blinded_id: str, server_pubkey_hex: str) -> bool:
    """True if a ``15``/``25`` blinded id belongs to the Session ID on this server."""
    return _core.session_id_matches_blinded_id(session_id, blinded_id, server_pubkey_hex)


def blind15_sign(
    identity: Identity,
    server_pubkey_hex: str,
    message: bytes,
    *,
    nonce_derivation: NonceDerivation = "libsession",
) -> bytes:
    """A 64-byte 15-blinded signature of ``message`` (verifies under :func:`blinded15_id`)."""
    return _core.blind15_sign(identity, server_pubkey_hex, bytes(message), nonce_derivation)


def blind25_sign(identity: Identity, server_pubkey_hex: str, message: bytes) -> bytes:
    """A 64-byte 25-blinded signature of ``message`` (verifies under :func:`blinded25_id`)."""
    return _core.blind25_sign(identity, server_pubkey_hex, bytes(message))


def verify_blinded(blinded_id: str, message: bytes, signature: bytes) -> None:
    """Check a signature under a ``15``/``25``/``07`` id; raises InvalidSignature if bad."""
    _core.verify_blinded(blinded_id, bytes(message), bytes(signature))


def xed25519_sign(identity: Identity, message: bytes) -> bytes:
    """A 64-byte XEd25519 signature of ``message`` by the identity's X25519 key: how posts are
    signed on community servers without blinding (§4.5); verifiable with the ``05`` Session ID."""
    return _core.xed25519_sign(identity, bytes(message))


def xed25519_verify(session_id: str, message: bytes, signature: bytes) -> None:
    """Check an XEd25519 signature under a ``05`` Session ID; raises InvalidSignature if bad
    (InvalidSessionId if the id is malformed)."""
    _core.xed25519_verify(session_id, bytes(message), bytes(signature))


def version_blinded_id(identity: Identity) -> str:
    """The identity's version-blinded key (``"07"`` + 64 hex digits)."""
    return _core.version_blinded_id(identity)


def version_blind_sign(identity: Identity, message: bytes) -> bytes:
    """A plain Ed25519 signature by the version-blinded key (e.g. over
    ``timestamp ‖ "GET" ‖ "/session_version?platform=desktop"``)."""
    return _core.version_blind_sign(identity, bytes(message))


def sogs_auth_headers(
    identity: Identity,
    server_pubkey_hex: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    blinded: bool = True,
    timestamp: int | None = None,
    nonce: bytes | None = None,
    nonce_derivation: NonceDerivation = "libsession",
) -> dict[str, str]:
    """The four ``X-SOGS-*`` headers authenticating a community request.

    Signs ``server_pk ‖ nonce ‖ timestamp ‖ method ‖ path [‖ BLAKE2b-512(body)]`` with the
    15-blinded key (``X-SOGS-Pubkey`` = ``15…``) or, with ``blinded=False``, the plain
    Ed25519 key (``00…``). ``path`` is the URL-decoded path including ``?query``;
    ``timestamp`` defaults to now (Unix seconds) and ``nonce`` to 16 random bytes.
    """
    if timestamp is None:
        timestamp = int(time.time())
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be an int, not {type(timestamp).__name__}")
    elif not 0 <= timestamp < 2**64:
        raise InvalidInput(f"timestamp must be non-negative Unix seconds, got {timestamp}")
    nonce = os.urandom(SOGS_NONCE_SIZE) if nonce is None else bytes(nonce)
    if len(nonce) != SOGS_NONCE_SIZE:
        raise InvalidInput(f"the SOGS nonce must be {SOGS_NONCE_SIZE} bytes, got {len(nonce)}")
    pubkey, signature = _core.sogs_sign(
        identity,
        server_pubkey_hex,
        method,
        path,
        bytes(body),
        bool(blinded),
        timestamp,
        nonce,
        nonce_derivation,
    )
    return {
        "X-SOGS-Pubkey": pubkey,
        "X-SOGS-Timestamp": str(timestamp),
        "X-SOGS-Nonce": base64.b64encode(nonce).decode("ascii"),
        "X-SOGS-Signature": base64.b64encode(signature).decode("ascii"),
    }


def encrypt_blinded_dm(
    identity: Identity, server_pubkey_hex: str, recipient_blinded_id: str, content: bytes
) -> bytes:
    """Encrypt a community direct message for the member ``recipient_blinded_id`` (``15…``
    or ``25…``) on this server (client spec §4.6).

    ``content`` is what the recipient gets back (Session pads the Content protobuf first).
    The result, ``0x00 ‖ XChaCha20-Poly1305(content ‖ own Ed25519 key) ‖ nonce``, is what
    ``POST /inbox/{recipient}`` carries base64-encoded. Raises InvalidSessionID for an id that
    is not 15/25-blinded and InvalidKey for one that is not a usable key.
    """
    return _core.blinded_dm_encrypt(identity, server_pubkey_hex, recipient_blinded_id, content)


def decrypt_blinded_dm(
    identity: Identity,
    server_pubkey_hex: str,
    sender_blinded_id: str,
    recipient_blinded_id: str,
    message: bytes,
) -> tuple[bytes, str]:
    """Decrypt a community direct message listed by the server as sent from
    ``sender_blinded_id`` to ``recipient_blinded_id``; ``identity`` is either of them (the
    recipient reading its inbox, or the sender reading its outbox on another device).

    Returns ``(content, sender's 05 Session ID)`` after checking that the sender key inside
    the message blinds to ``sender_blinded_id``. Raises DecryptionError (wrong account,
    tampered, truncated, unknown version, sender mismatch) or InvalidSessionID.
    """
    return _core.blinded_dm_decrypt(
        identity, server_pubkey_hex, sender_blinded_id, recipient_blinded_id, bytes(message)
    )


__all__ = [
    "SOGS_NONCE_SIZE",
    "NonceDerivation",
    "blind15_sign",
    "blind25_sign",
    "blinded15_id",
    "blinded15_ids_for_session_id",
    "blinded25_id",
    "blinded25_id_for_session_id",
    "decrypt_blinded_dm",
    "encrypt_blinded_dm",
    "session_id_matches_blinded_id",
    "sogs_auth_headers",
    "verify_blinded",
    "version_blind_sign",
    "version_blinded_id",
]
