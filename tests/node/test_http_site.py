"""The node's public site (session/node/http.py) driven directly over HTTP on 127.0.0.1, served
by the node's own server (session/http1/server.py): a real RpcHandler behind it, the handler's
content type on every reply (no guessing from the body), the one storage-server version in
``Server`` and ``/get_stats/v1``, bodies sent with a ``Content-Encoding``, and the refusals
before a handler runs (429, 410, 413, 415, 503, 404)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from session.http1 import server as http1
from session.node.http import ClientSite
from session.node.metrics import NodeMetrics
from session.node.rpc import RpcLater, RpcResponse, RpcSoon
from session.service.ratelimit import RateLimiter
from session.storage.memory import MemoryMessageStore
from session.testing.rpc import LocalSwarm
from session.version import STORAGE_SERVER_VERSION, STORAGE_SERVER_VERSION_TEXT

INFO = json.dumps({"method": "info", "params": {}}).encode()
MAX_BODY = 64 * 1024
PUBKEY = bytes(range(32))


class Router:
    """The onion router's part the site uses: answers every frame with fixed bytes."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def handle_now(self, frame: bytes, relayed: Any) -> tuple[int, bytes]:
        self.frames.append(frame)
        return 200, b'{"looks": "like json but is an onion answer"}'


class Site:
    def __init__(self, rpc: Any, limiter: RateLimiter | None = None) -> None:
        self.why: str | None = None
        self.router = Router()
        self.metrics = NodeMetrics()
        self.site = ClientSite(
            rpc=rpc, router=self.router,
            limiter=limiter if limiter is not None else RateLimiter(1e6, 1e6),
            metrics=self.metrics, ready=lambda: self.why, ed25519_public=PUBKEY,
            max_body=MAX_BODY,
        )  # fmt: skip
        self.served: http1.Served | None = None
        self.http = aiohttp.ClientSession()

    async def start(self) -> None:
        # the server's own body cap above the site's: the site's refusals are under test
        self.served = await http1.serve(self.site.routes(), "127.0.0.1", 0, max_body=2 * MAX_BODY)

    async def close(self) -> None:
        await self.http.close()
        if self.served is not None:
            await self.served.close()

    def url(self, path: str) -> str:
        assert self.served is not None
        return f"http://127.0.0.1:{self.served.port}{path}"

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
        async with self.http.post(self.url(path), data=body, headers=headers or {}) as r:
            return r.status, await r.read(), r.headers


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site(LocalSwarm([MemoryMessageStore() for _ in range(3)]).node(0))
    await s.start()
    yield s
    await s.close()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_a_request_that_need_not_wait_gets_no_task() -> None:
    """Over HTTP through the node's server: ``info``, a refusal and a ``store`` (answered from
    its commit's and its swarm's callbacks) get no task of the server's; a batch goes on in
    one."""
    swarm = LocalSwarm([MemoryMessageStore() for _ in range(3)])
    site = Site(swarm.node(0))
    await site.start()
    loop = asyncio.get_running_loop()
    handlers: list[str] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        if getattr(coro, "__qualname__", "") == "_Connection._run":
            handlers.append(coro.cr_frame.f_locals["request"].path)
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(counting)
    try:
        assert (await site.post("/storage_rpc/v1", INFO))[0] == 200
        assert (await site.post("/storage_rpc/v1", b'{"method":"nope"}'))[0] == 400
        assert handlers == []
        client = swarm.client_in_swarm()
        store = json.dumps(client.store(b"x")).encode()
        status, body, _ = await site.post("/storage_rpc/v1", store)
        assert status == 200 and len(json.loads(body)["swarm"]) == 3
        assert handlers == []
        batch = json.dumps({"method": "batch", "params": {"requests": [client.store(b"y")]}})
        assert (await site.post("/storage_rpc/v1", batch.encode()))[0] == 200
        assert handlers == ["/storage_rpc/v1"]
    finally:
        loop.set_task_factory(None)
        await site.close()


async def test_rpc_replies_carry_the_handlers_content_type(site: Site) -> None:
    status, body, headers = await site.post("/storage_rpc/v1", INFO)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["version"] == list(STORAGE_SERVER_VERSION)
    assert headers["Server"] == f"Session Storage Server/{STORAGE_SERVER_VERSION_TEXT}"
    status, body, headers = await site.post("/storage_rpc/v1", b'{"method":"nope","params":{}}')
    assert (status, body) == (400, b"no method nope")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


class FixedRpc:
    """Answers every body with ``response``: at once, from a coroutine (``later`` "task"),
    or from a callback that ends an :class:`RpcLater` (``later`` "later")."""

    def __init__(self, response: RpcResponse, later: str = "now") -> None:
        self.response = response
        self.later = later

    def respond_later(self, body: bytes) -> RpcSoon:
        if self.later == "task":
            return self._respond()
        if self.later == "later":
            out = RpcLater()
            asyncio.get_running_loop().call_soon(out.end_with, lambda: self.response)
            return out
        return self.response

    async def _respond(self) -> RpcResponse:
        await asyncio.sleep(0)
        return self.response


