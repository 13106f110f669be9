"""The onion proxy refuses what is not a public server (issue 8, SSRF).

Every router test drives the real path: a frame built by ``onion.build`` for a one-hop path
through this node to a server destination, peeled by the native core, then
:class:`OnionRouter` with its :class:`EgressPolicy`. "No connection attempt" is shown with a
listening socket: the kernel completes a TCP handshake before anyone calls ``accept``, so a
connection the node made would sit in the listener's backlog.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from session import onion
from session.errors import ConfigError, DestinationRefused
from session.identity import Identity
from session.node.config import load_config
from session.node.egress import (
    AllowedServer,
    EgressPolicy,
    is_own_address,
    parse_allowlist,
    refusal,
)
from session.node.relay import PROXY_FAILED, OnionRouter, PeelPool
from session.service.config import ConnectionLimits
from session.service.onion import OnionDestination, Routes, V4Request, V4Response
from session.service.server import serve

NODE = Identity.generate()
SERVER = Identity.generate()
TARGET = "/oxen/v4/lsrpc"


# ------------------------------------------------------------------ address classes

REFUSED = [
    "127.0.0.1",
    "127.255.0.7",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.251",
    "239.1.2.3",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "fec0::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "64:ff9b::a00:1",
    "64:ff9b::7f00:1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("addr", REFUSED)
def test_non_public_addresses_are_refused(addr: str) -> None:
    assert refusal(ipaddress.ip_address(addr)) is not None


@pytest.mark.parametrize("addr", PUBLIC)
def test_public_unicast_addresses_pass(addr: str) -> None:
    assert refusal(ipaddress.ip_address(addr)) is None


def test_own_addresses_are_found_by_binding() -> None:
    assert is_own_address(ipaddress.ip_address("127.0.0.1"))
    assert not is_own_address(ipaddress.ip_address("192.0.2.77"))  # TEST-NET-1: on no machine


# ------------------------------------------------------------------ allowlist and config


def test_allowlist_parses_hosts_and_ports() -> None:
    got = parse_allowlist("127.0.0.1:8443, [::1]:9000  Files.Example.org.:443")
    assert got == (
        AllowedServer("127.0.0.1", 8443),
        AllowedServer("::1", 9000),
        AllowedServer("files.example.org", 443),
    )
    assert [str(a) for a in got] == ["127.0.0.1:8443", "[::1]:9000", "files.example.org:443"]
    assert parse_allowlist("") == ()


@pytest.mark.parametrize(
    "bad, says",
    [
        ("127.0.0.1", "is not host:port"),
        ("::1:80", "IPv6 addresses in brackets"),
        ("host:0", "between 1 and 65535"),
        ("host:http", "between 1 and 65535"),
        (":80", "host:port"),
    ],
)
def test_bad_allowlist_entries_are_config_errors(bad: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_allowlist(bad)
    with pytest.raises(ConfigError, match=r"network\.proxy_allow"):
        load_config(env={"SESSION_NODE_NETWORK__PROXY_ALLOW": bad, "SESSION_NODE_DATA_DIR": "/tmp"})


def test_config_keys_reach_the_node_config() -> None:
    cfg = load_config(env={"SESSION_NODE_DATA_DIR": "/tmp"})
    assert cfg.network.proxy_public is True and cfg.network.proxy_allow == ""
    cfg = load_config(
        env={
            "SESSION_NODE_DATA_DIR": "/tmp",
            "SESSION_NODE_NETWORK__PROXY_PUBLIC": "false",
            "SESSION_NODE_NETWORK__PROXY_ALLOW": "127.0.0.1:8443",
        }
    )
    assert cfg.network.proxy_public is False
    assert parse_allowlist(cfg.network.proxy_allow) == (AllowedServer("127.0.0.1", 8443),)


# ------------------------------------------------------------------ resolution


def fake_dns(answers: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    async def lookup(name: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(name)
        if name not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[name]

    return lookup


async def test_every_resolved_address_is_checked() -> None:
    policy = EgressPolicy(
        lookup=fake_dns(
            {
                "mixed.test": ["93.184.215.14", "10.0.0.5"],
                "good.test": ["93.184.215.14", "2606:4700::1"],
            }
        )
    )
    with pytest.raises(DestinationRefused, match="private"):
        await policy.resolve("mixed.test", 443)
    assert [str(a) for a in await policy.resolve("good.test", 443)] == [
        "93.184.215.14",
        "2606:4700::1",
    ]
    with pytest.raises(DestinationRefused, match="does not resolve"):
        await policy.resolve("nowhere.test", 443)


async def test_the_nodes_own_public_address_is_refused() -> None:
    policy = EgressPolicy(
        own_addresses=["93.184.215.14", "0.0.0.0", "localhost"],
        lookup=fake_dns({"me.test": ["93.184.215.14"]}),
    )
    for host in ("me.test", "93.184.215.14"):
        with pytest.raises(DestinationRefused, match="own addresses"):
            await policy.resolve(host, 443)


async def test_devnet_policy_allows_exactly_its_servers() -> None:
    policy = EgressPolicy(
        allow_public=False,
        allow=parse_allowlist("127.0.0.1:8443, files.test:80"),
        lookup=fake_dns({"files.test": ["127.0.0.1"]}),
    )
    assert [str(a) for a in await policy.resolve("127.0.0.1", 8443)] == ["127.0.0.1"]
    assert [str(a) for a in await policy.resolve("FILES.test.", 80)] == ["127.0.0.1"]
    for host, port in (("127.0.0.1", 8444), ("127.1", 8443), ("8.8.8.8", 443), ("files.test", 81)):
        with pytest.raises(DestinationRefused, match="allowlist"):
            await policy.resolve(host, port)


async def test_slow_lookups_are_bounded_in_time_and_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real resolver pool: a name that never answers times out, and lookups stuck in the
    pool count until their thread is done, so they cannot pile up."""
    release = threading.Event()
    real = socket.getaddrinfo

    def stuck(host: str, *args: Any) -> Any:
        if host == "stuck.test":
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    policy = EgressPolicy(dns_timeout=0.2, max_pending=1)
    try:
        with pytest.raises(DestinationRefused, match="timed out"):
            await policy.resolve("stuck.test", 443)
        with pytest.raises(DestinationRefused, match="too many"):
            await policy.resolve("localhost", 443)  # refused before any lookup: the pool is full
        release.set()
        while policy._pending:  # the stuck thread returns; its slot frees on the loop
            await asyncio.sleep(0.01)
        with pytest.raises(DestinationRefused, match="loopback"):
            await policy.resolve("localhost", 443)
    finally:
        release.set()
        policy.close()


