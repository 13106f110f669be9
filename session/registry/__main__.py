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

from session.errors import ConfigError, InvalidInput, SessionError
from session.registry.chain import ChainOptions
from session.registry.config import load_settings
from session.registry.extra import devnet_chain_missing
from session.registry.server import MAX_BODY, RegistryServer, run
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
    chain = p.add_argument_group("staking contract (the only source of nodes)")
    chain.add_argument("--chain-rpc", metavar="URL", help="JSON-RPC URL of the chain")
    chain.add_argument("--chain-contract", metavar="ADDR", help="address of the staking contract")
    chain.add_argument(
        "--chain-start-block", type=int, default=0, help="block the contract was deployed at"
    )
    chain.add_argument(
        "--chain-poll", type=float, default=2.0, help="seconds between reads of the chain"
    )
    chain.add_argument(
        "--devnet-chain",
        action="store_true",
        help="run a local chain in this process and deploy the token and staking contract",
    )
    chain.add_argument(
        "--unlock-blocks", type=int, default=4, help="a devnet chain's unlock period in blocks"
    )
    return p


def chain_options(args: argparse.Namespace) -> ChainOptions:
    """The staking contract the flags name (raises InvalidInput with a sentence)."""
    return ChainOptions(
        rpc=args.chain_rpc,
        contract=args.chain_contract,
        start_block=args.chain_start_block,
        poll=args.chain_poll,
        devnet=args.devnet_chain,
        unlock_blocks=args.unlock_blocks,
    )


def serve(
    host: str,
    port: int,
    data_dir: str,
    stake_requirement: int,
    seed: str | None,
    log_level: str = "info",
    name_term: int = DEFAULT_NAME_TERM,
    chain: ChainOptions | None = None,
) -> int:
    """Run the registry until a signal; returns the process exit code."""
    missing = devnet_chain_missing() if chain is not None and chain.devnet else None
    if missing is not None:
        sys.stderr.write(f"error: {missing}\n")
        return 1
    try:
        settings = load_settings(log_level=log_level, max_body=MAX_BODY)
    except ConfigError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    lc = settings.logging
    setup_logging(lc.level, lc.format, unsafe=lc.unsafe_logging, stream=sys.stderr)

    def ready(server: RegistryServer) -> None:
        doc = {"ready": True, "url": server.url, "chain": server.chain_info}
        sys.stdout.write(json.dumps(doc) + "\n")
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
        chain=chain,
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
    try:
        chain = chain_options(args)
    except InvalidInput as e:
        parser().error(str(e))
    return serve(
        args.host,
        args.port,
        args.data_dir,
        args.stake_requirement,
        args.seed,
        args.log_level,
        name_term=args.name_term,
        chain=chain,
    )


if __name__ == "__main__":
    sys.exit(main())
