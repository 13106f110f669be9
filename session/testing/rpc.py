"""Helpers shared by the storage-RPC tests and the storage benchmarks: a client that signs
requests like Session's, and an in-process swarm of RpcHandlers (no sockets)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from typing import Any

from session.identity import Identity
from session.node.rpc import RpcHandler
from session.node.swarm_view import SwarmView
from session.proto.snodes import ServiceNode, SwarmMap
from session.testing.http import b64

NOW = 1_700_000_000_000


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Client:
    """Builds signed request bodies for one account (05 Session ID by default)."""

    def __init__(self, seed: bytes | None = None, group: bool = False) -> None:
        self.ident = Identity.from_seed(seed) if seed else Identity.generate()
        self.group = group
        if group:  # 03 account: the Ed25519 key itself
            self.account = "03" + self.ident.ed25519_public.hex()
        else:
            self.account = self.ident.session_id

    def auth(self, text: str | bytes) -> dict[str, Any]:
        t = text.encode() if isinstance(text, str) else text
        d = {"signature": b64(self.ident.sign(t))}
        if not self.group:
            d["pubkey_ed25519"] = self.ident.ed25519_public.hex()
        return d

    @staticmethod
    def ns_str(ns: Any) -> str:
        return "" if ns in (0, None) else str(ns)

    def store(
        self,
        data: bytes,
        *,
        ns: int = 0,
        ts: int = NOW,
        ttl: int = 86_400_000,
        sign: bool | None = None,
    ) -> dict[str, Any]:
        p: dict[str, Any] = {"pubkey": self.account, "timestamp": ts, "ttl": ttl, "data": b64(data)}
        if ns:
            p["namespace"] = ns
        if sign or (sign is None and ns % 10 != 0):
            p.update(self.auth(f"store{self.ns_str(ns)}{ts}"))
        return {"method": "store", "params": p}

    def retrieve(
        self, *, ns: int = 0, ts: int = NOW, last_hash: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        p: dict[str, Any] = {"pubkey": self.account, "timestamp": ts, **kw}
        if ns:
            p["namespace"] = ns
        if last_hash is not None:
            p["last_hash"] = last_hash
        p.update(self.auth(f"retrieve{self.ns_str(ns)}{ts}"))
        return {"method": "retrieve", "params": p}

    def delete(self, hashes: list[str], required: bool = False) -> dict[str, Any]:
        p = {"pubkey": self.account, "messages": hashes, **self.auth("delete" + "".join(hashes))}
        if required:
            p["required"] = True
        return {"method": "delete", "params": p}

    def delete_all(self, *, ns: Any = None, ts: int = NOW) -> dict[str, Any]:
        p: dict[str, Any] = {"pubkey": self.account, "timestamp": ts}
        if ns is not None:
            p["namespace"] = ns
        p.update(self.auth(f"delete_all{self.ns_str(ns)}{ts}"))
        return {"method": "delete_all", "params": p}

    def delete_before(self, before: int, *, ns: Any = None) -> dict[str, Any]:
        p: dict[str, Any] = {"pubkey": self.account, "before": before}
        if ns is not None:
            p["namespace"] = ns
        p.update(self.auth(f"delete_before{self.ns_str(ns)}{before}"))
        return {"method": "delete_before", "params": p}

    def expire_all(self, expiry: int, *, ns: Any = None) -> dict[str, Any]:
        p: dict[str, Any] = {"pubkey": self.account, "expiry": expiry}
        if ns is not None:
            p["namespace"] = ns
        p.update(self.auth(f"expire_all{self.ns_str(ns)}{expiry}"))
        return {"method": "expire_all", "params": p}

    def expire(self, hashes: list[str], expiry: int | list[int], mode: str = "") -> dict[str, Any]:
        exps = expiry if isinstance(expiry, list) else [expiry]
        text = "expire" + mode + "".join(map(str, exps)) + "".join(hashes)
        p: dict[str, Any] = {
            "pubkey": self.account,
            "messages": hashes,
            "expiry": expiry,
            **self.auth(text),
        }
        if mode:
            p[mode] = True
        return {"method": "expire", "params": p}

    def get_expiries(self, hashes: list[str], ts: int = NOW) -> dict[str, Any]:
        text = f"get_expiries{ts}" + "".join(hashes)
        p = {"pubkey": self.account, "messages": hashes, "timestamp": ts, **self.auth(text)}
        return {"method": "get_expiries", "params": p}


def make_nodes(n_swarms: int = 2, size: int = 5) -> tuple[list[Identity], list[ServiceNode]]:
    idents, nodes = [], []
    for s in range(n_swarms):
        swarm_id = s * (2**63)  # far apart
        for i in range(size):
            ident = Identity.generate()
            idents.append(ident)
            nodes.append(
                ServiceNode(
                    pubkey_ed25519=ident.ed25519_public.hex(),
                    pubkey_x25519=ident.x25519_public.hex(),
                    public_ip=f"10.0.{s}.{i + 1}",
                    storage_port=22021,
                    storage_lmq_port=22020,
                    swarm_id=swarm_id,
                )
            )
    return idents, nodes


class FixedSwarmView(SwarmView):
    """The node's :class:`SwarmView` fed one fixed list, with a switch that makes it not ready."""

    ready = True

    def __init__(self, me: str, nodes: list[ServiceNode]) -> None:
        super().__init__(me, self._no_fetch)
        self.apply(nodes)

    @staticmethod
    async def _no_fetch() -> list[ServiceNode]:
        raise RuntimeError("a fixed swarm view does not fetch")

    def is_ready(self) -> bool:
        return self.ready and super().is_ready()


