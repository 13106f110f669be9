"""``session-node stake``, ``stake status`` and ``unstake`` against a registry with its chain
(served in a thread of this process, over real HTTPS JSON-RPC at ``/chain``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from session.cli.node import main
from session.identity import Identity
from session.node import keys
from session.registry import server
from session.registry.chain import ChainOptions, artifact, connect
from session.registry.devchain import PREFUNDED
from session.registry.staking import (
    GAS,
    Operator,
    devnet_key,
    fund_and_stake,
    new_account,
    operator_key,
    send_transaction,
)

SEED = "stake-cli"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A registry with a devnet chain, its event loop in a thread (the CLI blocks)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        box["srv"] = await server.start(
            "127.0.0.1", 0, tmp_path_factory.mktemp("registry"), 25_000, SEED,
            chain=ChainOptions(devnet=True, unlock_blocks=2),
        )  # fmt: skip
        ready.set()

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=60)
    ready.wait(60)
    srv = box["srv"]
    try:
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


@pytest.fixture
def node(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "node"
    ident = keys.generate(data)
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'data_dir = "{data}"\n[network]\npublic_ip = "127.0.0.1"\n'
        "https_port = 41001\nzmq_port = 41002\n"
    )
    return cfg, bytes(ident.ed25519_public).hex()


@pytest.fixture
def keystore(tmp_path: Path, registry: Any) -> tuple[Path, Any]:
    """Operator 0 of the devnet seed (ETH at genesis), given 80,000 tokens, in a keystore."""
    key = operator_key(SEED, 0)
    acct = new_account(key)
    path = tmp_path / "operator.json"
    path.write_text(json.dumps(Account.encrypt(key, PASSWORD, kdf="pbkdf2", iterations=2)))
    w3 = connect(registry.chain_info["rpc"])
    token = w3.eth.contract(address=registry.chain_info["token"], abi=artifact("devtoken")["abi"])
    if token.functions.balanceOf(acct.address).call() == 0:
        deployer = new_account(devnet_key(SEED, "deployer"))
        mint = token.functions.mint(acct.address, 80_000 * 10**9)
        send_transaction(w3, deployer, mint, GAS["mint"])
    return path, acct


def cli(registry: Any, *args: str, password: str = PASSWORD, stdin: str | None = None) -> Any:
    runner = CliRunner(env={"SESSION_OPERATOR_PASSWORD": password})
    chain = ["--rpc", registry.chain_info["rpc"], "--contract", registry.chain_info["contract"]]
    return runner.invoke(main, [*args, *chain], input=stdin)


def test_stake_status_and_unstake(registry: Any, node: tuple[Path, str], keystore: Any) -> None:
    cfg, key = node
    path, acct = keystore
    r = cli(registry, "stake", "status", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert "not listed: no registration on the staking contract" in r.output
    # the payload is printed and nothing is sent without a yes
    r = cli(registry, "stake", "--config", str(cfg), "--key-file", str(path), "--amount",
            "24999", stdin="n\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert '"pubkey_ed25519": "' + key in r.output and '"storage_port": 41001' in r.output
    assert '"amount": "24,999"' in r.output and "nothing sent" in r.output
    r = cli(registry, "stake", "--config", str(cfg), "--key-file", str(path), "--amount",
            "24999", stdin="y\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "staked: registration #" in r.output
    assert key not in {n.pubkey_ed25519 for n in registry.registry.nodes(active_only=True)}
    r = cli(registry, "stake", "status", "--config", str(cfg))
    assert "24,999 tokens; not listed: its stake of 24,999 tokens is below the 25,000" in r.output
    r = cli(registry, "stake", "--config", str(cfg), "--key-file", str(path), "--yes")
    assert r.exit_code == 0, r.output
    assert key in {n.pubkey_ed25519 for n in registry.registry.nodes(active_only=True)}
    r = cli(registry, "stake", "--config", str(cfg), "--key-file", str(path), "--yes")
    r = cli(registry, "stake", "status", "--config", str(cfg))
    lines = [ln for ln in r.output.splitlines() if "registration #" in ln]
    assert len(lines) == 3 and lines[1].endswith("; listed")
    assert "its node key is already registered" in lines[2]
    # neither the operator's key nor the password is ever printed
    secret = operator_key(SEED, 0).hex()
    assert secret not in r.output and PASSWORD not in r.output
    # a wrong password is one sentence
    r = cli(registry, "unstake", "--config", str(cfg), "--key-file", str(path), "--yes",
            password="wrong")  # fmt: skip
    assert r.exit_code == 1 and "the password does not open" in r.output
    # leaving: exit requested (still listed until the unlock block), then withdrawn
    r = cli(registry, "unstake", "--config", str(cfg), "--key-file", str(path), "--yes")
    assert r.exit_code == 0 and r.output.count("exit requested, unlocks at block") == 3, r.output
    assert key in {n.pubkey_ed25519 for n in registry.registry.nodes(active_only=True)}
    early = cli(registry, "unstake", "--config", str(cfg), "--key-file", str(path), "--yes")
    assert "run unstake again then" in early.output  # the last exit is not unlocked yet
    w3 = connect(registry.chain_info["rpc"])
    w3.provider.make_request("evm_mine", [2])
    assert key not in {n.pubkey_ed25519 for n in registry.registry.nodes(active_only=True)}
    r = cli(registry, "unstake", "--config", str(cfg), "--key-file", str(path), "--yes")
    assert r.exit_code == 0, r.output
    assert (early.output + r.output).count("stake withdrawn") == 3, early.output + r.output
    r = cli(registry, "stake", "status", "--config", str(cfg))
    assert r.output.count("0 tokens, unlocks at block") == 3
    token = w3.eth.contract(address=registry.chain_info["token"], abi=artifact("devtoken")["abi"])
    assert token.functions.balanceOf(acct.address).call() == 80_000 * 10**9


def test_missing_options_are_sentences(registry: Any, node: tuple[Path, str]) -> None:
    cfg, _ = node
    r = CliRunner().invoke(main, ["stake", "status", "--config", str(cfg)])
    assert r.exit_code == 1 and "--rpc is required" in r.output
    r = cli(registry, "stake", "--config", str(cfg))
    assert r.exit_code == 1 and "--key-file is required" in r.output


def test_bulk_staking_funds_operators_beyond_genesis(registry: Any) -> None:
    """The devnet's batch staking (one JSON-RPC batch): an operator without ETH (beyond the
    ones funded at genesis) gets some first; both nodes are listed once it returns."""
    info = registry.chain_info
    w3 = connect(info["rpc"])
    stakes = []
    for index in (1, PREFUNDED + 3):
        op = Operator(w3, info["contract"], new_account(operator_key(SEED, index)),
                      chain_id=info["chain_id"], token=info["token"])  # fmt: skip
        ident = Identity.from_seed(bytes([index]) * 32)
        stakes.append((op, op.payload(ident, public_ip="127.0.0.1", storage_port=42000 + 2 * index,
                                      storage_lmq_port=42001 + 2 * index,
                                      amount=25_000 * 10**9)))  # fmt: skip
    assert w3.eth.get_balance(stakes[1][0].address) == 0
    rids = fund_and_stake(w3, new_account(devnet_key(SEED, "deployer")), stakes)
    assert len(set(rids)) == 2
    listed = {n.pubkey_ed25519 for n in registry.registry.nodes(active_only=True)}
    assert {p.pubkey_ed25519 for _, p in stakes} <= listed
    assert w3.eth.get_balance(stakes[1][0].address) > 0
