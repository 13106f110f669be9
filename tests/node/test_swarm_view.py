"""Direct tests of session/node/swarm_view.py's refresh: a registry that cannot answer is a
counted failure and keeps the list in use; a bug in the fetch surfaces."""

from __future__ import annotations

import pytest

from session.errors import RegistryError
from session.node.swarm_view import SwarmView
from session.proto.snodes import ServiceNode

ME = "ab" * 32


def _node(ed: str, swarm_id: int) -> ServiceNode:
    return ServiceNode(
        pubkey_ed25519=ed,
        pubkey_x25519="cd" * 32,
        public_ip="127.0.0.1",
        storage_port=1,
        storage_lmq_port=2,
        swarm_id=swarm_id,
    )


async def test_an_unreachable_registry_is_a_counted_failure_and_keeps_the_list() -> None:
    answers: list[object] = [[_node(ME, 0)], RegistryError("registry is unreachable", 0)]

    async def fetch() -> list[ServiceNode]:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        assert isinstance(a, list)
        return a

    view = SwarmView(ME, fetch)
    assert await view.refresh()
    version = view.version
    assert await view.refresh() is False
    assert view.refresh_failures == 1
    assert view.version == version and view.my_swarm_id() == 0


async def test_a_bug_in_the_fetch_is_not_taken_for_an_unreachable_registry() -> None:
    async def fetch() -> list[ServiceNode]:
        raise AttributeError("a bug")

    view = SwarmView(ME, fetch)
    with pytest.raises(AttributeError):
        await view.refresh()
    assert view.refresh_failures == 0
