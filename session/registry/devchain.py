"""The devnet's chain: a local EVM (py-evm through eth-tester) inside the registry's process.

:class:`DevChain` starts the chain with funded accounts derived from the devnet seed (a
deployer and operators ``0..PREFUNDED-1``: ETH at genesis, so funding needs no transaction),
deploys the devnet token and the staking contract once, and answers Ethereum JSON-RPC
(:meth:`DevChain.rpc`, served at ``/chain`` on the registry's site) so that the devnet, the
operator commands and nodes reach it like any chain. eth-tester mines a block per transaction;
``evm_mine`` mines empty blocks (the devnet's way of letting an unlock period pass).

Only the methods a client of the contract needs are served: reads, ``eth_sendRawTransaction``
(signed elsewhere) and ``evm_mine``; never ``eth_sendTransaction`` (the chain's own unlocked
test accounts would sign for anyone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from eth_keys import keys as eth_keys

# eth-tester ships no type information (no py.typed, no stubs).
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]
from eth_tester.backends.pyevm.main import (  # type: ignore[import-untyped]
    generate_genesis_state_for_keys,
)
from eth_tester.exceptions import (  # type: ignore[import-untyped]
    TransactionFailed,
    ValidationError,
)
from eth_utils.exceptions import ValidationError as EthValidationError
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import Web3Exception
from web3.providers import BaseProvider
from web3.types import RPCEndpoint, RPCResponse

from session.registry.chain import restore_recursion_limit
from session.registry.staking import (
    DECIMALS,
    DEVNET_UNLOCK_BLOCKS,
    deploy,
    devnet_key,
    new_account,
    operator_key,
)

restore_recursion_limit()  # eth-tester imported py-evm, which raised it

#: Operator accounts funded with ETH at genesis (more are funded by a transfer when needed).
PREFUNDED = 16
GENESIS_ETH = 10**6 * 10**18

#: JSON-RPC methods the devnet chain answers.
RPC_METHODS = frozenset(
    {
        "web3_clientVersion",
        "net_version",
        "eth_chainId",
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getBalance",
        "eth_getCode",
        "eth_getTransactionCount",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getLogs",
        "eth_call",
        "eth_estimateGas",
        "eth_sendRawTransaction",
        "evm_mine",
    }
)


def _jsonable(value: Any) -> Any:
    """eth-tester's results as JSON-RPC text: quantities as hex, bytes as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


class _LocalProvider(BaseProvider):
    """web3 provider answering from :meth:`DevChain.rpc` in this process."""

    def __init__(self, chain: DevChain) -> None:
        super().__init__()
        self._chain = chain
        self._id = 0

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._id += 1
        doc = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        return cast(RPCResponse, self._chain.rpc(doc))

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


class DevChain:
    """A local chain with the devnet token and staking contract deployed."""

    def __init__(
        self,
        seed: str,
        *,
        min_tokens: int = 25_000,
        unlock_blocks: int = DEVNET_UNLOCK_BLOCKS,
    ) -> None:
        self.seed = seed
        self.deployer = new_account(devnet_key(seed, "deployer"))
        funded = [eth_keys.PrivateKey(devnet_key(seed, "deployer"))]
        funded += [eth_keys.PrivateKey(operator_key(seed, i)) for i in range(PREFUNDED)]
        genesis = dict(PyEVMBackend.generate_genesis_state(num_accounts=1))
        genesis.update(generate_genesis_state_for_keys(funded, overrides={"balance": GENESIS_ETH}))
        self.tester = EthereumTester(PyEVMBackend(genesis_state=genesis))
        tester_w3 = Web3(EthereumTesterProvider(self.tester))
        self._request = tester_w3.provider.request_func(tester_w3, tester_w3.middleware_onion)
        #: web3 in this process, through the same JSON-RPC answers remote clients get
        self.w3 = Web3(_LocalProvider(self))
        self.token = deploy(
            self.w3, self.deployer, "devtoken", "Session devnet token", "DSESH", DECIMALS
        )
        self.contract = deploy(
            self.w3, self.deployer, "staking", self.token, min_tokens * 10**DECIMALS, unlock_blocks
        )
        self.deploy_block = int(self.w3.eth.block_number)
        self.chain_id = int(self.w3.eth.chain_id)
        self.unlock_blocks = unlock_blocks

    def rpc(self, doc: Any) -> dict[str, Any]:
        """Answer one JSON-RPC request object (a refused or failing call is a JSON-RPC
        error, never an exception)."""
        req_id = doc.get("id") if isinstance(doc, Mapping) else None

        def error(code: int, message: str) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}

        if not isinstance(doc, Mapping) or not isinstance(doc.get("method"), str):
            return error(-32600, "request must be an object with a method")
        method = doc["method"]
        params = doc.get("params", [])
        if method not in RPC_METHODS:
            return error(-32601, f"method {method!r} is not served by the devnet chain")
        if not isinstance(params, list):
            return error(-32602, "params must be a list")
        try:
            response = self._request(method, params)
        except TransactionFailed as e:
            return error(3, str(e.args[0]) if e.args else "execution reverted")
        except (ValidationError, EthValidationError, Web3Exception, ValueError, TypeError) as e:
            return error(-32000, str(e))
        if "error" in response:
            err = response["error"]
            message = err.get("message", str(err)) if isinstance(err, Mapping) else str(err)
            return error(-32000, message)
        return {"jsonrpc": "2.0", "id": req_id, "result": _jsonable(response.get("result"))}

    def describe(self, rpc_url: str) -> dict[str, Any]:
        """What ``nodes.json`` says about the chain (``chain``)."""
        return {
            "rpc": rpc_url,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "token": self.token,
            "deploy_block": self.deploy_block,
            "unlock_blocks": self.unlock_blocks,
            "decimals": DECIMALS,
        }


__all__ = ["PREFUNDED", "RPC_METHODS", "DevChain"]
