"""Onion path selection and upkeep (spec network.md §6.8).

Rules:

* a path is ``HOPS`` (3) distinct nodes on distinct IPs; the first hop is a *guard*;
* guards are kept (persisted) and reused across restarts; a guard is replaced as soon as a
  request cannot reach it, or after ``MAX_FAILURES`` failures of its path;
* different paths share no IP when the pool is large enough;
* for a node destination, a path containing that node (or its IP) is not used;
* a node that fails ``MAX_FAILURES`` times is excluded from new paths;
* every exclusion ends: a node is *marked* bad until a deadline, the first mark lasting
  ``DOWN_FIRST_S`` (a node that refused the TCP connection or failed ``MAX_FAILURES`` times) or
  ``BUSY_FIRST_S`` (a node that accepted the connection and closed it at once, as a node at its
  connection cap does), each further mark of the same node twice as long, up to ``DOWN_CAP_S``
  / ``BUSY_CAP_S``; a request that gets through a node clears its marks, and a node that moves
  to another address starts afresh. So a client that marked every node bad (a network restart,
  connection caps under load) tries them again by itself.

"IP" is the diversity key: the public IP, or ``ip:port`` for loopback/private addresses, so a
single-host devnet (every node on 127.0.0.1) can still build paths.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import random
import time
from collections.abc import Callable, Iterable, Sequence

from session.errors import NotEnoughNodes
from session.proto.snodes import ServiceNode

__all__ = ["HOPS", "NotEnoughNodes", "OnionPath", "PathManager", "diversity_key", "valid_path"]

HOPS = 3
PATHS_WANTED = 2
MAX_FAILURES = 3
#: First exclusion of a node that is down (connection refused, or MAX_FAILURES failures), s.
DOWN_FIRST_S = 10.0
#: Longest exclusion of a node that is down, s (each further mark doubles it up to this).
DOWN_CAP_S = 300.0
#: First exclusion of a node that refused us for now (closed the connection at once), s.
BUSY_FIRST_S = 2.0
#: Longest exclusion of a busy node, s.
BUSY_CAP_S = 60.0


def diversity_key(node: ServiceNode) -> str:
    """What two nodes of one path must not share: the public IP (IP and port for loopback and
    private addresses, as on a devnet)."""
    return _diversity_key(node.public_ip, node.storage_port)


@functools.lru_cache(maxsize=4096)
def _diversity_key(public_ip: str, storage_port: int) -> str:
    # (cached: every request checks its destination against its path's hops, and parsing
    # the addresses again each time was ~10 % of a client's CPU per message)
    try:
        ip = ipaddress.ip_address(public_ip)
    except ValueError:
        return public_ip
    if ip.is_loopback or ip.is_private or ip.is_unspecified:
        return f"{public_ip}:{storage_port}"
    return public_ip


@dataclasses.dataclass(slots=True)
class OnionPath:
    hops: tuple[ServiceNode, ...]
    failures: int = 0

    @property
    def guard(self) -> ServiceNode:
        return self.hops[0]

    def keys(self) -> set[str]:
        return {diversity_key(n) for n in self.hops}

    def ids(self) -> list[str]:
        return [n.pubkey_ed25519 for n in self.hops]

    def __contains__(self, node: object) -> bool:
        return isinstance(node, ServiceNode) and (
            node.pubkey_ed25519 in self.ids() or diversity_key(node) in self.keys()
        )


def valid_path(hops: Sequence[ServiceNode]) -> bool:
    """3 distinct nodes on distinct IPs."""
    return (
        len(hops) == HOPS
        and len({n.pubkey_ed25519 for n in hops}) == HOPS
        and len({diversity_key(n) for n in hops}) == HOPS
    )


class PathManager:
    """Keeps ``PATHS_WANTED`` paths over a node pool."""

    def __init__(
        self,
        nodes: Iterable[ServiceNode],
        *,
        guards: Sequence[str] = (),
        paths: Sequence[Sequence[str]] = (),
        rng: random.Random | None = None,
        paths_wanted: int = PATHS_WANTED,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rng = rng or random.SystemRandom()
        self.paths_wanted = paths_wanted
        #: Monotonic clock in seconds (injectable: tests script the passing of time).
        self.now = now
        self.node_failures: dict[str, int] = {}
        #: node id → (time its mark ends, how many marks in a row, "down" | "busy" | "failed").
        self.marks: dict[str, tuple[float, int, str]] = {}
        self.pool: dict[str, ServiceNode] = {}
        self.guards: list[str] = []
        self.paths: list[OnionPath] = []
        self.update_pool(nodes)
        self.guards = [g for g in guards if g in self.pool][: self.paths_wanted]
        for ids in paths:
            if not all(i in self.pool for i in ids):
                continue
            hops = [self.pool[i] for i in ids]
            if valid_path(hops) and hops[0].pubkey_ed25519 in self.guards:
                self.paths.append(OnionPath(tuple(hops)))
        self.paths = self._disjoint(self.paths)

    # ------------------------------------------------------------------ pool

    def update_pool(self, nodes: Iterable[ServiceNode]) -> None:
        """Use ``nodes`` (a refreshed list); a node now at another address loses its marks."""
        old = self.pool
        self.pool = {n.pubkey_ed25519: n for n in nodes if n.active}
        for k, n in self.pool.items():
            was = old.get(k)
            if was is not None and (was.public_ip, was.storage_port) != (
                n.public_ip,
                n.storage_port,
            ):
                self.forgive(k)
        self.paths = [p for p in self.paths if all(h.pubkey_ed25519 in self.pool for h in p.hops)]
        self.guards = [g for g in self.guards if g in self.pool]

    # ------------------------------------------------------------------ marks

    @property
    def bad(self) -> frozenset[str]:
        """Nodes excluded from new paths right now (their mark has not ended yet)."""
        t = self.now()
        return frozenset(k for k, (until, _, _) in self.marks.items() if until > t)

    @property
    def unreachable(self) -> frozenset[str]:
        """Excluded nodes that refused the connection or were named unreachable (down)."""
        t = self.now()
        return frozenset(
            k for k, (until, _, kind) in self.marks.items() if until > t and kind == "down"
        )

    def mark(self, node_id: str, kind: str) -> None:
        """Exclude ``node_id`` for a while: ``kind`` "down" or "failed" (``DOWN_FIRST_S``
        doubling up to ``DOWN_CAP_S``) or "busy" (``BUSY_FIRST_S`` up to ``BUSY_CAP_S``)."""
        first, cap = (BUSY_FIRST_S, BUSY_CAP_S) if kind == "busy" else (DOWN_FIRST_S, DOWN_CAP_S)
        _, strikes, _ = self.marks.get(node_id, (0.0, 0, kind))
        strikes += 1
        self.marks[node_id] = (self.now() + min(cap, first * 2 ** (strikes - 1)), strikes, kind)

    def forgive(self, node_id: str) -> None:
        """Clear ``node_id``'s marks and failure count (it answered, or it moved)."""
        self.marks.pop(node_id, None)
        self.node_failures.pop(node_id, None)

    def next_chance_s(self) -> float | None:
        """Seconds until the first current mark ends (None: no node is marked)."""
        t = self.now()
        ends = [until - t for until, _, _ in self.marks.values() if until > t]
        return min(ends) if ends else None

    def usable(self) -> list[ServiceNode]:
        bad = self.bad
        return [n for k, n in sorted(self.pool.items()) if k not in bad]

    @staticmethod
    def _disjoint(paths: list[OnionPath]) -> list[OnionPath]:
        out: list[OnionPath] = []
        used: set[str] = set()
        for p in paths:
            if not (p.keys() & used):
                out.append(p)
                used |= p.keys()
        return out

    # ------------------------------------------------------------------ building

    def _pick_guard(self, avoid: set[str]) -> ServiceNode:
        cands = [
            n
            for n in self.usable()
            if diversity_key(n) not in avoid and n.pubkey_ed25519 not in self.guards
        ]
        if not cands:
            raise NotEnoughNodes("no node left to serve as a guard")
        g = self.rng.choice(cands)
        self.guards.append(g.pubkey_ed25519)
        return g

    def _build_one(
        self, guard: ServiceNode, avoid: set[str], hard: frozenset[str] = frozenset()
    ) -> OnionPath:
        """A path from ``guard``: relays avoid the IPs of ``avoid`` (other paths) if the pool
        allows, and those of ``hard`` (the destination) always."""
        hops = [guard]
        keys = {diversity_key(guard)}
        cands = [n for n in self.usable() if diversity_key(n) not in avoid | hard]
        self.rng.shuffle(cands)
        for n in cands:
            k = diversity_key(n)
            if k not in keys and n.pubkey_ed25519 not in self.guards:
                hops.append(n)
                keys.add(k)
                if len(hops) == HOPS:
                    return OnionPath(tuple(hops))
        # Pool too small to keep paths apart: allow overlap with other paths (never within one).
        rest = [n for n in self.usable() if diversity_key(n) not in keys | hard]
        self.rng.shuffle(rest)
        for n in rest:
            if len(hops) == HOPS:
                break
            if diversity_key(n) not in keys:
                hops.append(n)
                keys.add(diversity_key(n))
        if len(hops) < HOPS:
            raise NotEnoughNodes(f"need {HOPS} nodes on distinct IPs, the pool has fewer usable")
        return OnionPath(tuple(hops))

    def ensure_paths(self) -> list[OnionPath]:
        """Build paths until ``paths_wanted`` exist (at least one, or raise).

        If failure counts have excluded so many nodes that no path can be built, the counts
        and their marks (not those of nodes that were down or busy) are forgiven once and
        building is retried: timeouts blame every hop of a path, so innocent nodes collect
        failures too. Down and busy nodes come back when their marks end."""
        try:
            return self._ensure_paths()
        except NotEnoughNodes:
            failed = [k for k in self.bad if self.marks[k][2] == "failed"]
            if not failed:
                raise
            for k in failed:
                self.forgive(k)
            self.node_failures.clear()
            return self._ensure_paths()

    def _ensure_paths(self) -> list[OnionPath]:
        while len(self.paths) < self.paths_wanted:
            used = set().union(*(p.keys() for p in self.paths)) if self.paths else set()
            bad = self.bad
            guard_id = next(
                (
                    g
                    for g in self.guards
                    if g not in {p.guard.pubkey_ed25519 for p in self.paths} and g not in bad
                ),
                None,
            )
            try:
                guard = self.pool[guard_id] if guard_id else self._pick_guard(used)
                self.paths.append(self._build_one(guard, used))
            except NotEnoughNodes:
                if self.paths:
                    break
                raise
        return self.paths

    def choose(self, destination: ServiceNode | None = None) -> OnionPath:
        """A path for a request (one not containing ``destination`` if it is a node)."""
        self.ensure_paths()
        ok = [p for p in self.paths if destination is None or destination not in p]
        if not ok and destination is not None:
            # Build a dedicated path around the destination (not kept as a standard path).
            hard = frozenset({diversity_key(destination)})
            guard = next(
                (
                    self.pool[g]
                    for g in self.guards
                    if g in self.pool
                    and g not in self.bad
                    and diversity_key(self.pool[g]) not in hard
                ),
                None,
            )
            if guard is None:
                cands = [n for n in self.usable() if diversity_key(n) not in hard]
                if not cands:
                    raise NotEnoughNodes("no guard available besides the destination")
                guard = self.rng.choice(cands)
            ok = [self._build_one(guard, set(), hard)]
        return self.rng.choice(ok)

    # ------------------------------------------------------------------ feedback

    def node_failed(self, node_id: str) -> None:
        """Count a failure against a node that is not (necessarily) on a path (a destination)."""
        self._node_failed(node_id)

    def _node_failed(self, node_id: str) -> None:
        self.node_failures[node_id] = self.node_failures.get(node_id, 0) + 1
        if self.node_failures[node_id] >= MAX_FAILURES:
            self.mark(node_id, "failed")

    def guard_unreachable(self, path: OnionPath) -> None:
        """The guard could not be reached at all (connection refused): drop the guard, its
        path, and every kept path that uses the node at any hop (``path`` may be a one-off path
        around a destination whose guard is a relay on a kept path)."""
        self._guard_out(path, "down")

    def guard_busy(self, path: OnionPath) -> None:
        """The guard accepted the connection and closed it at once (its connection cap, or a
        restart under way): as :meth:`guard_unreachable`, but the node is excluded only briefly
        (``BUSY_FIRST_S``), since it is alive."""
        self._guard_out(path, "busy")

    def _guard_out(self, path: OnionPath, kind: str) -> None:
        gid = path.guard.pubkey_ed25519
        self.mark(gid, kind)
        self._retire_guard(gid)
        self.paths = [p for p in self.paths if gid not in p.ids()]

    def _retire_guard(self, gid: str) -> None:
        if gid in self.guards:
            self.guards.remove(gid)
        self.paths = [p for p in self.paths if p.guard.pubkey_ed25519 != gid]

    def path_failed(self, path: OnionPath, node_id: str | None = None) -> None:
        """A request on ``path`` failed (``node_id``: the hop that was named as the culprit)."""
        if node_id is not None:
            self._node_failed(node_id)
            if node_id == path.guard.pubkey_ed25519:
                if node_id not in self.bad:
                    self.mark(node_id, "failed")
                self._retire_guard(node_id)
                return
            if node_id in self.bad:
                self.drop(path)
                return
        path.failures += 1
        if path.failures >= MAX_FAILURES:
            if path.guard.pubkey_ed25519 in self.bad:
                self._retire_guard(path.guard.pubkey_ed25519)
            else:
                self.drop(path)

    def node_unreachable(self, path: OnionPath, node_id: str) -> None:
        """A relay on ``path`` reported that it cannot connect to ``node_id``: treat that node
        as down (new paths avoid it) and drop every path through it."""
        self.node_failures[node_id] = self.node_failures.get(node_id, 0) + 1
        self.mark(node_id, "down")
        if node_id == path.guard.pubkey_ed25519:
            self._retire_guard(node_id)
        self.paths = [p for p in self.paths if node_id not in p.ids()]
        self.drop(path)

    def path_timed_out(self, path: OnionPath) -> None:
        """A request on ``path`` timed out: count a failure against every hop, drop the path."""
        for n in path.hops:
            self._node_failed(n.pubkey_ed25519)
        if path.guard.pubkey_ed25519 in self.bad:
            self._retire_guard(path.guard.pubkey_ed25519)
        else:
            self.drop(path)

    def drop(self, path: OnionPath) -> None:
        self.paths = [p for p in self.paths if p is not path]

    def path_ok(self, path: OnionPath) -> None:
        path.failures = 0
        for n in path.hops:
            self.forgive(n.pubkey_ed25519)

    def snapshot(self) -> tuple[list[str], list[list[str]]]:
        """(guards, paths) for persistence."""
        return list(self.guards), [p.ids() for p in self.paths]
