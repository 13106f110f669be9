"""One running service per data directory: an exclusive ``flock`` on ``<data_dir>/<name>.lock``.

Two nodes on one data directory would share a key (one identity announced twice) and a
database; the second one is refused at start with one sentence naming the first one's pid.
The lock is the kernel's (``flock``): it ends with the process however it ends, so a crash
leaves no stale lock behind; the file itself stays (deleting it would race a new start).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from session.errors import ConfigError


class DataDirLock:
    """The exclusive lock of a data directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path, program: str) -> None:
        self.data_dir = Path(data_dir)
        self.program = program
        self.path = self.data_dir / f"{program}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (creating the directory, mode 0700, if needed); raises
        :class:`ConfigError` when another process holds it."""
        if self._fd is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise ConfigError(
                f"another {self.program} is already running on the data directory "
                f"{self.data_dir}{who}; give each one its own data directory"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the file stays)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


__all__ = ["DataDirLock"]
