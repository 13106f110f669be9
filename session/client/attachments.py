"""Attachment pointers, file-server URLs and safe file names (client spec §5.4).

What the client's send and receive paths need around an encrypted file, kept free of I/O so
it is tested on its own:

* :func:`file_url` / :func:`parse_file_url`: ``http://HOST/file/ID``, with ``#p=<server
  Ed25519 key hex>`` for a server other than Session's default and ``d`` for the deterministic
  scheme (§5.3);
* :func:`pointer`: an ``AttachmentPointer`` from a :class:`~session.attachments.Sealed`
  file (id, contentType, key, unpadded size, digest, fileName, width/height, voice flag,
  caption, url);
* :func:`check_upload_size`: refuses a file over :data:`MAX_FILE_SIZE` *before* any upload;
* :func:`safe_filename`: a sender-chosen name reduced to one harmless path component (no
  directories, no ``..``, no control or reserved characters, bounded length).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import parse_qs, urlsplit

from session.attachments import Sealed
from session.errors import InvalidInput
from session.proto import session_pb2 as pb

#: Largest plaintext file an attachment may carry (the file server's limit, §5.5).
MAX_FILE_SIZE = 10_000_000
#: Session's own file server; its URLs carry no ``#p=``.
DEFAULT_SERVER_HOST = "filev2.getsession.org"
DEFAULT_SERVER_ED25519 = "b8eef9821445ae16e2e97ef8aa6fe782fd11ad5253cd6723b281341dba22e371"
#: AttachmentPointer.flags bit for voice notes.
VOICE_MESSAGE = pb.AttachmentPointer.VOICE_MESSAGE
#: Longest file name :func:`safe_filename` returns, in characters.
MAX_NAME = 120

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX32 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileLocation:
    """Where an attachment's blob lives: the server's base URL, the file ID, the server's
    Ed25519 key (hex; None = Session's default server) and whether §5.3's scheme was used."""

    server: str
    file_id: str
    server_ed25519: str | None = None
    deterministic: bool = False


def file_url(loc: FileLocation) -> str:
    """The pointer URL for ``loc`` (§5.4)."""
    url = f"{loc.server.rstrip('/')}/file/{loc.file_id}"
    frag = []
    if loc.server_ed25519 is not None and loc.server_ed25519 != DEFAULT_SERVER_ED25519:
        frag.append(f"p={loc.server_ed25519}")
    if loc.deterministic:
        frag.append("d")
    return url + ("#" + "&".join(frag) if frag else "")


def parse_file_url(url: str) -> FileLocation:
    """Parse a pointer URL; a URL that is not ``http(s)://HOST[:PORT]/file/ID`` or carries a
    malformed ``p`` raises :class:`~session.errors.InvalidInput`."""
    parts = urlsplit(url)
    segs = parts.path.split("/")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(segs) != 3
        or segs[1] != "file"
        or not _ID.fullmatch(segs[2])
    ):
        raise InvalidInput("the attachment's URL is not a file server URL (http://HOST/file/ID)")
    frag = parse_qs(parts.fragment, keep_blank_values=True)
    key = frag.get("p", [None])[0]
    if key is not None and not _HEX32.fullmatch(key):
        raise InvalidInput("the attachment URL's server key (#p=) is not 64 hex digits")
    if key is None and parts.hostname == DEFAULT_SERVER_HOST:
        key = DEFAULT_SERVER_ED25519
    return FileLocation(f"{parts.scheme}://{parts.netloc}", segs[2], key, "d" in frag)


def check_upload_size(size: int) -> None:
    """Refuse a file the file server would refuse, before encrypting or uploading it."""
    if size > MAX_FILE_SIZE:
        raise InvalidInput(
            f"the file is {size:,} bytes; attachments are limited to {MAX_FILE_SIZE:,} bytes"
        )


def content_type_for(name: str) -> str:
    """A MIME type from the file name (``application/octet-stream`` when unknown)."""
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def pointer(
    sealed: Sealed,
    loc: FileLocation,
    *,
    file_name: str | None = None,
    content_type: str | None = None,
    width: int | None = None,
    height: int | None = None,
    voice: bool = False,
    caption: str | None = None,
) -> pb.AttachmentPointer:
    """The AttachmentPointer for a file encrypted with :mod:`session.attachments`."""
    p = pb.AttachmentPointer(
        deprecated_id=int(loc.file_id) if loc.file_id.isdigit() else 0,
        contentType=content_type or content_type_for(file_name or ""),
        key=sealed.key,
        size=sealed.size,
        digest=sealed.digest,
        url=file_url(loc),
    )
    if file_name:
        p.fileName = file_name
    if width and height:
        p.width, p.height = width, height
    if voice:
        p.flags = VOICE_MESSAGE
    if caption:
        p.caption = caption
    return p


_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {
    f"{d}{i}" for d in ("com", "lpt") for i in range(10)
}


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """One harmless file name from a sender-chosen ``name``.

    Keeps only the last path component (either separator), drops control, format and
    reserved characters, leading dots and trailing dots/spaces, refuses Windows device names
    and bounds the length (keeping the extension); an empty result becomes ``fallback``.
    """
    raw = name or ""
    base = PureWindowsPath(PurePosixPath(raw.replace("\\", "/")).name).name
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    base = _RESERVED.sub("_", base).lstrip(". ").rstrip(". ")
    if base.split(".")[0].lower() in _WINDOWS_DEVICES:
        base = "_" + base
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        base = (
            (stem[: MAX_NAME - len(ext) - 1] + "." + ext)
            if dot and len(ext) <= 16
            else base[:MAX_NAME]
        )
    return base or fallback


__all__ = [
    "DEFAULT_SERVER_ED25519",
    "DEFAULT_SERVER_HOST",
    "MAX_FILE_SIZE",
    "VOICE_MESSAGE",
    "FileLocation",
    "check_upload_size",
    "content_type_for",
    "file_url",
    "parse_file_url",
    "pointer",
    "safe_filename",
]
