"""Prometheus metrics of one node (``session_node_`` prefix, low-cardinality labels only).

Each :class:`NodeMetrics` owns its own registry, so several nodes in one process (tests) do not
collide. Labels never carry IPs, keys or account ids: endpoints, status codes, decision kinds.
The metric types are :mod:`session.service.metrics` (not prometheus_client: 4.8 MB less on a
node); the admin site serves :meth:`NodeMetrics.render`.
"""

from __future__ import annotations

from collections.abc import Callable

from session.service.metrics import Counter, Gauge, Histogram, Info, Registry

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class NodeMetrics:
    """Every metric of one node, in its own :class:`~session.service.metrics.Registry`."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = Counter(
            "session_node_requests",
            "Client HTTPS requests answered",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "session_node_request_seconds",
            "Time to answer a client HTTPS request",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.onion = Counter(
            "session_node_onion_layers",
            "Onion layers peeled, by decision",
            ["decision"],
            registry=r,
        )
        self.links = Counter(
            "session_node_link_requests",
            "Node-link requests sent, by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.link_served = Counter(
            "session_node_link_served", "Node-link requests served, by kind", ["kind"], registry=r
        )
        self.held = Counter(
            "session_node_replica_writes_held",
            "Forwarded writes held while the member's previous link message was unanswered",
            registry=r,
        )
        self.rate_limited = Counter(
            "session_node_rate_limited", "Requests refused by the per-IP limiter", registry=r
        )
        self.handoff = Counter(
            "session_node_handoff_messages",
            "Messages moved on swarm changes",
            ["direction"],
            registry=r,
        )
        self.inflight = Gauge(
            "session_node_inflight_requests", "Client requests being served", registry=r
        )
        self.ready = Gauge("session_node_ready", "1 when the node serves clients", registry=r)
        self.known_nodes = Gauge(
            "session_node_known_nodes", "Nodes in the current list", registry=r
        )
        self.node_list = Info("session_node_list", "Digest of the node list in use", registry=r)
        self.swarm_size = Gauge(
            "session_node_swarm_members", "Members of this node's swarm", registry=r
        )

    def gauge_fn(self, name: str, doc: str, fn: Callable[[], float]) -> None:
        """A gauge read from ``fn`` at scrape time (e.g. link counters, store size)."""
        g = Gauge(name, doc, registry=self.registry)
        g.set_function(fn)

    def render(self) -> bytes:
        """The Prometheus text of every metric (the admin site's ``/metrics``)."""
        return self.registry.render()
