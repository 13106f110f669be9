"""Several identities side by side in one profile directory.

Layout (directories 0700, files 0600)::

    PROFILE/
      current                     Session ID of the identity used by default
      identities/<session id>/
        key                       JSON {"seed": hex, "created_ms": int} — the only secret
        state.db                  SQLite state, contents sealed with a seed-derived key

The key file holds the seed in clear (protected by file permissions only): without a user
passphrase there is nothing else to derive a wrapping key from. See docs/client.md.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from session.errors import InvalidInput, StorageError
from session.identity import Identity


class IdentityNotFound(InvalidInput, LookupError):
    """No identity with that Session ID in this profile."""


def ed25519_seed32(identity: Identity) -> bytes:
    """The 32-byte Ed25519 seed of ``identity`` (16-byte recovery seeds are zero-padded)."""
    seed = bytes(identity.seed())
    return seed + b"\x00" * (32 - len(seed)) if len(seed) < 32 else seed[:32]


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class IdentityStore:
    """The identities of one profile directory."""

    def __init__(self, profile_dir: Path | str) -> None:
        self.root = Path(profile_dir)
        self.ids_dir = self.root / "identities"
        try:
            self.ids_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
            os.chmod(self.ids_dir, 0o700)
        except OSError as e:
            raise StorageError(f"cannot use profile directory {self.root}: {e}") from None

    # ---------------------------------------------------------------- listing / current

    def list(self) -> list[str]:
        """Session IDs of all identities, sorted."""
        return sorted(p.name for p in self.ids_dir.iterdir() if (p / "key").is_file())

    @property
    def current(self) -> str | None:
        f = self.root / "current"
        if not f.is_file():
            return None
        sid = f.read_text().strip()
        return sid if sid in self.list() else None

    def use(self, session_id: str) -> None:
        """Make ``session_id`` the default identity."""
        if session_id not in self.list():
            raise IdentityNotFound(f"no identity {session_id} in {self.root}")
        _write_private(self.root / "current", session_id.encode())

    def dir_of(self, session_id: str) -> Path:
        return self.ids_dir / session_id

    # ---------------------------------------------------------------- create / restore / load

    def create(self) -> Identity:
        """Generate a new identity (random 16-byte seed), save it; it becomes current if none is."""
        return self._save(Identity.generate())

    def restore(self, mnemonic: str) -> Identity:
        """Restore an identity from its recovery phrase (idempotent)."""
        return self._save(Identity.from_mnemonic(mnemonic))

    def _save(self, identity: Identity) -> Identity:
        d = self.dir_of(identity.session_id)
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o700)
        key = d / "key"
        if not key.exists():
            doc = {"seed": bytes(identity.seed()).hex(), "created_ms": int(time.time() * 1000)}
            _write_private(key, json.dumps(doc).encode())
        if self.current is None:
            self.use(identity.session_id)
        return identity

    def load(self, session_id: str | None = None) -> Identity:
        """Load ``session_id`` (default: the current identity)."""
        sid = session_id or self.current
        if sid is None:
            raise IdentityNotFound(f"{self.root} has no identity yet: create or restore one")
        key = self.dir_of(sid) / "key"
        if not key.is_file():
            raise IdentityNotFound(f"no identity {sid} in {self.root}")
        mode = stat.S_IMODE(key.stat().st_mode)
        if mode & 0o077:
            raise StorageError(f"{key} is readable by others (mode {mode:o}); run chmod 600")
        try:
            seed = bytes.fromhex(json.loads(key.read_text())["seed"])
        except (ValueError, KeyError, TypeError):
            raise StorageError(f"{key} is not a valid key file") from None
        identity = Identity.from_seed(seed)
        if identity.session_id != sid:
            raise StorageError(f"{key} holds the key of another identity")
        return identity

    def remove(self, session_id: str) -> None:
        """Delete an identity and all its local state (irreversible)."""
        d = self.dir_of(session_id)
        if not d.is_dir():
            raise IdentityNotFound(f"no identity {session_id} in {self.root}")
        for p in sorted(d.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        d.rmdir()
        if (self.root / "current").is_file() and (
            self.root / "current"
        ).read_text().strip() == session_id:
            (self.root / "current").unlink()
