"""Versions this package reports on the wire.

The storage-server version is the version of Session's storage server whose protocol the node
speaks (``info`` reports it, ``ifelse`` compares against it, ``GET /get_stats/v1`` and the
``Server`` header name it). It changes when the node follows a newer protocol, not with every
release of this package (that version is in ``pyproject.toml``).
"""

from __future__ import annotations

#: The Session storage-server release whose protocol the node speaks.
STORAGE_SERVER_VERSION: tuple[int, int, int] = (2, 8, 0)

#: The same version as text (``"2.8.0"``).
STORAGE_SERVER_VERSION_TEXT: str = ".".join(map(str, STORAGE_SERVER_VERSION))

__all__ = ["STORAGE_SERVER_VERSION", "STORAGE_SERVER_VERSION_TEXT"]
