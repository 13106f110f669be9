"""A node's part in network health: uptime proofs and reachability tests of its peers.

* :class:`UptimeProver` sends the registry a signed uptime proof every ``proof_interval``
  seconds (version, ports, storage figures; :func:`session.registry.health.build_uptime_proof`).
  A 404 answer after the registry last called the node decommissioned means it was
  deregistered after a long outage: it registers again (a node deregistered while active was
  deregistered on purpose, and stays out until restarted). A change of the node's own state
  (decommissioned, recommissioned) is logged once, for the operator.
* :class:`ReachabilityTester` tests peers the way Session's storage server does
  (``reachability_testing``): one random listed node every ``test_interval`` seconds on
  average (normally distributed, taken from a shuffled queue of every listed node, active or
  decommissioned), and nodes that failed again after ``failures × interval`` plus jitter,
  capped. A test is an HTTPS ``POST /ping_test/v1`` (200 and the node's own key in
  ``X-Oxen-Snode-Pubkey``) and a node-link ``ping``, each within ``test_timeout``. Every result
  goes to the registry signed (:func:`session.registry.health.build_report`); the registry
  decides. A node that is not active itself tests no one (as in Session).

The addresses tested are the registry's listing of registered nodes (the same directory the
node links and the relay use), never an address a stranger sent.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from session.errors import ConfigError, HttpError, RegistryError
from session.http1.client import HttpClient
from session.node.links import NodeLinks, ping
from session.node.swarm_view import SwarmView
from session.proto.snodes import ServiceNode
from session.registry.health import build_report, build_uptime_proof
from session.registry.messages import Signer
from session.service.tasks import cancel_and_wait, spawn
from session.version import STORAGE_SERVER_VERSION

#: Largest ping answer read (a node answers with an empty body).
PING_MAX_ANSWER = 64 * 1024

log = logging.getLogger("session.node.health")

#: A failing node is retested after at most this many test intervals (Session: 2 min / 10 s).
RETEST_CAP = 12
#: Failing nodes retested per round at most (Session: 4).
RETESTS_PER_ROUND = 4

SendProof = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SendReport = Callable[[dict[str, Any]], Awaitable[None]]


class UptimeProver:
    """Sends signed uptime proofs until stopped (see the module docstring)."""

    def __init__(
        self,
        identity: Signer,
        send: SendProof,
        *,
        interval: float,
        ports: Callable[[], tuple[int, int]],
        storage: Callable[[], tuple[int, int]],
        register_again: Callable[[], Awaitable[None]],
    ) -> None:
        self.identity = identity
        self._send = send
        self.interval = interval
        self._ports = ports
        self._storage = storage
        self._register_again = register_again
        self.sent = 0
        self.active: bool | None = None  # as the registry last answered
        self._task: asyncio.Task[None] | None = None

    async def prove(self) -> None:
        """Send one proof now (errors are logged; the next round tries again)."""
        https_port, zmq_port = self._ports()
        used, cap = self._storage()
        doc = build_uptime_proof(
            self.identity,
            version=STORAGE_SERVER_VERSION,
            https_port=https_port,
            zmq_port=zmq_port,
            storage_bytes=used,
            storage_max_bytes=cap,
        )
        try:
            answer = await self._send(doc)
        except RegistryError as e:
            if e.status == 409 or (e.status == 404 and self.active is False):
                # our ports changed, or we were deregistered after a long decommission
                log.warning("uptime proof refused (%s): registering again", e)
                try:
                    await self._register_again()
                except (RegistryError, ConfigError) as refused:  # a refusal a retry cannot change
                    log.error("registering again failed: %s", refused)
            elif e.status == 404:
                # deregistered while active: someone asked for it (a signed deregistration)
                if self.active is not None:
                    log.warning("the registry no longer lists this node: it was deregistered")
                self.active = None
            else:
                log.warning("uptime proof not delivered: %s", e)
            return
        self.sent += 1
        active = answer.get("active")
        if isinstance(active, bool) and active != self.active:
            if active:
                log.info("the registry lists this node as active")
            else:
                log.warning(
                    "the registry lists this node as decommissioned (decommissioned %s times): "
                    "it is out of every swarm until its proofs and reachability tests pass",
                    answer.get("decommission_count"),
                )
            self.active = active

    async def run(self) -> None:
        while True:
            await self.prove()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self.run(), log, "uptime proof loop")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None


class ReachabilityTester:
    """Tests random peers' HTTPS port and node link and reports every result (module
    docstring). ``ping_https`` answers whether a node's ``/ping_test/v1`` passed."""

    def __init__(
        self,
        identity: Signer,
        view: SwarmView,
        links: NodeLinks,
        send: SendReport,
        *,
        interval: float,
        timeout: float,
        ping_https: Callable[[ServiceNode, float], Awaitable[bool]],
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.view = view
        self.links = links
        self._send = send
        self.interval = interval
        self.timeout = timeout
        self._ping_https = ping_https
        self.rng = rng or random.SystemRandom()
        self.tested = 0
        self.reported_failures = 0
        self._queue: list[str] = []
        #: Ed25519 hex → (consecutive failures, loop time of the next retest)
        self.failing: dict[str, tuple[int, float]] = {}
        self._next_random = 0.0
        self._task: asyncio.Task[None] | None = None

    def _listed(self) -> dict[str, ServiceNode]:
        return {n.pubkey_ed25519: n for n in self.view.listed if n.pubkey_ed25519 != self.view.me}

    def _gap(self) -> float:
        """The wait before the next random test: normal(interval, 0.3 × interval), floored."""
        return max(0.2 * self.interval, self.rng.gauss(self.interval, 0.3 * self.interval))

    def due(self, now: float) -> list[ServiceNode]:
        """The nodes to test now: failing ones whose retest time came, and one random node
        when the next random test is due. Empty while this node is not active itself."""
        if self.view.node_by_ed25519(self.view.me) is None:
            return []  # decommissioned (or not listed): Session's nodes then test no one
        listed = self._listed()
        for k in [k for k in self.failing if k not in listed]:
            del self.failing[k]
        retests = sorted((t, k) for k, (_, t) in self.failing.items() if t <= now)
        out = [listed[k] for _, k in retests[:RETESTS_PER_ROUND]]
        if now >= self._next_random:
            self._next_random = now + self._gap()
            pick = self._pick(listed)
            if pick is not None and pick not in out:
                out.append(pick)
        return out

    def _pick(self, listed: dict[str, ServiceNode]) -> ServiceNode | None:
        while True:
            if not self._queue:
                self._queue = [k for k in listed if k not in self.failing]
                self.rng.shuffle(self._queue)
                if not self._queue:
                    return None
            k = self._queue.pop()
            if k in listed and k not in self.failing:
                return listed[k]

    async def test(self, node: ServiceNode) -> bool:
        """Test one node (HTTPS ping and node-link ping at once) and report the result."""
        https_ok, link_ok = await asyncio.gather(
            self._ping_https(node, self.timeout), self._ping_link(node)
        )
        self.tested += 1
        now = asyncio.get_running_loop().time()
        passed = https_ok and link_ok
        if passed:
            self.failing.pop(node.pubkey_ed25519, None)
        else:
            failures = self.failing.get(node.pubkey_ed25519, (0, 0.0))[0] + 1
            wait = min(failures * self.interval + self._gap(), RETEST_CAP * self.interval)
            self.failing[node.pubkey_ed25519] = (failures, now + wait)
            self.reported_failures += 1
            log.info(
                "reachability test of %s… failed (https %s, link %s; %d in a row)",
                node.pubkey_ed25519[:12],
                "ok" if https_ok else "failed",
                "ok" if link_ok else "failed",
                failures,
            )
        doc = build_report(self.identity, node.pubkey_ed25519, https_ok=https_ok, link_ok=link_ok)
        try:
            await self._send(doc)
        except RegistryError as e:
            log.warning("reachability report not delivered: %s", e)
        return passed

    async def _ping_link(self, node: ServiceNode) -> bool:
        return await ping(
            self.links, node.pubkey_x25519, node.zmq_address, self.view.version, self.timeout
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_random = loop.time() + self._gap()
        while True:
            batch: Sequence[ServiceNode] = self.due(loop.time())
            if batch:
                await asyncio.gather(*(self.test(n) for n in batch))
            await asyncio.sleep(min(0.2, self.interval / 4))

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self.run(), log, "reachability test loop")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None


async def ping_https(http: HttpClient, node: ServiceNode, timeout: float) -> bool:
    """``POST /ping_test/v1`` of ``node``: passed when it answers 200 with its own Ed25519 key
    (base64) in ``X-Oxen-Snode-Pubkey`` within ``timeout`` seconds."""
    want = base64.b64encode(node.ed25519).decode()
    try:
        r = await http.request(
            "POST", f"{node.https_url}/ping_test/v1", timeout=timeout, max_size=PING_MAX_ANSWER
        )
    except HttpError:
        return False
    return r.status == 200 and r.headers.get("x-oxen-snode-pubkey") == want


__all__ = ["ReachabilityTester", "UptimeProver", "ping_https"]
