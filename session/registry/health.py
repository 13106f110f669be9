"""Network health at the registry: uptime proofs, reachability reports, decommissioning.

Session's network keeps dead nodes out of swarms: every node sends signed uptime proofs, nodes
test random peers' reachability and report failures, and a node that stops proving or that
enough distinct testers find unreachable is *decommissioned* (out of the swarms, its swarm
refilled by the swarm rules), *recommissioned* when it is back, and *deregistered* after a long
outage. This module is the registry's side of that, sans-I/O except for the clock:

* :func:`build_uptime_proof` / :func:`verify_uptime_proof`: "node <ed25519> is up as of
  <timestamp>, version <a.b.c>, HTTPS <port>, ZeroMQ <port>, <n> bytes stored of <max>",
  signed by the node's Ed25519 key (the registry's JSON style of
  :mod:`session.registry.messages`: a domain tag, then canonical JSON).
* :func:`build_report` / :func:`verify_report`: "tester <ed25519> tested <target> as of
  <timestamp>: HTTPS ping passed/failed, node link passed/failed", signed by the tester.
* :class:`Health`: the per-node records (last proof, decommission state and count, each
  tester's latest report) and the rules (:class:`HealthRules`) that turn them into
  transitions. :meth:`Health.check` returns what must change; the registry applies it (a
  decommission or recommission is a node-list change: next height, swarms reassigned).

Why one liar evicts no one: a node is decommissioned on reports only when at least
``max(2, min(min_reporters, other active nodes))`` *distinct active* nodes each report it
failing for ``unreachable_after`` seconds or more, and only each tester's latest report counts
(one tester repeating itself is still one tester). A recommission likewise needs passing
reports from that many distinct testers, received after the node's proofs resumed, so one
liar cannot keep a node out either (nor bring a silent one back: proofs are signed by the node).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from session.errors import DecodeError, InvalidInput, RegistryError
from session.registry.messages import (
    DEFAULT_FRESHNESS,
    Signer,
    _canonical,
    _check_fresh,
    _check_signature,
    _hex,
    _int,
    now_ms,
)

log = logging.getLogger("session.registry.health")

PROOF_TAG = b"session-registry/v1/uptime-proof\n"
REPORT_TAG = b"session-registry/v1/reachability\n"

PROOF_FIELDS = (
    "pubkey_ed25519",
    "timestamp",
    "version",
    "https_port",
    "zmq_port",
    "storage_bytes",
    "storage_max_bytes",
)
REPORT_FIELDS = ("pubkey_ed25519", "target", "timestamp", "https_ok", "link_ok")


@dataclasses.dataclass(frozen=True, slots=True)
class HealthRules:
    """The registry's ``[health]`` settings (seconds; see docs/design.md "Network health").

    Defaults suit a public network (nodes prove every 5 minutes); a devnet configures seconds.
    """

    proof_timeout: float = 900.0  # no proof for this long: decommissioned
    unreachable_after: float = 120.0  # a tester's failures must span this long to count
    report_window: float = 600.0  # reports older than this are forgotten
    min_reporters: int = 3  # distinct testers needed (never fewer than 2 to decommission)
    deregister_after: float = 86_400.0  # decommissioned this long: deregistered
    check_interval: float = 5.0  # how often the registry applies the rules


def validate_rules(rules: HealthRules) -> None:
    """Raise :class:`InvalidInput` with one sentence for settings that cannot work."""
    for name in ("proof_timeout", "unreachable_after", "report_window", "check_interval"):
        if not getattr(rules, name) > 0:
            raise InvalidInput(f"health.{name} must be a positive number of seconds")
    if rules.min_reporters < 2:
        raise InvalidInput("health.min_reporters must be at least 2 (one liar must evict no one)")
    if rules.deregister_after <= rules.proof_timeout:
        raise InvalidInput("health.deregister_after must be longer than health.proof_timeout")
    if rules.report_window < rules.unreachable_after:
        raise InvalidInput("health.report_window must not be shorter than unreachable_after")


# -- signed documents ------------------------------------------------------------------------


def proof_payload(doc: Mapping[str, Any]) -> bytes:
    """The bytes an uptime proof's signature covers."""
    return PROOF_TAG + _canonical(doc, PROOF_FIELDS)


def report_payload(doc: Mapping[str, Any]) -> bytes:
    """The bytes a reachability report's signature covers."""
    return REPORT_TAG + _canonical(doc, REPORT_FIELDS)


