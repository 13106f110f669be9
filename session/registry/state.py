"""The registry's state: signed registrations, stake rule, swarm assignment, persistence.

Sans-I/O except for the small msgpack state file (``registry.msgpack`` in the data directory,
replaced atomically on every change). Every change of the node list (a node joins, leaves,
changes address or stake, or the stake requirement changes) increments ``height`` and re-runs
the swarm assignment seeded from ``block_hash(genesis, height)``; replaying the same history
against the same genesis seed therefore gives the same swarms.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

from session import names as ons
from session.errors import DecodeError, InvalidInput, InvalidSignature, NameTaken, RegistryError
from session.proto.snodes import INVALID_SWARM_ID, ServiceNode, node_list_json
from session.registry.assign import (
    UNASSIGNED_SWARM_ID,
    assign_swarms,
    block_hash,
    seed_from_hash,
)
from session.registry.health import (
    Health,
    HealthRules,
    Transition,
    verify_report,
    verify_uptime_proof,
)
from session.registry.messages import (
    DEFAULT_FRESHNESS,
    verify_deregistration,
    verify_registration,
)

STATE_FILE = "registry.msgpack"
STATE_VERSION = 1
DEFAULT_STAKE_REQUIREMENT = 25_000
#: How long a name registration (or renewal) lasts, in seconds: one year, as Session names.
DEFAULT_NAME_TERM = 365 * 24 * 3600
#: Most name records one ``ons_names`` answer carries (nodes page with ``since``).
NAMES_PAGE = 1000
#: Reported like oxend's ``hardfork`` / ``snode_revision`` (Session's storage server wants ≥ 19.3).
HARDFORK = 21
SNODE_REVISION = 0


def genesis_from_seed(seed: str | bytes) -> bytes:
    """The 32-byte genesis seed derived from an operator-chosen seed string."""
    raw = seed.encode() if isinstance(seed, str) else bytes(seed)
    return hashlib.blake2b(raw, digest_size=32, person=b"session-genesis").digest()


@dataclasses.dataclass(slots=True)
class Entry:
    """One registered node: its last accepted signed registration and its swarm."""

    pubkey_ed25519: str
    pubkey_x25519: str
    public_ip: str
    storage_port: int
    storage_lmq_port: int
    stake: int
    timestamp: int
    signature: str
    swarm_id: int = UNASSIGNED_SWARM_ID

    def service_node(self, active: bool) -> ServiceNode:
        return ServiceNode(
            pubkey_ed25519=self.pubkey_ed25519,
            pubkey_x25519=self.pubkey_x25519,
            public_ip=self.public_ip,
            storage_port=self.storage_port,
            storage_lmq_port=self.storage_lmq_port,
            swarm_id=self.swarm_id if active else INVALID_SWARM_ID,
            stake=self.stake,
            active=active,
        )

    def listing(self) -> tuple[Any, ...]:
        """The fields that other parties see (a change here is a node-list change)."""
        return (
            self.pubkey_x25519,
            self.public_ip,
            self.storage_port,
            self.storage_lmq_port,
            self.stake,
        )


@dataclasses.dataclass(slots=True)
class NameRecord:
    """One Session name as the name service stores it: only its hash, never the name."""

    name_hash: str  # base64 of BLAKE2b-256(name)
    encrypted_value: bytes  # XChaCha20-Poly1305 of the Session ID (49 bytes)
    nonce: bytes  # 24 bytes
    owner: str  # Ed25519 key (hex) that registered it and alone may renew it
    expiry: int  # Unix seconds
    revision: int  # the registry's name revision when this record last changed

    def listing(self) -> dict[str, Any]:
        """What nodes mirror (no owner: lookups do not need it)."""
        return {
            "name_hash": self.name_hash,
            "encrypted_value": self.encrypted_value.hex(),
            "nonce": self.nonce.hex(),
            "expiry": self.expiry,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ChainListing:
    """One node as a staking contract lists it (see :mod:`session.registry.chain`)."""

    pubkey_ed25519: str
    pubkey_x25519: str
    public_ip: str
    storage_port: int
    storage_lmq_port: int
    stake: int  # whole tokens
    signature: str  # hex: the node key's signature over (chain ID, contract, operator)


class Registry:
    """Registered nodes and their swarms, and Session names; persisted in ``data_dir`` when
    one is given.

    With a staking contract (:meth:`attach_chain`), the node list is the contract's alone:
    :meth:`apply_chain` replaces the entries at every block where the contract's listed set
    changes, seeded from that block's hash and height; signed registrations are then only
    announcements (:meth:`register` answers whether the chain lists the node).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        stake_requirement: int = DEFAULT_STAKE_REQUIREMENT,
        seed: str | bytes | None = None,
        freshness: float = DEFAULT_FRESHNESS,
        clock: Callable[[], float] = time.time,
        name_term: int = DEFAULT_NAME_TERM,
        health: HealthRules | None = None,
    ) -> None:
        if stake_requirement < 0:
            raise InvalidInput("stake requirement must not be negative")
        if name_term <= 0:
            raise InvalidInput("the name term must be a positive number of seconds")
        self.name_term = int(name_term)
        #: Session names by name hash (base64) and the revision counter nodes sync from.
        self.names: dict[str, NameRecord] = {}
        self.names_revision = 0
        #: last accepted name-request timestamp per owner key (replays fail)
        self.name_timestamps: dict[str, int] = {}
        self.stake_requirement = int(stake_requirement)
        self.freshness = freshness
        self._clock = clock
        #: uptime proofs, reachability reports, decommissioning (session.registry.health)
        self.health = Health(health or HealthRules(), started=clock())
        self._health_dirty = False
        self.path = Path(data_dir) / STATE_FILE if data_dir is not None else None
        self.entries: dict[str, Entry] = {}
        #: last accepted timestamp per node, kept after deregistration so replays fail
        self.last_timestamp: dict[str, int] = {}
        self.height = 0
        self.genesis: bytes = b""
        #: (height, hash) of the chain block the node list was last taken from, when a staking
        #: contract backs the registry; ``local_changes`` counts changes made off chain since.
        self.chain_anchor: tuple[int, bytes] | None = None
        self.local_changes = 0
        #: why the chain does not list a node key (None: listed); set by :meth:`attach_chain`
        self.chain_reason: Callable[[str], str | None] | None = None
        #: staked nodes the health rules deregistered: not listed while that registration lasts
        self.evicted: set[str] = set()
        wanted = genesis_from_seed(seed) if seed is not None else None
        if self.path is not None and self.path.exists():
            self._load(self.path)
            if wanted is not None and wanted != self.genesis:
                raise RegistryError(
                    f"the registry state in {self.path.parent} was created with a different "
                    f"seed; use the same --seed or a new data directory",
                    400,
                )
            stored_requirement = self._stored_requirement
            if stored_requirement != self.stake_requirement:
                self._changed()
        else:
            self.genesis = wanted if wanted is not None else secrets.token_bytes(32)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._save()

    # -- queries ----------------------------------------------------------------------------

    @property
    def block_hash(self) -> bytes:
        if self.chain_anchor is not None:
            chain_hash = self.chain_anchor[1]
            return (
                chain_hash if not self.local_changes else block_hash(chain_hash, self.local_changes)
            )
        return block_hash(self.genesis, self.height)

    def is_active(self, entry: Entry) -> bool:
        return self.is_staked(entry) and not self.health.decommissioned(entry.pubkey_ed25519)

    def is_staked(self, entry: Entry) -> bool:
        """Active but for its health: the stake rule alone."""
        return entry.stake >= self.stake_requirement

    def nodes(self, *, active_only: bool = False) -> list[ServiceNode]:
        """Registered nodes sorted by Ed25519 key; inactive ones have ``active=False``."""
        out = []
        for key in sorted(self.entries):
            e = self.entries[key]
            active = self.is_active(e)
            if active or not active_only:
                out.append(e.service_node(active))
        return out

    def node(self, pubkey_ed25519: str) -> ServiceNode:
        e = self.entries.get(pubkey_ed25519)
        if e is None:
            raise RegistryError(f"node {pubkey_ed25519} is not registered", 404)
        return e.service_node(self.is_active(e))

    def get_n_service_nodes(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``get_n_service_nodes`` result for ``params`` (oxend-compatible subset:
        ``active_only``, ``limit``, ``service_node_pubkeys``, ``poll_block_hash``, ``fields``)."""
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise DecodeError("params must be a JSON object")
        bh = self.block_hash.hex()
        meta: dict[str, Any] = {
            "height": self.height,
            "target_height": self.height,
            "block_hash": bh,
            "hardfork": HARDFORK,
            "snode_revision": SNODE_REVISION,
            "swarm_seed": seed_from_hash(self.block_hash),
            "stake_requirement": self.stake_requirement,
            "status": "OK",
        }
        poll = params.get("poll_block_hash")
        if poll is not None and poll == bh:
            return {"unchanged": True, **meta}
        doc = node_list_json(self._selected(params), **meta)
        self.health.annotate(doc["service_node_states"])
        keep = _wanted_fields(params.get("fields"))
        if keep is not None:
            doc["service_node_states"] = [
                {k: v for k, v in e.items() if k in keep} for e in doc["service_node_states"]
            ]
        return doc

    def _selected(self, params: Mapping[str, Any]) -> list[ServiceNode]:
        """The nodes ``params`` asks for: ``active_only``, ``service_node_pubkeys``, ``limit``."""
        active_only = params.get("active_only", False)
        if not isinstance(active_only, bool):
            raise DecodeError("active_only must be true or false")
        nodes = self.nodes(active_only=active_only)
        wanted = params.get("service_node_pubkeys")
        if wanted is not None:
            if not isinstance(wanted, list) or not all(isinstance(k, str) for k in wanted):
                raise DecodeError("service_node_pubkeys must be a list of hex strings")
            keys = set(wanted)
            nodes = [n for n in nodes if n.pubkey_ed25519 in keys]
        limit = params.get("limit", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise DecodeError("limit must be a non-negative integer")
        if 0 < limit < len(nodes):
            # like oxend: a random subset (for bootstrapping clients)
            nodes = random.SystemRandom().sample(nodes, limit)
        return nodes

    # -- changes ----------------------------------------------------------------------------

    def register(self, doc: Mapping[str, Any]) -> ServiceNode:
        """Accept a signed registration (new node or update); returns the node's entry.

        Raises :class:`~session.errors.InvalidSignature` (bad signature or key pair),
        :class:`~session.errors.InvalidInput` (malformed or stale) or
        :class:`~session.errors.RegistryError` with status 409 (replayed or address taken).
        """
        f = verify_registration(doc, now=self._clock(), freshness=self.freshness)
        key = f["pubkey_ed25519"]
        self._check_newer(key, f["timestamp"])
        if self.chain_reason is not None:
            return self._announce(key, f, str(doc["signature"]))
        for other in self.entries.values():
            if other.pubkey_ed25519 == key or other.public_ip != f["public_ip"]:
                continue
            taken = {other.storage_port, other.storage_lmq_port}
            clash = taken & {f["storage_port"], f["storage_lmq_port"]}
            if clash:
                raise RegistryError(
                    f"address {f['public_ip']} port {min(clash)} is already registered by "
                    f"node {other.pubkey_ed25519}",
                    409,
                )
        if f["storage_port"] == f["storage_lmq_port"]:
            raise InvalidInput("storage_port and storage_lmq_port must differ")
        old = self.entries.get(key)
        entry = Entry(
            **f,
            signature=str(doc["signature"]),
            swarm_id=old.swarm_id if old is not None else UNASSIGNED_SWARM_ID,
        )
        self.entries[key] = entry
        self.last_timestamp[key] = entry.timestamp
        self.health.registered(key, self._clock())
        if old is None or old.listing() != entry.listing():
            self._changed()
        else:
            self._save()
        return self.node(key)

    def deregister(self, doc: Mapping[str, Any]) -> str:
        """Accept a signed deregistration; returns the removed node's Ed25519 key (hex)."""
        f = verify_deregistration(doc, now=self._clock(), freshness=self.freshness)
        if self.chain_reason is not None:
            raise RegistryError(
                "this registry lists the staking contract's nodes: leave by requesting the "
                "exit on the contract (session-node unstake)",
                403,
            )
        key = f["pubkey_ed25519"]
        if key not in self.entries:
            raise RegistryError(f"node {key} is not registered", 404)
        self._check_newer(key, f["timestamp"])
        del self.entries[key]
        self.health.forget(key)
        self.last_timestamp[key] = f["timestamp"]
        self._changed()
        return key

    # -- health (session.registry.health) ---------------------------------------------------

    def uptime_proof(self, doc: Any) -> str:
        """Accept a signed uptime proof of a registered node (404 unknown node: register
        first; 409 replayed, or ports that differ from the registration: register again)."""
        now = self._clock()
        f = verify_uptime_proof(doc, now=now, freshness=self.freshness)
        e = self.entries.get(f["pubkey_ed25519"])
        if e is None:
            raise RegistryError(f"node {f['pubkey_ed25519']} is not registered", 404)
        if (e.storage_port, e.storage_lmq_port) != (f["https_port"], f["zmq_port"]):
            raise RegistryError(
                "the proof's ports differ from the registration: register again", 409
            )
        self.health.proof(f, now)
        self._health_dirty = True
        return str(f["pubkey_ed25519"])

    def reachability_report(self, doc: Any) -> None:
        """Accept a signed reachability report by an active node about a registered one."""
        now = self._clock()
        f = verify_report(doc, now=now, freshness=self.freshness)
        tester = self.entries.get(f["pubkey_ed25519"])
        if tester is None or not self.is_active(tester):
            raise RegistryError("only active nodes may report on others", 403)
        if f["target"] not in self.entries:
            raise RegistryError(f"node {f['target']} is not registered", 404)
        self.health.report(f, now)

    def check_health(self) -> list[Transition]:
        """Apply the health rules now (the server calls this every ``check_interval``): a
        decommission or recommission is a node-list change, a deregistration removes the node.
        Returns the transitions made (each is logged)."""
        now = self._clock()
        staked = {k for k, e in self.entries.items() if self.is_active(e)}
        done = self.health.check(staked, list(self.entries), now)
        for t in done:
            self.health.apply(t, now)
            if t.kind == "deregister":
                del self.entries[t.pubkey_ed25519]
                self.health.forget(t.pubkey_ed25519)
                if self.chain_reason is not None:
                    # still staked: kept out until its registration leaves the contract
                    self.evicted.add(t.pubkey_ed25519)
        if done:
            self._changed()
        elif self._health_dirty:
            self._save()
        self._health_dirty = False
        return done

    # -- the staking contract ---------------------------------------------------------------

    def attach_chain(self, reason: Callable[[str], str | None]) -> None:
        """Make a staking contract the only source of nodes: entries loaded from the state
        file are dropped (the chain's history rebuilds them, the same for every reader)."""
        self.chain_reason = reason
        self.entries = {}
        self.chain_anchor = None
        self.local_changes = 0

    def apply_chain(
        self, listing: Mapping[str, ChainListing], height: int, chain_hash: bytes
    ) -> bool:
        """The node list at chain block ``height`` (hash ``chain_hash``): entries follow
        ``listing`` and, if the list changed, the swarms are reassigned seeded from that block.
        Returns whether the list changed."""
        self.evicted &= set(listing)  # a key off the contract may be staked afresh
        listing = {k: v for k, v in listing.items() if k not in self.evicted}
        changed = set(listing) != set(self.entries)
        for key, item in listing.items():
            old = self.entries.get(key)
            if old is None:
                self.health.registered(key, self._clock())
                self.entries[key] = Entry(
                    pubkey_ed25519=key,
                    pubkey_x25519=item.pubkey_x25519,
                    public_ip=item.public_ip,
                    storage_port=item.storage_port,
                    storage_lmq_port=item.storage_lmq_port,
                    stake=item.stake,
                    timestamp=0,
                    signature=item.signature,
                )
                continue
            before = old.listing()
            old.pubkey_x25519 = item.pubkey_x25519
            old.public_ip = item.public_ip
            old.storage_port = item.storage_port
            old.storage_lmq_port = item.storage_lmq_port
            old.stake = item.stake
            old.signature = item.signature
            changed = changed or before != old.listing()
        for key in [k for k in self.entries if k not in listing]:
            del self.entries[key]
            self.health.forget(key)
        if changed or self.chain_anchor is None:
            self.chain_anchor = (int(height), bytes(chain_hash))
            self.local_changes = 0
            self.height = int(height)
            self._assign()
            self._save()
        return changed

    def not_listed_reason(self, key: str) -> str | None:
        """With a chain attached: why the node key is not listed (None: it is, or no chain)."""
        if self.chain_reason is None:
            return None
        if key in self.evicted:
            return (
                "deregistered by the network's health rules while staked; request the exit "
                "(session-node unstake) and stake again"
            )
        return self.chain_reason(key)

    def _announce(self, key: str, fields: Mapping[str, Any], signature: str) -> ServiceNode:
        """A signed registration with a chain attached: accepted as the node's word that it
        is up, but listed only as the contract lists it (an unlisted node gets its entry back
        inactive, without a swarm; :attr:`chain_reason` says why)."""
        self.last_timestamp[key] = fields["timestamp"]
        if key in self.entries:
            self.health.registered(key, self._clock())  # counts as a proof, as without a chain
            self._save()
            return self.node(key)
        return Entry(**fields, signature=signature).service_node(False)

    # -- names ------------------------------------------------------------------------------

    def _name_request(self, fields: Mapping[str, Any]) -> None:
        """Freshness and replay checks shared by name registration and renewal."""
        skew = self._clock() - fields["timestamp"] / 1000
        if abs(skew) > self.freshness:
            raise InvalidInput(
                f"request timestamp is {int(skew)} s away from the registry's clock "
                f"(allowed: {int(self.freshness)} s); check the clock"
            )
        last = self.name_timestamps.get(fields["owner"])
        if last is not None and fields["timestamp"] <= last:
            raise RegistryError(
                "request is not newer than the owner's last accepted request (replayed?)", 409
            )

    def register_name(self, doc: Any) -> NameRecord:
        """Accept a signed name registration (see :mod:`session.names`): first come, first
        served; a name whose registration expired is free again. Re-registering one's own
        name replaces its value and starts a new term.

        Raises :class:`~session.errors.NameTaken` (409) when someone else holds the name,
        :class:`~session.errors.InvalidSignature` or :class:`~session.errors.InvalidInput`.
        """
        f = ons.verify_register(doc)
        self._name_request(f)
        now = int(self._clock())
        old = self.names.get(f["name_hash"])
        if old is not None and old.owner != f["owner"] and old.expiry > now:
            raise NameTaken("the name is already registered by someone else")
        self.names_revision += 1
        rec = NameRecord(
            name_hash=f["name_hash"],
            encrypted_value=f["encrypted_value"],
            nonce=f["nonce"],
            owner=f["owner"],
            expiry=now + self.name_term,
            revision=self.names_revision,
        )
        self.names[rec.name_hash] = rec
        self.name_timestamps[rec.owner] = f["timestamp"]
        self._save()
        return rec

    def renew_name(self, doc: Any) -> NameRecord:
        """Accept a signed renewal by the name's owner: one more term from the later of now
        and the current expiry (an expired name nobody took may still be renewed)."""
        f = ons.verify_renew(doc)
        self._name_request(f)
        rec = self.names.get(f["name_hash"])
        if rec is None:
            raise RegistryError("the name is not registered", 404)
        if rec.owner != f["owner"]:
            raise InvalidSignature("only the name's owner may renew it")
        now = int(self._clock())
        self.names_revision += 1
        rec.expiry = max(now, rec.expiry) + self.name_term
        rec.revision = self.names_revision
        self.name_timestamps[rec.owner] = f["timestamp"]
        self._save()
        return rec

    def names_since(self, params: Any) -> dict[str, Any]:
        """The ``ons_names`` answer: records changed after revision ``since`` (oldest first,
        at most :data:`NAMES_PAGE`), the current revision and the registry's clock."""
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise DecodeError("params must be a JSON object")
        since = params.get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise DecodeError("since must be a non-negative integer")
        changed = sorted(
            (r for r in self.names.values() if r.revision > since), key=lambda r: r.revision
        )[:NAMES_PAGE]
        last = changed[-1].revision if changed else max(since, 0)
        return {
            "revision": min(last, self.names_revision) if changed else self.names_revision,
            "more": bool(changed) and last < self.names_revision,
            "names": [r.listing() for r in changed],
            "now": int(self._clock()),
        }

    def _check_newer(self, key: str, timestamp: int) -> None:
        last = self.last_timestamp.get(key)
        if last is not None and timestamp <= last:
            raise RegistryError(
                "request is not newer than the node's last accepted request (replayed?)", 409
            )

    def _changed(self) -> None:
        """A node-list change: next height (or, with a chain, one more change off chain at
        the same block), new swarm assignment, save."""
        if self.chain_anchor is None:
            self.height += 1
        else:
            self.local_changes += 1
        self._assign()
        self._save()

    def _assign(self) -> None:
        """Swarm assignment of the active nodes, seeded from the current block hash."""
        seed = seed_from_hash(self.block_hash)
        active = [k for k, e in self.entries.items() if self.is_active(e)]
        previous = {k: e.swarm_id for k, e in self.entries.items() if self.is_active(e)}
        assignment = assign_swarms(previous, active, seed)
        for k, e in self.entries.items():
            e.swarm_id = assignment.get(k, UNASSIGNED_SWARM_ID)

    # -- persistence ------------------------------------------------------------------------

    def _prune_timestamps(self) -> None:
        horizon = (self._clock() - 2 * self.freshness) * 1000
        for k in [
            k for k, ts in self.last_timestamp.items() if k not in self.entries and ts < horizon
        ]:
            del self.last_timestamp[k]
        for k in [k for k, ts in self.name_timestamps.items() if ts < horizon]:
            del self.name_timestamps[k]

    def _save(self) -> None:
        if self.path is None:
            return
        self._prune_timestamps()
        doc = {
            "version": STATE_VERSION,
            "genesis": self.genesis,
            "height": self.height,
            "stake_requirement": self.stake_requirement,
            "nodes": [dataclasses.asdict(e) for e in self.entries.values()],
            "last_timestamp": self.last_timestamp,
            "names": [dataclasses.asdict(r) for r in self.names.values()],
            "names_revision": self.names_revision,
            "name_timestamps": self.name_timestamps,
            "health": self.health.dump(),
            "evicted": sorted(self.evicted),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(msgpack.packb(doc, use_bin_type=True))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _load(self, path: Path) -> None:
        try:
            doc = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported state version {doc.get('version')!r}")
            genesis = doc["genesis"]
            if not isinstance(genesis, bytes) or len(genesis) != 32:
                raise ValueError("bad genesis seed")
            self.genesis = genesis
            self.height = int(doc["height"])
            self._stored_requirement = int(doc["stake_requirement"])
            self.entries = {}
            for raw in doc["nodes"]:
                e = Entry(**raw)
                self.entries[e.pubkey_ed25519] = e
            self.last_timestamp = {str(k): int(v) for k, v in doc["last_timestamp"].items()}
            # Names came later: a state file without them has none.
            self.names = {}
            for raw in doc.get("names", []):
                r = NameRecord(**raw)
                self.names[r.name_hash] = r
            self.names_revision = int(doc.get("names_revision", 0))
            self.name_timestamps = {
                str(k): int(v) for k, v in doc.get("name_timestamps", {}).items()
            }
            # Health came later: a state file without it has every node healthy.
            self.health.load(doc.get("health", {}))
            self.evicted = {str(k) for k in doc.get("evicted", [])}
        except (OSError, ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            raise RegistryError(f"registry state file {path} is unreadable: {e}", 400) from None

    _stored_requirement: int = 0


def _wanted_fields(fields: Any) -> set[str] | None:
    """The entry fields a ``fields`` parameter keeps (None: all of them)."""
    if fields is None:
        return None
    if isinstance(fields, Mapping):
        return {k for k, v in fields.items() if v}
    if isinstance(fields, list):
        return {k for k in fields if isinstance(k, str)}
    raise DecodeError("fields must be an object or a list of names")


__all__ = [
    "DEFAULT_NAME_TERM",
    "DEFAULT_STAKE_REQUIREMENT",
    "ChainListing",
    "Entry",
    "NameRecord",
    "Registry",
    "genesis_from_seed",
]
