"""A ``03`` group's swarm on the node: namespaces 11-14 and -11 through the storage RPC.

The requests are built and signed by the groups code a client uses (the group key for admins,
:class:`SubaccountSigner` with an admin's grant for members) and executed by real
:class:`RpcHandler` nodes of one in-process swarm, directly and through an onion request.
The rules are the storage server's (token flags, revocation lists, -11 readable after
revocation) plus the groups rule that namespaces 12-14 and -11 take the group key only.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpc_helpers import NOW, LocalSwarm, call
from session import onion
from session.errors import InvalidSignature
from session.groups.auth import SubaccountSigner, member_auth_data, member_token
from session.groups.crypto import GroupIdentity
from session.identity import Identity
from session.node.relay import OnionRouter, PeelPool
from session.proto import rpc as P
from session.proto.rpc.codec import b64decode
from session.proto.rpc.namespaces import GROUP_ADMIN_NAMESPACES
from session.storage import MemoryMessageStore

TTL = 3_600_000


def group_in_swarm(sw: LocalSwarm) -> GroupIdentity:
    """A fresh group whose account lands in the local swarm."""
    while True:
        g = GroupIdentity.generate()
        if sw.map.swarm_id_for(g.group_id) == sw.my_swarm:
            return g


def store(account: str, ns: int, data: bytes) -> P.Store:
    return P.Store(P.Account.parse(account), ns, NOW, NOW + TTL, data)  # type: ignore[arg-type]


def retrieve(account: str, ns: int) -> P.Retrieve:
    return P.Retrieve(P.Account.parse(account), ns, timestamp=NOW)  # type: ignore[arg-type]


def body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"method": method, "params": params}


class Group:
    """A group on the local swarm: its admin key and one member's credentials."""

    def __init__(self, sw: LocalSwarm) -> None:
        self.sw = sw
        self.key = group_in_swarm(sw)
        self.gid = self.key.group_id
        self.bob = Identity.generate()
        self.bob_signer = SubaccountSigner(
            self.bob, self.gid, member_auth_data(self.key, self.bob.session_id)
        )

    async def admin(self, req: Any, node: int = 0) -> tuple[int, Any]:
        return await call(self.sw.node(node), body(req.METHOD, P.sign(req, self.key)))

    async def member(self, req: Any, node: int = 0) -> tuple[int, Any]:
        return await call(self.sw.node(node), body(req.METHOD, self.bob_signer.sign(req)))


@pytest.fixture
def group() -> Group:
    return Group(LocalSwarm([MemoryMessageStore() for _ in range(3)]))


async def test_member_stores_and_reads_messages_admin_owns_the_configs(group: Group) -> None:
    st, out = await group.member(store(group.gid, 11, b"hello group"))
    assert st == 200, out
    for ns in (12, 13, 14, -11):
        st, out = await group.admin(store(group.gid, ns, f"config {ns}".encode()), node=1)
        assert st == 200, (ns, out)
    # a member reads every group namespace, from any node of the swarm
    for ns, want in (
        (11, b"hello group"),
        (12, b"config 12"),
        (14, b"config 14"),
        (-11, b"config -11"),
    ):
        st, out = await group.member(retrieve(group.gid, ns), node=2)
        assert st == 200, out
        assert [b64decode(m["data"]) for m in out["messages"]] == [want]


@pytest.mark.parametrize("ns", sorted(GROUP_ADMIN_NAMESPACES))
async def test_a_member_cannot_store_to_the_admin_namespaces(group: Group, ns: int) -> None:
    st, out = await group.member(store(group.gid, ns, b"forged config"))
    assert (st, out) == (401, f"store: namespace {ns} of a group is for its admins only")
    st, out = await group.admin(retrieve(group.gid, ns))
    assert st == 200 and out["messages"] == []  # nothing was stored


