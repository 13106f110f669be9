"""The client library's HTTP against real sockets on 127.0.0.1: the onion transport's requests
to guards over TLS (one kept-alive connection per guard, a reply over the cap refused as a path
failure) and the registry bootstrap (``fetch_registry``: a JSON-RPC POST or a ``.json`` GET,
each failure a :class:`NetworkError` that says what happened)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from session.client import transport as transport_mod
from session.client.network import NetworkClock, fetch_registry
from session.client.paths import PathManager
from session.client.transport import OnionTransport, PathFailure
from session.errors import DecodeError, NetworkError
from session.identity import Identity
from session.proto.snodes import ServiceNode
from session.service.tls import server_ssl_context

Handler = Callable[[bytes, bytes], bytes]  # (request head, body) -> raw answer


class Site:
    """HTTP(S) listeners on 127.0.0.1 answering with ``handler``; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.servers: list[asyncio.Server] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.heads.append(head)
                writer.write(self.handler(head, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def listen(self, tls: Path | None = None) -> int:
        ctx = server_ssl_context(tls) if tls is not None else None
        srv = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ctx)
        self.servers.append(srv)
        port: int = srv.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        for srv in self.servers:
            srv.close()
            await srv.wait_closed()


def answer(body: bytes, status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site(lambda head, body: answer(b""))
    yield s
    await s.close()


async def guards(site: Site, tmp_path: Path, n: int = 5) -> list[ServiceNode]:
    """``n`` nodes whose HTTPS ports are all listeners of ``site``."""
    nodes = []
    for _ in range(n):
        port = await site.listen(tls=tmp_path)
        ident = Identity.generate()
        nodes.append(
            ServiceNode(
                ident.ed25519_public.hex(), ident.x25519_public.hex(), "127.0.0.1", port, 1, 0
            )
        )
    return nodes


async def test_onion_requests_reuse_one_tls_connection_per_guard(
    site: Site, tmp_path: Path, plain_onion: None
) -> None:
    reply = {"status": 200, "body": {"hash": "h" * 43, "t": 1_700_000_000_000}}
    site.handler = lambda head, body: answer(json.dumps(reply).encode())
    nodes = await guards(site, tmp_path)
    t = OnionTransport(PathManager(nodes, rng=random.Random(3), paths_wanted=1), NetworkClock())
    try:
        path = t.paths.choose()
        dest = next(n for n in nodes if n not in path.hops)
        for _ in range(3):
            code, body = await t.request(dest, "store", {"x": 1}, path=path)
            assert (code, body["hash"]) == (200, "h" * 43)
    finally:
        await t.close()
    assert site.connections == 1
    assert all(h.startswith(b"POST /onion_req/v2 HTTP/1.1\r\n") for h in site.heads)
    assert all(b"\r\nUser-Agent: session-client\r\n" in h for h in site.heads)


async def test_a_guard_reply_over_the_cap_is_a_path_failure(
    site: Site, tmp_path: Path, plain_onion: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_mod, "MAX_REPLY", 1000)
    site.handler = lambda head, body: answer(b"x" * 1001)
    nodes = await guards(site, tmp_path)
    t = OnionTransport(PathManager(nodes, rng=random.Random(3), paths_wanted=1), NetworkClock())
    try:
        path = t.paths.choose()
        dest = next(n for n in nodes if n not in path.hops)
        with pytest.raises(PathFailure, match="more than 1000 bytes"):
            await t.request(dest, "store", {}, path=path)
    finally:
        await t.close()


def node_doc(port: int) -> dict[str, Any]:
    ident = Identity.generate()
    return {
        "pubkey_ed25519": ident.ed25519_public.hex(),
        "pubkey_x25519": ident.x25519_public.hex(),
        "public_ip": "127.0.0.1",
        "storage_port": port,
        "storage_lmq_port": 1,
        "swarm_id": 0,
    }


async def test_fetch_registry_posts_json_rpc_or_gets_a_json_file(site: Site) -> None:
    doc = {"service_node_states": [node_doc(30000), node_doc(30001)]}

    def registry(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"GET /nodes.json "):
            return answer(json.dumps(doc).encode())
        call = json.loads(body)
        assert call["method"] == "get_n_service_nodes" and call["params"] == {"active_only": True}
        return answer(json.dumps({"result": doc}).encode())

    site.handler = registry
    port = await site.listen()
    by_rpc = await fetch_registry(f"http://127.0.0.1:{port}")
    by_file = await fetch_registry(f"http://127.0.0.1:{port}/nodes.json")
    assert [n.storage_port for n in by_rpc] == [n.storage_port for n in by_file] == [30000, 30001]
    assert site.heads[0].startswith(b"POST /json_rpc HTTP/1.1\r\n")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    ("raw", "error", "says"),
    [
        (answer(b"gone", "404 Not Found"), NetworkError, "HTTP status 404"),
        (answer(b"<html>"), NetworkError, "not JSON"),
        (answer(b'{"result": {"nodes": 5}}'), DecodeError, "sent no node list"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{", NetworkError, "HttpProtocolError"),
        (None, NetworkError, r"did not answer within 0\.3 s"),
    ],
    ids=["404", "not-json", "not-a-list", "cut-short", "silent"],
)
async def test_fetch_registry_failures_say_what_happened(
    site: Site, raw: bytes | None, error: type[Exception], says: str
) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if raw is None:
            await reader.read()  # silent until the client gives up
        else:
            writer.write(raw)
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(respond, "127.0.0.1", 0)
    site.servers.append(srv)
    port = srv.sockets[0].getsockname()[1]
    # (the silent server is given up on after 0.3 s; one that answers gets all the time a
    # loaded machine needs, so the error is the answer's, not a timeout)
    with pytest.raises(error, match=says):
        await fetch_registry(f"http://127.0.0.1:{port}", timeout=0.3 if raw is None else 30)


async def test_fetch_registry_with_nothing_listening() -> None:
    with pytest.raises(NetworkError, match="HttpConnectError: cannot connect"):
        await fetch_registry(f"http://127.0.0.1:{free_port()}")
