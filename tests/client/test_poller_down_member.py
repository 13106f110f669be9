"""The poller and a swarm member that is down: a relay names it unreachable, and the same
poll moves to another member instead of failing (a `session send` or `session inbox` run
while a member was dead failed with "cannot reach the network")."""

from __future__ import annotations

import random
from typing import Any

import pytest

from session.client.poller import Poller
from session.errors import NetworkError
from session.identity import Identity
from session.proto.snodes import ServiceNode


def member(i: int) -> ServiceNode:
    ident = Identity.generate()
    return ServiceNode(
        ident.ed25519_public.hex(), ident.x25519_public.hex(), "127.0.0.1", 20000 + i, 21000 + i, 0
    )


class Paths:
    def __init__(self) -> None:
        self.bad: set[str] = set()


class Transport:
    def __init__(self) -> None:
        self.paths = Paths()


class Directory:
    def __init__(self, members: list[ServiceNode]) -> None:
        self.members = members

    def swarm(self, owner: str) -> list[ServiceNode]:
        return list(self.members)


class Rpc:
    """Retrieves from live members; a dead one fails the way a relay's 502 does (named: the
    transport marks it bad)."""

    def __init__(self, members: list[ServiceNode], dead: set[str], named: bool = True) -> None:
        self.dir = Directory(members)
        self.t = Transport()
        self.dead = dead
        self.named = named
        self.asked: list[str] = []

    async def retrieve(self, identity: Any, namespace: int, node: ServiceNode, last: str) -> Any:
        self.asked.append(node.pubkey_ed25519)
        if node.pubkey_ed25519 in self.dead:
            if self.named:
                self.t.paths.bad.add(node.pubkey_ed25519)
            raise NetworkError("path error 502: Next node unreachable")
        return {"messages": [{"hash": "h1", "data": "", "expiration": 1}]}


class Db:
    def last_hash(self, cursor: str, namespace: int) -> str:
        return ""

    def is_seen(self, h: str) -> bool:
        return False

    def set_last_hash(self, cursor: str, namespace: int, h: str) -> None:
        pass


async def test_a_member_named_down_is_left_within_the_same_poll() -> None:
    members = [member(i) for i in range(5)]
    dead = members[0].pubkey_ed25519
    rpc = Rpc(members, {dead})
    p = Poller(rpc, Db(), Identity.generate(), rng=random.Random(1))
    p.node = members[0]  # it was polling the member that died
    assert await p.poll(0) == [("h1", "", 1)]
    assert rpc.asked[0] == dead and dead not in rpc.asked[1:]
    assert p.node is not None and p.node.pubkey_ed25519 != dead


async def test_a_failure_that_names_no_one_still_fails_the_poll() -> None:
    members = [member(i) for i in range(5)]
    rpc = Rpc(members, {members[0].pubkey_ed25519}, named=False)
    p = Poller(rpc, Db(), Identity.generate(), rng=random.Random(1))
    p.node = members[0]
    with pytest.raises(NetworkError):
        await p.poll(0)
    assert p.node is None  # the next poll picks another member
