"""``python3 -m session.devnet [NODES] [DATA_DIR]``: run a devnet until Ctrl-C (the full
interface is ``session-node devnet``)."""

from __future__ import annotations

import argparse
import sys

from session.devnet.control import main as run_devnet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m session.devnet", description="Run a local Session network on 127.0.0.1."
    )
    p.add_argument("--nodes", type=int, default=5, help="number of service nodes")
    p.add_argument("--data-dir", required=True, help="directory for every process's state")
    args = p.parse_args(argv)
    if args.nodes < 0:
        p.error("--nodes must not be negative")
    return run_devnet(nodes=args.nodes, data_dir=args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
