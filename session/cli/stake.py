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

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from session.errors import InvalidInput
from session.node import keys
from session.node.config import load_config
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


def _reader(rpc: str, contract: str, start_block: int) -> Any:
    from session.registry.chain import ChainReader, connect  # noqa: PLC0415 - web3, see above

    reader = ChainReader(connect(rpc), contract, min_tokens=0, start_block=start_block)
    reader.sync()
    return reader


def _node(config_path: Path | None, data_dir: Path | None) -> tuple[Any, Any]:
    cfg = load_config(config_path, overrides={"data_dir": data_dir})
    return cfg, keys.load(cfg.data_dir)


def stake_command(
    config_path: Path | None,
    data_dir: Path | None,
    rpc: str | None,
    contract: str | None,
    key_file: Path | None,
    amount: int,
    yes: bool,
) -> None:
    """Stake ``amount`` whole tokens for the configured node."""
    from session.registry.chain import connect, format_tokens  # noqa: PLC0415 - web3
    from session.registry.staking import Operator  # noqa: PLC0415 - web3

    rpc, contract = _need(rpc, "--rpc"), _need(contract, "--contract")
    account = _operator_account(Path(_need(str(key_file) if key_file else None, "--key-file")))
    cfg, identity = _node(config_path, data_dir)
    op = Operator(connect(rpc), contract, account)
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


def status_command(
    config_path: Path | None,
    data_dir: Path | None,
    rpc: str | None,
    contract: str | None,
    start_block: int,
    node: str | None,
    min_tokens: int,
) -> None:
    """Print the node's registrations and whether each is listed (and why not)."""
    from session.registry.chain import format_tokens  # noqa: PLC0415 - web3

    rpc, contract = _need(rpc, "--rpc"), _need(contract, "--contract")
    key = node.lower() if node else bytes(_node(config_path, data_dir)[1].ed25519_public).hex()
    reader = _reader(rpc, contract, start_block)
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


def unstake_command(
    config_path: Path | None,
    data_dir: Path | None,
    rpc: str | None,
    contract: str | None,
    start_block: int,
    key_file: Path | None,
    yes: bool,
) -> None:
    """Request the exit of the operator's registration for the node, or withdraw it once
    unlocked."""
    from session.registry.staking import Operator  # noqa: PLC0415 - web3

    rpc, contract = _need(rpc, "--rpc"), _need(contract, "--contract")
    account = _operator_account(Path(_need(str(key_file) if key_file else None, "--key-file")))
    key = bytes(_node(config_path, data_dir)[1].ed25519_public).hex()
    reader = _reader(rpc, contract, start_block)
    mine = [reg for reg, _ in reader.status_of(key) if reg.contributions.get(account.address)]
    if not mine:
        raise InvalidInput(f"{account.address} has no stake in a registration of node {key}")
    op = Operator(reader.w3, contract, account)
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


__all__ = ["chain_options", "key_option", "stake_command", "status_command", "unstake_command"]
