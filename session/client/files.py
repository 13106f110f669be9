"""Uploading and downloading opaque blobs on a file server through onion paths (client spec
§5.4-5.5).

Every request goes through a 3-hop path to the file server's v4 onion destination (its X25519
key), so the server sees the last node's address, never the client's, and learns nothing but
the bytes (which the caller has already encrypted and padded: :mod:`session.attachments`).

The API (``transport`` is a :class:`~session.client.transport.OnionTransport`, e.g.
``Client.transport``)::

    up = await upload(transport, blob, server=fs, ttl=None)   # -> Uploaded(id, url, expires)
    blob = await download(transport, up.url)                   # or (id, server=fs)
    meta = await info(transport, file_id, server=fs)           # -> RemoteFile(size, ...)
    meta = await extend(transport, file_id, server=fs, ttl=…)  # keep it alive (avatars)

``server`` is a :class:`~session.proto.snodes.FileServer` (the devnet lists its own in
``nodes.json``: :func:`~session.proto.snodes.parse_file_servers`), default Session's
``filev2.getsession.org``. Errors: :class:`~session.errors.FileTooLarge` before any byte is
sent, :class:`~session.errors.FileExpired` for a file that is gone,
:class:`~session.errors.FileServerError` for any other refusal, and the transport's
:class:`~session.client.transport.PathFailure` when no path got through (after retries).

Not streaming: a v4 onion request carries the whole blob (it is encrypted as one layer), so
``upload`` and ``download`` hold one blob (≤ 10,223,616 bytes) in memory, plus its onion layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from session import onion
from session.client.transport import OnionTransport, PathFailure
from session.errors import FileExpired, FileServerError, FileTooLarge, InvalidInput
from session.proto.snodes import FileServer

#: Session's file server (client spec §5.5).
DEFAULT_FILE_SERVER = FileServer(
    "http://filev2.getsession.org",
    "b8eef9821445ae16e2e97ef8aa6fe782fd11ad5253cd6723b281341dba22e371",
    "09324794aa9c11948189762d198c618148e9136ac9582068180661208927ef34",
)
#: Largest blob a file server takes: a 10,000,000-byte attachment, padded and encrypted.
MAX_UPLOAD_SIZE = 10_223_616
#: Seconds one file request may take (10 MB through three hops on a slow link).
FILE_TIMEOUT = 120.0
#: Paths tried before a request is given up.
ATTEMPTS = 3

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class Uploaded:
    """A stored file: its id, the URL an AttachmentPointer carries, when it expires."""

    id: str
    url: str
    expires: float | None


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """What ``/info`` and ``/extend`` answer."""

    size: int
    uploaded: float
    expires: float


def file_url(server: FileServer, file_id: str) -> str:
    """``<server>/file/<id>``, with ``#p=<ed25519>`` for a server other than Session's
    (client spec §5.4)."""
    url = f"{server.url}/file/{file_id}"
    if server != DEFAULT_FILE_SERVER:
        url += f"#p={server.pubkey_ed25519}"
    return url


def parse_file_url(url: str, known: list[FileServer] | None = None) -> tuple[FileServer, str]:
    """The server and file id of an attachment URL. The server is Session's, or one of
    ``known`` with the URL's base and the ``#p=`` key; anything else raises InvalidInput (a
    client never fetches what a stranger names without knowing the key to encrypt to)."""
    parts = urlsplit(url)
    segs = parts.path.rstrip("/").split("/")
    if len(segs) < 3 or segs[-2] != "file" or not _ID.match(segs[-1]):
        raise InvalidInput("an attachment URL ends in /file/<id>")
    base = f"{parts.scheme}://{parts.netloc}"
    frag = dict(p.partition("=")[::2] for p in parts.fragment.split("&") if p)
    key = frag.get("p")
    for s in [DEFAULT_FILE_SERVER, *(known or [])]:
        if s.url == base and (key is None or key == s.pubkey_ed25519):
            if key is None and s != DEFAULT_FILE_SERVER:
                continue
            return s, segs[-1]
    raise InvalidInput("the attachment is on a file server this client does not know")


def _destination(server: FileServer) -> onion.ServerDestination:
    parts = urlsplit(server.url)
    if parts.hostname is None:
        raise InvalidInput(f"file server URL {server.url!r} has no host")
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    return onion.ServerDestination(
        parts.hostname, "/oxen/v4/lsrpc", bytes.fromhex(server.pubkey_x25519), scheme, port
    )


async def _call(
    transport: OnionTransport,
    server: FileServer,
    method: str,
    endpoint: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request through a fresh path (another on a path failure); the answer's body, or the
    server's refusal as a typed error."""
    dest = _destination(server)
    meta = {"method": method, "endpoint": endpoint, "headers": headers or {}}
    failure: PathFailure | None = None
    for _ in range(ATTEMPTS):
        try:
            status, _, payload = await transport.request_server(
                dest, meta, body, timeout=FILE_TIMEOUT
            )
        except PathFailure as e:
            failure = e
            continue
        if status == 200:
            return payload
        reason = payload[:300].decode(errors="replace").strip() or f"status {status}"
        if status == 404:
            raise FileExpired(404, f"the file is not on the file server: {reason}")
        if status == 413:
            raise FileTooLarge(f"the file server refused the file as too large: {reason}")
        raise FileServerError(status, f"the file server refused the request ({status}): {reason}")
    assert failure is not None
    raise failure


