"""Service-node registrations read from the staking contract on an EVM chain.

The contract (``contracts/staking.vy``, compiled into ``contracts/artifacts.json``) holds one
registration per ``stake`` call: the operator's address, the node's Ed25519 and X25519 keys,
its address and ports, a signature by the node's Ed25519 key over :func:`stake_message`, the
staked amount and, once the operator asked to leave, the unlock block. Every change is an event
(``Staked``, ``StakeAdded``, ``ExitRequested``, ``Withdrawn``).

:class:`ChainReader` follows those events through web3.py (any JSON-RPC URL, or an in-process
chain on a devnet) and :func:`evaluate` decides, at a given block, which registrations a node
list may carry. A registration is listed when its stake reaches the requirement, its exit has
not reached the unlock block, the Ed25519 signature verifies and names this chain, contract and
operator, the X25519 key is the Ed25519 key's conversion, and no earlier listed registration has
the same node key or address and port. Everything else is refused with a sentence (the
registry logs it; ``session-node stake status`` shows it).

:meth:`ChainReader.sync` reports each block where the listed set may have changed (a block with
an event of the contract, or an unlock block), in order, with that block's hash: replaying them
gives the same swarms whoever replays (the swarm seed is the block hash, as in oxend).

web3 is imported here and in the operator's stake commands only, never on a node's start-up path.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import sys
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3

from session.errors import InvalidInput, InvalidKey, InvalidSignature, RegistryError
from session.identity import ed25519_to_x25519, verify
from session.registry.messages import Signer
from session.registry.state import ChainListing, Registry

log = logging.getLogger("session.registry")

#: Python's default recursion limit. py_ecc and py-evm (imported with web3 and eth-tester) raise
#: the interpreter's limit to 100,000 at import; with that limit a deeply nested JSON body makes
#: ``json.loads`` overflow the C stack and kill the process (a segfault) instead of raising
#: RecursionError (found by the registry's deep-JSON test). Nothing here recurses deeply (the
#: devnet's contract calls are two frames), so the default is restored after those imports.
RECURSION_LIMIT = 1000


def restore_recursion_limit() -> None:
    """Undo the raised recursion limit of the chain libraries (see :data:`RECURSION_LIMIT`)."""
    sys.setrecursionlimit(RECURSION_LIMIT)


restore_recursion_limit()

ARTIFACTS = Path(__file__).with_name("contracts") / "artifacts.json"
#: Domain tag of the node key's signature over (chain ID, contract, operator).
STAKE_TAG = b"session-stake/v1\n"
#: Events are read in windows of this many blocks (public RPC servers cap eth_getLogs ranges).
LOG_WINDOW = 5000


class ChainError(RegistryError):
    """The chain could not be read, or a transaction was refused (the message says why)."""


def artifact(name: str) -> dict[str, Any]:
    """The compiled contract ``name`` (``staking`` or ``devtoken``): ``abi`` and ``bytecode``."""
    doc = json.loads(ARTIFACTS.read_text())
    return dict(doc["contracts"][name])


def stake_message(chain_id: int, contract: str, operator: str) -> bytes:
    """The bytes the node's Ed25519 key signs to let ``operator`` stake for it on ``contract``
    of chain ``chain_id``: the tag, the chain ID (32 bytes big-endian), the contract's and the
    operator's 20-byte addresses. Binding the contract and chain keeps a signature from being
    replayed on another deployment."""
    return (
        STAKE_TAG
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(_address(contract)[2:])
        + bytes.fromhex(_address(operator)[2:])
    )


def sign_stake(identity: Signer, chain_id: int, contract: str, operator: str) -> bytes:
    """The node's signature over :func:`stake_message` (64 bytes)."""
    return bytes(identity.sign(stake_message(chain_id, contract, operator)))