def build_uptime_proof(
    identity: Signer,
    *,
    version: tuple[int, int, int] | list[int],
    https_port: int,
    zmq_port: int,
    storage_bytes: int,
    storage_max_bytes: int,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A signed uptime proof of ``identity``'s node (JSON-ready)."""
    doc: dict[str, Any] = {
        "pubkey_ed25519": bytes(identity.ed25519_public).hex(),
        "timestamp": now_ms() if timestamp is None else int(timestamp),
        "version": [int(v) for v in version],
        "https_port": int(https_port),
        "zmq_port": int(zmq_port),
        "storage_bytes": int(storage_bytes),
        "storage_max_bytes": int(storage_max_bytes),
    }
    doc["signature"] = bytes(identity.sign(proof_payload(doc))).hex()
    return doc


def build_report(
    identity: Signer,
    target_ed25519: str,
    *,
    https_ok: bool,
    link_ok: bool,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A signed reachability report by ``identity`` about the node ``target_ed25519``."""
    doc: dict[str, Any] = {
        "pubkey_ed25519": bytes(identity.ed25519_public).hex(),
        "target": target_ed25519,
        "timestamp": now_ms() if timestamp is None else int(timestamp),
        "https_ok": bool(https_ok),
        "link_ok": bool(link_ok),
    }
    doc["signature"] = bytes(identity.sign(report_payload(doc))).hex()
    return doc


def _fields(doc: Any, fields: tuple[str, ...], what: str) -> None:
    if not isinstance(doc, Mapping):
        raise DecodeError(f"{what} must be a JSON object")
    missing = [f for f in (*fields, "signature") if f not in doc]
    if missing:
        raise DecodeError(f"{what} is missing {', '.join(missing)}")


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError(f"{field} must be true or false")
    return value


def verify_uptime_proof(
    doc: Any, *, now: float, freshness: float = DEFAULT_FRESHNESS
) -> dict[str, Any]:
    """Check an uptime proof's shape, freshness and signature; returns its fields."""
    _fields(doc, PROOF_FIELDS, "uptime proof")
    version = doc["version"]
    if not isinstance(version, list) or len(version) != 3:
        raise DecodeError("version must be a list of three integers")
    f: dict[str, Any] = {
        "pubkey_ed25519": _hex(doc["pubkey_ed25519"], "pubkey_ed25519", 32),
        "timestamp": _int(doc["timestamp"], "timestamp", 0, 2**63 - 1),
        "version": [_int(v, "version", 0, 65535) for v in version],
        "https_port": _int(doc["https_port"], "https_port", 1, 65535),
        "zmq_port": _int(doc["zmq_port"], "zmq_port", 1, 65535),
        "storage_bytes": _int(doc["storage_bytes"], "storage_bytes", 0, 2**63 - 1),
        "storage_max_bytes": _int(doc["storage_max_bytes"], "storage_max_bytes", 0, 2**63 - 1),
    }
    _check_fresh(f["timestamp"], now, freshness)
    _check_signature(f["pubkey_ed25519"], proof_payload(doc), doc["signature"])
    return f


def verify_report(doc: Any, *, now: float, freshness: float = DEFAULT_FRESHNESS) -> dict[str, Any]:
    """Check a reachability report's shape, freshness and signature; returns its fields."""
    _fields(doc, REPORT_FIELDS, "reachability report")
    f: dict[str, Any] = {
        "pubkey_ed25519": _hex(doc["pubkey_ed25519"], "pubkey_ed25519", 32),
        "target": _hex(doc["target"], "target", 32),
        "timestamp": _int(doc["timestamp"], "timestamp", 0, 2**63 - 1),
        "https_ok": _bool(doc["https_ok"], "https_ok"),
        "link_ok": _bool(doc["link_ok"], "link_ok"),
    }
    if f["target"] == f["pubkey_ed25519"]:
        raise InvalidInput("a node cannot report on itself")
    _check_fresh(f["timestamp"], now, freshness)
    _check_signature(f["pubkey_ed25519"], report_payload(doc), doc["signature"])
    return f


# -- state -----------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class TesterView:
    """One tester's latest word on one node."""

    received: float  # registry clock
    passed: bool
    failing_since: float | None  # first failure of the tester's current run of failures


@dataclasses.dataclass(slots=True)
class NodeHealth:
    """What the registry knows of one registered node's health (persisted except reports)."""

    last_proof: float = 0.0  # registry clock (Unix seconds) of the last proof or registration
    proof_timestamp: int = 0  # the node's timestamp (ms) of its last proof (replays fail)
    version: tuple[int, int, int] = (0, 0, 0)
    storage_bytes: int = 0
    storage_max_bytes: int = 0
    decommissioned_since: float | None = None
    decommission_count: int = 0
    decommission_reason: str = ""
    resumed_at: float | None = None  # first proof after the decommission
    reports: dict[str, TesterView] = dataclasses.field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return {
            "last_proof": self.last_proof,
            "proof_timestamp": self.proof_timestamp,
            "version": list(self.version),
            "storage_bytes": self.storage_bytes,
            "storage_max_bytes": self.storage_max_bytes,
            "decommissioned_since": self.decommissioned_since,
            "decommission_count": self.decommission_count,
            "decommission_reason": self.decommission_reason,
            "resumed_at": self.resumed_at,
        }

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> NodeHealth:
        v = raw.get("version", (0, 0, 0))
        since = raw.get("decommissioned_since")
        resumed = raw.get("resumed_at")
        return cls(
            last_proof=float(raw.get("last_proof", 0.0)),
            proof_timestamp=int(raw.get("proof_timestamp", 0)),
            version=(int(v[0]), int(v[1]), int(v[2])),
            storage_bytes=int(raw.get("storage_bytes", 0)),
            storage_max_bytes=int(raw.get("storage_max_bytes", 0)),
            decommissioned_since=None if since is None else float(since),
            decommission_count=int(raw.get("decommission_count", 0)),
            decommission_reason=str(raw.get("decommission_reason", "")),
            resumed_at=None if resumed is None else float(resumed),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """One state change :meth:`Health.check` decided: ``kind`` is ``decommission``,
    ``recommission`` or ``deregister``."""

    kind: str
    pubkey_ed25519: str
    reason: str


class Health:
    """Health records of the registered nodes, and the rules that decommission them.

    ``started`` is when this registry process started: a proof's age counts from no earlier
    than that, so a registry restart gives every node one full ``proof_timeout`` to prove
    again (and a node that died while the registry was down is decommissioned that long after
    the restart, not never).
    """

    def __init__(self, rules: HealthRules, started: float) -> None:
        validate_rules(rules)
        self.rules = rules
        self.started = started
        self.nodes: dict[str, NodeHealth] = {}
        #: last accepted report timestamp (ms) per tester (replays fail)
        self.report_timestamps: dict[str, int] = {}

    # -- queries --------------------------------------------------------------------------------

    def decommissioned(self, key: str) -> bool:
        h = self.nodes.get(key)
        return h is not None and h.decommissioned_since is not None

    def annotate(self, entries: Iterable[dict[str, Any]]) -> None:
        """Add Session's health fields to ``get_n_service_nodes`` entries (in place):
        ``last_uptime_proof`` (Unix seconds, 0 = none yet), ``decommission_count`` and
        ``storage_server_version``."""
        for e in entries:
            h = self.nodes.get(e.get("pubkey_ed25519", ""))
            if h is None:
                continue
            e["last_uptime_proof"] = int(h.last_proof)
            e["decommission_count"] = h.decommission_count
            e["storage_server_version"] = list(h.version)

    def _need(self, others: int) -> int:
        """Distinct testers whose word counts, given ``others`` active nodes besides the one
        tested (0 when there are too few testers for reports to decide anything)."""
        return min(self.rules.min_reporters, others)

    def failing_testers(self, key: str, now: float, testers: set[str]) -> int:
        """Distinct active testers whose latest report, within the window, says ``key`` has
        been failing for at least ``unreachable_after`` seconds."""
        h = self.nodes.get(key)
        if h is None:
            return 0
        r = self.rules
        return sum(
            1
            for t, v in h.reports.items()
            if t in testers
            and not v.passed
            and now - v.received <= r.report_window
            and v.failing_since is not None
            and v.received - v.failing_since >= r.unreachable_after
        )

    def passing_testers(self, key: str, since: float, testers: set[str]) -> int:
        """Distinct active testers whose latest report says ``key`` passed, received after
        ``since``."""
        h = self.nodes.get(key)
        if h is None:
            return 0
        return sum(
            1 for t, v in h.reports.items() if t in testers and v.passed and v.received > since
        )

    # -- inputs ---------------------------------------------------------------------------------

    def registered(self, key: str, now: float) -> None:
        """A registration (new node or a restart): it counts as a proof."""
        h = self.nodes.setdefault(key, NodeHealth())
        self._proved(h, now)

    def forget(self, key: str) -> None:
        self.nodes.pop(key, None)
        for h in self.nodes.values():
            h.reports.pop(key, None)

    def proof(self, f: Mapping[str, Any], now: float) -> NodeHealth:
        """Record a verified proof (fields of :func:`verify_uptime_proof`) of a registered node;
        raises a 409 :class:`RegistryError` for a replayed or older proof."""
        key = f["pubkey_ed25519"]
        h = self.nodes.setdefault(key, NodeHealth())
        if f["timestamp"] <= h.proof_timestamp:
            raise RegistryError(
                "uptime proof is not newer than the node's last one (replayed?)", 409
            )
        h.proof_timestamp = f["timestamp"]
        major, minor, patch = f["version"]
        h.version = (major, minor, patch)
        h.storage_bytes = f["storage_bytes"]
        h.storage_max_bytes = f["storage_max_bytes"]
        self._proved(h, now)
        return h

    def _proved(self, h: NodeHealth, now: float) -> None:
        h.last_proof = now
        if h.decommissioned_since is not None and h.resumed_at is None:
            h.resumed_at = now

    def report(self, f: Mapping[str, Any], now: float) -> None:
        """Record a verified report (fields of :func:`verify_report`) by a registered tester about
        a registered node; raises a 409 :class:`RegistryError` for a replayed one."""
        tester, target = f["pubkey_ed25519"], f["target"]
        last = self.report_timestamps.get(tester)
        if last is not None and f["timestamp"] <= last:
            raise RegistryError("report is not newer than the tester's last one (replayed?)", 409)
        self.report_timestamps[tester] = f["timestamp"]
        h = self.nodes.setdefault(target, NodeHealth())
        passed = bool(f["https_ok"] and f["link_ok"])
        prev = h.reports.get(tester)
        if passed:
            failing_since = None
        elif prev is not None and not prev.passed and prev.failing_since is not None:
            failing_since = prev.failing_since
        else:
            failing_since = now
        h.reports[tester] = TesterView(received=now, passed=passed, failing_since=failing_since)

    # -- rules ----------------------------------------------------------------------------------

    def check(self, active: set[str], registered: Iterable[str], now: float) -> list[Transition]:
        """The transitions due now. ``active``: keys of nodes that are active but for their
        health (staked, not decommissioned); ``registered``: every registered key."""
        r = self.rules
        out: list[Transition] = []
        for key in registered:
            h = self.nodes.setdefault(key, NodeHealth(last_proof=now))
            others = active - {key}
            if h.decommissioned_since is None:
                if key not in active:
                    continue  # not staked: nothing to decommission
                silent = now - max(h.last_proof, self.started)
                fail_need = max(2, self._need(len(others)))
                failing = self.failing_testers(key, now, others) if len(others) >= 2 else 0
                if silent > r.proof_timeout:
                    out.append(
                        Transition("decommission", key, f"no uptime proof for {silent:.0f} s")
                    )
                elif failing >= fail_need:
                    out.append(
                        Transition("decommission", key, f"unreachable for {failing} testers")
                    )
                continue
            down_for = now - h.decommissioned_since
            if down_for > r.deregister_after:
                out.append(Transition("deregister", key, f"decommissioned for {down_for:.0f} s"))
                continue
            fresh = h.resumed_at is not None and now - h.last_proof <= r.proof_timeout
            if not fresh:
                continue
            assert h.resumed_at is not None
            passing = self.passing_testers(key, h.resumed_at, others)
            failing = self.failing_testers(key, now, others)
            need = self._need(len(others))
            if passing >= need and failing < max(2, need):
                out.append(
                    Transition("recommission", key, f"proofs resumed, {passing} testers passed it")
                )
        return out

    def apply(self, t: Transition, now: float) -> None:
        """Record (and log) a transition; a deregistration is then :meth:`forget`."""
        level = logging.INFO if t.kind == "recommission" else logging.WARNING
        log.log(level, "node %s %sed: %s", t.pubkey_ed25519, t.kind, t.reason)
        h = self.nodes.setdefault(t.pubkey_ed25519, NodeHealth())
        if t.kind == "decommission":
            h.decommissioned_since = now
            h.decommission_count += 1
            h.decommission_reason = t.reason
            h.resumed_at = None
            h.reports.clear()  # what testers said before no longer decides its way back
        elif t.kind == "recommission":
            h.decommissioned_since = None
            h.resumed_at = None
            h.reports.clear()

    # -- persistence ----------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {k: h.dump() for k, h in self.nodes.items()}

    def load(self, raw: Any) -> None:
        """Load :meth:`dump`'s output (``ValueError``/``KeyError``/``TypeError`` when bad)."""
        if not isinstance(raw, Mapping):
            raise ValueError("health records must be a map")
        self.nodes = {str(k): NodeHealth.load(v) for k, v in raw.items()}


__all__ = [
    "Health",
    "HealthRules",
    "NodeHealth",
    "Transition",
    "build_report",
    "build_uptime_proof",
    "proof_payload",
    "report_payload",
    "validate_rules",
    "verify_report",
    "verify_uptime_proof",
]
