"""Schema versions of our SQLite files (the node's message store, the client's database).

Each file records its schema version in ``PRAGMA user_version``; a program carries the list of
migrations that lead from version 0 (an empty file) to the version it writes. Opening runs the
missing ones, each in its own transaction (an interrupted upgrade leaves the file at the last
whole version), and refuses a file written by a newer version with a sentence saying so: an
older program must not write into a schema it does not know.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from session.errors import StorageError


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain ';' inside BEGIN..END)."""
    out: list[str] = []
    cur = ""
    for part in script.split(";"):
        cur += part + ";"
        if sqlite3.complete_statement(cur):
            if cur.strip(" \n;"):
                out.append(cur.strip())
            cur = ""
    if cur.strip(" \n;"):
        raise StorageError("incomplete statement in a schema migration")
    return out


def migrate(conn: sqlite3.Connection, migrations: Sequence[str], *, what: str, program: str) -> int:
    """Bring ``conn``'s file to version ``len(migrations)``; returns the version it had.

    ``what`` names the file in the refusal ("database /srv/node/db/storage.db"), ``program``
    the software to upgrade. ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    latest = len(migrations)
    if version > latest:
        raise StorageError(
            f"{what} has schema version {version}, newer than this {program} knows ({latest}): "
            f"it was written by a newer {program}; upgrade {program}"
        )
    for v in range(version, latest):
        conn.execute("BEGIN IMMEDIATE")
        done = False
        try:
            for stmt in split_sql(migrations[v]):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            done = True
        finally:
            conn.execute("COMMIT" if done else "ROLLBACK")
    return version


__all__ = ["migrate", "split_sql"]
