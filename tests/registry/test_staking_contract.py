"""The staking contract and the devnet token on a local chain (py-evm through eth-tester, in
this process): every function, every refusal, every event; the compiled artifact matches its
sources; the gas each call uses stays within the limits the operator commands send."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from web3.logs import DISCARD

from session.registry.chain import ChainError, ip_from_bytes16, ip_to_bytes16, stake_message
from session.registry.devchain import DevChain
from session.registry.staking import GAS, deploy, new_account, operator_key
from stakelib import SEED, TOKEN, mint, node_identity, operator, payload, stake

ROOT = Path(__file__).resolve().parents[2]
UNLOCK = 4


@pytest.fixture(scope="module")
def chain() -> DevChain:
    return DevChain(SEED, unlock_blocks=UNLOCK)


def test_artifact_is_the_compiled_source() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "contracts.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


def test_constructor(chain: DevChain) -> None:
    st = chain.w3.eth.contract(address=chain.contract, abi=operator(chain, 0).contract.abi)
    assert st.functions.token().call() == chain.token
    assert st.functions.min_stake().call() == 25_000 * TOKEN
    assert st.functions.unlock_blocks().call() == UNLOCK
    with pytest.raises(ChainError, match="failed on chain"):
        deploy(chain.w3, chain.deployer, "staking", chain.token, 0, UNLOCK)


def test_ip_encoding_round_trips() -> None:
    for ip in ("127.0.0.1", "10.1.2.3", "::1", "2001:db8::7"):
        assert ip_from_bytes16(ip_to_bytes16(ip)) == ip


def test_stake_stores_the_registration_moves_tokens_and_logs(chain: DevChain) -> None:
    op = operator(chain, 0)
    ident = node_identity()
    before = op.token.functions.balanceOf(chain.contract).call()
    count = op.contract.functions.registration_count().call()
    mint(chain, op, 30_000)
    p = payload(op, ident, 25_000, port=21000)
    op.approve(p.amount)
    receipt = op.send(op.contract.functions.stake(*p.args()), "stake")
    assert receipt["gasUsed"] <= GAS["stake"]
    (ev,) = op.contract.events.Staked().process_receipt(receipt, errors=DISCARD)
    rid = ev["args"]["id"]
    assert rid == count + 1 == op.contract.functions.registration_count().call()
    assert ev["args"]["operator"] == op.address
    assert bytes(ev["args"]["ed25519"]) == bytes(ident.ed25519_public)
    assert bytes(ev["args"]["x25519"]) == bytes(ident.x25519_public)
    assert ip_from_bytes16(ev["args"]["ip"]) == "127.0.0.1"
    assert (ev["args"]["https_port"], ev["args"]["zmq_port"]) == (21000, 21001)
    assert ev["args"]["amount"] == 25_000 * TOKEN
    reg = op.contract.functions.registrations(rid).call()
    assert reg[0] == op.address and bytes(reg[6]) == p.signature and reg[7] == 25_000 * TOKEN
    assert reg[8] == 0  # no exit requested
    assert op.contract.functions.contributions(rid, op.address).call() == 25_000 * TOKEN
    assert op.token.functions.balanceOf(chain.contract).call() == before + 25_000 * TOKEN
    assert op.token.functions.balanceOf(op.address).call() == 5_000 * TOKEN
    # the node key's signature names this chain, contract and operator
    from session.identity import verify

    verify(
        ident.ed25519_public, stake_message(chain.chain_id, chain.contract, op.address), p.signature
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": 0}, "amount is zero"),
        ({"ed25519": b"\0" * 32}, "empty key"),
        ({"x25519": b"\0" * 32}, "empty key"),
        ({"https_port": 0}, "port is zero"),
        ({"zmq_port": 0}, "port is zero"),
        ({"signature": b"\1" * 63}, "signature is not 64 bytes"),
    ],
)
def test_stake_refusals(chain: DevChain, change: dict[str, object], reason: str) -> None:
    op = operator(chain, 1)
    mint(chain, op, 25_000)
    p = payload(op, node_identity(), 25_000)
    op.approve(p.amount)
    names = ["ed25519", "x25519", "ip", "https_port", "zmq_port", "signature", "amount"]
    args = dict(zip(names, p.args(), strict=True)) | change
    with pytest.raises(ChainError, match=reason):
        op.send(op.contract.functions.stake(*args.values()), "stake")


def test_stake_without_allowance_or_tokens_is_refused(chain: DevChain) -> None:
    op = operator(chain, 2)
    p = payload(op, node_identity(), 25_000)
    with pytest.raises(ChainError, match="allowance too low"):
        op.stake(p, approve=False)
    with pytest.raises(ChainError, match="balance too low"):
        op.stake(p)  # approved, but the account holds no tokens


def test_add_stake_by_a_contributor(chain: DevChain) -> None:
    op, friend = operator(chain, 3), operator(chain, 4)
    rid = stake(chain, op, node_identity(), 20_000, port=22000)
    mint(chain, friend, 5_000)
    receipt = friend.add_stake(rid, 5_000 * TOKEN)
    assert receipt["gasUsed"] <= GAS["add_stake"]
    (ev,) = friend.contract.events.StakeAdded().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["contributor"] == friend.address
    assert (ev["args"]["amount"], ev["args"]["total"]) == (5_000 * TOKEN, 25_000 * TOKEN)
    assert op.contract.functions.registrations(rid).call()[7] == 25_000 * TOKEN
    assert op.contract.functions.contributions(rid, friend.address).call() == 5_000 * TOKEN


def test_add_stake_refusals(chain: DevChain) -> None:
    op = operator(chain, 5)
    rid = stake(chain, op, node_identity(), 25_000, port=23000)
    mint(chain, op, 10)
    with pytest.raises(ChainError, match="amount is zero"):
        op.add_stake(rid, 0)
    with pytest.raises(ChainError, match="no such registration"):
        op.add_stake(10_000, TOKEN)
    op.request_exit(rid)
    with pytest.raises(ChainError, match="registration is exiting"):
        op.add_stake(rid, TOKEN)


def test_exit_unlock_and_withdraw(chain: DevChain) -> None:
    op, friend, stranger = operator(chain, 6), operator(chain, 7), operator(chain, 8)
    rid = stake(chain, op, node_identity(), 24_000, port=24000)
    mint(chain, friend, 1_000)
    friend.add_stake(rid, 1_000 * TOKEN)
    with pytest.raises(ChainError, match="exit not requested"):
        op.withdraw(rid)
    with pytest.raises(ChainError, match="not the operator"):
        friend.request_exit(rid)
    with pytest.raises(ChainError, match="no such registration"):
        op.request_exit(10_000)
    receipt = op.request_exit(rid)
    assert receipt["gasUsed"] <= GAS["request_exit"]
    (ev,) = op.contract.events.ExitRequested().process_receipt(receipt, errors=DISCARD)
    unlock = receipt["blockNumber"] + UNLOCK
    assert ev["args"]["unlock_block"] == unlock
    assert op.contract.functions.registrations(rid).call()[8] == unlock
    with pytest.raises(ChainError, match="exit already requested"):
        op.request_exit(rid)
    with pytest.raises(ChainError, match="stake still locked"):
        op.withdraw(rid)
    chain.tester.mine_blocks(unlock - chain.w3.eth.block_number - 1)
    # the withdrawal's own block is the unlock block
    receipt = op.withdraw(rid)
    assert receipt["blockNumber"] == unlock and receipt["gasUsed"] <= GAS["withdraw"]
    (ev,) = op.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
    assert (ev["args"]["contributor"], ev["args"]["amount"]) == (op.address, 24_000 * TOKEN)
    assert op.token.functions.balanceOf(op.address).call() == 24_000 * TOKEN
    with pytest.raises(ChainError, match="nothing to withdraw"):
        op.withdraw(rid)
    with pytest.raises(ChainError, match="nothing to withdraw"):
        stranger.withdraw(rid)
    friend.withdraw(rid)
    assert friend.token.functions.balanceOf(friend.address).call() == 1_000 * TOKEN
    assert op.contract.functions.registrations(rid).call()[7] == 0
    assert op.contract.functions.contributions(rid, friend.address).call() == 0


def test_devnet_token(chain: DevChain) -> None:
    op, other = operator(chain, 9), operator(chain, 10)
    t = op.token.functions
    assert (t.name().call(), t.symbol().call(), t.decimals().call()) == (
        "Session devnet token",
        "DSESH",
        9,
    )
    with pytest.raises(ChainError, match="only the minter mints"):
        op.send(t.mint(op.address, 1), "mint")
    mint(chain, op, 3)
    supply = t.totalSupply().call()
    op.send(t.transfer(other.address, TOKEN), "transfer")
    assert t.balanceOf(other.address).call() == TOKEN
    with pytest.raises(ChainError, match="balance too low"):
        op.send(t.transfer(other.address, 5 * TOKEN), "transfer")
    with pytest.raises(ChainError, match="allowance too low"):
        other.send(t.transferFrom(op.address, other.address, 1), "transfer")
    op.send(t.approve(other.address, TOKEN), "approve")
    assert t.allowance(op.address, other.address).call() == TOKEN
    other.send(t.transferFrom(op.address, other.address, TOKEN), "transfer")
    assert t.balanceOf(other.address).call() == 2 * TOKEN
    assert t.totalSupply().call() == supply


def test_an_unfunded_account_cannot_send(chain: DevChain) -> None:
    broke = new_account(operator_key("nobody's seed", 0))
    op = operator(chain, 0)
    with pytest.raises(ChainError, match="refused"):
        from session.registry.staking import send_transaction

        send_transaction(chain.w3, broke, op.token.functions.approve(op.address, 1), GAS["approve"])
