"""``session-node``: the operator's command line.

Subcommands: ``run``, ``keygen``, ``show-id``, ``check-config``, ``systemd-unit``,
``example-config``, ``version``, ``devnet``, ``registry``, ``stake`` (and ``stake status``),
``unstake``. Exit codes: 0 ok, 1 runtime error
(one sentence on stderr), 2 usage error (click's own).
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path
from typing import Any, TypeVar

import click
import segno

import session
from session import _core
from session.cli import stake as stake_cli
from session.errors import SessionError
from session.node import keys
from session.node.config import as_dict, check_runnable, load_config
from session.node.egress import parse_allowlist
from session.service.cli import config_options
from session.service.systemd import unit_text

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _errors(fn: F) -> F:
    """Turn our errors (and OS errors) into one sentence on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SessionError, ValueError) as e:
            _fail(str(e))
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            _fail(f"{e.strerror or e}{where}")

    return wrapper  # type: ignore[return-value]


def _version_text() -> str:
    try:
        pkg = metadata.version("session-network")
    except metadata.PackageNotFoundError:
        pkg = session.__version__
    try:
        build = _core.build_info
        if callable(build):
            build = build()
        core = json.dumps(build, sort_keys=True) if not isinstance(build, str) else build
    except AttributeError as e:
        core = f"unavailable ({e})"
    return f"session-node {pkg}\ncore: {core}"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit(0)


@click.group(context_settings=CONTEXT)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the package and core versions and exit.",
)
def main() -> None:
    """Run and manage a Session service node."""


# ------------------------------------------------------------------------------------------
# config plumbing


_config_options = config_options("SESSION_NODE_CONFIG", "Data directory (keys/, tls/, db/).")


def _run_options(fn: F) -> F:
    opts = [
        click.option("--listen-host", help="Address the public listeners bind to."),
        click.option("--https-port", type=click.IntRange(0, 65535), help="HTTPS port."),
        click.option("--zmq-port", type=click.IntRange(0, 65535), help="Node-link port (TCP)."),
        click.option("--public-ip", help="Address announced to the registry."),
        click.option("--registry-url", help="URL of the stake registry."),
        click.option("--stake", type=click.IntRange(min=0), help="Operator stake to announce."),
        click.option(
            "--log-level", type=click.Choice(["debug", "info", "warning", "error", "critical"])
        ),
        click.option("--log-format", type=click.Choice(["auto", "json", "console"])),
        click.option(
            "--unsafe-logging",
            is_flag=True,
            default=None,
            help="Log IP addresses and Session IDs unmasked.",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _load(config_path: Path | None, data_dir: Path | None, **flags: Any) -> Any:
    overrides = {
        "data_dir": data_dir,
        "network.listen_host": flags.get("listen_host"),
        "network.https_port": flags.get("https_port"),
        "network.zmq_port": flags.get("zmq_port"),
        "network.public_ip": flags.get("public_ip"),
        "registry.url": flags.get("registry_url"),
        "registry.stake": flags.get("stake"),
        "logging.level": flags.get("log_level"),
        "logging.format": flags.get("log_format"),
        "logging.unsafe_logging": flags.get("unsafe_logging") or None,
    }
    return load_config(config_path, overrides=overrides)


# ------------------------------------------------------------------------------------------
# commands


@main.command()
@_config_options
@_run_options
@_errors
def run(config_path: Path | None, data_dir: Path | None, **flags: Any) -> None:
    """Run the service node until SIGTERM/SIGINT."""
    cfg = check_runnable(_load(config_path, data_dir, **flags))
    # Fail early, with a clear message, on an exposed key file (a missing one is created).
    if keys.key_path(cfg.data_dir).exists():
        keys.check_permissions(keys.key_path(cfg.data_dir))
    # ~0.2-0.35 s of imports (zmq, uvloop, the store, the HTTP server) that only `run` needs;
    # measured with `python -X importtime`, so `version`, `keygen` and `--help` stay quick.
    from session.node.daemon import run as run_daemon  # noqa: PLC0415 - measured, see above

    sys.exit(run_daemon(cfg))


@main.command()
@_config_options
@click.option(
    "--force", is_flag=True, help="Replace an existing key (the node gets a new identity)."
)
@_errors
def keygen(config_path: Path | None, data_dir: Path | None, force: bool) -> None:
    """Create the node's Ed25519 key and print its public keys."""
    cfg = _load(config_path, data_dir)
    identity = keys.generate(cfg.data_dir, force=force)
    click.echo(f"key file: {keys.key_path(cfg.data_dir)}")
    _echo_keys(identity)


def _echo_keys(identity: Any) -> None:
    click.echo(f"ed25519: {bytes(identity.ed25519_public).hex()}")
    click.echo(f"x25519:  {bytes(identity.x25519_public).hex()}")


@main.command("show-id")
@_config_options
@click.option("--qr", is_flag=True, help="Also print the Ed25519 key as a terminal QR code.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_errors
def show_id(config_path: Path | None, data_dir: Path | None, qr: bool, as_json: bool) -> None:
    """Print the node's public keys."""
    cfg = _load(config_path, data_dir)
    identity = keys.load(cfg.data_dir)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "pubkey_ed25519": bytes(identity.ed25519_public).hex(),
                    "pubkey_x25519": bytes(identity.x25519_public).hex(),
                }
            )
        )
    else:
        _echo_keys(identity)
    if qr:
        buf = io.StringIO()
        segno.make(bytes(identity.ed25519_public).hex(), error="m").terminal(out=buf, compact=True)
        click.echo(buf.getvalue(), nl=False)


