"""A v4 onion destination over real HTTP on 127.0.0.1: one onion hop peels the path layer (the
node's part), the service opens the final layer, runs its own route, answers encrypted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from session import onion
from session.errors import InvalidInput
from session.identity import Identity
from session.service.onion import OnionDestination, Routes, V4Request, V4Response
from session.service.server import Served, serve

SERVER = Identity.generate()
HOP = Identity.generate()


def routes() -> Routes:
    r = Routes()

    async def hello(req: V4Request) -> V4Response:
        return V4Response.of_json(
            {"hello": req.params["name"], "q": dict(req.query), "h": req.headers.get("x-test")}
        )

    async def echo(req: V4Request) -> V4Response:
        doc = req.json()
        if not isinstance(doc, dict):
            raise InvalidInput("body must be a JSON object")
        return V4Response.of_json({"echo": doc}, status=201)

    r.add("GET", "/hello/{name}", hello)
    r.add("POST", "/echo", echo)
    return r


@pytest.fixture
async def server() -> AsyncIterator[Served]:
    app = web.Application()
    table = routes()
    table.mount(app)
    OnionDestination(SERVER.export_x25519_secret(), table).attach(app)
    served = await serve(app, "127.0.0.1", 0)
    yield served
    await served.close()


def bencoded(meta: dict[str, object], body: bytes | None) -> bytes:
    """v4 framing written here, so that malformed metas (which the codec refuses) can be sent."""
    j = json.dumps(meta).encode()
    out = b"l%d:%s" % (len(j), j)
    if body is not None:
        out += b"%d:%s" % (len(body), body)
    return out + b"e"


async def through_onion(
    port: int, meta: dict[str, object], body: bytes | None, enc: str = "xchacha20"
) -> tuple[int, dict[str, object], bytes | None]:
    """Build an onion via one hop to the server, peel the hop, POST what it would proxy."""
    dest = onion.ServerDestination(
        "127.0.0.1", "/oxen/v4/lsrpc", bytes(SERVER.x25519_public), "http", port
    )
    frame, key = onion.build(
        [onion.Hop(HOP.ed25519_public.hex(), bytes(HOP.x25519_public))],
        dest,
        bencoded(meta, body),
        enc,
    )
    proxy = onion.Peeler(HOP).peel(frame)
    assert isinstance(proxy, onion.Proxy)
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"http://127.0.0.1:{port}{proxy.target}", data=proxy.payload) as r,
    ):
        assert r.status == 200
        raw = await r.read()
    rmeta, rbody = onion.v4_decode_response(key.decrypt(raw))
    return int(rmeta["code"]), rmeta["headers"], rbody


@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
async def test_route_runs_behind_the_onion(server: Served, enc: str) -> None:
    code, headers, body = await through_onion(
        server.port,
        {"method": "GET", "endpoint": "/hello/bob?x=1", "headers": {"X-Test": "t"}},
        None,
        enc,
    )
    assert code == 200 and headers["content-type"] == "application/json"
    assert json.loads(body or b"") == {"hello": "bob", "q": {"x": "1"}, "h": "t"}
    code, _, body = await through_onion(
        server.port, {"method": "POST", "endpoint": "/echo", "headers": {}}, b'{"a": 1}', enc
    )
    assert code == 201 and json.loads(body or b"") == {"echo": {"a": 1}}


async def test_same_routes_answer_plain_http(server: Served) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{server.port}/hello/al?x=2") as r:
            assert r.status == 200 and (await r.json())["hello"] == "al"
        async with s.post(f"http://127.0.0.1:{server.port}/echo", data=b"[1]") as r:
            assert r.status == 400 and await r.text() == "body must be a JSON object"


@pytest.mark.parametrize(
    ("meta", "body", "code", "text"),
    [
        ({"method": "GET", "endpoint": "/nope", "headers": {}}, None, 404, "no such endpoint"),
        ({"method": "DELETE", "endpoint": "/echo", "headers": {}}, None, 405, "not allowed"),
        ({"method": "POST", "endpoint": "/echo", "headers": {}}, b"{bad", 400, "not valid JSON"),
        (
            {"method": "POST", "endpoint": "/echo", "headers": {}},
            b"[" * 100_000,
            400,
            "not valid JSON",
        ),
        ({"method": "GET", "endpoint": "no-slash", "headers": {}}, None, 400, "starting with '/'"),
        ({"method": "GET", "endpoint": "/hello/x", "headers": {"a": 1}}, None, 400, "headers"),
        ({"endpoint": "/hello/x"}, None, 400, '"method"'),
    ],
)
async def test_bad_inner_requests_get_encrypted_errors(
    server: Served, meta: dict[str, object], body: bytes | None, code: int, text: str
) -> None:
    got, _, out = await through_onion(server.port, meta, body)
    assert got == code and text in (out or b"").decode()


async def test_unopenable_layer_is_a_plain_400(server: Served) -> None:
    async with aiohttp.ClientSession() as s:
        for junk in (b"", b"\x05\x00\x00\x00hello{}", b"\xff" * 300):
            async with s.post(f"http://127.0.0.1:{server.port}/oxen/v4/lsrpc", data=junk) as r:
                assert r.status == 400
                assert (await r.text()).startswith("Invalid onion request")
