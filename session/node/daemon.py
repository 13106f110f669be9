"""The service-node process: one asyncio loop (uvloop) wiring every part together.

Start-up (``run`` sets up logs, then one :meth:`Node.start` step each): keys → database → TLS →
node links (TCP, Noise) → replication (write fan-out, reconciler, hand-off) → RPC handler and onion
router → HTTPS and admin sites → registration with the registry and the first node list →
background tasks (node-list polling, hand-off retries, reconciliation, expiry sweep, uptime
proofs and reachability tests of peers: :mod:`session.node.health`).

``/readyz`` stays 503 (and client requests get 503) until keys, database, a node list that puts
us in a swarm, and both sites are up; after that ``/readyz`` stays 503 (and reads get 503) until
the node caught up with its swarm (``replication.Reconciler``), while stores and relaying are
already served; the same again whenever it enters a swarm later (recommissioned, or moved).

Under systemd (``Type=notify``) each step is also sent as ``STATUS=``, ``READY=1`` once it
serves, and the watchdog is pinged from the loop (:mod:`session.service.systemd`).

SIGTERM/SIGINT, in any state (also while registering): mark not ready, stop accepting, let
in-flight requests finish (bounded by ``shutdown_timeout``), stop polling and links, flush and
close the store, exit 0. A second node on the same data directory is refused (a lock).

TLS, logging, serving with connection limits and the admin site come from the shared service
plumbing (:mod:`session.service`). The CLI imports this module only to run a node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

import uvloop

from session.errors import ConfigError, DecodeError, InvalidInput, RegistryError
from session.http1.client import HttpClient
from session.http1.server import Served
from session.http1.server import serve as serve_site
from session.node import keys
from session.node.config import check_runnable
from session.node.egress import EgressPolicy, parse_allowlist
from session.node.forwarded import ForwardedWrites
from session.node.health import ReachabilityTester, UptimeProver, ping_https
from session.node.http import ClientSite
from session.node.links import (
    KIND_CC,
    KIND_CC_BATCH,
    KIND_DATA,
    KIND_ONION,
    KIND_PING,
    KIND_SYNC,
    NodeLinks,
)
from session.node.metrics import NodeMetrics
from session.node.ons import NameMirror
from session.node.relay import OnionRouter, PeelPool
from session.node.replication import LinkFanout, Reconciler, SwarmHandoff
from session.node.rpc import RpcHandler, sweep_forever
from session.node.swarm_view import SwarmView
from session.onion import Peeler
from session.proto import rpc as P
from session.proto.snodes import parse_node_list
from session.registry import client as registry_client
from session.service import logs, tls
from session.service.accept import ConnectionStats
from session.service.admin import admin_routes
from session.service.datadir import DataDirLock
from session.service.memory import keep_large_buffers
from session.service.ratelimit import RateLimiter
from session.service.systemd import Notifier
from session.service.tasks import cancel_and_wait, spawn
from session.storage.sqlite import SqliteMessageStore

log = logging.getLogger("session.node")

EXPIRY_SWEEP_INTERVAL = 10.0


def _rss_bytes() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


def _dir_bytes(path: os.PathLike[str] | str) -> int:
    """Bytes the files directly in ``path`` take (the store's database, WAL and journal)."""
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    except OSError:
        return total
    return total


class Node:
    """One running service node (also usable in-process by tests and benchmarks)."""

    def __init__(
        self,
        config: Any,
        *,
        identity: Any = None,
        store: Any = None,
        fetch_nodes: Any = None,
        register: bool = True,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self._fetch_override = fetch_nodes
        self._register_enabled = register
        self.metrics: Any = None
        self.links: Any = None
        self.view: Any = None
        self.rpc: Any = None
        self.router: Any = None
        self.handoff: Any = None
        self.fanout: Any = None
        self.reconciler: Any = None
        self.site: Any = None
        self.prover: UptimeProver | None = None
        self.tester: ReachabilityTester | None = None
        self._ping_http: HttpClient | None = None
        self._served: list[Served] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: HttpClient | None = None
        self.https_port = 0
        self.zmq_port = 0
        self.admin_port = 0
        self.registered = False
        self._chain_check: Any = None  # session.node.chaincheck.ChainCheck, once needed
        self.sites_up = False
        self.stopping = False
        self._lock: DataDirLock | None = None
        #: Start-up progress and readiness for systemd (a no-op outside it).
        self.notifier = Notifier()
        #: Copy of the registry's Session names for ``ons_resolve`` (filled on first lookup).
        self.names = NameMirror(self._fetch_names)

    # ------------------------------------------------------------------ readiness
    def ready_reason(self) -> str | None:
        """None when ready, else a short reason (shown by /readyz and in 503 bodies)."""
        if self.stopping:
            return "shutting down"
        if self.identity is None:
            return "keys not loaded"
        if self.store is None:
            return "database not open"
        if not self.sites_up:
            return "sites not listening"
        if self.view is None or self.view.map is None:
            return "no node list yet"
        if not self.view.is_ready():
            return "not in a swarm yet"
        return None

    def fully_ready(self) -> str | None:
        """``/readyz``: :meth:`ready_reason`, and then whether reads wait for the catch-up with
        the swarm after a start (stores and relaying are served meanwhile; reads get 503)."""
        why = self.ready_reason()
        if why is None and self.reconciler is not None:
            why = self.reconciler.not_ready_reason()
        return why

    # ------------------------------------------------------------------ start-up
    def _progress(self, msg: str, *args: Any) -> None:
        """A start-up step: logged, and shown by ``systemctl status`` under systemd."""
        log.info(msg, *args)
        self.notifier.status(msg % args)

    async def start(self) -> None:
        """Start every part, in the order the module docstring gives: keys, store, TLS, node
        links, replication, RPC handler and onion router, sites, registration, background
        tasks. Each step is a method below; a failure stops start-up (``serve`` then stops
        what was started)."""
        cfg = self.config
        if self._register_enabled:
            check_runnable(cfg)  # a permanent error: fail before anything starts
        self.metrics = NodeMetrics()
        t0 = time.perf_counter()
        self._progress("starting: data directory %s", cfg.data_dir)
        self._lock = DataDirLock(cfg.data_dir, "session-node")
        self._lock.acquire()
        await self._load_keys()
        self._progress("keys loaded: node %s…", bytes(self.identity.ed25519_public).hex()[:12])
        await self._open_store()
        self._progress("database open in %s", cfg.db_dir)
        ssl_ctx = await self._tls_context()
        x_secret = bytes(self.identity.export_x25519_secret())
        await self._start_links(x_secret)
        self._progress("node links listening on port %d (network.zmq_port)", self.zmq_port)
        self._wire_replication()
        await self.handoff.restore()  # members owed a copy before the last stop
        self._wire_handler_and_router(x_secret)
        del x_secret  # the peeler and the links hold their own copies
        await self._start_sites(ssl_ctx)
        self._progress("listening: https port %d, admin port %d", self.https_port, self.admin_port)
        await self._join_network()
        self._start_background()
        log.info(
            "node %s… up in %.2fs: https %d, links %d, admin %d",
            self.view.me[:12],
            time.perf_counter() - t0,
            self.https_port,
            self.zmq_port,
            self.admin_port,
        )

    async def _load_keys(self) -> None:
        """Keys: the identity given, or the one in ``keys_dir`` (created on first start)."""
        if self.identity is None:
            self.identity = await asyncio.to_thread(keys.load_or_create, self.config.keys_dir)

    async def _open_store(self) -> None:
        """Store: the one given, or the SQLite database in ``db_dir``."""
        if self.store is None:
            cfg = self.config
            cfg.db_dir.mkdir(parents=True, exist_ok=True)
            self.store = await SqliteMessageStore.open(cfg.db_dir, max_bytes=cfg.storage.max_bytes)

    async def _tls_context(self) -> ssl.SSLContext:
        """TLS: the HTTPS site's context, generating a self-signed certificate on first start."""
        data_dir = self.config.data_dir
        cert, key = tls.tls_paths(data_dir)
        if not (cert.exists() and key.exists()):
            # Generate in a short-lived child: importing `cryptography` would add ~10 MB to
            # this long-lived process's RSS for a one-time job.
            self._progress("creating a self-signed TLS certificate in %s", cert.parent)
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",  # not the current directory's source tree: the installed package
                "-c",
                "import sys; from session.service.tls import ensure_certificate; "
                "ensure_certificate(sys.argv[1])",
                str(data_dir),
            )
            try:
                await child.wait()
            finally:  # start-up cancelled by a signal: do not leave the child behind
                if child.returncode is None:
                    child.kill()
                    await child.wait()
        return await asyncio.to_thread(tls.server_ssl_context, data_dir)

    async def _start_links(self, x_secret: bytes) -> None:
        """Node links: the swarm view (which authorizes peers) and the bound link listener."""
        cfg = self.config
        me = bytes(self.identity.ed25519_public).hex()
        self.view = SwarmView(me, self._fetch_nodes, poll_interval=cfg.registry.poll_interval)
        self.links = NodeLinks(
            public_x25519=bytes(self.identity.x25519_public),
            secret_x25519=x_secret,
            handlers={},
            authorize=self.view.authorize,
        )
        self.zmq_port = await self.links.start(cfg.network.listen_host, cfg.network.zmq_port)

    def _wire_replication(self) -> None:
        """Replication: the write fan-out, the swarm reconciler and the hand-off on changes."""
        m = self.metrics
        rep = self.config.replication
        cc_outcome = {o: m.links.labels("cc", o) for o in ("ok", "failed")}
        self.fanout = LinkFanout(
            self.links,
            self.view,
            deadline=rep.forward_deadline,
            on_result=lambda o: cc_outcome[o].inc(),
            hold=rep.forward_hold,
            on_held=m.held.inc,
        )
        self.reconciler = Reconciler(
            self.store,
            self.links,
            self.view,
            interval=rep.sync_interval,
            catch_up_timeout=rep.catch_up_timeout,
        )
        self.links.on_peer_up = self.reconciler.peer_up
        self.handoff = SwarmHandoff(
            self.store, self.links, self.view, on_moved=lambda d, n: m.handoff.labels(d).inc(n)
        )
        self.view.on_change = self._on_swarm_change

    def _wire_handler_and_router(self, x_secret: bytes) -> None:
        """The storage-RPC handler, the onion router, and the link handler of every kind."""
        cfg = self.config
        self.rpc = RpcHandler(
            store=self.store,
            identity=self.identity,
            swarm=self.view,
            fanout=self.fanout,
            oxend=self._oxend,
            catching_up=self.reconciler.not_ready_reason,
        )
        egress = EgressPolicy(
            allow_public=cfg.network.proxy_public,
            allow=parse_allowlist(cfg.network.proxy_allow),
            own_addresses=(cfg.network.public_ip, cfg.network.listen_host),
        )
        self.router = OnionRouter(
            PeelPool(Peeler.from_x25519_secret(x_secret), workers=1),
            self.view,
            self.links,
            self.rpc,
            metrics=self.metrics,
            max_hops=cfg.limits.max_onion_hops,
            egress=egress,
        )
        # the relay's hot path: a direct handler, no task per relayed layer
        self.links.direct[KIND_ONION] = self.router.serve_link_now
        # forwarded writes: answered as they arrive when the store can commit them at once
        self.forwarded = ForwardedWrites(self.rpc)
        self.links.direct[KIND_CC] = self.forwarded.serve_now
        self.links.direct[KIND_CC_BATCH] = self.forwarded.serve_batch_now
        self.links.handlers.update(
            {
                KIND_DATA: self.handoff.accept_push,
                KIND_PING: self._serve_ping,
                KIND_SYNC: self.reconciler.serve,
            }
        )
        # every request handed to a handler, direct or not, counted by kind
        served = {
            kind: self.metrics.link_served.labels(label)
            for kind, label in (
                (KIND_ONION, "onion"),
                (KIND_CC, "cc"),
                (KIND_CC_BATCH, "cc_batch"),
                (KIND_DATA, "data"),
                (KIND_PING, "ping"),
                (KIND_SYNC, "sync"),
            )
        }
        other = self.metrics.link_served.labels("other")  # (a kind added without a label)
        self.links.on_served = lambda kind: served.get(kind, other).inc()

    async def _start_sites(self, ssl_ctx: ssl.SSLContext) -> None:
        """Sites: the public HTTPS site (rate limited) and the loopback admin site."""
        cfg = self.config
        self.site = ClientSite(
            rpc=self.rpc,
            router=self.router,
            limiter=RateLimiter(cfg.limits.requests_per_second, cfg.limits.burst),
            metrics=self.metrics,
            ready=self.ready_reason,
            ed25519_public=bytes(self.identity.ed25519_public),
            max_body=cfg.limits.max_request_bytes,
        )
        try:
            client = await serve_site(
                self.site.routes(),
                cfg.network.listen_host,
                cfg.network.https_port,
                ssl_context=ssl_ctx,
                limits=cfg.connections,
                max_body=cfg.limits.max_request_bytes,
                shutdown_timeout=cfg.shutdown_timeout,
            )
        except OSError as e:
            raise _listen_error(
                "HTTPS", "network", cfg.network.listen_host, cfg.network.https_port, e
            ) from None
        self._served.append(client)
        self.https_port = client.port
        self._add_gauges(client.stats)
        try:
            admin = await serve_site(
                admin_routes(self.metrics.render, self.fully_ready),
                cfg.admin.host,
                cfg.admin.port,
                limits=cfg.connections,
            )
        except OSError as e:
            raise _listen_error(
                "the admin site", "admin", cfg.admin.host, cfg.admin.port, e
            ) from None
        self._served.append(admin)
        self.admin_port = admin.port
        self.sites_up = True

    def _add_gauges(self, stats: ConnectionStats) -> None:
        """Gauges read at scrape time from the links, the reconciler, the process and the
        client site's connection counters (``stats``)."""
        links = self.links
        gauges: list[tuple[str, str, Callable[[], float]]] = [
            ("link_timeouts", "Node-link requests that timed out", lambda: links.timeouts),
            ("link_auth_denied", "Node-link handshakes refused", lambda: links.auth_denied),
            (
                "link_handshakes_refused",
                "Node-link connections closed as they opened: too many handshakes under way",
                lambda: links.handshakes_refused,
            ),
            (
                "link_connections_too_fast",
                "Node-link connections closed as they opened: their address opens them too fast",
                lambda: links.connections_too_fast,
            ),
            ("resident_bytes", "Resident memory of the process", _rss_bytes),
            (
                "peers_down",
                "Peers whose last node-link request failed",
                lambda: sum(h.down for h in links.health.values()),
            ),
            (
                "catching_up",
                "1 while reads wait for the swarm catch-up",
                lambda: float(self.reconciler.catching_up),
            ),
            ("connections_open", "Open client connections", lambda: stats.open),
            ("connections_refused", "Connections closed at accept (caps)", lambda: stats.refused),
            (
                "connections_too_fast",
                "Connections closed at accept: their address opens them too fast",
                lambda: stats.too_fast,
            ),
            (
                "connection_timeouts",
                "Connections cut by a TLS, header or body timeout",
                lambda: stats.tls_failed + stats.header_timeouts + stats.body_timeouts,
            ),
            (
                "bodies_refused",
                "Request bodies refused (in-flight budget full or too large)",
                lambda: stats.bodies_refused + stats.bodies_too_large,
            ),
        ]
        for name, doc, fn in gauges:
            self.metrics.gauge_fn(f"session_node_{name}", doc, fn)
        # read at scrape time: a node listed moments ago (once staked) reports ready at once
        self.metrics.ready.set_function(lambda: 1.0 if self.ready_reason() is None else 0.0)

    async def _join_network(self) -> None:
        """Registration with the registry (unless disabled), then the first node list."""
        if self._register_enabled:
            await self._register_until_done()
        self._progress("fetching the node list from %s", self.config.registry.url)
        await self.view.refresh()

    def _start_background(self) -> None:
        """Background tasks: node-list polling, hand-off retries (a restarted node may hold
        accounts it no longer owns), reconciliation, the expiry sweep and the gauge loop."""
        self.view.start()
        self.handoff.start(hand_over=True)
        self.reconciler.start()
        sweep = sweep_forever(self.store, interval=EXPIRY_SWEEP_INTERVAL)
        self._tasks.append(spawn(sweep, log, "expiry sweep loop"))
        self._tasks.append(spawn(self._gauge_loop(), log, "gauge loop"))
        if self._register_enabled:
            self._start_health()

    def _start_health(self) -> None:
        """Uptime proofs to the registry and reachability tests of peers (node/health.py)."""
        cfg = self.config
        url = cfg.registry.url
        self.prover = UptimeProver(
            self.identity,
            lambda doc: registry_client.send_uptime_proof(url, doc, http=self._registry_http()),
            interval=cfg.health.proof_interval,
            ports=lambda: (self.https_port, self.zmq_port),
            storage=lambda: (_dir_bytes(cfg.db_dir), cfg.storage.max_bytes),
            register_again=self._register_until_done,
        )
        # Pings use fresh connections: a pooled one to a peer that died would fail the next
        # test for the wrong reason (and one that survived a restart would hide nothing).
        self._ping_http = HttpClient(ssl_context=tls.client_ssl_context(), keepalive=False)
        ping_http = self._ping_http
        self.tester = ReachabilityTester(
            self.identity,
            self.view,
            self.links,
            lambda doc: registry_client.send_report(url, doc, http=self._registry_http()),
            interval=cfg.health.test_interval,
            timeout=cfg.health.test_timeout,
            ping_https=lambda node, timeout: ping_https(ping_http, node, timeout),
        )
        prover, tester = self.prover, self.tester
        for name, doc, fn in (
            ("uptime_proofs_sent", "Uptime proofs the registry accepted", lambda: prover.sent),
            (
                "registry_lists_active",
                "1 when the registry's last answer to a proof listed this node active",
                lambda: float(prover.active is True),
            ),
            ("reachability_tests", "Reachability tests of peers run", lambda: tester.tested),
            (
                "reachability_failures",
                "Reachability tests of peers that failed",
                lambda: tester.reported_failures,
            ),
        ):
            self.metrics.gauge_fn(f"session_node_{name}", doc, fn)
        prover.start()
        tester.start()

    async def _oxend(self, endpoint: str, params: Any) -> Any:
        """``oxend_request``: the registry stands in for oxend, and this node already holds its
        node list, so ``get_service_nodes`` is answered from it (Session's storage server asks
        its local oxend for the same list); ``ons_resolve`` from the node's copy of the
        registry's names (:mod:`session.node.ons`)."""
        if endpoint == "ons_resolve":
            return await self.names.resolve(params)
        if endpoint != "get_service_nodes":
            raise P.RpcStatusError(
                400, f"oxend endpoint {endpoint} is not available on this network"
            )
        m = self.view.map if self.view is not None else None
        return P.service_nodes_result(m.nodes if m is not None else (), params)

    async def _serve_ping(self, peer: str, body: Any) -> Any:
        if isinstance(body, dict) and body.get("v") and body["v"] != self.view.version:
            self.view.poke()
        return {"v": self.view.version}

    async def _on_swarm_change(self, change: Any) -> None:
        m = self.metrics
        m.known_nodes.set(len(change.new.nodes))
        m.node_list.info({"version": self.view.version})
        m.swarm_size.set(len(self.view.peers_in_my_swarm()) + (1 if self.view.is_ready() else 0))
        self.reconciler.swarm_changed(change)
        await self.handoff.on_change(change)

    # ------------------------------------------------------------------ registry
    async def _fetch_names(self, since: int) -> Any:
        return await registry_client.fetch_names(
            self.config.registry.url, since, http=self._registry_http()
        )

    async def _fetch_nodes(self) -> list[Any]:
        if self._fetch_override is not None:
            return list(await self._fetch_override())
        reg = self.config.registry
        if not reg.chain_rpc:
            return list(await registry_client.fetch_nodes(reg.url, http=self._registry_http()))
        result = await registry_client.fetch_node_list(reg.url, http=self._registry_http())
        try:
            nodes = parse_node_list(result)
        except DecodeError as e:
            raise RegistryError(f"registry sent a bad node list: {e}", 502) from None
        if self._chain_check is None:
            # web3 (~0.7 s, `python -X importtime`) only for nodes that check the chain
            from session.node.chaincheck import ChainCheck  # noqa: PLC0415 - measured

            self._chain_check = ChainCheck.from_url(
                reg.chain_rpc, reg.chain_contract, start_block=reg.chain_start_block
            )
        await self._chain_check.verify(result, nodes)
        return nodes

    def _registry_http(self) -> HttpClient:
        if self._http is None:
            self._http = registry_client.registry_http(per_host=4)
        return self._http

    async def _register_until_done(self, attempts: int = 40) -> None:
        """Register, retrying what may pass (the registry unreachable or busy, a clock not yet
        set after boot); a refusal that a retry cannot change raises at once."""
        cfg = self.config
        delay = 0.25
        self._progress(
            "registering with %s as %s (https %d, links %d)",
            cfg.registry.url,
            cfg.announce_ip,
            self.https_port,
            self.zmq_port,
        )
        for i in range(attempts):
            try:
                await registry_client.register(
                    cfg.registry.url,
                    self.identity,
                    public_ip=cfg.announce_ip,
                    storage_port=self.https_port,
                    storage_lmq_port=self.zmq_port,
                    stake=cfg.registry.stake,
                    http=self._registry_http(),
                )
                self.registered = True
                return
            except InvalidInput as e:  # our own document is wrong: the configuration's fault
                raise ConfigError(f"cannot register with the registry: {e}") from None
            except RegistryError as e:
                if permanent_refusal(e):
                    raise
                log.warning(
                    "registration attempt %d failed: %s; retrying in %.1f s", i + 1, e, delay
                )
                self.notifier.status(f"registering: attempt {i + 1} failed; retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.error("could not register with %s; serving without registration", cfg.registry.url)

    # ------------------------------------------------------------------ background
    async def _gauge_loop(self) -> None:
        while True:
            m = self.metrics
            m.inflight.set(self.site.inflight if self.site else 0)
            await asyncio.sleep(2.0)

    # ------------------------------------------------------------------ shutdown
    async def stop(self) -> None:
        """Stop accepting, finish in-flight work, flush the store."""
        if self.stopping:
            return
        self.stopping = True
        self.notifier.stopping()
        log.info("stopping: finishing in-flight requests")
        for served in self._served:  # stop listening; waits for handlers up to shutdown_timeout
            await served.close()
        await cancel_and_wait(self._tasks)
        if self.tester is not None:
            await self.tester.stop()
        if self.prover is not None:
            await self.prover.stop()
        if self._ping_http is not None:
            await self._ping_http.close()
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.fanout is not None:
            await self.fanout.stop()
        if self.handoff is not None:
            await self.handoff.stop()
        if self.view is not None:
            await self.view.stop()
        if self.router is not None:
            await self.router.close()
            self.router.pool.close()
        if self.links is not None:
            await self.links.close()
        if self._http is not None:
            await self._http.close()
        if self.store is not None:
            await self.store.close()
        if self._lock is not None:
            self._lock.release()
        await self.notifier.close()
        log.info("stopped cleanly")


def write_ready_file(path: str | os.PathLike[str], node: Node) -> None:
    """Write ``{"https_port", "zmq_port", "admin_port", "pid"}`` to ``path`` atomically: how a
    supervisor (the devnet) learns the ports a node bound when it was given port 0."""
    doc = {
        "https_port": node.https_port,
        "zmq_port": node.zmq_port,
        "admin_port": node.admin_port,
        "pid": os.getpid(),
    }
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def _listen_error(what: str, table: str, host: str, port: int, e: OSError) -> ConfigError:
    """One sentence for a listener that cannot bind (a port in use, an address not here)."""
    reason = e.strerror or str(e)
    return ConfigError(f"cannot listen for {what} on {host} port {port} ({table} port): {reason}")


def permanent_refusal(e: RegistryError) -> bool:
    """Whether the registry's refusal stays the same on a retry: a 4xx answer, except a request
    that was too early or stale (408, 409 "not newer", 429, and a clock the registry finds too
    far off, which on a board without a real-time clock is fixed by NTP after boot)."""
    if not 400 <= e.status < 500 or e.status in (408, 429):
        return False
    text = str(e)
    return "clock" not in text and "not newer" not in text


async def serve(config: Any, ready_file: str | os.PathLike[str] | None = None) -> int:
    """Run a node until SIGTERM/SIGINT; once it listens, write ``ready_file`` if given.

    A signal stops the node in any state: while it starts (registering, fetching the node
    list) start-up is cancelled and what was started is stopped, at once."""
    node = Node(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s received: stopping", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    node.notifier.start_watchdog()  # from the first moment: start-up can take minutes
    try:
        starting = asyncio.ensure_future(node.start())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not starting.done():  # a signal during start-up
                await cancel_and_wait([starting])
            stopped.cancel()
        if not starting.cancelled():
            starting.result()  # start-up failed: raise its error
            if ready_file is not None:
                write_ready_file(ready_file, node)
            node.notifier.ready(f"serving: https {node.https_port}, zmq {node.zmq_port}")
            await stop.wait()
    finally:
        await node.stop()  # after a signal, or whatever interrupted start-up
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def run(
    config: Any, *, use_uvloop: bool = True, ready_file: str | os.PathLike[str] | None = None
) -> int:
    """Run a node until SIGTERM/SIGINT; returns the process exit code. With
    ``limits.keep_large_buffers`` freed large buffers (relayed 10 MB onion frames) are kept for
    the next request (:mod:`session.service.memory`); off by default, as memory is what a
    Raspberry Pi has least of."""
    net = config.network
    logs.setup(config.logging, keep=logs.own_addresses(config.registry.url, net.public_ip))
    if config.limits.keep_large_buffers:
        keep_large_buffers()
    if use_uvloop and os.environ.get("SESSION_NODE_NO_UVLOOP") != "1":
        return uvloop.run(serve(config, ready_file))
    return asyncio.run(serve(config, ready_file))