# ------------------------------------------------------------------ the router, end to end


class Listener:
    """A listening TCP socket nobody accepts on: shows whether anything connected to it."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def make_router(policy: EgressPolicy, floor: float = 0.0, **kw: Any) -> OnionRouter:
    peeler = onion.Peeler(NODE)
    return OnionRouter(
        PeelPool(peeler, workers=0),
        view=None,
        links=None,
        rpc=None,  # type: ignore[arg-type]
        egress=policy,
        proxy_failure_floor=floor,
        proxy_timeout=5.0,
        **kw,
    )


def server_frame(host: str, port: int, body: bytes = b"ping") -> tuple[bytes, Any]:
    """A one-hop onion through NODE to a v4 server at ``host:port`` (http)."""
    req = onion.v4_encode_request({"method": "POST", "endpoint": "/room/abc", "headers": {}}, body)
    dest = onion.ServerDestination(host, TARGET, SERVER.x25519_public, "http", port)
    return onion.build(
        [onion.Hop(NODE.ed25519_public.hex(), NODE.x25519_public)], dest, req, "xchacha20"
    )


async def proxied(router: OnionRouter, host: str, port: int) -> tuple[int, bytes]:
    """The node's answer (HTTP status, body) to a client's request for ``host:port``."""
    frame, _ = server_frame(host, port)
    return await router.handle(frame)


#: The node's one plain answer for a refused or unreachable server (network spec §6.6: a path
#: node's own error is plain with its status; the client could not open one encrypted with
#: this node's layer key).
FAILED = (502, PROXY_FAILED)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "127.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "LOCALHOST",
    ],
)
async def test_loopback_in_any_spelling_is_refused_without_a_connection(host: str) -> None:
    v4 = Listener()
    v6 = Listener(socket.AF_INET6, "::1")
    router = make_router(EgressPolicy(), floor=0.0)
    try:
        for lst in (v4, v6):
            assert await proxied(router, host, lst.port) == FAILED
            assert lst.connections() == 0
    finally:
        await router.close()
        v4.close()
        v6.close()


async def test_a_name_that_resolves_to_loopback_is_refused(listener: Listener) -> None:
    calls: list[str] = []
    router = make_router(EgressPolicy(lookup=fake_dns({"rebind.example": ["127.0.0.1"]}, calls)))
    try:
        assert await proxied(router, "rebind.example", listener.port) == FAILED
        assert calls == ["rebind.example"] and listener.connections() == 0
    finally:
        await router.close()


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "[fe80::1]",
        "[fd00::1]",
        "100.64.0.1",
        "224.0.0.1",
        "0.0.0.0",
    ],
)
async def test_private_and_special_addresses_are_refused(host: str) -> None:
    router = make_router(EgressPolicy())
    try:
        assert await proxied(router, host, 80) == FAILED
    finally:
        await router.close()


async def v4_echo_server(
    redirect_to: str | None = None,
) -> tuple[web.AppRunner, int, list[dict[str, Any]]]:
    """A v4 server on 127.0.0.1 that records what reached it (or redirects elsewhere)."""
    peeler = onion.Peeler.from_x25519_secret(SERVER.export_x25519_secret())
    seen: list[dict[str, Any]] = []

    async def lsrpc(request: web.Request) -> web.StreamResponse:
        seen.append({"host": request.headers.get("Host")})
        if redirect_to is not None:
            raise web.HTTPTemporaryRedirect(redirect_to)
        plain, reply = peeler.open_request(await request.read())
        meta, payload = onion.v4_decode_request(plain)
        answer = json.dumps(
            {"echo": (payload or b"").decode(), "endpoint": meta["endpoint"]}
        ).encode()
        return web.Response(
            body=reply.encrypt(onion.v4_encode_response({"code": 200, "headers": {}}, answer))
        )

    app = web.Application()
    app.router.add_post(TARGET, lsrpc)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1]), seen


async def test_allowlisted_server_is_reached_at_the_checked_address() -> None:
    """An allowlisted name that only the policy's DNS knows: the request succeeds, so the
    connection went to the address the policy resolved (no second resolution)."""
    runner, port, seen = await v4_echo_server()
    calls: list[str] = []
    policy = EgressPolicy(
        allow_public=False,
        allow=[AllowedServer("files.test", port)],
        lookup=fake_dns({"files.test": ["127.0.0.1"]}, calls),
    )
    router = make_router(policy)
    try:
        frame, key = server_frame("files.test", port, b"hello")
        status, body = await router.handle(frame)
        assert status == 200
        meta, answer = onion.v4_decode_response(key.decrypt(body))
        assert meta["code"] == 200 and json.loads(answer) == {
            "echo": "hello",
            "endpoint": "/room/abc",
        }
        assert seen == [{"host": f"files.test:{port}"}]  # the server still sees its own name
        assert calls == ["files.test"]
    finally:
        await router.close()
        await runner.cleanup()


async def test_redirects_are_not_followed(listener: Listener) -> None:
    runner, port, seen = await v4_echo_server(
        redirect_to=f"http://127.0.0.1:{listener.port}{TARGET}"
    )
    router = make_router(
        EgressPolicy(allow_public=False, allow=parse_allowlist(f"127.0.0.1:{port}"))
    )
    try:
        frame, _ = server_frame("127.0.0.1", port)
        status, _ = await router.handle(frame)
        assert status == 307 and len(seen) == 1  # the server's answer, passed back unchanged
        assert listener.connections() == 0
    finally:
        await router.close()
        await runner.cleanup()


async def test_refused_and_unreachable_get_the_same_answer_no_sooner_than_the_floor() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    port = int(closed.getsockname()[1])
    floor = 0.2
    router = make_router(
        EgressPolicy(allow_public=False, allow=parse_allowlist(f"127.0.0.1:{port}")), floor=floor
    )
    loop = asyncio.get_running_loop()
    try:
        answers = []
        for host, p in (("127.0.0.1", port), ("127.0.0.1", port + 1), ("10.9.9.9", port)):
            t0 = loop.time()
            answers.append(await proxied(router, host, p))
            assert loop.time() - t0 >= floor
        assert answers == [FAILED] * 3  # unreachable, refused port, refused address
    finally:
        await router.close()
        closed.close()


async def test_default_router_refuses_loopback(listener: Listener) -> None:
    """A router built without a policy gets the safe default (public addresses only)."""
    router = OnionRouter(
        PeelPool(onion.Peeler(NODE), workers=0),
        view=None,
        links=None,  # type: ignore[arg-type]
        rpc=None,
        proxy_failure_floor=0.0,
    )
    try:
        assert await proxied(router, "127.0.0.1", listener.port) == FAILED
        assert listener.connections() == 0
    finally:
        await router.close()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_server_answer_beyond_the_cap_is_a_failure(streamed: bool) -> None:
    """A server cannot make the node buffer without bound: an answer longer than the cap
    (announced or streamed) is the one failure answer; one at the cap passes back whole."""
    size = {"n": 0}

    async def lsrpc(request: web.Request) -> web.StreamResponse:
        await request.read()
        body = b"x" * size["n"]
        if not streamed:
            return web.Response(body=body)
        resp = web.StreamResponse()
        await resp.prepare(request)  # chunked: no Content-Length to refuse it by
        for i in range(0, len(body), 500):
            await resp.write(body[i : i + 500])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post(TARGET, lsrpc)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    policy = EgressPolicy(allow_public=False, allow=parse_allowlist(f"127.0.0.1:{port}"))
    router = make_router(policy, proxy_max_reply=2000)
    try:
        size["n"] = 2000
        frame, _ = server_frame("127.0.0.1", port)
        assert await router.handle(frame) == (200, b"x" * 2000)
        size["n"] = 2001
        assert await proxied(router, "127.0.0.1", port) == FAILED
    finally:
        await router.close()
        await runner.cleanup()


async def test_a_server_at_its_connection_cap_gets_a_plain_502_the_client_can_act_on() -> None:
    """The community load run's failure at small scale: on a devnet every node proxies from
    127.0.0.1, so the server's per-address connection cap closes the last node's connection at
    accept. The node answers its plain 502 (not a 200 encrypted with its own layer key, which
    the client, holding only the server's reply key, reported as "undecryptable onion reply
    from the server's path"); once the cap has room, the same request gets the server's own
    answer, which the client's key opens."""
    routes = Routes()

    async def echo(req: V4Request) -> V4Response:
        return V4Response.of_json({"echo": req.body.decode()})

    routes.add("POST", "/room/abc", echo)
    app = web.Application()
    OnionDestination(SERVER.export_x25519_secret(), routes).attach(app)
    site = await serve(app, "127.0.0.1", 0, limits=ConnectionLimits(max_connections_per_address=1))
    router = make_router(
        EgressPolicy(allow_public=False, allow=parse_allowlist(f"127.0.0.1:{site.port}"))
    )
    # another node's connection holds the one place (a request answered: it was admitted)
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    try:
        writer.write(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 404")
        frame, key = server_frame("127.0.0.1", site.port, b"hi")
        status, body = await router.handle(frame)
        assert (status, body) == FAILED and site.stats.refused == 1
        writer.close()
        await writer.wait_closed()
        async with asyncio.timeout(10):  # the server has seen the close: the place is free
            while site.stats.open:
                await asyncio.sleep(0.01)
        frame, key = server_frame("127.0.0.1", site.port, b"hi")
        status, body = await router.handle(frame)
        assert status == 200
        meta, answer = onion.v4_decode_response(key.decrypt(body))
        assert meta["code"] == 200 and json.loads(answer or b"") == {"echo": "hi"}
    finally:
        writer.close()
        await router.close()
        await site.close()
