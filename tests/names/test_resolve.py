"""The client's name resolution rule (§6.8) against scripted node answers: three nodes must
agree; failed nodes are replaced by others; unknown, expired and disagreeing answers raise
their own errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import pytest

from session import names
from session.client.names import resolve
from session.client.transport import PathFailure
from session.errors import InvalidName, NameExpired, NameLookupFailed, NameNotFound
from session.identity import Identity
from session.proto.snodes import ServiceNode


def _nodes(n: int) -> list[ServiceNode]:
    out = []
    for i in range(n):
        ident = Identity(bytes([i + 1]) * 32)
        out.append(
            ServiceNode(
                pubkey_ed25519=ident.ed25519_public.hex(),
                pubkey_x25519=ident.x25519_public.hex(),
                public_ip="127.0.0.1",
                storage_port=20000 + i,
                storage_lmq_port=21000 + i,
                swarm_id=0,
            )
        )
    return out


class Script:
    """A transport whose nodes answer from a table (node key -> result, or an exception)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def request(
        self, dest: ServiceNode, method: str, params: Mapping[str, Any]
    ) -> tuple[int, Any]:
        assert method == "oxend_request"
        self.asked.append((dest.pubkey_ed25519, dict(params)))
        a = self.answers[dest.pubkey_ed25519]
        if isinstance(a, Exception):
            raise a
        return 200, {"result": a, "t": 0}


def _run(script: Script, nodes: list[ServiceNode], name: str) -> str:
    return asyncio.run(resolve(script, nodes, name, rng=random.Random(7), retry_delay=0))


def test_three_agreeing_nodes_resolve() -> None:
    sid = Identity().session_id
    ct, nonce = names.encrypt_value("alice", sid)
    found = {"encrypted_value": ct.hex(), "nonce": nonce.hex()}
    nodes = _nodes(6)
    script = Script({n.pubkey_ed25519: found for n in nodes})
    assert _run(script, nodes, "@Alice") == sid
    assert len(script.asked) == 3 and len({k for k, _ in script.asked}) == 3
    assert script.asked[0][1] == {
        "endpoint": "ons_resolve",
        "params": {"type": 0, "name_hash": names.name_hash_b64("alice")},
    }
    # a node that cannot be reached is replaced by another one
    script = Script({n.pubkey_ed25519: found for n in nodes})
    script.answers[nodes[0].pubkey_ed25519] = PathFailure("path down")
    script.answers[nodes[1].pubkey_ed25519] = PathFailure("path down")
    assert _run(script, nodes, "alice") == sid
    assert len(script.asked) in (3, 4, 5)


def test_unknown_expired_disagreeing_and_too_few() -> None:
    nodes = _nodes(4)
    with pytest.raises(NameNotFound):
        _run(Script({n.pubkey_ed25519: {} for n in nodes}), nodes, "bob")
    with pytest.raises(NameExpired):
        _run(Script({n.pubkey_ed25519: {"expired": True} for n in nodes}), nodes, "bob")
    ct, nonce = names.encrypt_value("bob", Identity().session_id)
    mixed: dict[str, Any] = {n.pubkey_ed25519: {} for n in nodes}
    for n in nodes[:2]:
        mixed[n.pubkey_ed25519] = {"encrypted_value": ct.hex(), "nonce": nonce.hex()}
    script = Script(mixed)
    with pytest.raises(NameLookupFailed, match="different answers"):
        _run(script, nodes, "bob")
    assert len(script.asked) == 3 * 3  # asked again, twice, before giving up
    down = {n.pubkey_ed25519: PathFailure("down") for n in nodes}
    with pytest.raises(NameLookupFailed, match="answered"):
        _run(Script(down), nodes, "bob")
    with pytest.raises(NameLookupFailed, match="needs 3 nodes"):
        _run(Script({}), nodes[:2], "bob")
    # a value the name's key does not open (a lying majority) is not accepted
    bad = {n.pubkey_ed25519: {"encrypted_value": "00" * 49, "nonce": "00" * 24} for n in nodes}
    with pytest.raises(NameLookupFailed, match="does not decrypt"):
        _run(Script(bad), nodes, "bob")
    with pytest.raises(InvalidName):
        _run(Script({}), nodes, "no spaces")


class Settling(Script):
    """Nodes that disagree on the first round only (a registration lapsing at that moment)."""

    def __init__(self, nodes: list[ServiceNode]) -> None:
        super().__init__({n.pubkey_ed25519: {"expired": True} for n in nodes})
        self.first_round_mixed = nodes

    async def request(
        self, dest: ServiceNode, method: str, params: Mapping[str, Any]
    ) -> tuple[int, Any]:
        if len(self.asked) < 3 and dest == self.first_round_mixed[0]:
            self.asked.append((dest.pubkey_ed25519, dict(params)))
            return 200, {"result": {"encrypted_value": "00" * 49, "nonce": "00" * 24}, "t": 0}
        return await super().request(dest, method, params)


def test_a_momentary_disagreement_is_asked_again() -> None:
    nodes = _nodes(3)
    script = Settling(nodes)
    with pytest.raises(NameExpired):
        _run(script, nodes, "bob")
    assert len(script.asked) == 6
