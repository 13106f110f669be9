"""``session-node stake``, ``stake status`` and ``unstake``: an operator and the staking contract.

The node's keys, address and ports come from its configuration (``--config``/``--data-dir``, as
for ``session-node run``); the operator's Ethereum key from an eth-account keystore file
(``--key-file``; its password from ``SESSION_OPERATOR_PASSWORD`` or a hidden prompt). Nothing
of the key or the password is printed or logged. ``stake`` prints the payload it will submit
and asks before sending (``--yes`` skips the question). ``stake status`` lists every
registration naming the node and, for each, whether the registry lists it or why not (the same
rules as the registry, :func:`session.registry.chain.evaluate`). ``unstake`` requests the exit of
the operator's registration for the node, or withdraws the stake once it is unlocked.

web3 is imported when one of these commands runs, never by ``session-node run``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from session.errors import InvalidInput
from session.node import keys
from session.node.config import load_config
from session.service.cli import Decorator
from session.text import for_terminal

F = TypeVar("F", bound=Callable[..., Any])
PASSWORD_ENV = "SESSION_OPERATOR_PASSWORD"


def chain_options(fn: F) -> F:
    """``--rpc`` and ``--contract`` (also from ``SESSION_CHAIN_RPC``/``SESSION_CHAIN_CONTRACT``)."""
    fn = click.option(
        "--start-block",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Block the contract was deployed at (status reads its events from there).",
    )(fn)
    fn = click.option(
        "--contract", envvar="SESSION_CHAIN_CONTRACT", help="Address of the staking contract."
    )(fn)
    fn = click.option("--rpc", envvar="SESSION_CHAIN_RPC", help="JSON-RPC URL of the chain.")(fn)
    return fn


def key_option(fn: F) -> F:
    return click.option(
        "--key-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The operator's Ethereum key (an eth-account keystore file).",
    )(fn)


def _need(value: str | None, flag: str) -> str:
    if not value:
        raise InvalidInput(f"{flag} is required")
    return value


def _operator(target: Target, key_file: Path | None) -> Any:
    """The operator's account from ``--key-file`` (required), once the chain options are
    known to be there (a missing ``--rpc`` is said before any password is asked)."""
    _ = target.rpc, target.contract
    return _operator_account(Path(_need(str(key_file) if key_file else None, "--key-file")))


def _operator_account(key_file: Path) -> Any:
    """The operator's account from its keystore (the password never leaves this function)."""
    from eth_account import Account  # noqa: PLC0415 - with web3: only the stake commands

    try:
        doc = json.loads(key_file.read_text())
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{key_file} is not a readable keystore file: {e}") from None
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = click.prompt(f"password of {key_file.name}", hide_input=True)
    try:
        key = Account.decrypt(doc, password)
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(
            f"the password does not open {key_file} (or it is no keystore)"
        ) from None
    return Account.from_key(key)


@dataclasses.dataclass(frozen=True)
class Target:
    """What a stake command is about: the node (by its configuration, as for ``run``) and the
    staking contract (``--rpc``, ``--contract``: required when used, ``--start-block``)."""

    config_path: Path | None
    data_dir: Path | None
    rpc_option: str | None
    contract_option: str | None
    start_block: int

    @property
    def rpc(self) -> str:
        return _need(self.rpc_option, "--rpc")

    @property
    def contract(self) -> str:
        return _need(self.contract_option, "--contract")

    def node(self) -> tuple[Any, Any]:
        """The node's configuration and identity."""
        cfg = load_config(self.config_path, overrides={"data_dir": self.data_dir})
        return cfg, keys.load(cfg.data_dir)

    def node_key(self) -> str:
        """The node's Ed25519 public key, hex."""
        return bytes(self.node()[1].ed25519_public).hex()

    def reader(self) -> Any:
        """A :class:`~session.registry.chain.ChainReader` of the contract, synced to its head."""
        from session.registry.chain import ChainReader, connect  # noqa: PLC0415 - web3

        reader = ChainReader(
            connect(self.rpc), self.contract, min_tokens=0, start_block=self.start_block
        )
        reader.sync()
        return reader


