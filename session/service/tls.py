"""Self-signed TLS certificate for a node's (or the registry's) HTTPS site.

Like Session's storage server: an RSA-2048 key and a self-signed certificate with
CN=localhost, created once under ``<data_dir>/tls/`` (``cert.pem``, ``key.pem`` 0600) and
reused. Clients do not verify it: the onion layers carry the security.
"""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

from session.errors import ConfigError

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
VALIDITY_DAYS = 3650


def tls_paths(data_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(certificate, private key) paths under ``<data_dir>/tls``."""
    d = Path(data_dir) / "tls"
    return d / CERT_NAME, d / KEY_NAME


def _generate(cert_path: Path, key_path: Path) -> None:
    # Imported here (noqa below): `cryptography` costs ~65 ms and ~10 MB of RSS (measured), for
    # a job done once per data directory (the node even runs it in a short-lived child).
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    tmp_key = key_path.with_name(key_path.name + ".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    tmp_cert = cert_path.with_name(cert_path.name + ".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_key, key_path)
    os.replace(tmp_cert, cert_path)


def ensure_certificate(data_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Create the certificate and key once (if either is missing); return their paths."""
    cert_path, key_path = tls_paths(data_dir)
    try:
        cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (cert_path.exists() and key_path.exists()):
            _generate(cert_path, key_path)
    except OSError as e:
        raise ConfigError(f"cannot create TLS files in {cert_path.parent}: {e.strerror}") from None
    return cert_path, key_path


def server_ssl_context(data_dir: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server context loaded with the (created if needed) self-signed certificate."""
    cert_path, key_path = ensure_certificate(data_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(
            f"TLS files in {cert_path.parent} are unusable ({e}); delete them to regenerate"
        ) from None
    return ctx


def client_ssl_context() -> ssl.SSLContext:
    """A client context that accepts self-signed certificates (no verification)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


__all__ = ["client_ssl_context", "ensure_certificate", "server_ssl_context", "tls_paths"]
