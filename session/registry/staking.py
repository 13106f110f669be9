"""An operator's side of the staking contract: signed transactions through web3.py.

:class:`Operator` holds one Ethereum account (a local key: eth-account signs, the chain only
sees raw signed transactions) and sends the contract's calls: ``approve`` of the stake token,
``stake``, ``add_stake``, ``request_exit`` and ``withdraw``. Each call waits for its receipt and
returns it; a refused call raises :class:`~session.registry.chain.ChainError` with the
contract's reason. The devnet stakes its nodes with it and so does ``session-node stake``.

:func:`deploy` puts a compiled contract on a chain (the devnet's token and staking contract).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception
from web3.logs import DISCARD
from web3.types import Nonce, RPCEndpoint

from session.registry.chain import ChainError, artifact, ip_to_bytes16, sign_stake
from session.registry.messages import Signer

#: Gas limits of our calls (measured in tests/registry/test_staking_contract.py, with headroom);
#: fixed so that sending needs no estimate round trip.
GAS = {
    "approve": 80_000,
    "mint": 100_000,
    "transfer": 80_000,
    "stake": 450_000,
    "add_stake": 120_000,
    "request_exit": 80_000,
    "withdraw": 120_000,
    "deploy": 3_000_000,
}


#: Decimals of the devnet token (as Session's token).
DECIMALS = 9
#: Blocks between an exit request and the unlock, on a devnet.
DEVNET_UNLOCK_BLOCKS = 4


def devnet_key(seed: str, role: str) -> bytes:
    """A devnet account's private key, derived from the devnet seed and the account's role
    (``deployer``, ``operator-0``, …): public knowledge, as the devnet itself."""
    raw = f"{seed}/{role}".encode()
    return hashlib.blake2b(raw, digest_size=32, person=b"session-devkey").digest()


def operator_key(seed: str, index: int) -> bytes:
    """The devnet key of the operator of node ``index``."""
    return devnet_key(seed, f"operator-{index}")


@dataclasses.dataclass(frozen=True, slots=True)
class StakePayload:
    """What a ``stake`` call submits (printed for the operator before it is sent)."""

    pubkey_ed25519: str
    pubkey_x25519: str
    public_ip: str
    storage_port: int
    storage_lmq_port: int
    signature: bytes
    amount: int  # base units

    def args(self) -> tuple[Any, ...]:
        return (
            bytes.fromhex(self.pubkey_ed25519),
            bytes.fromhex(self.pubkey_x25519),
            ip_to_bytes16(self.public_ip),
            self.storage_port,
            self.storage_lmq_port,
            self.signature,
            self.amount,
        )


class Operator:
    """One account sending transactions to the staking contract (and its token)."""

    def __init__(
        self,
        w3: Web3,
        contract: str,
        account: LocalAccount,
        *,
        chain_id: int | None = None,
        token: str | None = None,
    ) -> None:
        """``chain_id`` and ``token`` (the stake token's address) are read from the chain
        unless given."""
        self.w3 = w3
        self.account = account
        self.chain_id = int(w3.eth.chain_id) if chain_id is None else chain_id
        self.contract = w3.eth.contract(
            address=Web3.to_checksum_address(contract), abi=artifact("staking")["abi"]
        )
        token = self.contract.functions.token().call() if token is None else token
        self.token = w3.eth.contract(
            address=Web3.to_checksum_address(token), abi=artifact("devtoken")["abi"]
        )
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def payload(
        self,
        identity: Signer,
        *,
        public_ip: str,
        storage_port: int,
        storage_lmq_port: int,
        amount: int,
    ) -> StakePayload:
        """The ``stake`` arguments for ``identity``'s node, signed by the node key."""
        return StakePayload(
            pubkey_ed25519=bytes(identity.ed25519_public).hex(),
            pubkey_x25519=bytes(identity.x25519_public).hex(),
            public_ip=public_ip,
            storage_port=int(storage_port),
            storage_lmq_port=int(storage_lmq_port),
            signature=sign_stake(identity, self.chain_id, self.contract.address, self.address),
            amount=int(amount),
        )

    # -- calls -------------------------------------------------------------------------------

    def approve(self, amount: int) -> Any:
        return self.send(self.token.functions.approve(self.contract.address, amount), "approve")

    def stake(self, payload: StakePayload, *, approve: bool = True) -> int:
        """Approve the amount (unless told not to) and stake; returns the registration ID."""
        if approve:
            self.approve(payload.amount)
        receipt = self.send(self.contract.functions.stake(*payload.args()), "stake")
        events = self.contract.events.Staked().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["id"])

    def add_stake(self, rid: int, amount: int, *, approve: bool = True) -> Any:
        if approve:
            self.approve(amount)
        return self.send(self.contract.functions.add_stake(rid, amount), "add_stake")

    def request_exit(self, rid: int) -> Any:
        return self.send(self.contract.functions.request_exit(rid), "request_exit")

    def withdraw(self, rid: int) -> Any:
        return self.send(self.contract.functions.withdraw(rid), "withdraw")

    def send(self, call: Any, kind: str) -> Any:
        """Sign and send one contract call; returns its receipt once mined."""
        return send_transaction(self.w3, self.account, call, GAS[kind], self)


