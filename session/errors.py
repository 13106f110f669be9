"""The one exception hierarchy of the project.

Every error the native core raises is declared here (the Rust side imports these classes),
so users, documentation and the core share one definition. Each class carries a coarse
:class:`ErrorKind`; callers branch on the kind, logs keep the message.

Bad input always raises a :class:`ValueError` subclass whose message a person understands.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorKind(enum.Enum):
    """Coarse error category, stable across versions."""

    BAD_INPUT = "bad_input"  # the caller or a peer sent something malformed
    CRYPTO = "crypto"  # authentication, decryption or signature check failed
    PROTOCOL = "protocol"  # a peer broke the protocol (wrong swarm, bad routing, ...)
    NETWORK = "network"  # unreachable, timeout
    STORAGE = "storage"  # local storage full or unusable
    INTERNAL = "internal"  # a bug: please report it


class SessionError(Exception):
    """Base class of every error raised by the ``session`` package."""

    kind: ErrorKind = ErrorKind.INTERNAL


class InvalidInput(SessionError, ValueError):
    """Malformed input: wrong length, bad encoding, out-of-range value."""

    kind = ErrorKind.BAD_INPUT


class InvalidKey(InvalidInput):
    """A key (seed, public key, secret key) has the wrong size or is not a valid point."""


class InvalidSessionID(InvalidInput):
    """A Session ID is not 66 hex characters with a known prefix."""


class MnemonicError(InvalidInput):
    """A recovery phrase could not be decoded."""


class UnknownWord(MnemonicError):
    """A word of the recovery phrase is not in the word list."""


class ChecksumMismatch(MnemonicError):
    """The recovery phrase's checksum word does not match: a word is wrong or missing."""


class MissingWord(MnemonicError):
    """The recovery phrase is one word short (12 or 24 words): a word was left out."""


class PaddingError(InvalidInput):
    """Padded data does not follow the padding scheme."""


class DecodeError(InvalidInput):
    """A wire structure (bencode, layer, protobuf, JSON) could not be parsed."""


class ConfigError(InvalidInput):
    """The node's configuration, key file, TLS files or data directory are unusable."""


class RegistryError(SessionError):
    """The stake registry refused a request or answered with something unusable.

    ``status`` is the HTTP status code of the refusal (0 when the registry was unreachable).
    """

    kind = ErrorKind.PROTOCOL
    status: int = 0

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
        if status == 0:
            self.kind = ErrorKind.NETWORK


class DecryptionError(SessionError, ValueError):
    """Decryption or authentication failed: wrong key, tampered or truncated ciphertext."""

    kind = ErrorKind.CRYPTO


class InvalidSignature(DecryptionError):
    """A signature does not verify."""


class OnionError(SessionError, ValueError):
    """An onion layer could not be peeled or routed.

    ``status`` is the HTTP status code a node answers with (400 for a malformed,
    undecryptable or forbidden layer). ``reply`` is set by ``Peeler.peel``: a
    ``session.onion.ReplyCipher`` when the layer was decrypted before the failure (Session
    then answers encrypted, e.g. ``reply.encrypt_status(status, b"Invalid json")``), else
    None (answer in plain text).
    """

    kind = ErrorKind.PROTOCOL
    status: int = 400
    reply: Any = None

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RpcStatusError(SessionError):
    """A storage-RPC request was refused: the HTTP ``status`` and the plain-text ``message``
    the node answers with (Session's storage-server wording). Raised by ``session.proto.rpc``
    while parsing and checking a request; the node turns it into its reply."""

    kind = ErrorKind.PROTOCOL

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = _STATUS_KINDS.get(status, ErrorKind.PROTOCOL)

    def __repr__(self) -> str:
        return f"RpcStatusError({self.status}, {self.message!r})"


_STATUS_KINDS = {
    400: ErrorKind.BAD_INPUT,
    401: ErrorKind.CRYPTO,
    500: ErrorKind.INTERNAL,
    507: ErrorKind.STORAGE,
}


class StorageError(SessionError):
    """The local message store failed (disk error, corrupt database, store closed)."""

    kind = ErrorKind.STORAGE


class StorageFull(StorageError):
    """The local message store reached its size cap; nothing already stored was changed."""


class NetworkError(SessionError):
    """A request could not be completed over the network (no path, node errors, timeouts)."""

    kind = ErrorKind.NETWORK


