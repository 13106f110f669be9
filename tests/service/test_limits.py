"""Connection limits of every service site, on 127.0.0.1 with small limits and a handful of
connections: slow headers, idle connections, slow TLS handshakes and slow bodies are cut; the
connection caps refuse the next connection at accept; bodies beyond the in-flight budget are
refused at once. Each test waits on the server's own counters or the socket's end, not on time.

Every test runs against both servers: the aiohttp one (:mod:`session.service.server`: registry,
file and community servers) and the node's lean one (:mod:`session.http1.server`), each serving
the same two routes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from session.errors import ConfigError
from session.http1 import server as http1
from session.service.accept import Gate
from session.service.config import ConnectionLimits, validate_limits
from session.service.server import Served, serve
from session.service.tls import client_ssl_context, server_ssl_context

SHORT = 0.3  # seconds: the timeout under test
LONG = 60.0  # the other timeouts, so that only the one under test can fire
BOUND = 10.0  # how long a test waits for an outcome before failing

BASE = ConnectionLimits(
    tls_handshake_timeout=LONG,
    header_timeout=LONG,
    body_timeout=LONG,
    idle_timeout=LONG,
    max_connections=16,
    max_connections_per_address=16,
    max_inflight_body_bytes=1000,
)


def app(release: asyncio.Event | None = None) -> web.Application:
    a = web.Application()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        if release is not None and body.startswith(b"hold"):
            await release.wait()
        return web.Response(text=f"got {len(body)}")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    a.router.add_post("/echo", echo)
    a.router.add_get("/", hello)
    return a


def routes(release: asyncio.Event | None = None) -> http1.Routes:
    """The same two routes as :func:`app`, for the lean server."""

    async def echo(request: http1.Request) -> http1.Response:
        if release is not None and request.body.startswith(b"hold"):
            await release.wait()
        return http1.Response(200, f"got {len(request.body)}".encode())

    async def hello(request: http1.Request) -> http1.Response:
        return http1.Response(200, b"hello")

    return {"/echo": {"POST": echo}, "/": {"GET": hello}}


@pytest.fixture(params=["aiohttp", "http1"])
async def site(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., asyncio.Future[Served | http1.Served]]]:
    started: list[Served | http1.Served] = []

    async def start(
        limits: ConnectionLimits,
        *,
        tls: Path | None = None,
        max_body: int = 600,
        release: asyncio.Event | None = None,
        shutdown_timeout: float = BOUND,
    ) -> Served | http1.Served:
        ctx = server_ssl_context(tls) if tls else None
        served: Served | http1.Served
        if request.param == "aiohttp":
            served = await serve(
                app(release), "127.0.0.1", 0, limits=limits, max_body=max_body, ssl_context=ctx,
                shutdown_timeout=shutdown_timeout,
            )  # fmt: skip
        else:
            served = await http1.serve(
                routes(release), "127.0.0.1", 0, limits=limits, max_body=max_body, ssl_context=ctx,
                shutdown_timeout=shutdown_timeout,
            )  # fmt: skip
        started.append(served)
        return served

    yield start  # type: ignore[misc]  # the fixture hands out the coroutine function
    for s in started:
        await s.close()


async def connect(
    port: int, *, source: str = "127.0.0.1", tls: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1",
        port,
        local_addr=(source, 0),
        ssl=client_ssl_context() if tls else None,
        server_hostname="localhost" if tls else None,
    )


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails after BOUND s)."""
    async with asyncio.timeout(BOUND):
        try:
            return await reader.read()
        except (ConnectionResetError, ssl.SSLError):
            return b""