def send_transaction(
    w3: Web3, account: LocalAccount, call: Any, gas: int, nonces: Operator | None = None
) -> Any:
    """Build ``call`` (a contract function or constructor) for ``account``, sign it locally,
    send it raw and wait for the receipt. The revert reason becomes a :class:`ChainError`."""
    try:
        if hasattr(call, "call"):  # a dry run first: a refusal comes back with its reason
            call.call({"from": account.address}, block_identifier="pending")
        nonce = int(w3.eth.get_transaction_count(account.address, "pending"))
        if nonces is not None and nonces._nonce is not None:
            nonce = max(nonce, nonces._nonce)
        tx = call.build_transaction(
            {
                "from": account.address,
                "nonce": Nonce(nonce),
                "gas": gas,
                "chainId": int(w3.eth.chain_id),
            }
        )
        signed = account.sign_transaction(tx)
        txh = w3.eth.send_raw_transaction(signed.raw_transaction)
        if nonces is not None:
            nonces._nonce = nonce + 1
        receipt = w3.eth.wait_for_transaction_receipt(txh, timeout=120, poll_latency=0.1)
    except ContractLogicError as e:
        raise ChainError(f"the contract refused the call: {_reason(e)}", 400) from None
    except TimeExhausted:
        raise ChainError("the transaction was not mined within 120 s", 0) from None
    except (Web3Exception, OSError, ValueError) as e:
        raise ChainError(f"the chain refused the transaction: {_reason(e)}", 0) from None
    if receipt["status"] != 1:
        raise ChainError("the transaction failed on chain (reverted)", 400)
    return receipt


