"""Node key file: creation, permissions, refusal of exposed keys; TLS files."""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

import pytest

from session.errors import ConfigError
from session.identity import Identity, ed25519_to_x25519
from session.node import keys
from session.service import tls


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_generate_writes_private_seed(tmp_path: Path) -> None:
    ident = keys.generate(tmp_path)
    path = keys.key_path(tmp_path)
    assert path == tmp_path / "keys" / "ed25519.key"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    seed = path.read_bytes()
    assert len(seed) == 32
    assert Identity.from_seed(seed).ed25519_public == ident.ed25519_public
    loaded = keys.load(tmp_path)
    assert loaded.ed25519_public == ident.ed25519_public
    assert loaded.x25519_public == ed25519_to_x25519(ident.ed25519_public)
    assert not list(path.parent.glob("*.tmp"))


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    first = keys.generate(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        keys.generate(tmp_path)
    assert keys.load(tmp_path).ed25519_public == first.ed25519_public
    second = keys.generate(tmp_path, force=True)
    assert second.ed25519_public != first.ed25519_public
    assert keys.load(tmp_path).ed25519_public == second.ed25519_public


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o644, 0o660])
def test_refuses_group_or_world_readable_key(tmp_path: Path, bad_mode: int) -> None:
    keys.generate(tmp_path)
    os.chmod(keys.key_path(tmp_path), bad_mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        keys.load(tmp_path)


def test_refuses_open_key_directory(tmp_path: Path) -> None:
    keys.generate(tmp_path)
    os.chmod(tmp_path / "keys", 0o755)
    with pytest.raises(ConfigError, match="chmod 700"):
        keys.load(tmp_path)


def test_missing_and_malformed_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keygen"):
        keys.load(tmp_path)
    keys.write_seed(tmp_path, os.urandom(32))
    path = keys.key_path(tmp_path)
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="not a 32-byte"):
        keys.load(tmp_path)
    with pytest.raises(ConfigError, match="32 bytes"):
        keys.write_seed(tmp_path, b"x" * 16, force=True)


def test_load_or_create(tmp_path: Path) -> None:
    a = keys.load_or_create(tmp_path / "keys")
    b = keys.load_or_create(tmp_path / "keys")
    assert a.ed25519_public == b.ed25519_public
    assert keys.load_or_generate(tmp_path).ed25519_public == a.ed25519_public
    assert mode(keys.key_path(tmp_path)) == 0o600


def test_key_never_in_repr(tmp_path: Path) -> None:
    ident = keys.generate(tmp_path)
    seed = keys.read_seed(tmp_path)
    assert seed.hex() not in repr(ident) and seed.hex() not in str(ident)


def test_tls_created_once_and_reused(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    cert_path, key_path = tls.ensure_certificate(tmp_path)
    assert mode(key_path) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=localhost"
    pub = cert.public_key()
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048
    before = cert_path.read_bytes()
    tls.ensure_certificate(tmp_path)
    assert cert_path.read_bytes() == before
    ctx = tls.server_ssl_context(tmp_path)
    assert isinstance(ctx, ssl.SSLContext)
    assert tls.client_ssl_context().verify_mode == ssl.CERT_NONE


def test_tls_broken_files_are_a_clear_error(tmp_path: Path) -> None:
    _, key_path = tls.ensure_certificate(tmp_path)
    key_path.write_text("garbage")
    with pytest.raises(ConfigError, match="delete them"):
        tls.server_ssl_context(tmp_path)
