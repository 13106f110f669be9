"""The node's key file: ``<data_dir>/keys/ed25519.key``, the raw 32-byte Ed25519 seed.

The directory is 0700 and the file 0600; a node refuses to start when the key file (or its
directory) can be read by group or others, the way fs-mistrust checks. The X25519 key is
derived from the Ed25519 key (``session.identity``), so this one file is the node's identity.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from session.errors import ConfigError
from session.identity import Identity

KEY_DIR = "keys"
KEY_FILE = "ed25519.key"
SEED_BYTES = 32


def key_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / KEY_DIR / KEY_FILE


def check_permissions(path: Path) -> None:
    """Refuse key files (and key directories) that group or others may access."""
    for p, what in ((path.parent, "key directory"), (path, "key file")):
        try:
            st = p.stat()
        except FileNotFoundError:
            raise ConfigError(f"{what} {p} does not exist; run 'session-node keygen'") from None
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            fix = "700" if p.is_dir() else "600"
            raise ConfigError(
                f"{what} {p} is accessible by group or others (mode {mode:o}); "
                f"run 'chmod {fix} {p}'"
            )
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise ConfigError(f"{what} {p} is not owned by the user running the node")


def write_seed(data_dir: str | os.PathLike[str], seed: bytes, *, force: bool = False) -> Path:
    """Write ``seed`` as the node's key (0600, in a 0700 directory); returns the path.

    Refuses to replace an existing key unless ``force``.
    """
    return _write_seed_at(key_path(data_dir), seed, force=force)


def _write_seed_at(path: Path, seed: bytes, *, force: bool) -> Path:
    if len(seed) != SEED_BYTES:
        raise ConfigError(f"a node key seed is {SEED_BYTES} bytes, not {len(seed)}")
    if path.exists() and not force:
        raise ConfigError(f"key file {path} already exists; use --force to replace it")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, seed)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigError(f"cannot write key file {path}: {e.strerror}") from None
    return path


def generate(data_dir: str | os.PathLike[str], *, force: bool = False) -> Identity:
    """Create a new random node key; returns the identity."""
    seed = os.urandom(SEED_BYTES)
    write_seed(data_dir, seed, force=force)
    return Identity.from_seed(seed)


def read_seed(data_dir: str | os.PathLike[str]) -> bytes:
    """The seed from the key file, after the permission check."""
    return _read_seed_at(key_path(data_dir))


def _read_seed_at(path: Path) -> bytes:
    check_permissions(path)
    try:
        seed = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read key file {path}: {e.strerror}") from None
    if len(seed) != SEED_BYTES:
        raise ConfigError(
            f"key file {path} holds {len(seed)} bytes, not a {SEED_BYTES}-byte Ed25519 seed"
        )
    return seed


def load(data_dir: str | os.PathLike[str]) -> Identity:
    """The node's identity from its key file (see :func:`read_seed` for the checks)."""
    return Identity.from_seed(read_seed(data_dir))


def load_or_generate(data_dir: str | os.PathLike[str]) -> Identity:
    """Load the key, creating it first when there is none (devnet / first start)."""
    if not key_path(data_dir).exists():
        return generate(data_dir)
    return load(data_dir)


def load_or_create(keys_dir: str | os.PathLike[str]) -> Identity:
    """Like :func:`load_or_generate`, given the key directory (``NodeConfig.keys_dir``)."""
    path = Path(keys_dir) / KEY_FILE
    if not path.exists():
        seed = os.urandom(SEED_BYTES)
        _write_seed_at(path, seed, force=False)
        return Identity.from_seed(seed)
    return Identity.from_seed(_read_seed_at(path))


__all__ = [
    "check_permissions",
    "generate",
    "key_path",
    "load",
    "load_or_create",
    "load_or_generate",
    "read_seed",
    "write_seed",
]