#: Fees of the devnet's batched transactions (a local chain: generous, never re-estimated).
DEVNET_FEES = {"maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}


def fund_and_stake(
    w3: Web3,
    funder: LocalAccount,
    stakes: list[tuple[Operator, StakePayload]],
    *,
    eth: int = 10**18,
) -> list[int]:
    """A devnet's bulk staking: for each ``(operator, payload)``, ``funder`` (the token's
    minter) sends the operator ETH if it has none and mints it the payload's amount, then the
    operator approves and stakes. Every transaction is signed here with explicit nonce, gas and
    fees and all go in one JSON-RPC batch (then one batch for the receipts), so staking N
    nodes costs three round trips. Returns the registration IDs in order."""
    if not stakes:
        return []
    chain_id = stakes[0][0].chain_id
    accounts = [funder, *(op.account for op, _ in stakes)]
    asks = [(RPCEndpoint("eth_getTransactionCount"), [a.address, "pending"]) for a in accounts]
    asks += [(RPCEndpoint("eth_getBalance"), [a.address, "latest"]) for a in accounts[1:]]
    answers = [int(str(_result(a)), 16) for a in _batch(w3, asks)]
    nonces = {a.address: n for a, n in zip(accounts, answers[: len(accounts)], strict=True)}
    balances = answers[len(accounts) :]
    raw: list[bytes] = []
    staked: list[int] = []

    def sign(account: LocalAccount, tx: dict[str, Any]) -> None:
        tx = {**tx, "nonce": nonces[account.address], "chainId": chain_id, **DEVNET_FEES}
        nonces[account.address] += 1
        raw.append(bytes(account.sign_transaction(tx).raw_transaction))

    def call_tx(account: LocalAccount, call: Any, kind: str) -> dict[str, Any]:
        built: dict[str, Any] = call.build_transaction(
            {"from": account.address, "gas": GAS[kind], "nonce": Nonce(0), "chainId": chain_id,
             **DEVNET_FEES}
        )  # fmt: skip
        return {k: v for k, v in built.items() if k not in ("nonce", "chainId")}

    for (op, payload), balance in zip(stakes, balances, strict=True):
        if balance == 0:
            sign(funder, {"to": op.address, "value": eth, "gas": 21_000})
        sign(funder, call_tx(funder, op.token.functions.mint(op.address, payload.amount), "mint"))
        approve = op.token.functions.approve(op.contract.address, payload.amount)
        sign(op.account, call_tx(op.account, approve, "approve"))
        sign(op.account, call_tx(op.account, op.contract.functions.stake(*payload.args()), "stake"))
        staked.append(len(raw) - 1)
    sends = [(RPCEndpoint("eth_sendRawTransaction"), ["0x" + r.hex()]) for r in raw]
    hashes = [_result(a) for a in _batch(w3, sends)]
    asks = [(RPCEndpoint("eth_getTransactionReceipt"), [h]) for h in hashes]
    receipts = [_result(a) for a in _batch(w3, asks)]  # eth-tester mines each at once
    if any(not isinstance(r, dict) or int(str(r.get("status")), 16) != 1 for r in receipts):
        raise ChainError("a devnet staking transaction failed on chain (reverted)", 400)
    staked_topic = _topic(stakes[0][0].contract.events.Staked)
    out = []
    for i in staked:
        ids = [int(log["topics"][1], 16) for log in receipts[i]["logs"]
               if log["topics"] and log["topics"][0] == staked_topic]  # fmt: skip
        out.append(ids[0])
    return out


def _batch(w3: Web3, requests: list[tuple[RPCEndpoint, Any]]) -> list[Any]:
    """Raw JSON-RPC batch (web3's batch API refuses ``eth_sendRawTransaction``)."""
    provider = w3.provider
    if not isinstance(provider, HTTPProvider):
        raise ChainError("batched devnet staking needs an HTTP JSON-RPC provider", 0)
    try:
        answers = provider.make_batch_request(requests)
    except (Web3Exception, OSError, ValueError) as e:
        raise ChainError(f"the chain refused the devnet's staking: {_reason(e)}", 0) from None
    if not isinstance(answers, list):
        raise ChainError(f"the chain refused the devnet's staking: {answers}", 0)
    return answers


def _result(answer: Any) -> Any:
    if not isinstance(answer, dict) or "error" in answer:
        err = answer.get("error") if isinstance(answer, dict) else answer
        raise ChainError(f"the chain refused a devnet staking transaction: {err}", 400)
    return answer["result"]


def _topic(event: Any) -> str:
    text = str(event.topic)
    return text if text.startswith("0x") else "0x" + text


def _reason(e: Exception) -> str:
    text = str(e.args[0]) if e.args else str(e)
    return text.removeprefix("execution reverted: ")


def deploy(w3: Web3, account: LocalAccount, name: str, *args: Any) -> str:
    """Deploy compiled contract ``name`` with constructor ``args``; returns its address."""
    art = artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    receipt = send_transaction(w3, account, factory.constructor(*args), GAS["deploy"])
    return str(receipt["contractAddress"])


def new_account(key: bytes) -> LocalAccount:
    """The account of a 32-byte private key."""
    acct: LocalAccount = Account.from_key(key)
    return acct


__all__ = [
    "DECIMALS",
    "DEVNET_UNLOCK_BLOCKS",
    "GAS",
    "Operator",
    "StakePayload",
    "deploy",
    "devnet_key",
    "fund_and_stake",
    "new_account",
    "operator_key",
    "send_transaction",
]
