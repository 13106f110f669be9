"""The client's storage requests (SwarmRPC.store/retrieve/delete/expire) are built by
``rpc.sign`` over the proto request classes: exactly the params Session's nodes expect, each
signature verifying against the text Session signs, and accepted by our node's parser."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from session.client.transport import AccountSigner, SwarmRPC, is_account_signer, owner_of
from session.errors import InvalidInput
from session.groups.auth import SubaccountSigner, member_auth_data
from session.groups.crypto import GroupIdentity
from session.identity import Identity, verify
from session.proto import rpc
from session.proto.snodes import ServiceNode

NOW = 1_700_000_000_000
NODE = ServiceNode("aa" * 32, "bb" * 32, "127.0.0.1", 1, 2, swarm_id=0)


class Recorder:
    """Stands in for OnionTransport: answers 200 and records (method, params)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.paths = type("Paths", (), {"bad": set()})()

    async def request(self, dest: ServiceNode, method: str, params: Any) -> tuple[int, Any]:
        self.sent.append((method, dict(params)))
        return 200, {"hash": "h" * 43, "messages": []}


class Directory:
    def swarm(self, owner: str) -> list[ServiceNode]:
        return [NODE]


class Clock:
    def now_ms(self) -> int:
        return NOW


@pytest.fixture
def parts() -> tuple[SwarmRPC, Recorder]:
    t = Recorder()
    return SwarmRPC(t, Directory(), Clock()), t


def sig_of(ident: Identity, text: str) -> str:
    return base64.b64encode(ident.sign(text.encode())).decode()


async def test_signed_store_params(parts: tuple[SwarmRPC, Recorder]) -> None:
    swarm_rpc, t = parts
    me = Identity.generate()
    data = base64.b64encode(b"config").decode()
    await swarm_rpc.store(me.session_id, 3, data, NOW + 86_400_000, identity=me)
    method, params = t.sent[0]
    assert method == "store"
    assert params == {
        "pubkey": me.session_id,
        "namespace": 3,
        "timestamp": NOW,
        "ttl": 86_400_000,
        "data": data,
        "signature": sig_of(me, f"store3{NOW}"),
        "pubkey_ed25519": me.ed25519_public.hex(),
    }
    req = rpc.parse_params("store", params)
    req.precheck(NOW)
    req.verify()


async def test_public_store_is_unsigned(parts: tuple[SwarmRPC, Recorder]) -> None:
    swarm_rpc, t = parts
    me, bob = Identity.generate(), Identity.generate()
    data = base64.b64encode(b"hi").decode()
    await swarm_rpc.store(bob.session_id, 0, data, NOW + 99 * 86_400_000, identity=me)
    _, params = t.sent[0]
    # public inbox: no signature, TTL clamped to the 14-day maximum
    assert params == {
        "pubkey": bob.session_id,
        "namespace": 0,
        "timestamp": NOW,
        "ttl": rpc.TTL_MAXIMUM,
        "data": data,
    }
    with pytest.raises(InvalidInput):
        await swarm_rpc.store(bob.session_id, 0, "not base64!", NOW + 86_400_000)


async def test_retrieve_delete_expire_params(parts: tuple[SwarmRPC, Recorder]) -> None:
    swarm_rpc, t = parts
    me = Identity.generate()
    ed = me.ed25519_public.hex()
    hashes = ["A" * 43, "B" * 43]
    await swarm_rpc.retrieve(me, -10, NODE, "")
    await swarm_rpc.retrieve(me, 2, NODE, "C" * 43)
    await swarm_rpc.delete(me, hashes)
    await swarm_rpc.expire(me, hashes, NOW + 5000)
    assert t.sent == [
        (
            "retrieve",
            {
                "pubkey": me.session_id,
                "namespace": -10,
                "last_hash": "",
                "timestamp": NOW,
                "signature": sig_of(me, f"retrieve-10{NOW}"),
                "pubkey_ed25519": ed,
            },
        ),
        (
            "retrieve",
            {
                "pubkey": me.session_id,
                "namespace": 2,
                "last_hash": "C" * 43,
                "timestamp": NOW,
                "signature": sig_of(me, f"retrieve2{NOW}"),
                "pubkey_ed25519": ed,
            },
        ),
        (
            "delete",
            {
                "pubkey": me.session_id,
                "messages": hashes,
                "signature": sig_of(me, "delete" + "".join(hashes)),
                "pubkey_ed25519": ed,
            },
        ),
        (
            "expire",
            {
                "pubkey": me.session_id,
                "messages": hashes,
                "expiry": NOW + 5000,
                "signature": sig_of(me, f"expireshorten{NOW + 5000}" + "".join(hashes)),
                "pubkey_ed25519": ed,
                "shorten": True,
            },
        ),
    ]
    for method, params in t.sent:
        req = rpc.parse_params(method, params)
        req.precheck(NOW)
        req.verify()


def test_sign_for_a_group_account_sends_no_ed25519_key() -> None:
    group = Identity.generate()
    acct = rpc.Account(3, group.ed25519_public)
    req = rpc.Retrieve(acct, 0, timestamp=NOW)
    params = rpc.sign(req, group)
    assert "pubkey_ed25519" not in params and params["pubkey"] == "03" + group.ed25519_public.hex()
    verify(group.ed25519_public, f"retrieve{NOW}".encode(), base64.b64decode(params["signature"]))
    rpc.parse_params("retrieve", params).verify()


def test_account_signers_are_told_apart_by_the_protocols_members() -> None:
    """is_account_signer (the cheap check every store and poll makes) is true of whatever has
    AccountSigner's members (a group member's subaccount, or any class like it) and of
    nothing else; owner_of names the group for a member's subaccount."""

    class Member:
        group_id = "03" + "ab" * 32

        def auth(self, text: bytes) -> rpc.Auth:
            raise AssertionError("not signing here")

    class HalfMember:
        group_id = Member.group_id

    me, group = Identity.generate(), GroupIdentity.generate()
    sub: AccountSigner = SubaccountSigner(
        me, group.group_id, member_auth_data(group, me.session_id)
    )
    assert is_account_signer(sub) and is_account_signer(Member())
    for other in (me, group, HalfMember(), object()):
        assert not is_account_signer(other)
    assert owner_of(sub) == group.group_id and owner_of(Member()) == Member.group_id
    assert owner_of(me) == me.session_id
