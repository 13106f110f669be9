"""Issue 8 at the registry: whatever body (or junk) is thrown at any endpoint of a running
registry, it answers, never with a 500, within a second, and logs no traceback.

One registry (in-process, HTTPS on 127.0.0.1) serves every example; the bodies come from
:func:`session.testing.hostile.hostile_bodies`, the same strategy the node's test uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session.names import REGISTER_FIELDS, RENEW_FIELDS
from session.registry import server
from session.registry.messages import DEREGISTRATION_FIELDS, REGISTRATION_FIELDS
from session.testing.hostile import ANSWER_WITHIN, CONTENT_ENCODINGS, hostile_bodies, probe

METHODS = ["get_n_service_nodes", "get_service_nodes", "ons_names"]
KEYS = sorted(
    {*REGISTRATION_FIELDS, *DEREGISTRATION_FIELDS, "signature", "id", "jsonrpc"}
    | {"active_only", "limit", "service_node_pubkeys", "poll_block_hash", "fields", "since"}
    | {*REGISTER_FIELDS, *RENEW_FIELDS}
)


class Fired:
    """The registry under fire, its event loop and an HTTPS client."""

    def __init__(self, loop: asyncio.AbstractEventLoop, srv: Any, http: aiohttp.ClientSession):
        self.loop = loop
        self.srv = srv
        self.http = http
        #: (HTTP method, URL) of every route the registry serves, plus one it does not.
        self.routes = [
            ("POST", f"{srv.url}/json_rpc"),
            ("POST", f"{srv.url}/register"),
            ("POST", f"{srv.url}/deregister"),
            ("POST", f"{srv.url}/name/register"),
            ("POST", f"{srv.url}/name/renew"),
            ("GET", f"{srv.url}/healthz"),
            ("POST", f"{srv.url}/healthz"),
            ("POST", f"{srv.url}/no/such/path"),
        ]

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def fired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fired]:
    tmp = tmp_path_factory.mktemp("registry-fired")

    async def start() -> Fired:
        srv = await server.start("127.0.0.1", 0, tmp, 25_000, seed="fired")
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        return Fired(asyncio.get_running_loop(), srv, http)

    loop = asyncio.new_event_loop()
    f = loop.run_until_complete(start())
    yield f
    loop.run_until_complete(f.http.close())
    loop.run_until_complete(f.srv.close())
    loop.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=hostile_bodies(METHODS, KEYS),
    route=st.integers(0, 7),
    coding=CONTENT_ENCODINGS,
)
def test_any_body_at_any_endpoint_gets_an_answer(
    fired: Fired, caplog: pytest.LogCaptureFixture, body: bytes, route: int, coding: str | None
) -> None:
    caplog.clear()
    method, url = fired.routes[route]
    status, took = fired.run(probe(fired.http, method, url, body, coding))
    assert status != 500 and status < 600, (url, coding, body[:200])
    assert took < ANSWER_WITHIN, (url, took, body[:200])
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
