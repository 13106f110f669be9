"""The registry over real HTTPS on 127.0.0.1 (ephemeral ports), its state file and its CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session.errors import InvalidInput, InvalidSignature, RegistryError
from session.identity import Identity
from session.proto.snodes import INVALID_SWARM_ID, parse_node_list
from session.registry import client, server
from session.registry.assign import MIN_SWARM_SIZE
from session.registry.chain import connect
from session.registry.messages import (
    build_deregistration,
    build_registration,
    now_ms,
    registration_payload,
)
from session.registry.staking import (
    Operator,
    devnet_key,
    fund_and_stake,
    new_account,
    operator_key,
)
from session.registry.state import Registry

REQUIREMENT = 25_000


def node_identity() -> Identity:
    return Identity.from_seed(os.urandom(32))


async def post(url: str, path: str, body: Any) -> tuple[int, Any]:
    connector = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(connector=connector) as s:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with s.post(url + path, data=data, headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture
async def registry(tmp_path: Path) -> Any:
    srv = await server.start("127.0.0.1", 0, tmp_path, REQUIREMENT, seed="test-genesis")
    yield srv
    await srv.close()


async def register_many(url: str, stakes: list[int]) -> list[Identity]:
    ids = []
    for i, stake in enumerate(stakes):
        ident = node_identity()
        node = await client.register(
            url,
            ident,
            public_ip="127.0.0.1",
            storage_port=30000 + 2 * i,
            storage_lmq_port=30001 + 2 * i,
            stake=stake,
        )
        assert node.pubkey_ed25519 == ident.ed25519_public.hex()
        assert node.pubkey_x25519 == ident.x25519_public.hex()
        assert node.stake == stake
        assert node.active == (stake >= REQUIREMENT)
        ids.append(ident)
    return ids


STAKES = [25_000, 30_000, 1_000, 25_000, 100_000, 24_999, 25_000, 50_000, 0, 25_001]


async def test_register_ten_and_list(registry: Any) -> None:
    ids = await register_many(registry.url, STAKES)
    status, doc = await post(
        registry.url,
        "/json_rpc",
        {"jsonrpc": "2.0", "id": 7, "method": "get_n_service_nodes", "params": {}},
    )
    assert status == 200 and doc["id"] == 7
    result = doc["result"]
    for key in (
        "service_node_states",
        "height",
        "target_height",
        "hardfork",
        "swarm_seed",
        "block_hash",
    ):
        assert key in result
    assert result["height"] == result["target_height"] == len(STAKES)
    assert len(bytes.fromhex(result["block_hash"])) == 32
    nodes = parse_node_list(doc)
    assert {n.pubkey_ed25519 for n in nodes} == {i.ed25519_public.hex() for i in ids}
    by_key = {n.pubkey_ed25519: n for n in nodes}
    active = []
    for ident, stake in zip(ids, STAKES, strict=True):
        n = by_key[ident.ed25519_public.hex()]
        assert n.active == (stake >= REQUIREMENT)
        if n.active:
            active.append(n)
            assert n.swarm_id != INVALID_SWARM_ID
        else:
            assert n.swarm_id == INVALID_SWARM_ID
    assert len(active) == 7
    swarms = {n.swarm_id for n in active}
    assert swarms == {0}  # 7 nodes: one swarm (a second needs 14)
    assert len(active) >= MIN_SWARM_SIZE

    only_active = await client.fetch_nodes(registry.url, active_only=True)
    assert sorted(n.pubkey_ed25519 for n in only_active) == sorted(n.pubkey_ed25519 for n in active)
    # oxend-style polling: an unchanged list is not resent
    raw = await client.fetch_node_list(registry.url, {"poll_block_hash": result["block_hash"]})
    assert raw["unchanged"] is True and "service_node_states" not in raw
    limited = await client.fetch_node_list(registry.url, {"limit": 3, "fields": ["public_ip"]})
    assert len(limited["service_node_states"]) == 3
    assert all(set(e) == {"public_ip"} for e in limited["service_node_states"])


async def test_bad_signature_is_401(registry: Any) -> None:
    ident = node_identity()
    doc = build_registration(
        ident, public_ip="10.0.0.1", storage_port=1, storage_lmq_port=2, stake=REQUIREMENT
    )
    doc["stake"] = 10**9  # tampered after signing
    status, body = await post(registry.url, "/register", doc)
    assert status == 401
    assert "signature" in body["error"]

    other = node_identity()
    doc = build_registration(
        ident, public_ip="10.0.0.1", storage_port=1, storage_lmq_port=2, stake=REQUIREMENT
    )
    doc["pubkey_x25519"] = other.x25519_public.hex()
    doc["signature"] = ident.sign(registration_payload(doc)).hex()
    status, body = await post(registry.url, "/register", doc)
    assert status == 401
    assert "X25519" in body["error"]

    with pytest.raises(RegistryError) as e:
        await client.deregister(registry.url, ident)
    assert e.value.status == 404
    assert (await client.fetch_nodes(registry.url)) == []


async def test_malformed_and_stale_requests_are_400(registry: Any) -> None:
    ident = node_identity()
    status, body = await post(registry.url, "/register", b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = await post(registry.url, "/register", {"pubkey_ed25519": "00"})
    assert status == 400 and "missing" in body["error"]
    old = build_registration(
        ident,
        public_ip="10.0.0.1",
        storage_port=1,
        storage_lmq_port=2,
        stake=1,
        timestamp=now_ms() - 3600_000,
    )
    status, body = await post(registry.url, "/register", old)
    assert status == 400 and "clock" in body["error"]
    bad_ip = build_registration(
        ident, public_ip="10.0.0.1", storage_port=1, storage_lmq_port=2, stake=1
    )
    bad_ip["public_ip"] = "not-an-ip"
    status, body = await post(registry.url, "/register", bad_ip)
    assert status == 400 and "public_ip" in body["error"]
    status, body = await post(registry.url, "/json_rpc", {"method": "nope"})
    assert body["error"]["code"] == -32601
    status, body = await post(
        registry.url, "/json_rpc", {"method": "get_n_service_nodes", "params": {"limit": -1}}
    )
    assert body["error"]["code"] == -32602


DEEP_ARRAY = b"[" * 60_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
HUGE_INT = b'{"method": "get_n_service_nodes", "id": ' + b"7" * 5_000 + b"}"


@pytest.mark.parametrize("path", ["/json_rpc", "/register", "/deregister"])
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (DEEP_ARRAY, "too deeply"),
        (DEEP_OBJECT, "too deeply"),
        (HUGE_INT, "too many digits"),
        (b'{"stake": ' + b"9" * 4_200 + b"}", ""),  # parses (under Python's limit); refused later
    ],
)
async def test_deep_json_and_huge_integers_are_400(
    registry: Any, path: str, body: bytes, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, doc = await post(registry.url, path, body)
    assert status == 400
    message = doc["error"]["message"] if path == "/json_rpc" else doc["error"]
    assert says in message and len(message) < 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    status, _ = await post(registry.url, "/json_rpc", {"method": "get_n_service_nodes"})
    assert status == 200  # still serving


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "x-unknown"])
@pytest.mark.parametrize("path", ["/json_rpc", "/register", "/deregister"])
async def test_content_encoded_bodies_are_400(registry: Any, path: str, coding: str) -> None:
    connector = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(connector=connector) as s:
        async with s.post(
            registry.url + path, data=b"null", headers={"Content-Encoding": coding}
        ) as r:
            status, doc = r.status, await r.json(content_type=None)
    assert status == 400
    message = doc["error"]["message"] if path == "/json_rpc" else doc["error"]
    assert "Content-Encoding" in message


async def test_huge_integers_inside_valid_requests_are_400(registry: Any) -> None:
    ident = node_identity()
    doc = build_registration(
        ident, public_ip="10.0.0.1", storage_port=1, storage_lmq_port=2, stake=1
    )
    for field in ("stake", "timestamp", "storage_port"):
        raw = json.dumps({**doc, field: 0}).replace(f'"{field}": 0', f'"{field}": ' + "9" * 4_000)
        status, body = await post(registry.url, "/register", raw.encode())
        assert status == 400 and field in body["error"]
    raw = json.dumps({"method": "get_n_service_nodes", "params": {"limit": 0}})
    status, body = await post(
        registry.url, "/json_rpc", raw.replace('"limit": 0', '"limit": -' + "9" * 4_000).encode()
    )
    assert body["error"]["code"] == -32602


async def test_replay_and_address_conflicts_are_409(registry: Any) -> None:
    a, b = node_identity(), node_identity()
    doc = build_registration(
        a, public_ip="10.0.0.1", storage_port=100, storage_lmq_port=101, stake=REQUIREMENT
    )
    assert (await post(registry.url, "/register", doc))[0] == 200
    status, body = await post(registry.url, "/register", doc)  # same document again
    assert status == 409 and "replayed" in body["error"]
    with pytest.raises(RegistryError) as e:
        await client.register(
            registry.url,
            b,
            public_ip="10.0.0.1",
            storage_port=101,
            storage_lmq_port=200,
            stake=REQUIREMENT,
        )
    assert e.value.status == 409 and "already registered" in str(e.value)
    # a re-registration may move the node
    moved = await client.register(
        registry.url,
        a,
        public_ip="10.0.0.2",
        storage_port=100,
        storage_lmq_port=101,
        stake=REQUIREMENT,
    )
    assert moved.public_ip == "10.0.0.2"
    dereg = build_deregistration(a)
    assert (await post(registry.url, "/deregister", dereg))[0] == 200
    # replaying the earlier registration after the deregistration fails
    status, _ = await post(registry.url, "/register", doc)
    assert status == 409


async def test_deregister_and_restart_keeps_state(tmp_path: Path) -> None:
    srv = await server.start("127.0.0.1", 0, tmp_path, REQUIREMENT, seed="s")
    try:
        ids = await register_many(srv.url, [REQUIREMENT] * 16)
        await client.deregister(srv.url, ids[0])
        before = await client.fetch_node_list(srv.url)
        assert len(before["service_node_states"]) == 15
        assert before["height"] == 17
        swarms = {e["swarm_id"] for e in before["service_node_states"]}
        assert len(swarms) == 2  # 15 nodes: two swarms
    finally:
        await srv.close()
    srv = await server.start("127.0.0.1", 0, tmp_path, REQUIREMENT, seed="s")
    try:
        after = await client.fetch_node_list(srv.url)
        assert after == before
        # the deregistered node's old requests stay refused after the restart
        with pytest.raises(RegistryError):
            await client.deregister(srv.url, ids[0])
    finally:
        await srv.close()
    with pytest.raises(RegistryError, match="different seed"):
        await server.start("127.0.0.1", 0, tmp_path, REQUIREMENT, seed="other")


def test_same_history_same_swarms(tmp_path: Path) -> None:
    """Two registries with the same genesis seed and history agree exactly."""
    idents = [node_identity() for _ in range(20)]
    clock = [1_700_000_000.0]
    docs = [
        build_registration(
            ident,
            public_ip="10.1.0.1",
            storage_port=1000 + 2 * i,
            storage_lmq_port=1001 + 2 * i,
            stake=REQUIREMENT,
            timestamp=int(clock[0] * 1000) + i,
        )
        for i, ident in enumerate(idents)
    ]
    leave = build_deregistration(idents[3], timestamp=int(clock[0] * 1000) + 100)

    def replay(d: Path | None) -> list[dict[str, Any]]:
        reg = Registry(d, seed="same", clock=lambda: clock[0])
        for doc in docs:
            reg.register(doc)
        reg.deregister(leave)
        return reg.get_n_service_nodes()["service_node_states"]

    a, b = replay(tmp_path / "a"), replay(None)
    assert a == b
    assert len({e["swarm_id"] for e in a}) == 2
    other = Registry(None, seed="different", clock=lambda: clock[0])
    for doc in docs:
        other.register(doc)
    other.deregister(leave)
    assert (
        other.get_n_service_nodes()["block_hash"]
        != Registry(tmp_path / "a", seed="same").get_n_service_nodes()["block_hash"]
    )


def test_registry_checks_directly() -> None:
    now = [1_700_000_000.0]
    reg = Registry(None, stake_requirement=10, clock=lambda: now[0])
    ident = node_identity()
    ts = int(now[0] * 1000)
    doc = build_registration(
        ident, public_ip="::1", storage_port=5, storage_lmq_port=6, stake=10, timestamp=ts
    )
    node = reg.register(doc)
    assert node.active and node.swarm_id == 0 and node.public_ip == "::1"
    assert reg.height == 1
    # same listing, newer timestamp: no node-list change
    reg.register(
        build_registration(
            ident, public_ip="::1", storage_port=5, storage_lmq_port=6, stake=10, timestamp=ts + 1
        )
    )
    assert reg.height == 1
    with pytest.raises(InvalidInput, match="clock"):
        reg.register(
            build_registration(
                ident,
                public_ip="::1",
                storage_port=5,
                storage_lmq_port=6,
                stake=10,
                timestamp=ts + 400_000,
            )
        )
    with pytest.raises(InvalidInput, match="differ"):
        reg.register(
            build_registration(
                ident,
                public_ip="::1",
                storage_port=5,
                storage_lmq_port=5,
                stake=10,
                timestamp=ts + 2,
            )
        )
    bad = build_deregistration(ident, timestamp=ts + 3)
    bad["signature"] = "00" * 64
    with pytest.raises(InvalidSignature):
        reg.deregister(bad)
    assert (
        reg.deregister(build_deregistration(ident, timestamp=ts + 4)) == ident.ed25519_public.hex()
    )
    assert reg.nodes() == [] and reg.height == 2
    with pytest.raises(InvalidInput):
        Registry(None, stake_requirement=-1)


def test_stake_requirement_change_on_restart(tmp_path: Path) -> None:
    reg = Registry(tmp_path, stake_requirement=100, seed="x")
    idents = [node_identity() for _ in range(6)]
    for i, ident in enumerate(idents):
        reg.register(
            build_registration(
                ident,
                public_ip="10.2.0.1",
                storage_port=10 + 2 * i,
                storage_lmq_port=11 + 2 * i,
                stake=100 + i,
            )
        )
    assert all(n.active for n in reg.nodes())
    reg2 = Registry(tmp_path, stake_requirement=103, seed="x")
    assert reg2.height == reg.height + 1
    assert [n.active for n in reg2.nodes(active_only=False)].count(True) == 3


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "registry.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(RegistryError, match="unreadable"):
        Registry(tmp_path)


async def test_client_reports_unreachable_registry() -> None:
    with pytest.raises(RegistryError) as e:
        await client.fetch_nodes("https://127.0.0.1:1", timeout=2)
    assert e.value.status == 0 and "unreachable" in str(e.value)


async def test_client_calls_share_one_connection_through_a_given_http_client(
    registry: Any,
) -> None:
    ident = node_identity()
    async with client.registry_http() as http:
        await client.register(
            registry.url,
            ident,
            public_ip="10.0.0.1",
            storage_port=1,
            storage_lmq_port=2,
            stake=REQUIREMENT,
            http=http,
        )
        nodes = await client.fetch_nodes(registry.url, http=http)
        assert [n.pubkey_ed25519 for n in nodes] == [ident.ed25519_public.hex()]
        assert http.open_connections() == 1  # kept alive for the next call
        with pytest.raises(RegistryError) as e:
            await client.deregister(registry.url, node_identity(), http=http)
        assert e.value.status == 404
        assert http.open_connections() == 1


async def test_client_reports_a_registry_that_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads until the client gives up and closes

    srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RegistryError, match="unreachable: timed out") as e:
            await client.fetch_nodes(f"http://127.0.0.1:{port}", timeout=0.2)
        assert e.value.status == 0
    finally:
        srv.close()
        await srv.wait_closed()


@pytest.mark.integration
def test_module_entry_point_ready_line_and_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "session.registry",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--stake-requirement",
            "10",
            "--seed",
            "cli",
            "--devnet-chain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = json.loads(line)
        assert ready["ready"] is True and ready["url"].startswith("https://127.0.0.1:")
        assert ready["chain"]["rpc"] == ready["url"] + "/chain"
        nodes = asyncio.run(client.fetch_nodes(ready["url"]))
        assert nodes == []
        # staked through the contract at the registry's /chain: listed at once (10 tokens
        # required here); 9 tokens are not enough, and the log says so
        w3 = connect(ready["chain"]["rpc"])
        c = ready["chain"]
        a, b = node_identity(), node_identity()
        stakes = []
        for i, (ident, tokens) in enumerate(((a, 10), (b, 9))):
            op = Operator(w3, c["contract"], new_account(operator_key("cli", i)),
                          chain_id=c["chain_id"], token=c["token"])  # fmt: skip
            stakes.append((op, op.payload(ident, public_ip="127.0.0.1", storage_port=5000 + 2 * i,
                                          storage_lmq_port=5001 + 2 * i,
                                          amount=tokens * 10 ** c["decimals"])))  # fmt: skip
        _, rid_b = fund_and_stake(w3, new_account(devnet_key("cli", "deployer")), stakes)
        nodes = asyncio.run(client.fetch_nodes(ready["url"]))
        assert [n.pubkey_ed25519 for n in nodes] == [bytes(a.ed25519_public).hex()]
        assert nodes[0].stake == 10 and nodes[0].storage_port == 5000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        err = proc.stderr.read() if proc.stderr else ""
        assert f"registration #{rid_b} of node {bytes(b.ed25519_public).hex()} is not listed" in err
        assert "its stake of 9 tokens is below the 10 required" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "registry.msgpack").exists()
    assert (tmp_path / "tls" / "cert.pem").exists()