@main.command("check-config")
@_config_options
@_run_options
@click.option("--show", is_flag=True, help="Print the effective configuration as JSON.")
@_errors
def check_config(config_path: Path | None, data_dir: Path | None, show: bool, **flags: Any) -> None:
    """Validate the configuration (file + environment + flags) and the key file: what
    ``run`` needs, so that "configuration ok" means ``run`` can start."""
    cfg = _load(config_path, data_dir, **flags)
    if show:
        click.echo(json.dumps(as_dict(cfg), indent=2))
    check_runnable(cfg)
    problems = []
    try:
        keys.read_seed(cfg.data_dir)
    except SessionError as e:
        problems.append(str(e))
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    click.echo(f"configuration ok (data dir {cfg.data_dir})")


@main.command("systemd-unit")
def systemd_unit() -> None:
    """Print the systemd unit file for this install (its absolute path in ExecStart)."""
    click.echo(
        unit_text(resource_text("session-node.service"), "session-node", "session.cli.node"),
        nl=False,
    )


@main.command("example-config")
def example_config() -> None:
    """Print the commented example configuration."""
    click.echo(resource_text("session-node.example.toml"), nl=False)


@main.command()
def version() -> None:
    """Print the package version and the native core's build info."""
    click.echo(_version_text())


@main.command()
@click.option(
    "--nodes",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Number of service nodes.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the registry's and the nodes' state.",
)
@click.option("--host", default=None, help="Loopback address to use (default 127.0.0.1).")
@click.option(
    "--base-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="First port to use (default: free ports).",
)
@click.option(
    "--control-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the devnet control site (default: a free port).",
)
@click.option("--seed", default=None, help="Registry genesis seed (fixes the swarms).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("--no-uvloop", is_flag=True, help="Use the default asyncio loop.")
@click.option(
    "--proxy-allow",
    multiple=True,
    metavar="HOST:PORT",
    help="A server the nodes may proxy onion requests to (repeatable); nothing else is.",
)
@_errors
def devnet(
    nodes: int,
    data_dir: Path,
    host: str | None,
    base_port: int | None,
    control_port: int | None,
    seed: str | None,
    log_level: str | None,
    no_uvloop: bool,
    proxy_allow: tuple[str, ...],
) -> None:
    """Run a local network (a registry and N nodes on loopback) until Ctrl-C."""
    extra: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "base_port": base_port,
            "control_port": control_port,
            "seed": seed,
            "log_level": log_level,
        }.items()
        if v is not None
    }
    if no_uvloop:
        extra["uvloop"] = False
    if proxy_allow:
        parse_allowlist(",".join(proxy_allow))  # a bad entry fails before anything starts
        extra["proxy_allow"] = list(proxy_allow)
    # The devnet pulls in web3 (~0.7 s, `python -X importtime`): only this command imports it,
    # so `session-node run` starts without it.
    import session.devnet  # noqa: PLC0415 - measured, see above

    sys.exit(session.devnet.main(nodes=nodes, data_dir=data_dir, **extra))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=22030,
    show_default=True,
    help="HTTPS port (0 picks a free one).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the registry state and TLS files.",
)
@click.option(
    "--stake-requirement",
    type=click.IntRange(min=0),
    default=25_000,
    show_default=True,
    help="Minimum stake of an active node.",
)
@click.option("--seed", default=None, help="Genesis seed (any text).")
@click.option(
    "--name-term",
    type=click.IntRange(min=1),
    default=365 * 24 * 3600,
    show_default=True,
    help="Seconds a Session name registration or renewal lasts.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option("--chain-rpc", metavar="URL", help="JSON-RPC URL of the staking contract's chain.")
@click.option("--chain-contract", metavar="ADDR", help="Address of the staking contract.")
@click.option(
    "--chain-start-block",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Block the contract was deployed at (reading starts there).",
)
@click.option(
    "--chain-poll",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    help="Seconds between reads of the chain.",
)
@click.option(
    "--devnet-chain",
    is_flag=True,
    help="Run a local chain in this process and deploy the token and staking contract.",
)
@click.option(
    "--unlock-blocks",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="A devnet chain's unlock period, in blocks.",
)
@_errors
def registry(
    host: str,
    port: int,
    data_dir: Path,
    stake_requirement: int,
    seed: str | None,
    name_term: int,
    log_level: str,
    chain_rpc: str | None,
    chain_contract: str | None,
    chain_start_block: int,
    chain_poll: float,
    devnet_chain: bool,
    unlock_blocks: int,
) -> None:
    """Run the stake registry in the foreground (prints a JSON ready line). Its node list is
    the staking contract's: name the chain and contract, or run a devnet chain."""
    # aiohttp, uvloop and web3 (~1 s, measured with `python -X importtime`) only here.
    from session.registry.__main__ import serve  # noqa: PLC0415 - measured, see above
    from session.registry.chain import ChainOptions  # noqa: PLC0415 - same reason

    chain = ChainOptions(
        rpc=chain_rpc,
        contract=chain_contract,
        start_block=chain_start_block,
        poll=chain_poll,
        devnet=devnet_chain,
        unlock_blocks=unlock_blocks,
    )
    sys.exit(
        serve(
            host,
            port,
            str(data_dir),
            stake_requirement,
            seed,
            log_level,
            name_term=name_term,
            chain=chain,
        )
    )


stake_cli.add_commands(main, config_options=_config_options, errors=_errors)


def resource_text(name: str) -> str:
    """A file shipped in ``session/node/resources``."""
    return resources.files("session.node").joinpath("resources", name).read_text("utf-8")


__all__ = ["main", "resource_text"]


if __name__ == "__main__":
    main()
