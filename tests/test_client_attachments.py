"""session.client.attachments: AttachmentPointer fields (§5.4), the size limit
and sanitised file names (no path traversal from a sender-chosen name)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import attachments
from session.client import attachments as ca
from session.client.files import Uploaded
from session.errors import InvalidInput
from session.proto import session_pb2 as pb

KEY = "ab" * 32


def test_pointer_fields() -> None:
    sealed = attachments.Sealed(key=os.urandom(64), digest=os.urandom(32), size=1234, blob_size=0)
    up = Uploaded("777", f"http://127.0.0.1:9/file/777#p={KEY}", None)
    p = ca.pointer(sealed, up, file_name="a.png", width=10, height=20, voice=True, caption="hi")
    back = pb.AttachmentPointer.FromString(p.SerializeToString())
    assert back.deprecated_id == 777 and back.contentType == "image/png"
    assert (back.key, back.digest, back.size) == (sealed.key, sealed.digest, 1234)
    assert (back.fileName, back.width, back.height, back.caption) == ("a.png", 10, 20, "hi")
    assert back.flags == ca.VOICE_MESSAGE and back.url == f"http://127.0.0.1:9/file/777#p={KEY}"
    plain = ca.pointer(sealed, Uploaded("x" * 44, "http://h/file/" + "x" * 44, None))
    assert plain.deprecated_id == 0 and plain.contentType == "application/octet-stream"
    assert not plain.HasField("fileName") and not plain.HasField("flags")


def test_size_limit() -> None:
    ca.check_upload_size(ca.MAX_FILE_SIZE)
    with pytest.raises(InvalidInput, match="limited to 10,000,000 bytes"):
        ca.check_upload_size(ca.MAX_FILE_SIZE + 1)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../.ssh/authorized_keys", "authorized_keys"),
        ("..\\..\\Windows\\system.ini", "system.ini"),
        ("/etc/passwd", "passwd"),
        ("..", "attachment"),
        ("", "attachment"),
        (None, "attachment"),
        (".bashrc", "bashrc"),
        ("a\x1b[31mred\x07.txt", "a[31mred.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("CON.txt", "_CON.txt"),
        ('a<b>c:"d|e?f*.txt', "a_b_c__d_e_f_.txt"),
        ("name. . ", "name"),
    ],
)
def test_safe_filename(name: str | None, safe: str) -> None:
    assert ca.safe_filename(name) == safe


def test_long_name_keeps_extension() -> None:
    out = ca.safe_filename("x" * 500 + ".pdf")
    assert len(out) == ca.MAX_NAME and out.endswith(".pdf")


@given(st.text(max_size=300))
def test_safe_filename_is_one_component(name: str) -> None:
    out = ca.safe_filename(name)
    assert out and "/" not in out and "\\" not in out and out not in (".", "..")
    assert not out.startswith(".") and len(out) <= ca.MAX_NAME
    assert all(ord(c) >= 32 and c != "\x7f" for c in out)
