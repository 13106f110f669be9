"""Attachment pointers, file-server URLs and safe file names (client spec §5.4).

What the client's send and receive paths need around an encrypted file, kept free of I/O so
it is tested on its own:

* :func:`pointer`: an ``AttachmentPointer`` from a :class:`~session.attachments.Sealed`
  file and its upload (:class:`session.client.files.Uploaded`, whose URL carries ``#p=`` for
  a server other than Session's): id, contentType, key, unpadded size, digest, fileName,
  width/height, voice flag, caption, url;
* :func:`check_upload_size`: refuses a file over :data:`MAX_FILE_SIZE` *before* any upload;
* :func:`safe_filename`: a sender-chosen name reduced to one harmless path component (no
  directories, no ``..``, no control or reserved characters, bounded length).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from session.attachments import Sealed
from session.client.files import Uploaded
from session.errors import InvalidInput
from session.proto import session_pb2 as pb

#: Largest plaintext file an attachment may carry (the file server's limit, §5.5).
MAX_FILE_SIZE = 10_000_000
#: Most attachments kept from one received message (Session's clients send at most 32).
MAX_ATTACHMENTS = 32
#: AttachmentPointer.flags bit for voice notes.
VOICE_MESSAGE = pb.AttachmentPointer.VOICE_MESSAGE
#: Longest file name :func:`safe_filename` returns, in characters.
MAX_NAME = 120


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
    uploaded: Uploaded,
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
        deprecated_id=int(uploaded.id) if uploaded.id.isdigit() else 0,
        contentType=content_type or content_type_for(file_name or ""),
        key=sealed.key,
        size=sealed.size,
        digest=sealed.digest,
        url=uploaded.url,
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
    "MAX_ATTACHMENTS",
    "MAX_FILE_SIZE",
    "VOICE_MESSAGE",
    "check_upload_size",
    "content_type_for",
    "pointer",
    "safe_filename",
]
