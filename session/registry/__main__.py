"""``python3 -m session.registry``: run the stake registry in the foreground.

Prints one JSON line ``{"ready": true, "url": ...}`` on stdout once listening (for the devnet
and other supervisors), logs to stderr, and exits 0 on SIGTERM/SIGINT. Logging format and
connection limits come from ``SESSION_REGISTRY_CONFIG`` / ``SESSION_REGISTRY_*`` (see
:mod:`session.registry.config`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import uvloop

from session.errors import ConfigError, SessionError
from session.registry.config import load_settings
from session.registry.server import MAX_BODY, run
from session.registry.state import DEFAULT_NAME_TERM
from session.service.logs import setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m session.registry", description="Run the Session stake registry."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=22030, help="HTTPS port (0 picks a free one)")
    p.add_argument("--data-dir", required=True, help="directory for state and TLS files")
    p.add_argument(
        "--stake-requirement", type=int, default=25_000, help="minimum stake of an active node"
    )
    p.add_argument(
        "--seed", default=None, help="genesis seed (any text); fixes the swarm assignment history"
    )
    p.add_argument(
        "--name-term",
        type=int,
        default=DEFAULT_NAME_TERM,
        help="seconds a Session name registration or renewal lasts (default: one year)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error", "critical"]
    )
    return p


def serve(
    host: str,
    port: int,
    data_dir: str,
    stake_requirement: int,
    seed: str | None,
    log_level: str = "info",
    name_term: int = DEFAULT_NAME_TERM,
) -> int:
    """Run the registry until a signal; returns the process exit code."""
    try:
        settings = load_settings(log_level=log_level, max_body=MAX_BODY)
    except ConfigError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    lc = settings.logging
    setup_logging(lc.level, lc.format, unsafe=lc.unsafe_logging, stream=sys.stderr)

    def ready(url: str) -> None:
        sys.stdout.write(json.dumps({"ready": True, "url": url}) + "\n")
        sys.stdout.flush()

    coro = run(
        host,
        port,
        data_dir,
        stake_requirement,
        seed,
        on_ready=ready,
        limits=settings.connections,
        name_term=name_term,
        health=settings.health,
    )
    try:
        uvloop.run(coro)
    except SessionError as e:
        logging.getLogger("session.registry").error("%s", e)
        sys.stderr.write(f"error: {e}\n")
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (0 <= args.port <= 65535):
        parser().error("--port must be between 0 and 65535")
    if args.stake_requirement < 0:
        parser().error("--stake-requirement must not be negative")
    if args.name_term <= 0:
        parser().error("--name-term must be a positive number of seconds")
    return serve(
        args.host,
        args.port,
        args.data_dir,
        args.stake_requirement,
        args.seed,
        args.log_level,
        name_term=args.name_term,
    )


if __name__ == "__main__":
    sys.exit(main())