class ClockOutOfSync(NetworkError):
    """Nodes rejected a request's timestamp even after re-learning the network time."""


class DestinationRefused(NetworkError):
    """A node will not proxy an onion request to this destination: it is not a public address
    (loopback, private, link-local, the node's own, …), not on the node's allowlist, or its
    name does not resolve in time. The client gets the same answer as for an unreachable one."""


class NotEnoughNodes(NetworkError, LookupError):
    """The client's node pool cannot provide an onion path that follows the diversity rules
    (too few nodes known, or too many of them failed)."""


class NodeRequestFailed(NetworkError):
    """The client's view of a failed node request: the destination node answered a storage
    RPC with an error status (``status``; ``body`` is the node's answer)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"storage RPC failed with status {status}: {str(body)[:200]}")
        self.status = status
        self.body = body


class HttpError(NetworkError):
    """An HTTP request got no complete answer (:mod:`session.http1.client`)."""


class HttpConnectError(HttpError):
    """No connection could be made: refused, no route, unknown name, or the TLS handshake
    failed. ``os_error`` is the socket's own error (its ``errno`` tells "nothing listens
    there" from "closed on us")."""

    def __init__(self, message: str, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class HttpTimeout(HttpError, TimeoutError):
    """No complete answer within the request's time limit (also a :class:`TimeoutError`)."""


class HttpProtocolError(HttpError):
    """The server broke HTTP/1.1, or closed the connection before its answer was complete."""


class HttpResponseTooLarge(HttpProtocolError):
    """The answer is longer than the caller's limit (``limit`` bytes); it was not read."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class InvalidName(InvalidInput):
    """A Session name does not follow the name rule (letters, digits, ``_`` and inner ``-``;
    at most 64 characters)."""


class NameNotFound(InvalidInput, LookupError):
    """No Session ID is registered under a name."""


class NameExpired(NameNotFound):
    """A name was registered but its registration has expired (anyone may register it)."""


class NameTaken(RegistryError):
    """Someone else holds an unexpired registration of the name (HTTP 409)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message, status)


class NameLookupFailed(NetworkError):
    """A name could not be resolved: too few nodes answered, or their answers disagree."""


class FileServerError(NetworkError):
    """The file server answered a request with an error (``status``; its one-sentence reason
    is the message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FileExpired(FileServerError):
    """The file is not on the file server: it expired (and was swept) or never existed."""


class FileTooLarge(InvalidInput):
    """A file over the file server's size limit: a client refuses it before sending a byte,
    the server answers 413."""


class GroupError(InvalidInput):
    """A group operation that cannot be done: unknown group, not an admin, not a member."""


class GroupFull(GroupError):
    """A group would have more than its 100 members."""


class CommunityError(NetworkError):
    """A community server refused a request (``status``: SOGS's HTTP status, e.g. 403 for a
    banned member, 404 for an unknown room or message, 413 for a post over the size limit,
    429 for posting too fast); the message is one sentence with the server's reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class InvalidCommunityURL(InvalidInput):
    """A community join URL is not ``http(s)://host[:port]/ROOM?public_key=<64 hex>``."""


class CommunityNotJoined(InvalidInput, LookupError):
    """A room was named that this identity has not joined (or the name is ambiguous)."""


__all__ = [
    "ChecksumMismatch",
    "ClockOutOfSync",
    "CommunityError",
    "CommunityNotJoined",
    "ConfigError",
    "DecodeError",
    "DecryptionError",
    "DestinationRefused",
    "ErrorKind",
    "FileExpired",
    "FileServerError",
    "FileTooLarge",
    "GroupError",
    "GroupFull",
    "HttpConnectError",
    "HttpError",
    "HttpProtocolError",
    "HttpResponseTooLarge",
    "HttpTimeout",
    "InvalidCommunityURL",
    "InvalidInput",
    "InvalidKey",
    "InvalidName",
    "InvalidSessionID",
    "InvalidSignature",
    "MissingWord",
    "MnemonicError",
    "NameExpired",
    "NameLookupFailed",
    "NameNotFound",
    "NameTaken",
    "NetworkError",
    "NodeRequestFailed",
    "NotEnoughNodes",
    "OnionError",
    "PaddingError",
    "RegistryError",
    "RpcStatusError",
    "SessionError",
    "StorageError",
    "StorageFull",
    "UnknownWord",
]