class LocalFanout:
    """In-process ``SwarmFanout``: calls the peers' handlers directly. Peers listed in ``down``
    behave as unreachable."""

    def __init__(self, peers: Mapping[str, RpcHandler], view: SwarmView) -> None:
        self.peers = peers
        self.view = view
        self.down: set[str] = set()

    async def forward(self, request_body: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
        targets = [n.pubkey_ed25519 for n in self.view.peers_in_my_swarm()]

        async def one(ed: str) -> dict[str, Any] | None:
            h = self.peers.get(ed)
            if h is None or ed in self.down:
                return None
            # A copy: peers must not share mutable request state (as over a real wire).
            return await h.handle_forwarded(copy.deepcopy(request_body))

        results = await asyncio.gather(*(one(ed) for ed in targets))
        return dict(zip(targets, results, strict=True))


class LocalSwarm:
    """``size`` RpcHandlers forming swarm 0 (plus a foreign swarm that exists only on paper)."""

    def __init__(self, stores: list[Any], clock: Clock | None = None, n_swarms: int = 2) -> None:
        self.clock = clock or Clock()
        idents, nodes = make_nodes(n_swarms, len(stores))
        self.map = SwarmMap(nodes)
        self.handlers: dict[str, RpcHandler] = {}
        self.fanouts: dict[str, LocalFanout] = {}
        self.order: list[str] = []
        for ident, store in zip(idents, stores, strict=False):
            ed = ident.ed25519_public.hex()
            swarm = FixedSwarmView(ed, nodes)
            fan = LocalFanout(self.handlers, swarm)
            self.handlers[ed] = RpcHandler(store, ident, swarm, fan, self.clock)
            self.fanouts[ed] = fan
            self.order.append(ed)
        self.my_swarm = 0

    def node(self, i: int) -> RpcHandler:
        return self.handlers[self.order[i]]

    def client_in_swarm(self, group: bool = False) -> Client:
        while True:
            c = Client(group=group)
            if self.map.swarm_id_for(c.account) == self.my_swarm:
                return c

    def client_elsewhere(self) -> Client:
        while True:
            c = Client()
            if self.map.swarm_id_for(c.account) != self.my_swarm:
                return c


async def call(h: RpcHandler, body: Any) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    status, out = await h.handle_client(raw)
    try:
        return status, json.loads(out)
    except ValueError:
        return status, out.decode()