def _address(value: str) -> ChecksumAddress:
    try:
        return to_checksum_address(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not an Ethereum address (0x and 40 hex digits)") from None


def ip_to_bytes16(ip: str) -> bytes:
    """An IPv4 or IPv6 address as the contract's 16 bytes (IPv4 mapped into IPv6)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidInput(f"{ip!r} is not an IPv4 or IPv6 address") from None
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{addr}").packed
    return addr.packed


def ip_from_bytes16(raw: bytes) -> str:
    """The text form of the contract's 16-byte address (a mapped IPv4 address as IPv4)."""
    addr = ipaddress.IPv6Address(bytes(raw))
    return str(addr.ipv4_mapped) if addr.ipv4_mapped is not None else str(addr)


@dataclasses.dataclass(slots=True)
class ChainRegistration:
    """One registration as the contract's events describe it."""

    rid: int
    operator: str
    pubkey_ed25519: str  # hex
    pubkey_x25519: str  # hex
    public_ip: str
    storage_port: int
    storage_lmq_port: int
    signature: bytes
    amount: int  # token base units
    unlock_block: int = 0  # 0: no exit requested
    contributions: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """Which registrations a node list carries at one block, and why the others do not."""

    listed: dict[str, ChainRegistration]  # by Ed25519 key (hex)
    refused: dict[int, str]  # registration ID → reason
    keys: dict[int, str] = dataclasses.field(default_factory=dict)  # registration ID → node key

    def reason(self, pubkey_ed25519: str) -> str | None:
        """Why the node key is not listed (None: it is)."""
        if pubkey_ed25519 in self.listed:
            return None
        why = [
            f"registration #{rid}: {self.refused[rid]}"
            for rid, key in self.keys.items()
            if key == pubkey_ed25519 and rid in self.refused
        ]
        return "; ".join(why) if why else "no registration on the staking contract"


def signature_problem(reg: ChainRegistration, chain_id: int, contract: str) -> str | None:
    """Why the registration's keys or signature are unacceptable, or None."""
    try:
        ed = bytes.fromhex(reg.pubkey_ed25519)
        if bytes(ed25519_to_x25519(ed)).hex() != reg.pubkey_x25519:
            return "its X25519 key is not the conversion of its Ed25519 key"
        verify(ed, stake_message(chain_id, contract, reg.operator), reg.signature)
    except InvalidKey:
        return "its Ed25519 key is not a valid public key"
    except InvalidSignature:
        return (
            "the signature does not verify with the node's Ed25519 key for this operator, "
            "chain and contract"
        )
    except InvalidInput:
        return "its signature is not 64 bytes"
    return None


def evaluate(
    registrations: Iterable[ChainRegistration],
    *,
    block: int,
    min_amount: int,
    chain_id: int,
    contract: str,
    decimals: int = 0,
) -> Verdict:
    """The registrations listed at ``block`` (earliest registration first wins a node key or an
    address and port) and the reasons for the rest."""
    listed: dict[str, ChainRegistration] = {}
    refused: dict[int, str] = {}
    keys: dict[int, str] = {}
    taken: dict[tuple[str, int], int] = {}
    for reg in sorted(registrations, key=lambda r: r.rid):
        keys[reg.rid] = reg.pubkey_ed25519
        reason: str | None = None
        if reg.unlock_block and block >= reg.unlock_block:
            reason = f"it exited at block {reg.unlock_block}"
        elif reg.amount < min_amount:
            reason = (
                f"its stake of {format_tokens(reg.amount, decimals)} tokens is below the "
                f"{format_tokens(min_amount, decimals)} required"
            )
        else:
            reason = signature_problem(reg, chain_id, contract)
        if reason is None and reg.pubkey_ed25519 in listed:
            reason = (
                f"its node key is already registered (registration "
                f"#{listed[reg.pubkey_ed25519].rid})"
            )
        if reason is None:
            for port in (reg.storage_port, reg.storage_lmq_port):
                other = taken.get((reg.public_ip, port))
                if other is not None:
                    reason = f"{reg.public_ip} port {port} is taken by registration #{other}"
                    break
        if reason is None and reg.storage_port == reg.storage_lmq_port:
            reason = "its HTTPS and ZeroMQ ports are the same"
        if reason is not None:
            refused[reg.rid] = reason
            continue
        listed[reg.pubkey_ed25519] = reg
        taken[(reg.public_ip, reg.storage_port)] = reg.rid
        taken[(reg.public_ip, reg.storage_lmq_port)] = reg.rid
    return Verdict(listed, refused, keys)


def format_tokens(amount: int, decimals: int) -> str:
    """``amount`` base units as tokens with thousands separators (``24,999`` or ``0.5``)."""
    whole, frac = divmod(amount, 10**decimals)
    text = f"{whole:,}"
    if frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return text


@dataclasses.dataclass(frozen=True, slots=True)
class ChangePoint:
    """A block where the listed set may change: its number, hash and the verdict there."""

    block: int
    block_hash: bytes
    verdict: Verdict


class ChainReader:
    """Follows one staking contract's events (web3.py) and evaluates them block by block.

    ``min_tokens`` is the stake requirement in whole tokens (the registry's); the contract's
    token decides the decimals. Use from one thread at a time.
    """

    def __init__(self, w3: Web3, contract: str, *, min_tokens: int, start_block: int = 0) -> None:
        self.w3 = w3
        self.address = _address(contract)
        try:
            self.chain_id = int(w3.eth.chain_id)
            if not w3.eth.get_code(self.address):
                raise ChainError(f"there is no contract at {self.address} on chain {self.chain_id}")
            self.contract = w3.eth.contract(address=self.address, abi=artifact("staking")["abi"])
            token_address = self.contract.functions.token().call()
            self.token = w3.eth.contract(address=token_address, abi=artifact("devtoken")["abi"])
            self.decimals = int(self.token.functions.decimals().call())
            self.contract_min = int(self.contract.functions.min_stake().call())
            self.unlock_blocks = int(self.contract.functions.unlock_blocks().call())
        except (OSError, ValueError) as e:
            raise ChainError(f"cannot read the staking contract {self.address}: {e}") from None
        self.min_amount = max(int(min_tokens) * 10**self.decimals, self.contract_min)
        self.registrations: dict[int, ChainRegistration] = {}
        self.synced = start_block - 1  # last block whose events are folded in
        self._topics = {
            bytes.fromhex(str(ev.topic).removeprefix("0x")): ev
            for ev in (
                self.contract.events.Staked,
                self.contract.events.StakeAdded,
                self.contract.events.ExitRequested,
                self.contract.events.Withdrawn,
            )
        }

    def evaluate(self, block: int) -> Verdict:
        """The verdict on the registrations folded in so far, at ``block``."""
        return evaluate(
            self.registrations.values(),
            block=block,
            min_amount=self.min_amount,
            chain_id=self.chain_id,
            contract=self.address,
            decimals=self.decimals,
        )

    def sync(self) -> list[ChangePoint]:
        """Read the events since the last sync up to the chain's head; returns the change
        points in block order (empty when nothing happened)."""
        try:
            head = int(self.w3.eth.block_number)
            if head <= self.synced:
                return []
            by_block: dict[int, list[Any]] = {}
            start = self.synced + 1
            while start <= head:
                end = min(head, start + LOG_WINDOW - 1)
                logs = self.w3.eth.get_logs(
                    {"address": self.address, "fromBlock": start, "toBlock": end}
                )
                for entry in logs:
                    by_block.setdefault(int(entry["blockNumber"]), []).append(entry)
                start = end + 1
            points = self._replay(by_block, head)
        except (OSError, ValueError) as e:
            raise ChainError(f"cannot read chain {self.chain_id}: {e}") from None
        self.synced = head
        return points

    def _replay(self, by_block: Mapping[int, list[Any]], head: int) -> list[ChangePoint]:
        unlocks = {r.unlock_block for r in self.registrations.values() if r.unlock_block}
        points: list[ChangePoint] = []
        pending = sorted(b for b in {*by_block, *unlocks} if self.synced < b <= head)
        while pending:
            b = pending.pop(0)
            for entry in sorted(by_block.get(b, ()), key=lambda e: int(e["logIndex"])):
                unlock = self._fold(entry)
                if unlock and self.synced < unlock <= head and unlock not in pending:
                    pending.append(unlock)
                    pending.sort()
            block_hash = bytes(self.w3.eth.get_block(b)["hash"])
            points.append(ChangePoint(b, block_hash, self.evaluate(b)))
        return points

    def _fold(self, entry: Any) -> int:
        """Apply one log entry; returns the unlock block it sets (0 if none)."""
        topics = entry["topics"]
        event = self._topics.get(bytes(topics[0])) if topics else None
        if event is None:
            return 0
        args = event().process_log(entry)["args"]
        rid = int(args["id"])
        if event.event_name == "Staked":
            operator = _address(args["operator"])
            self.registrations[rid] = ChainRegistration(
                rid=rid,
                operator=operator,
                pubkey_ed25519=bytes(args["ed25519"]).hex(),
                pubkey_x25519=bytes(args["x25519"]).hex(),
                public_ip=ip_from_bytes16(args["ip"]),
                storage_port=int(args["https_port"]),
                storage_lmq_port=int(args["zmq_port"]),
                signature=bytes(args["signature"]),
                amount=int(args["amount"]),
                contributions={operator: int(args["amount"])},
            )
            return 0
        reg = self.registrations.get(rid)
        if reg is None:  # an event of a registration made before start_block
            return 0
        if event.event_name == "StakeAdded":
            who = _address(args["contributor"])
            reg.amount = int(args["total"])
            reg.contributions[who] = reg.contributions.get(who, 0) + int(args["amount"])
        elif event.event_name == "ExitRequested":
            reg.unlock_block = int(args["unlock_block"])
            return reg.unlock_block
        elif event.event_name == "Withdrawn":
            who = _address(args["contributor"])
            reg.amount -= int(args["amount"])
            reg.contributions[who] = reg.contributions.get(who, 0) - int(args["amount"])
        return 0

    def status_of(self, pubkey_ed25519: str) -> Iterator[tuple[ChainRegistration, str | None]]:
        """Every registration naming the node key, with its refusal reason (None: listed),
        at the last synced block."""
        verdict = self.evaluate(self.synced)
        for reg in sorted(self.registrations.values(), key=lambda r: r.rid):
            if reg.pubkey_ed25519 == pubkey_ed25519:
                yield reg, verdict.refused.get(reg.rid)

    def listing(self, verdict: Verdict) -> dict[str, ChainListing]:
        """The registry's view of a verdict's listed nodes (stakes in whole tokens)."""
        return {
            key: ChainListing(
                pubkey_ed25519=key,
                pubkey_x25519=reg.pubkey_x25519,
                public_ip=reg.public_ip,
                storage_port=reg.storage_port,
                storage_lmq_port=reg.storage_lmq_port,
                stake=reg.amount // 10**self.decimals,
                signature=reg.signature.hex(),
            )
            for key, reg in verdict.listed.items()
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ChainOptions:
    """Which staking contract backs a registry: a JSON-RPC URL and the contract's address (and
    the block it was deployed at, where reading starts), or ``devnet``: a local chain in the
    registry's process with freshly deployed contracts (:mod:`session.registry.devchain`)."""

    rpc: str | None = None
    contract: str | None = None
    start_block: int = 0
    poll: float = 2.0  # seconds between reads of a remote chain
    devnet: bool = False
    unlock_blocks: int = 4  # a devnet's unlock period in blocks

    def __post_init__(self) -> None:
        if not self.devnet and (not self.rpc or not self.contract):
            raise InvalidInput(
                "a registry needs its staking contract: give the chain's JSON-RPC URL and the "
                "contract's address (or run a devnet chain)"
            )
        if self.poll <= 0:
            raise InvalidInput("the chain poll interval must be positive")
        if self.start_block < 0 or self.unlock_blocks < 0:
            raise InvalidInput("block numbers must not be negative")


def connect(url: str, timeout: float = 10.0) -> Web3:
    """web3 over JSON-RPC at ``url`` (http or https). TLS certificates are checked, except
    for a loopback host (a devnet registry's self-signed ``/chain``: nobody else can be on
    that path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http(s) URL of a JSON-RPC server")
    kwargs: dict[str, Any] = {"timeout": timeout}
    if parts.scheme == "https" and _loopback(parts.hostname):
        kwargs["verify"] = False
        # urllib3 warns on every such request; only for loopback hosts is that expected.
        warnings.filterwarnings(
            "ignore",
            message=r"Unverified HTTPS request is being made to host '(127\.|localhost|::1)",
        )
    return Web3(HTTPProvider(url, request_kwargs=kwargs))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ChainFollower:
    """Keeps a :class:`~session.registry.state.Registry`'s node list equal to the contract's.

    :meth:`apply` takes the change points of :meth:`ChainReader.sync` (which may run in another
    thread: it only reads the chain) and applies them in order, logging each registration's
    refusal reason when it first appears or changes."""

    def __init__(self, registry: Registry, reader: ChainReader) -> None:
        self.registry = registry
        self.reader = reader
        self.verdict = Verdict({}, {}, {})
        self._logged: dict[int, str] = {}
        registry.attach_chain(self.reason)

    def reason(self, pubkey_ed25519: str) -> str | None:
        """Why the chain does not list the node key (None: listed)."""
        return self.verdict.reason(pubkey_ed25519)

    def apply(self, points: Iterable[ChangePoint]) -> int:
        """Apply change points; returns how many changed the node list."""
        changes = 0
        for p in points:
            self.verdict = p.verdict
            if self.registry.apply_chain(self.reader.listing(p.verdict), p.block, p.block_hash):
                changes += 1
                log.info(
                    "node list from chain block %d: %d nodes listed", p.block, len(p.verdict.listed)
                )
            for rid, why in p.verdict.refused.items():
                if self._logged.get(rid) != why:
                    log.info(
                        "registration #%d of node %s is not listed: %s",
                        rid, p.verdict.keys.get(rid, "?"), why,
                    )  # fmt: skip
                    self._logged[rid] = why
        return changes

    def sync(self) -> int:
        """Read and apply in this thread (an in-process chain)."""
        return self.apply(self.reader.sync())


__all__ = [
    "ARTIFACTS",
    "STAKE_TAG",
    "ChainError",
    "ChainFollower",
    "ChainOptions",
    "ChainReader",
    "ChainRegistration",
    "ChangePoint",
    "Verdict",
    "artifact",
    "connect",
    "evaluate",
    "format_tokens",
    "ip_from_bytes16",
    "ip_to_bytes16",
    "sign_stake",
    "signature_problem",
    "stake_message",
]