def target_options(config_options: Decorator) -> Decorator:
    """``config_options`` and :func:`chain_options`, handed to the command as one argument, a
    :class:`Target`, after those it gets positionally (a click context)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def with_target(
            *args: Any,
            config_path: Path | None,
            data_dir: Path | None,
            rpc: str | None,
            contract: str | None,
            start_block: int,
            **kwargs: Any,
        ) -> Any:
            target = Target(config_path, data_dir, rpc, contract, start_block)
            return fn(*args, target, **kwargs)

        return config_options(chain_options(with_target))

    return decorate


def add_commands(group: click.Group, *, config_options: Decorator, errors: Decorator) -> None:
    """Add ``stake`` (with its subcommand ``stake status``) and ``unstake`` to ``group``
    (``session-node``), with its ``--config``/``--data-dir`` options and error handling."""

    @group.group(invoke_without_command=True)
    @target_options(config_options)
    @key_option
    @click.option(
        "--amount",
        type=click.IntRange(min=1),
        default=25_000,
        show_default=True,
        help="Whole tokens to stake.",
    )
    @click.option("--yes", is_flag=True, help="Send without asking.")
    @click.pass_context
    @errors
    def stake(
        ctx: click.Context, target: Target, key_file: Path | None, amount: int, yes: bool
    ) -> None:
        """Stake tokens for this node on the staking contract (prints the payload, asks first).

        `session-node stake status` shows the node's registrations; `session-node unstake`
        leaves."""
        if ctx.invoked_subcommand is None:
            _stake(target, _operator(target, key_file), amount, yes)

    @stake.command("status")
    @target_options(config_options)
    @click.option("--node", help="Ed25519 key (hex) of the node (default: this node's).")
    @click.option(
        "--stake-requirement",
        type=click.IntRange(min=0),
        default=25_000,
        show_default=True,
        help="Whole tokens a listed node needs (the registry's --stake-requirement).",
    )
    @errors
    def stake_status(target: Target, node: str | None, stake_requirement: int) -> None:
        """Show the node's registrations on the contract and why any is not listed."""
        _status(target, node, stake_requirement)

    @group.command()
    @target_options(config_options)
    @key_option
    @click.option("--yes", is_flag=True, help="Send without asking.")
    @errors
    def unstake(target: Target, key_file: Path | None, yes: bool) -> None:
        """Request this node's exit on the contract; once unlocked, withdraw the stake."""
        _unstake(target, _operator(target, key_file), yes)


def _stake(target: Target, account: Any, amount: int, yes: bool) -> None:
    """Stake ``amount`` whole tokens for the node on the contract."""
    from session.registry.chain import connect, format_tokens  # noqa: PLC0415 - web3
    from session.registry.staking import Operator  # noqa: PLC0415 - web3

    cfg, identity = target.node()
    op = Operator(connect(target.rpc), target.contract, account)
    decimals = int(op.token.functions.decimals().call())
    payload = op.payload(
        identity,
        public_ip=cfg.announce_ip,
        storage_port=cfg.network.https_port,
        storage_lmq_port=cfg.network.zmq_port,
        amount=amount * 10**decimals,
    )
    click.echo(
        json.dumps(
            {
                "chain_id": op.chain_id,
                "contract": op.contract.address,
                "operator": op.address,
                "pubkey_ed25519": payload.pubkey_ed25519,
                "pubkey_x25519": payload.pubkey_x25519,
                "public_ip": payload.public_ip,
                "storage_port": payload.storage_port,
                "storage_lmq_port": payload.storage_lmq_port,
                "signature": payload.signature.hex(),
                "amount": format_tokens(payload.amount, decimals),
            },
            indent=1,
        )
    )
    if not yes and not click.confirm("approve the token and send this stake?", default=False):
        click.echo("nothing sent")
        return
    rid = op.stake(payload)
    click.echo(f"staked: registration #{rid} ({format_tokens(payload.amount, decimals)} tokens)")


def _status(target: Target, node: str | None, min_tokens: int) -> None:
    """Print the node's registrations and whether each is listed (and why not)."""
    from session.registry.chain import format_tokens  # noqa: PLC0415 - web3

    key = node.lower() if node else target.node_key()
    reader = target.reader()
    reader.min_amount = max(min_tokens * 10**reader.decimals, reader.contract_min)
    rows = list(reader.status_of(key))
    click.echo(f"node {key} on chain {reader.chain_id}, block {reader.synced}:")
    if not rows:
        click.echo("  not listed: no registration on the staking contract")
    for reg, why in rows:
        state = "listed" if why is None else f"not listed: {why}"
        exit_note = f", unlocks at block {reg.unlock_block}" if reg.unlock_block else ""
        click.echo(
            f"  registration #{reg.rid} by {reg.operator}: "
            f"{format_tokens(reg.amount, reader.decimals)} tokens{exit_note}; {for_terminal(state)}"
        )


def _unstake(target: Target, account: Any, yes: bool) -> None:
    """Request the exit of the operator's registration for the node, or withdraw it once
    unlocked."""
    from session.registry.staking import Operator  # noqa: PLC0415 - web3

    key = target.node_key()
    reader = target.reader()
    mine = [reg for reg, _ in reader.status_of(key) if reg.contributions.get(account.address)]
    if not mine:
        raise InvalidInput(f"{account.address} has no stake in a registration of node {key}")
    op = Operator(reader.w3, target.contract, account)
    for reg in mine:
        if not reg.unlock_block:
            if reg.operator != account.address:
                click.echo(f"registration #{reg.rid}: only its operator {reg.operator} may exit")
                continue
            if not yes and not click.confirm(
                f"request the exit of registration #{reg.rid}?", default=False
            ):
                continue
            receipt = op.request_exit(reg.rid)
            unlock = int(receipt["blockNumber"]) + reader.unlock_blocks
            click.echo(f"registration #{reg.rid}: exit requested, unlocks at block {unlock}")
        elif reader.synced + 1 < reg.unlock_block:
            click.echo(
                f"registration #{reg.rid}: unlocks at block {reg.unlock_block} "
                f"(now {reader.synced}); run unstake again then"
            )
        else:
            op.withdraw(reg.rid)
            click.echo(f"registration #{reg.rid}: stake withdrawn to {account.address}")


__all__ = ["Target", "add_commands", "chain_options", "key_option", "target_options"]
