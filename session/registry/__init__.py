"""The stake registry: our stand-in for Session's staking contract.

It holds each node's signed registration, decides which nodes are active (stake at least the
requirement) and assigns swarms with oxen's rules (:mod:`session.registry.assign`). Nodes and
clients read the list with ``get_n_service_nodes`` (:mod:`session.registry.client`).

``run(host, port, data_dir, stake_requirement, seed)`` serves it (see
:mod:`session.registry.server`); ``python3 -m session.registry`` runs it as a process.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the pure parts (assign, messages; the devnet uses them) must not pull in
    # aiohttp and the site (~0.4 s, measured with `python -X importtime`).
    if name == "run":
        from session.registry.server import run  # noqa: PLC0415 - measured, see above

        return run
    raise AttributeError(f"module 'session.registry' has no attribute {name!r}")