async def wait_until(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not cond():
            await asyncio.sleep(0.01)


async def response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP response (head and Content-Length body), without waiting for the close."""
    async with asyncio.timeout(BOUND):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await reader.readexactly(length)


async def request(port: int, raw: bytes, **kw: object) -> bytes:
    reader, writer = await connect(port, **kw)  # type: ignore[arg-type]
    writer.write(raw)
    out = await response(reader)
    writer.close()
    return out


GET = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def test_slow_headers_are_cut_after_the_header_timeout(site) -> None:  # type: ignore[no-untyped-def]
    served = await site(dataclasses.replace(BASE, header_timeout=SHORT))
    reader, writer = await connect(served.port)
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200

    async def dribble() -> None:
        for b in head:  # one byte at a time, never the end of the headers
            writer.write(bytes([b]))
            await asyncio.sleep(0.02)

    task = asyncio.ensure_future(dribble())
    assert await closed_by_server(reader) == b""
    task.cancel()
    writer.close()
    assert served.stats.header_timeouts == 1
    await wait_until(lambda: served.stats.open == 0)
    assert (await request(served.port, GET)).endswith(b"hello")  # honest requests still served


async def test_idle_connections_are_dropped(site) -> None:  # type: ignore[no-untyped-def]
    served = await site(dataclasses.replace(BASE, idle_timeout=SHORT))
    silent_reader, silent = await connect(served.port)  # never sends a byte
    reader, writer = await connect(served.port)  # one request, then idles on keep-alive
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(BOUND):
        assert (await reader.readuntil(b"hello")).startswith(b"HTTP/1.1 200")
    assert await closed_by_server(reader) == b""
    assert await closed_by_server(silent_reader) == b""
    silent.close()
    writer.close()
    await wait_until(lambda: served.stats.open == 0)


async def test_slow_tls_handshake_is_cut(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    served = await site(dataclasses.replace(BASE, tls_handshake_timeout=SHORT), tls=tmp_path)
    reader, writer = await connect(served.port)  # plain TCP: no ClientHello ever comes
    assert served.stats.open <= 1
    assert await closed_by_server(reader) == b""
    writer.close()
    await wait_until(lambda: served.stats.open == 0)
    assert served.stats.tls_failed == 1
    out = await request(served.port, GET, tls=True)
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"hello")
    await wait_until(lambda: served.stats.open == 0)  # TLS connections are released too


async def test_close_lets_the_request_in_flight_finish(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Closing a site closes idle connections and those still in their TLS handshake at once,
    stops accepting, and answers the request being handled before closing its connection."""
    release = asyncio.Event()
    served = await site(BASE, tls=tmp_path, release=release)
    busy_reader, busy = await connect(served.port, tls=True)
    idle_reader, idle = await connect(served.port, tls=True)
    shaking_reader, shaking = await connect(served.port)  # plain TCP: no ClientHello ever comes
    busy.write(post(4, b"hold"))
    await wait_until(lambda: served.inflight_body_bytes == 4 and served.stats.open == 3)
    closing = asyncio.ensure_future(served.close())
    assert await closed_by_server(idle_reader) == b""
    assert await closed_by_server(shaking_reader) == b""
    with pytest.raises(OSError):
        await connect(served.port)
    assert not closing.done()
    release.set()
    assert (await response(busy_reader)).endswith(b"got 4")
    async with asyncio.timeout(BOUND):
        await closing
    assert served.stats.open == 0 and served.inflight_body_bytes == 0
    for w in (busy, idle, shaking):
        w.close()


async def test_close_cuts_a_request_that_outlasts_the_shutdown_timeout(site) -> None:  # type: ignore[no-untyped-def]
    served = await site(BASE, release=asyncio.Event(), shutdown_timeout=SHORT)
    reader, writer = await connect(served.port)
    writer.write(post(4, b"hold"))  # never released
    await wait_until(lambda: served.inflight_body_bytes == 4)
    async with asyncio.timeout(BOUND):
        await served.close()
    assert await closed_by_server(reader) == b""
    assert served.stats.open == 0
    writer.close()


async def test_per_address_cap_refuses_the_next_connection(site) -> None:  # type: ignore[no-untyped-def]
    served = await site(dataclasses.replace(BASE, max_connections=5, max_connections_per_address=3))
    held = [await connect(served.port) for _ in range(3)]
    await wait_until(lambda: served.stats.open == 3)
    reader, writer = await connect(served.port)
    assert await closed_by_server(reader) == b""  # the 4th from 127.0.0.1 is closed at accept
    writer.close()
    assert served.stats.refused == 1 and served.stats.open == 3
    # another address still gets in, up to the total cap
    others = [await connect(served.port, source="127.0.0.2") for _ in range(2)]
    await wait_until(lambda: served.stats.open == 5)
    reader, writer = await connect(served.port, source="127.0.0.3")
    assert await closed_by_server(reader) == b""  # over the total cap
    writer.close()
    assert served.stats.refused == 2
    # the held connections are served normally
    r, w = held[0]
    w.write(GET)
    assert (await response(r)).endswith(b"hello")
    await wait_until(lambda: served.stats.open == 4)
    assert (await request(served.port, GET)).endswith(b"hello")  # a slot is free again
    for _, w in held[1:] + others:
        w.close()
    await wait_until(lambda: served.stats.open == 0)


async def test_an_address_opening_connections_too_fast_is_refused_at_accept(site) -> None:  # type: ignore[no-untyped-def]
    """However few connections it holds, an address that has opened its burst of new ones
    (no refill within the test: 0.001 a second) gets the next closed at accept, before any
    TLS work; another address is not affected."""
    served = await site(
        dataclasses.replace(BASE, new_connections_per_second=0.001, new_connections_burst=3)
    )
    for _ in range(3):
        assert (await request(served.port, GET)).endswith(b"hello")
    await wait_until(lambda: served.stats.open == 0)
    reader, writer = await connect(served.port)
    assert await closed_by_server(reader) == b""  # the 4th new one from 127.0.0.1
    writer.close()
    assert served.stats.too_fast == 1 and served.stats.refused == 0
    assert (await request(served.port, GET, source="127.0.0.2")).endswith(b"hello")
    assert served.stats.too_fast == 1


def test_an_ipv6_64_is_one_address_for_every_limit() -> None:
    """Connections from the addresses of one IPv6 /64 (one host is routinely handed all of
    them) share its per-address cap and its new-connection rate; the next /64 is another
    address."""
    gate = Gate(dataclasses.replace(BASE, max_connections_per_address=2), 600, None)
    assert gate.admit("2001:db8:0:1::1") and gate.admit("2001:db8:0:1::2")
    assert not gate.admit("2001:db8:0:1:ffff::3")  # the /64's third
    assert gate.stats.refused == 1
    assert gate.admit("2001:db8:0:2::1")  # another /64
    limits = dataclasses.replace(BASE, new_connections_per_second=0.001, new_connections_burst=2)
    fast = Gate(limits, 600, None)
    assert fast.admit("2001:db8::a") and fast.admit("2001:db8::b")
    assert not fast.admit("2001:db8::c") and fast.stats.too_fast == 1


def test_the_new_connection_rate_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="new_connections_per_second must be positive"):
        validate_limits(dataclasses.replace(BASE, new_connections_per_second=0), 600)
    with pytest.raises(ConfigError, match="new_connections_burst at least 1"):
        validate_limits(dataclasses.replace(BASE, new_connections_burst=0), 600)
    with pytest.raises(ConfigError, match="must be positive"):
        validate_limits(dataclasses.replace(BASE, new_connections_per_second=float("nan")), 600)


