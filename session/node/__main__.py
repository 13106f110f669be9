"""``python3 -m session.node``: run one service node.

Settings come from the config file named by ``SESSION_NODE_CONFIG`` (or ``--config``), the
``SESSION_NODE_*`` environment and ``--set name=value`` flags (see :mod:`session.node.config`).
The full command-line interface is ``session-node``; this entry point exists so that a devnet
can start nodes without depending on the CLI.
"""

from __future__ import annotations

import argparse
import os
import sys

from session.errors import ConfigError, SessionError
from session.node.config import load_config
from session.node.daemon import run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m session.node", description="Run a Session service node."
    )
    p.add_argument("--config", help="TOML config file (default: $SESSION_NODE_CONFIG)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting, e.g. --set network.https_port=22021 (repeatable)",
    )
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once listening, write the bound ports here as JSON (for supervisors)",
    )
    args = p.parse_args(argv)

    overrides: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--set expects NAME=VALUE, not {item!r}")
        overrides[name.strip()] = value
    try:
        cfg = load_config(args.config or os.environ.get("SESSION_NODE_CONFIG"), overrides=overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return run(cfg, use_uvloop=not args.no_uvloop, ready_file=args.ready_file)
    except SessionError as e:  # a permanent error (a port in use, a refusal): one sentence
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
