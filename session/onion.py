"""Session onion requests (network spec §6): hop ciphers, layers, building and peeling.

Client side::

    frame, key = onion.build([Hop(ed_hex, x_pk), ...], NodeDestination(ed_hex, x_pk), payload)
    # POST frame to https://<guard>/onion_req/v2, then
    reply = key.decrypt(response_body)

Node side (the hot path, all crypto and parsing in Rust with the GIL released)::

    peeler = onion.Peeler(identity)          # or Peeler.from_x25519_secret(b)
    match peeler.peel(frame):
        case onion.Relay(next_ed25519=ed, frame=f): ...   # forward f to node ed
        case onion.Deliver(payload=p, reply=r): ...       # r.encrypt_status(200, rpc(p))
        case onion.Proxy(): ...                           # POST .payload to .url

Failures raise :class:`session.errors.OnionError` with ``.status`` (the HTTP status a node
answers with) and ``.reply``: a :class:`ReplyCipher` when the layer was decrypted before the
failure (Session then answers encrypted: ``reply.encrypt_status(status, message)``), else None
(answer in plain text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from session import _core
from session._core import Deliver, Peeler, Proxy, Relay, ReplyCipher, ReplyKey
from session.errors import DecodeError, InvalidInput

#: Largest number of hops a path may have (storage server ``MAX_ONION_HOPS``).
MAX_HOPS: int = _core.ONION_MAX_HOPS

#: Accepted names of the hop ciphers (Session's aliases included).
ENC_TYPES: tuple[str, ...] = ("xchacha20", "xchacha20-poly1305", "aes-gcm", "gcm")


@dataclass(frozen=True, slots=True)
class Hop:
    """A service node of a path: Ed25519 key (hex) and X25519 key (32 bytes)."""

    ed25519_hex: str
    x25519: bytes


@dataclass(frozen=True, slots=True)
class NodeDestination:
    """A storage node: the last hop relays to it and it runs the payload as a storage RPC."""

    ed25519_hex: str
    x25519: bytes


@dataclass(frozen=True, slots=True)
class ServerDestination:
    """A v4 HTTP server (file server, SOGS, push server) behind the last hop.

    Only ``/loki/…/lsrpc`` and ``/oxen/…/lsrpc`` targets pass the nodes' URL filter.
    """

    host: str
    target: str
    x25519: bytes
    scheme: str = "https"
    port: int = 443


Decision = Deliver | Relay | Proxy


def _check_enc(enc_type: str) -> str:
    if not isinstance(enc_type, str):
        raise InvalidInput("enc_type must be a string such as 'xchacha20' or 'aes-gcm'")
    return enc_type


def encrypt_hop(enc_type: str, client_secret: bytes, node_public: bytes, plaintext: bytes) -> bytes:
    """Encrypts one hop from the client's (ephemeral) X25519 secret to a node's public key."""
    return _core.onion_encrypt_hop(
        _check_enc(enc_type), bytes(client_secret), bytes(node_public), bytes(plaintext)
    )


def decrypt_hop(
    enc_type: str, node_secret: bytes, client_public: bytes, ciphertext: bytes
) -> bytes:
    """Decrypts one hop with the node's X25519 secret and the client's public key."""
    return _core.onion_decrypt_hop(
        _check_enc(enc_type), bytes(node_secret), bytes(client_public), bytes(ciphertext)
    )


def _json_bytes(meta: Mapping[str, Any], what: str) -> bytes:
    if not isinstance(meta, Mapping):
        raise InvalidInput(f"{what} must be a dict")
    try:
        return json.dumps(dict(meta), separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what} is not JSON-serialisable: {e}") from None


def encode_layer(blob: bytes, meta: Mapping[str, Any]) -> bytes:
    """``LE32(len blob) ‖ blob ‖ JSON(meta)``."""
    return _core.onion_layer_encode(bytes(blob), _json_bytes(meta, "layer meta"))


def decode_layer(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Splits a layer into ``(blob, meta dict)``; raises OnionError (status 400) if malformed."""
    blob, meta = _core.onion_layer_decode(bytes(data))
    try:
        parsed: dict[str, Any] = json.loads(meta)
    except ValueError as e:  # the core checked it already; Python's parser is slightly different
        raise DecodeError(f"layer JSON is not valid: {e}") from None
    return blob, parsed


