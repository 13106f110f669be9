"""Client.refresh_nodes, the event stream and connectivity events, without a network (the
node answers are stubbed at the SwarmRPC boundary; the devnet run is in test_integration)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from session.client import Client, ConnectionChanged, MessageDeleted
from session.client.events import EventHub
from session.client.sender import Connectivity
from session.errors import NodeRequestFailed
from session.proto.snodes import ServiceNode, node_list_json


def node(i: int) -> ServiceNode:
    return ServiceNode(
        pubkey_ed25519=f"{i:064x}",
        pubkey_x25519=f"{i + 1000:064x}",
        public_ip=f"44.0.{i}.7",
        storage_port=22021,
        storage_lmq_port=22020,
        swarm_id=0,
    )


BOOT = [node(i) for i in range(6)]


class Nodes:
    """Stub of SwarmRPC.service_nodes: what each node answers (a list, or an exception)."""

    def __init__(self, answers: dict[str, list[ServiceNode] | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, n: ServiceNode) -> list[ServiceNode]:
        self.asked.append(n.pubkey_ed25519)
        a = self.answers.get(n.pubkey_ed25519, NodeRequestFailed(400, "Unknown oxend error"))
        if isinstance(a, Exception):
            raise a
        return a


def client(tmp_path: Path, source: object, seed: int) -> Client:
    return Client.open(tmp_path / "p", source, background=False, rng=random.Random(seed))


async def test_refresh_keeps_what_every_asked_node_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot = tmp_path / "nodes.json"
    boot.write_text(json.dumps({"result": node_list_json(BOOT)}))
    c = client(tmp_path, str(boot), 1)
    try:
        await c.start()
        assert c.node_count == 6
        bigger = [*BOOT, node(6), node(7)]
        stub = Nodes({n.pubkey_ed25519: bigger if n != BOOT[0] else [*bigger[:-1]] for n in BOOT})
        monkeypatch.setattr(c.rpc, "service_nodes", stub)
        boot.unlink()  # the bootstrap source must not be needed
        count = await c.refresh_nodes()
        assert len(stub.asked) == 3 and len(set(stub.asked)) == 3
        # node 7 is missing from node 0's answer: kept only if node 0 was not asked
        assert count == (7 if BOOT[0].pubkey_ed25519 in stub.asked else 8)
    finally:
        await c.close()


async def test_refresh_choice_follows_the_rng(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = []
    for run in range(2):
        c = client(tmp_path / str(run), list(BOOT), 42)
        try:
            await c.start()
            stub = Nodes({n.pubkey_ed25519: list(BOOT) for n in BOOT})
            monkeypatch.setattr(c.rpc, "service_nodes", stub)
            await c.refresh_nodes()
            asked.append(stub.asked)
        finally:
            await c.close()
    assert asked[0] == asked[1]


async def test_refresh_falls_back_to_the_bootstrap_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = client(tmp_path, list(BOOT), 3)
    try:
        await c.start()
        stub = Nodes({})  # every node answers 400 (no oxend source)
        monkeypatch.setattr(c.rpc, "service_nodes", stub)
        assert await c.refresh_nodes() == 6
        assert len(stub.asked) == 3
    finally:
        await c.close()


async def test_a_stale_cache_is_refreshed_from_the_remembered_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cached node is gone (the network restarted elsewhere) and the client was opened
    without --network: the nodes.json given once before is read again."""
    boot = tmp_path / "nodes.json"
    boot.write_text(json.dumps({"result": node_list_json(BOOT)}))
    first = client(tmp_path, str(boot), 1)
    await first.start()
    await first.close()
    moved = [node(i) for i in range(20, 26)]
    boot.write_text(json.dumps({"result": node_list_json(moved)}))
    c = client(tmp_path, None, 2)  # later: only the cached (now stale) list
    try:
        await c.start()
        assert {n.pubkey_ed25519 for n in c.directory.nodes} == {n.pubkey_ed25519 for n in BOOT}
        assert c.bootstrap_source == str(boot)
        monkeypatch.setattr(c.rpc, "service_nodes", Nodes({}))  # no old node answers
        assert await c.refresh_nodes() == 6
        assert {n.pubkey_ed25519 for n in c.directory.nodes} == {n.pubkey_ed25519 for n in moved}
    finally:
        await c.close()


async def test_event_stream_pending_and_end(tmp_path: Path) -> None:
    c = client(tmp_path, None, 0)
    stream = c.events()
    c.hub.emit(MessageDeleted("05" + "ab" * 32, 1, "expired"))
    c.hub.emit(MessageDeleted("05" + "ab" * 32, 2, "expired"))
    first = await anext(stream)
    assert isinstance(first, MessageDeleted) and first.message_id == 1
    assert [e.message_id for e in stream.pending() if isinstance(e, MessageDeleted)] == [2]
    await c.close()
    assert [e async for e in stream] == []


def test_connectivity_reports_changes_only() -> None:
    hub = EventHub()
    q = hub.subscribe()
    conn = Connectivity(hub)
    conn.update(True)  # first contact: nothing to report
    conn.update(True)
    conn.update(False, "guard unreachable")
    conn.update(False, "again")
    conn.update(True)
    got = []
    while not q.empty():
        got.append(q.get_nowait())
    assert got == [ConnectionChanged(False, "guard unreachable"), ConnectionChanged(True, "")]


async def test_messages_whose_timer_ran_out_are_never_listed(tmp_path: Path) -> None:
    """A client without its background sweep (a one-shot command) deletes a message whose
    disappearing timer ran out before it lists the conversation, and says so in an event."""
    c = client(tmp_path, None, 0)
    try:
        stream = c.events()
        conv = "05" + "ab" * 32
        now = c.clock.now_ms()
        for k, (body, expires) in enumerate(
            (("gone", now - 1), ("stays", now + 60_000), ("plain", None))
        ):
            c.db.add_message(
                conversation=conv,
                author=conv,
                sent_ms=now - 20_000 + k,
                outgoing=False,
                body=body,
                status="received",
                exp_mode=2 if expires else 0,
                exp_seconds=10 if expires else 0,
                expires_at_ms=expires,
            )
        assert [m.body for m in c.messages(conv)] == ["stays", "plain"]
        assert [(type(e), e.reason) for e in stream.pending()] == [(MessageDeleted, "expired")]
    finally:
        await c.close()
