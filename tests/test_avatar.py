"""session.avatar: resizing to 600 px (Pillow), metadata dropped, and the AES-256-GCM profile
picture scheme of §6.9 checked against an independent oracle (cryptography's AESGCM)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image

from session import _core, avatar
from session.errors import DecryptionError, InvalidInput, InvalidKey

pytestmark = pytest.mark.skipif(
    not hasattr(_core, "profile_pic_encrypt"),
    reason="session/_core.abi3.so predates profile pictures: rebuild it (maturin build)",
)


def _image(path: Path, size: tuple[int, int], mode: str = "RGB", **save: object) -> Path:
    Image.new(mode, size, (200, 10, 10, 128)[: len(mode)]).save(path, **save)
    return path


@pytest.mark.parametrize(
    ("size", "expected"),
    [((2000, 1000), (600, 300)), ((300, 900), (200, 600)), ((120, 80), (120, 80))],
)
def test_prepare_fits_600(tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]) -> None:
    pic = avatar.prepare(_image(tmp_path / "in.jpg", size))
    assert (pic.width, pic.height) == expected
    assert pic.content_type == "image/jpeg"
    with Image.open(io.BytesIO(pic.data)) as img:
        assert img.size == expected and img.format == "JPEG"


def test_prepare_keeps_transparency_and_drops_exif(tmp_path: Path) -> None:
    pic = avatar.prepare(_image(tmp_path / "in.png", (800, 800), "RGBA"))
    assert pic.content_type == "image/png" and (pic.width, pic.height) == (600, 600)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 6  # orientation: rotate 90°
    src = _image(tmp_path / "exif.jpg", (1200, 600), exif=exif.tobytes())
    pic = avatar.prepare(src)
    assert (pic.width, pic.height) == (300, 600)  # orientation applied
    assert b"SecretCam" not in pic.data


def test_prepare_refuses_non_images(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    with pytest.raises(InvalidInput, match="not an image"):
        avatar.prepare(bad)
    with pytest.raises(InvalidInput, match="cannot read"):
        avatar.prepare(tmp_path / "missing.png")


def test_encrypt_matches_aesgcm_oracle() -> None:
    key = avatar.new_profile_key()
    data = os.urandom(5000)
    blob = avatar.encrypt(data, key)
    assert len(blob) == 12 + len(data) + 16
    assert AESGCM(key).decrypt(blob[:12], blob[12:], None) == data
    iv = os.urandom(12)
    assert avatar.decrypt(iv + AESGCM(key).encrypt(iv, data, None), key) == data
    assert avatar.decrypt(blob, key) == data


def test_tampered_or_wrong_key() -> None:
    key = avatar.new_profile_key()
    blob = bytearray(avatar.encrypt(b"picture bytes", key))
    blob[20] ^= 1
    with pytest.raises(DecryptionError):
        avatar.decrypt(bytes(blob), key)
    with pytest.raises(DecryptionError):
        avatar.decrypt(avatar.encrypt(b"x", key), avatar.new_profile_key())
    with pytest.raises(DecryptionError, match="too short"):
        avatar.decrypt(b"short", key)
    with pytest.raises(InvalidKey):
        avatar.encrypt(b"x", b"k" * 31)


def test_a_saved_copy_is_named_by_its_format_and_private(tmp_path: Path) -> None:
    """`id avatar --of` saves under the extension of the picture's actual format (a JPEG as
    .jpg, a PNG as .png, whatever the sender said) with mode 0600, never over a file."""
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    Image.new("RGBA", (8, 8)).save(png, format="PNG")
    got = Path(avatar.save_copy(jpeg.getvalue(), tmp_path, "05ab"))
    assert got == tmp_path / "05ab.jpg" and got.read_bytes() == jpeg.getvalue()
    assert stat.S_IMODE(got.stat().st_mode) == 0o600
    assert Path(avatar.save_copy(png.getvalue(), tmp_path, "05cd")).name == "05cd.png"
    assert Path(avatar.save_copy(b"not a picture", tmp_path, "05ef")).name == "05ef.img"
    with pytest.raises(FileExistsError):
        avatar.save_copy(jpeg.getvalue(), tmp_path, "05ab")
    assert got.read_bytes() == jpeg.getvalue()