def build(
    path: Sequence[Hop],
    destination: NodeDestination | ServerDestination,
    payload: bytes,
    enc_type: str = "xchacha20",
) -> tuple[bytes, ReplyKey]:
    """Builds an onion: the bytes to POST to the guard's ``/onion_req/v2`` and the reply key.

    ``path`` has 1..15 hops, guard first. Every layer gets a fresh ephemeral X25519 key; all
    crypto runs in one Rust call with the GIL released.
    """
    hops = [(h.ed25519_hex, bytes(h.x25519)) for h in path]
    if isinstance(destination, NodeDestination):
        return _core.onion_build_to_node(
            hops,
            destination.ed25519_hex,
            bytes(destination.x25519),
            bytes(payload),
            _check_enc(enc_type),
        )
    if isinstance(destination, ServerDestination):
        return _core.onion_build_to_server(
            hops,
            destination.host,
            destination.target,
            bytes(destination.x25519),
            destination.scheme,
            int(destination.port),
            bytes(payload),
            _check_enc(enc_type),
        )
    raise InvalidInput("destination must be a NodeDestination or a ServerDestination")


def url_target_allowed(target: str) -> bool:
    """Whether a proxy target passes the nodes' filter.

    It must start ``/loki/`` or ``/oxen/``, end ``/lsrpc`` and hold no ``?``."""
    return _core.onion_url_target_allowed(target)


def _v4_decode(kind: str, data: bytes) -> tuple[dict[str, Any], bytes | None]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("v4 data must be bytes")
    meta, body = _core.onion_v4_decode(kind, bytes(data))
    try:
        parsed: dict[str, Any] = json.loads(meta)
    except ValueError as e:  # the core checked it already; Python's parser is slightly different
        raise DecodeError(f"v4 meta is not valid JSON: {e}") from None
    return parsed, body


def v4_encode_request(meta: Mapping[str, Any], body: bytes | None = None) -> bytes:
    """``l <len>:<meta JSON> [<len>:<body>] e`` with meta ``{"method", "endpoint", "headers"}``."""
    return _core.onion_v4_encode(
        "request", _json_bytes(meta, "v4 meta"), None if body is None else bytes(body)
    )


def v4_decode_request(data: bytes) -> tuple[dict[str, Any], bytes | None]:
    """Inverse of :func:`v4_encode_request`; raises DecodeError on anything malformed."""
    return _v4_decode("request", data)


def v4_encode_response(meta: Mapping[str, Any], body: bytes | None) -> bytes:
    """v4 response framing, meta ``{"code": int, "headers": {...}}``."""
    return _core.onion_v4_encode(
        "response", _json_bytes(meta, "v4 meta"), None if body is None else bytes(body)
    )


def v4_decode_response(data: bytes) -> tuple[dict[str, Any], bytes | None]:
    """Inverse of :func:`v4_encode_response`; raises DecodeError on anything malformed."""
    return _v4_decode("response", data)


__all__ = [
    "ENC_TYPES",
    "MAX_HOPS",
    "Decision",
    "Deliver",
    "Hop",
    "NodeDestination",
    "Peeler",
    "Proxy",
    "Relay",
    "ReplyCipher",
    "ReplyKey",
    "ServerDestination",
    "build",
    "decode_layer",
    "decrypt_hop",
    "encode_layer",
    "encrypt_hop",
    "url_target_allowed",
    "v4_decode_request",
    "v4_decode_response",
    "v4_encode_request",
    "v4_encode_response",
]