@pytest.mark.parametrize(
    ("response", "content_type"),
    [
        (
            RpcResponse(400, "[a text error that starts with a bracket]"),
            "text/plain; charset=utf-8",
        ),
        (RpcResponse(421, {"snodes": []}), "application/json"),
    ],
)
@pytest.mark.parametrize("later", ["now", "task", "later"])
async def test_the_content_type_is_never_guessed_from_the_body(
    response: RpcResponse, content_type: str, later: str
) -> None:
    s = Site(FixedRpc(response, later))
    await s.start()
    try:
        status, body, headers = await s.post("/storage_rpc/v1", INFO)
        assert (status, body) == (response.status, response.to_bytes())
        assert headers["Content-Type"] == content_type
        # onion answers are text whatever they look like
        status, body, headers = await s.post("/onion_req/v2", b"frame")
        assert status == 200 and body.startswith(b"{")
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert s.router.frames == [b"frame"]
    finally:
        await s.close()


async def test_get_stats_and_ping_report_the_node(site: Site) -> None:
    async with site.http.get(site.url("/get_stats/v1")) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        assert await r.json() == {"version": STORAGE_SERVER_VERSION_TEXT}
    status, _, headers = await site.post("/ping_test/v1", b"")
    assert status == 200 and headers["X-Oxen-Snode-Pubkey"] == base64.b64encode(PUBKEY).decode()
    status, _, _ = await site.post("/nothing/here", INFO)
    assert status == 404


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "GZIP", "identity"])
async def test_compressed_bodies_are_accepted(site: Site, coding: str) -> None:
    packed = {
        "gzip": gzip.compress,
        "x-gzip": gzip.compress,
        "GZIP": gzip.compress,
        "deflate": zlib.compress,
        "identity": lambda b: b,
    }[coding](INFO)
    status, body, _ = await site.post("/storage_rpc/v1", packed, {"Content-Encoding": coding})
    assert status == 200 and json.loads(body)["version"] == list(STORAGE_SERVER_VERSION)


NOT_WHAT_IT_SAYS = (
    "The request body is not valid {} data although its Content-Encoding header says so: "
    "send it uncompressed, or compressed correctly"
)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", INFO),  # not compressed at all
        ("deflate", INFO),
        ("gzip", gzip.compress(INFO)[:-6]),  # truncated
        ("deflate", zlib.compress(INFO) + b"trailing junk"),
        ("gzip", b""),
    ],
)
async def test_a_body_that_is_not_what_its_header_says_is_400(
    site: Site, caplog: pytest.LogCaptureFixture, coding: str, body: bytes
) -> None:
    for path in ("/storage_rpc/v1", "/onion_req/v2"):
        status, out, _ = await site.post(path, body, {"Content-Encoding": coding})
        assert (status, out.decode()) == (400, NOT_WHAT_IT_SAYS.format(coding))
    assert site.router.frames == []
    no_tracebacks(caplog)


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, gzip", "x"])
async def test_other_codings_are_415(
    site: Site, caplog: pytest.LogCaptureFixture, coding: str
) -> None:
    status, out, _ = await site.post("/storage_rpc/v1", INFO, {"Content-Encoding": coding})
    assert status == 415
    assert out == (
        b"Unsupported Content-Encoding: send the body uncompressed, or compressed "
        b"with gzip or deflate"
    )
    no_tracebacks(caplog)


async def test_decompression_stops_at_the_body_limit(site: Site) -> None:
    bomb = gzip.compress(b"\x00" * (MAX_BODY * 50))  # 3.2 MB of zeros in a few kB
    assert len(bomb) < MAX_BODY
    status, out, _ = await site.post("/storage_rpc/v1", bomb, {"Content-Encoding": "gzip"})
    assert (status, out) == (413, b"Request body too large once decompressed")
    exact = gzip.compress(INFO + b" " * (MAX_BODY - len(INFO)))
    status, _, _ = await site.post("/storage_rpc/v1", exact, {"Content-Encoding": "gzip"})
    assert status == 200


async def test_refusals_before_the_handler(site: Site) -> None:
    status, out, _ = await site.post("/storage_rpc/v1", b"x" * (MAX_BODY + 1))
    assert (status, out) == (413, b"Request body too large")
    status, out, _ = await site.post("/storage_rpc/v1", INFO, {"X-Loki-Long-Poll": "1"})
    assert (status, out) == (410, b"Long polling is no longer supported")
    site.why = "not in a swarm yet"
    status, out, _ = await site.post("/storage_rpc/v1", INFO)
    assert (status, out) == (503, b"Service node is not ready: not in a swarm yet")
    status, out, _ = await site.post("/onion_req/v2", b"frame")
    assert (status, out) == (503, b"Snode not ready: not in a swarm yet")
    assert site.router.frames == []


async def test_a_client_over_its_budget_gets_429() -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731 - the limiter's injected clock
    s = Site(LocalSwarm([MemoryMessageStore()]).node(0), RateLimiter(1, 2, clock=clock))
    await s.start()
    try:
        assert [(await s.post("/storage_rpc/v1", INFO))[0] for _ in range(3)] == [200, 200, 429]
        now[0] += 1.0
        assert (await s.post("/storage_rpc/v1", INFO))[0] == 200
        assert s.metrics.rate_limited.value == 1
    finally:
        await s.close()