def _json(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        raise FileServerError(200, "the file server answered something that is not JSON") from None
    if not isinstance(doc, dict):
        raise FileServerError(200, "the file server answered JSON that is not an object")
    return doc


def _remote(doc: dict[str, Any]) -> RemoteFile:
    try:
        return RemoteFile(int(doc["size"]), float(doc["uploaded"]), float(doc["expires"]))
    except (KeyError, TypeError, ValueError):
        raise FileServerError(200, "the file server's file info lacks size or times") from None


async def upload(
    transport: OnionTransport,
    blob: bytes,
    *,
    server: FileServer = DEFAULT_FILE_SERVER,
    ttl: int | None = None,
) -> Uploaded:
    """Store ``blob`` (already encrypted) for ``ttl`` seconds (the server's default and cap
    apply); raises :class:`FileTooLarge` before sending anything over the limit."""
    if not blob:
        raise InvalidInput("nothing to upload: the file is empty")
    if len(blob) > MAX_UPLOAD_SIZE:
        raise FileTooLarge(
            f"the file is {len(blob)} bytes once encrypted; a file server takes at most "
            f"{MAX_UPLOAD_SIZE} bytes (a 10 MB attachment)"
        )
    headers = {} if ttl is None else {"X-FS-TTL": str(int(ttl))}
    doc = _json(await _call(transport, server, "POST", "/file", bytes(blob), headers))
    fid = doc.get("id")
    if not isinstance(fid, str | int) or not _ID.match(str(fid)):
        raise FileServerError(200, "the file server's answer has no valid file id")
    expires = doc.get("expires")
    return Uploaded(
        str(fid),
        file_url(server, str(fid)),
        float(expires) if isinstance(expires, int | float) else None,
    )


def _target(
    file: str, server: FileServer | None, known: list[FileServer] | None
) -> tuple[FileServer, str]:
    if "/" in file:
        return parse_file_url(file, known)
    if not _ID.match(file):
        raise InvalidInput("a file id is URL-safe base64 or a number")
    return server or DEFAULT_FILE_SERVER, file


async def download(
    transport: OnionTransport,
    file: str,
    *,
    server: FileServer | None = None,
    known: list[FileServer] | None = None,
) -> bytes:
    """The blob of ``file`` (an id on ``server``, or an attachment URL on Session's server or
    one of ``known``); :class:`FileExpired` if it is gone."""
    srv, fid = _target(file, server, known)
    return await _call(transport, srv, "GET", f"/file/{fid}")


async def info(
    transport: OnionTransport,
    file: str,
    *,
    server: FileServer | None = None,
    known: list[FileServer] | None = None,
) -> RemoteFile:
    """The file's size and times; :class:`FileExpired` if it is gone."""
    srv, fid = _target(file, server, known)
    return _remote(_json(await _call(transport, srv, "GET", f"/file/{fid}/info")))


async def extend(
    transport: OnionTransport,
    file: str,
    *,
    server: FileServer | None = None,
    known: list[FileServer] | None = None,
    ttl: int | None = None,
) -> RemoteFile:
    """Keep the file ``ttl`` more seconds (server default if None; never shortened)."""
    srv, fid = _target(file, server, known)
    headers = {} if ttl is None else {"X-FS-TTL": str(int(ttl))}
    return _remote(_json(await _call(transport, srv, "POST", f"/file/{fid}/extend", None, headers)))


__all__ = [
    "DEFAULT_FILE_SERVER",
    "MAX_UPLOAD_SIZE",
    "RemoteFile",
    "Uploaded",
    "download",
    "extend",
    "file_url",
    "info",
    "parse_file_url",
    "upload",
]