async def test_a_read_only_grant_cannot_store_and_a_stranger_cannot_read(group: Group) -> None:
    carol = Identity.generate()
    ro = SubaccountSigner(
        carol, group.gid, member_auth_data(group.key, carol.session_id, write=False)
    )
    req = store(group.gid, 11, b"x")
    st, out = await call(group.sw.node(0), body("store", ro.sign(req)))
    assert (st, out) == (401, "store signature verification failed")
    # a grant for Carol does not let Dave sign with it
    dave = Identity.generate()
    with pytest.raises(InvalidSignature):  # the grant is checked up front
        SubaccountSigner(dave, group.gid, member_auth_data(group.key, carol.session_id))
    # a 05 identity signing for the group's account is refused
    st, out = await call(group.sw.node(0), body("retrieve", P.sign(retrieve(group.gid, 11), dave)))
    assert (st, out) == (401, "retrieve signature verification failed")


async def test_revoked_member_refused_except_on_minus_11(group: Group) -> None:
    token = member_token(group.key, group.bob.session_id)
    revoke = P.RevokeSubaccount(P.Account.parse(group.gid), (token,), NOW)  # type: ignore[arg-type]
    st, out = await group.admin(revoke)
    assert st == 200, out
    st, out = await group.member(store(group.gid, 11, b"after removal"), node=1)
    assert (st, out) == (401, "store signature verification failed")
    st, out = await group.member(retrieve(group.gid, 11), node=2)
    assert (st, out) == (401, "retrieve signature verification failed")
    # the revoked-retrievable namespace still answers a revoked member (Session's rule)
    st, out = await group.member(retrieve(group.gid, -11), node=2)
    assert st == 200
    unrevoke = P.UnrevokeSubaccount(P.Account.parse(group.gid), (token,), NOW)  # type: ignore[arg-type]
    st, out = await group.admin(unrevoke, node=1)
    assert st == 200, out
    st, out = await group.member(retrieve(group.gid, 11))
    assert st == 200
    # a member cannot revoke: only the group key signs (un)revocations
    st, out = await group.member(revoke)
    assert st == 401


async def test_member_store_and_retrieve_through_an_onion_request(group: Group) -> None:
    """The same rules behind an onion: a relay peels its layer and hands the rest to the
    destination node's router, whose storage RPC runs the member's request."""
    dest = group.sw.node(0)
    dest_ident = dest.identity
    assert isinstance(dest_ident, Identity)
    relay = Identity.generate()
    router = OnionRouter(
        PeelPool(onion.Peeler.from_x25519_secret(dest_ident.export_x25519_secret())),
        None,  # type: ignore[arg-type]  (a delivery needs no node list)
        None,  # type: ignore[arg-type]  (nor links)
        dest,
    )
    hop = onion.Hop(relay.ed25519_public.hex(), relay.x25519_public)
    dst = onion.NodeDestination(dest_ident.ed25519_public.hex(), dest_ident.x25519_public)
    relay_peeler = onion.Peeler.from_x25519_secret(relay.export_x25519_secret())

    async def via_onion(payload: dict[str, Any]) -> tuple[int, Any]:
        frame, key = onion.build([hop], dst, json.dumps(payload).encode())
        layer = relay_peeler.peel(frame)
        assert isinstance(layer, onion.Relay)
        status, raw = await router.handle(layer.frame)
        assert status == 200
        doc = json.loads(key.decrypt(raw))
        inner = doc["body"]
        try:
            return doc["status"], json.loads(inner) if isinstance(inner, str) else inner
        except ValueError:
            return doc["status"], inner

    try:
        st, out = await via_onion(
            body("store", group.bob_signer.sign(store(group.gid, 11, b"onion")))
        )
        assert st == 200, out
        st, out = await via_onion(body("store", group.bob_signer.sign(store(group.gid, 13, b"x"))))
        assert (st, out) == (401, "store: namespace 13 of a group is for its admins only")
        st, out = await via_onion(body("retrieve", group.bob_signer.sign(retrieve(group.gid, 11))))
        assert st == 200 and [b64decode(m["data"]) for m in out["messages"]] == [b"onion"]
    finally:
        await router.close()
        router.pool.close()
