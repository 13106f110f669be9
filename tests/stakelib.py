"""Shared helpers of the staking tests: an in-process chain, funded operators, and an
independent rebuild of the node list from the contract's raw event logs.

:func:`rebuild_from_logs` is written apart from :mod:`session.registry.chain` on purpose: it
decodes the raw logs with eth-abi and applies the listing rules as the issue states them, so a
test comparing the two checks the registry against a second reading of the chain.
"""

from __future__ import annotations

import os
from typing import Any

from eth_abi import decode
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from session.identity import Identity, ed25519_to_x25519, verify
from session.registry.devchain import DevChain
from session.registry.staking import (
    DECIMALS,
    GAS,
    Operator,
    StakePayload,
    new_account,
    operator_key,
    send_transaction,
)

TOKEN = 10**DECIMALS
SEED = "stake-tests"


def node_identity() -> Identity:
    return Identity.from_seed(os.urandom(32))


def operator(chain: DevChain, index: int) -> Operator:
    return Operator(chain.w3, chain.contract, new_account(operator_key(chain.seed, index)))


def mint(chain: DevChain, op: Operator, tokens: int) -> None:
    call = op.token.functions.mint(op.address, tokens * TOKEN)
    send_transaction(chain.w3, chain.deployer, call, GAS["mint"])


def payload(
    op: Operator,
    ident: Identity,
    tokens: int,
    *,
    port: int = 20000,
    ip: str = "127.0.0.1",
) -> StakePayload:
    return op.payload(
        ident, public_ip=ip, storage_port=port, storage_lmq_port=port + 1, amount=tokens * TOKEN
    )


def stake(chain: DevChain, op: Operator, ident: Identity, tokens: int, **kw: Any) -> int:
    """Mint ``tokens`` to the operator and stake them for ``ident``'s node."""
    mint(chain, op, tokens)
    return op.stake(payload(op, ident, tokens, **kw))


# ---------------------------------------------------------------- independent rebuild

_SIGS = {
    "Staked(uint256,address,bytes32,bytes32,bytes16,uint16,uint16,bytes,uint256)": "staked",
    "StakeAdded(uint256,address,uint256,uint256)": "added",
    "ExitRequested(uint256,uint256)": "exit",
    "Withdrawn(uint256,address,uint256)": "withdrawn",
}
_TOPICS = {"0x" + keccak(text=sig).hex(): kind for sig, kind in _SIGS.items()}
_TAG = b"session-stake/v1\n"


def _ip(raw: bytes) -> str:
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in raw[12:])
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


def rebuild_from_logs(
    w3: Web3,
    contract: str,
    *,
    at_block: int | None = None,
    min_tokens: int = 25_000,
    decimals: int = DECIMALS,
) -> dict[str, dict[str, Any]]:
    """The node list (Ed25519 key → listed fields) at ``at_block`` from the contract's raw logs
    (any web3: the in-process chain, or a devnet registry's ``/chain``)."""
    token = 10**decimals
    chain_id = int(w3.eth.chain_id)
    head = w3.eth.block_number if at_block is None else at_block
    logs = w3.eth.get_logs({"address": contract, "fromBlock": 0, "toBlock": head})
    regs: dict[int, dict[str, Any]] = {}
    for log in logs:
        kind = _TOPICS.get("0x" + bytes(log["topics"][0]).hex())
        rid = int.from_bytes(bytes(log["topics"][1]), "big")
        data = bytes(log["data"])
        if kind == "staked":
            operator = to_checksum_address(bytes(log["topics"][2])[12:])
            ed = bytes(log["topics"][3])
            x, ip, hp, zp, sig, amount = decode(
                ["bytes32", "bytes16", "uint16", "uint16", "bytes", "uint256"], data
            )
            regs[rid] = {"operator": operator, "ed": ed, "x": x, "ip": _ip(ip), "https": hp,
                         "zmq": zp, "sig": sig, "amount": amount, "unlock": 0}  # fmt: skip
        elif kind == "added":
            _, total = decode(["uint256", "uint256"], data)
            regs[rid]["amount"] = total
        elif kind == "exit":
            (regs[rid]["unlock"],) = decode(["uint256"], data)
        elif kind == "withdrawn":
            (amount,) = decode(["uint256"], data)
            regs[rid]["amount"] -= amount
    out: dict[str, dict[str, Any]] = {}
    used: set[tuple[str, int]] = set()
    for rid in sorted(regs):
        r = regs[rid]
        if r["unlock"] and head >= r["unlock"]:
            continue
        if r["amount"] < min_tokens * token:
            continue
        if bytes(ed25519_to_x25519(r["ed"])) != r["x"]:
            continue
        message = (
            _TAG
            + chain_id.to_bytes(32, "big")
            + bytes.fromhex(contract[2:])
            + bytes.fromhex(r["operator"][2:])
        )
        try:
            verify(r["ed"], message, r["sig"])
        except ValueError:
            continue
        key = r["ed"].hex()
        ports = {(r["ip"], r["https"]), (r["ip"], r["zmq"])}
        if key in out or ports & used:
            continue
        used |= ports
        out[key] = {
            "pubkey_x25519": r["x"].hex(),
            "public_ip": r["ip"],
            "storage_port": r["https"],
            "storage_lmq_port": r["zmq"],
            "stake": r["amount"] // token,
        }
    return out
