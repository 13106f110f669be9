"""Storage-RPC request builders, a small HTTPS client and a v4 onion test server, shared by the
integration tests, the benchmarks and load tools (requests are built as Session clients build
them; nothing here is used by a node or a client)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from session import onion
from session.identity import Identity, verify
from session.proto.snodes import ServiceNode, node_list_json


def now_ms() -> int:
    return int(time.time() * 1000)


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def store_request(
    account: str, data: bytes, *, ttl: int = 3_600_000, ts: int | None = None, namespace: int = 0
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "pubkey": account,
        "timestamp": ts if ts is not None else now_ms(),
        "ttl": ttl,
        "data": b64(data),
    }
    if namespace:
        params["namespace"] = namespace
    return {"method": "store", "params": params}


def retrieve_request(
    ident: Identity,
    *,
    ts: int | None = None,
    namespace: int = 0,
    signature: bytes | None = None,
    last_hash: str | None = None,
) -> dict[str, Any]:
    ts = ts if ts is not None else now_ms()
    ns = "" if namespace == 0 else str(namespace)
    sig = signature if signature is not None else ident.sign(f"retrieve{ns}{ts}".encode())
    params: dict[str, Any] = {
        "pubkey": ident.session_id,
        "pubkey_ed25519": ident.ed25519_public.hex(),
        "timestamp": ts,
        "signature": b64(sig),
    }
    if namespace:
        params["namespace"] = namespace
    if last_hash:
        params["last_hash"] = last_hash
    return {"method": "retrieve", "params": params}


def jbytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


class Client:
    """A tiny HTTPS client (no certificate checks, like Session clients).

    ``local_addr`` binds its connections to one local address (e.g. ``"127.0.0.2"``), so a test
    can play several clients that a node tells apart by IP address."""

    def __init__(self, local_addr: str | None = None) -> None:
        connector = aiohttp.TCPConnector(
            ssl=False, limit=50, local_addr=(local_addr, 0) if local_addr else None
        )
        self.http = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=40)
        )

    async def post(
        self, url: str, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        async with self.http.post(url + path, data=body, headers=headers or {}) as r:
            return r.status, await r.read()

    async def rpc(self, url: str, doc: Any) -> tuple[int, Any]:
        status, body = await self.post(url, "/storage_rpc/v1", jbytes(doc))
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    async def onion(self, guard_url: str, frame: bytes) -> tuple[int, bytes]:
        return await self.post(guard_url, "/onion_req/v2", frame)

    async def get(self, url: str) -> tuple[int, bytes]:
        async with self.http.get(url) as r:
            return r.status, await r.read()

    async def serving_reads(self, url: str, timeout: float = 60.0) -> None:
        """Waits until the node at ``url`` answers a retrieve. A node that has just started (or
        restarted) catches up with its swarm first and refuses reads with 503 until then;
        anything but 200 or that 503 fails at once."""
        probe = Identity.generate()
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.rpc(url, retrieve_request(probe))
            if status == 200:
                return
            if status != 503 or time.monotonic() > deadline:
                raise AssertionError(f"{url} does not serve reads: {status} {body!r:.200}")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        await self.http.close()


def check_swarm_signatures(resp: dict[str, Any], nodes_by_ed: dict[str, Any]) -> int:
    """Verify every member's signature over the stored hash; returns how many verified."""
    ok = 0
    for ed, r in resp["swarm"].items():
        if r.get("failed"):
            continue
        verify(bytes.fromhex(ed), r["hash"].encode(), base64.b64decode(r["signature"]))
        ok += 1
    return ok


def open_onion_reply(key: Any, body: bytes) -> dict[str, Any]:
    doc = json.loads(key.decrypt(body))
    inner = doc["body"]
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except ValueError:
            pass
    return {"status": doc["status"], "body": inner}


async def v4_server(
    identity: Identity,
    sock: socket.socket | None = None,
) -> tuple[web.AppRunner, int, list[dict[str, Any]]]:
    """An aiohttp server on 127.0.0.1 exposing /oxen/v4/lsrpc, decrypting with ``identity``.

    With ``sock`` it serves on a copy of that listening socket (the original stays open for the
    next server), else on a fresh port."""
    peeler = onion.Peeler.from_x25519_secret(identity.export_x25519_secret())
    seen: list[dict[str, Any]] = []

    async def lsrpc(request: web.Request) -> web.Response:
        body = await request.read()
        plain, reply = peeler.open_request(body)
        meta, payload = onion.v4_decode_request(plain)
        seen.append({"meta": meta, "body": payload})
        answer = jbytes({"echo": (payload or b"").decode(), "endpoint": meta["endpoint"]})
        return web.Response(
            body=reply.encrypt(
                onion.v4_encode_response(
                    {"code": 200, "headers": {"content-type": "application/json"}}, answer
                )
            )
        )

    app = web.Application()
    app.router.add_post("/oxen/v4/lsrpc", lsrpc)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site: web.BaseSite = (
        web.SockSite(runner, sock.dup())
        if sock is not None
        else web.TCPSite(runner, "127.0.0.1", 0)
    )
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, port, seen


async def one_hop_v4(
    http: aiohttp.ClientSession,
    server_url: str,
    server_x25519: bytes,
    method: str,
    endpoint: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes]:
    """A v4 onion request to a server's destination through one hop: the hop's layer is
    peeled here (a node's part) and the final layer POSTed where the node would; returns the
    server's (status, body) from the decrypted v4 response."""
    hop = Identity.generate()
    scheme, _, rest = server_url.partition("://")
    port = int(rest.rsplit(":", 1)[1])
    dest = onion.ServerDestination("127.0.0.1", "/oxen/v4/lsrpc", server_x25519, scheme, port)
    meta = {"method": method, "endpoint": endpoint, "headers": headers}
    frame, key = onion.build(
        [onion.Hop(hop.ed25519_public.hex(), bytes(hop.x25519_public))],
        dest,
        onion.v4_encode_request(meta, body),
        "xchacha20",
    )
    proxy = onion.Peeler(hop).peel(frame)
    assert isinstance(proxy, onion.Proxy)
    async with http.post(f"{server_url}{proxy.target}", data=proxy.payload) as r:
        assert r.status == 200
        sealed = await r.read()
    info, payload = onion.v4_decode_response(key.decrypt(sealed))
    return int(info["code"]), payload or b""


def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound a moment, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_node_list(path: Path, count: int = 5) -> Path:
    """Write to ``path`` a node list (as the registry serves it) of ``count`` nodes on
    loopback ports nothing listens on: a network that is down."""
    nodes = []
    for _ in range(count):
        ident = Identity.generate()
        nodes.append(
            ServiceNode(
                ident.ed25519_public.hex(),
                ident.x25519_public.hex(),
                "127.0.0.1",
                closed_port(),
                closed_port(),
                swarm_id=0,
            )
        )
    path.write_text(json.dumps({"result": node_list_json(nodes)}))
    return path