def post(size: int, body: bytes = b"") -> bytes:
    return (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % size
    ) + body


async def test_bodies_beyond_the_in_flight_budget_are_refused_at_once(site) -> None:  # type: ignore[no-untyped-def]
    release = asyncio.Event()
    served = await site(BASE, release=release)  # budget 1000, max body 600
    # one request holds 500 bytes of the budget (its handler waits) ...
    r1, w1 = await connect(served.port)
    w1.write(post(500, b"hold" + b"x" * 496))
    await wait_until(lambda: served.inflight_body_bytes == 500)
    # ... so a 600-byte body does not fit: 503 before its body is even sent
    out = await request(served.port, post(600))
    assert out.startswith(b"HTTP/1.1 503") and b"too many request bodies" in out
    assert b"Retry-After: 1" in out
    # larger than the site's largest body: 413
    out = await request(served.port, post(601))
    assert out.startswith(b"HTTP/1.1 413")
    # a chunked body reserves the largest body (600): refused too while 500 are held
    out = await request(
        served.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 503")
    # a small one fits
    assert (await request(served.port, post(400, b"y" * 400))).endswith(b"got 400")
    release.set()
    assert (await response(r1)).endswith(b"got 500")
    w1.close()
    await wait_until(lambda: served.inflight_body_bytes == 0)
    assert (await request(served.port, post(600, b"z" * 600))).endswith(b"got 600")
    assert served.stats.bodies_refused == 2 and served.stats.bodies_too_large == 1


async def test_slow_body_gets_408(site) -> None:  # type: ignore[no-untyped-def]
    served = await site(dataclasses.replace(BASE, body_timeout=SHORT))
    reader, writer = await connect(served.port)
    writer.write(post(100, b"only ten b"))
    out = await response(reader)
    writer.close()
    assert out.startswith(b"HTTP/1.1 408")
    assert served.stats.body_timeouts == 1
    await wait_until(lambda: served.inflight_body_bytes == 0 and served.stats.open == 0)


def test_limits_must_fit_one_body() -> None:
    with pytest.raises(ValueError, match="largest request body"):
        asyncio.run(serve(app(), "127.0.0.1", 0, limits=BASE, max_body=2000))
    with pytest.raises(ValueError, match="largest request body"):
        asyncio.run(http1.serve(routes(), "127.0.0.1", 0, limits=BASE, max_body=2000))


@pytest.mark.parametrize("site", ["aiohttp"], indirect=True)
async def test_body_not_matching_its_content_encoding_is_400(site) -> None:  # type: ignore[no-untyped-def]
    """aiohttp decompresses for apps that leave it on; a body that is not the gzip its header
    says is a 400 with one sentence, not a 500. (The lean server passes bodies on as sent;
    the node's handlers decode them: tests/node/test_http_site.py.)"""
    served = await site(BASE)
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 10\r\n\r\nnot gzip!!"
    )
    out = await request(served.port, raw)
    assert out.startswith(b"HTTP/1.1 400") and b"does not match its Content-Encoding" in out
