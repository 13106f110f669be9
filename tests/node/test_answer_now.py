"""The node's public site answers a storage RPC without a task when it can
(``ClientSite.storage_rpc`` → ``RpcHandler.respond_later`` → the SQLite store's inline reads),
and otherwise hands the rest to a task. Both ways must give the very same answer: every request
here is sent twice to the same site, once with the store reading at once and once with every
read handed to a coroutine (the store's reader thread, as when an inline read is interrupted),
and the two answers are compared byte for byte: status, body, content type, headers, the
site's metrics and rate limits, the RPC's counters, nothing left in flight. Refusals (400, 401,
410, 413, 421, 429, 503) and a store failure (500) included; a handler that raises is a 500
either way (over HTTP)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from session.errors import StorageError
from session.http1 import server as http1
from session.identity import Identity
from session.node.http import ClientSite
from session.node.metrics import NodeMetrics
from session.node.rpc import RpcHandler, RpcLater, RpcResponse, RpcSoon
from session.proto import rpc as P
from session.service.ratelimit import RateLimiter
from session.storage.base import MessageStore, StoredMessage
from session.storage.sqlite import SqliteMessageStore
from session.testing.rpc import NOW, LocalSwarm

MAX_BODY = 64 * 1024


class Switchable(SqliteMessageStore):
    """The SQLite store whose reads answer at once (its own ``*_now``) or, ``later``, always
    in a coroutine (the base class's: what a read handed to the reader thread takes);
    ``fail`` makes a retrieve fail in the store, at once or in the coroutine alike."""

    later = False
    fail = False

    def retrieve_now(
        self,
        owner: str,
        namespace: int = 0,
        last_hash: str | None = None,
        max_count: int | None = None,
        max_size: int | None = None,
    ) -> Any:
        if self.fail and not self.later:
            raise StorageError("database error: disk I/O error")
        if self.later:
            return self._retrieve_later(owner, namespace, last_hash, max_count, max_size)
        return super().retrieve_now(owner, namespace, last_hash, max_count, max_size)

    async def _retrieve_later(self, *args: Any) -> tuple[list[StoredMessage], bool]:
        if self.fail:
            raise StorageError("database error: disk I/O error")
        return await self.retrieve(*args)

    def get_expiries_now(self, owner: str, hashes: Sequence[str]) -> Any:
        if self.later:
            return MessageStore.get_expiries_now(self, owner, hashes)
        return super().get_expiries_now(owner, hashes)

    def subaccount_revoked_now(self, owner: str, token: bytes) -> Any:
        if self.later:
            return MessageStore.subaccount_revoked_now(self, owner, token)
        return super().subaccount_revoked_now(owner, token)


class Node:
    """One RpcHandler on a Switchable store behind a ClientSite (its own metrics and limiter)."""

    def __init__(self, swarm: LocalSwarm, store: Switchable) -> None:
        self.swarm = swarm
        self.store = store
        self.rpc: RpcHandler = swarm.node(0)
        self.why: str | None = None
        self.metrics = NodeMetrics()
        self.limiter = RateLimiter(1e6, 1e6)
        self.site = ClientSite(
            rpc=self.rpc, router=None, limiter=self.limiter, metrics=self.metrics,
            ready=lambda: self.why, ed25519_public=bytes(32), max_body=MAX_BODY,
        )  # fmt: skip


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    store = await Switchable.open(tmp_path)
    assert isinstance(store, Switchable)
    n = Node(LocalSwarm([store]), store)
    yield n
    await store.close()


def request(body: bytes, headers: dict[str, str] | None = None) -> http1.Request:
    return http1.Request("POST", "/storage_rpc/v1", "", headers or {}, body, "127.0.0.1")


async def answer(node: Node, body: bytes, headers: dict[str, str] | None = None) -> Any:
    """The site's answer to one request, and how it came: ``"now"`` or ``"task"``."""
    out = node.site.storage_rpc(request(body, headers))
    if isinstance(out, http1.Response):
        return out, "now"
    assert isinstance(out, Coroutine)
    assert node.site.inflight == 0  # counted from the rest's start, as the task path counts
    return await out, "task"


_TIMES = ("session_node_request_seconds_bucket", "session_node_request_seconds_sum")


def metric_values(node: Node) -> dict[str, float]:
    """The site's metric samples, the latency histogram's count only (its buckets and sum
    are time, not outcome)."""
    out = {}
    for line in node.site.metrics.registry.render().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if not name.startswith(_TIMES):
                out[name] = float(value)
    return out


def added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


async def both(node: Node, body: bytes, headers: dict[str, str] | None = None) -> tuple[Any, str]:
    """``body`` answered with reads at once and with reads in a coroutine: the same answer,
    the same metrics and RPC counters added; returns the answer and how the first came."""
    seen: list[Any] = []
    for later in (False, True):
        node.store.later = later
        metrics, counters = metric_values(node), dict(node.rpc.counters)
        resp, how = await answer(node, body, headers)
        seen.append(
            (
                (resp.status, resp.body, resp.content_type, resp.headers),
                added(metrics, metric_values(node)),
                added(counters, dict(node.rpc.counters)),
                how,
            )
        )
        assert node.site.inflight == 0
    assert seen[0][:3] == seen[1][:3]
    assert seen[0][1], "the answer was counted"
    return seen[0][0], seen[0][3]


def rpc(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"method": method, "params": params}).encode()


async def test_every_answer_is_the_same_now_or_in_a_task(node: Node) -> None:
    client = node.swarm.client_in_swarm()
    hashes = []
    for i in range(3):
        r = await node.rpc.respond(client.store(b"message %d" % i))
        assert r.status == 200, r.body
        assert isinstance(r.body, dict)
        hashes.append(r.body["hash"])
    elsewhere = node.swarm.client_elsewhere()
    bad_sig = client.retrieve()
    bad_sig["params"]["signature"] = base64.b64encode(bytes(64)).decode()
    cases: list[tuple[bytes, dict[str, str] | None, int, str]] = [
        (rpc("info", {}), None, 200, "now"),
        (json.dumps(client.retrieve()).encode(), None, 200, "now"),
        (json.dumps(client.retrieve(last_hash=hashes[0])).encode(), None, 200, "now"),
        (json.dumps(client.get_expiries(hashes)).encode(), None, 200, "now"),
        (json.dumps(elsewhere.retrieve()).encode(), None, 421, "now"),
        (json.dumps(bad_sig).encode(), None, 401, "now"),
        (rpc("get_swarm", {"pubkey": client.account}), None, 200, "now"),
        (b"{not json", None, 400, "now"),
        (rpc("no_such_method", {}), None, 400, "now"),
        (json.dumps(client.retrieve(ts=NOW - 3_600_000)).encode(), None, 406, "now"),
        # a batch always goes on in a task, its retrieve reading at once or not
        (rpc("batch", {"requests": [{"method": "info", "params": {}}, client.retrieve()]}),
         None, 200, "task"),
        (gzip.compress(json.dumps(client.retrieve()).encode()), {"content-encoding": "gzip"},
         200, "now"),
        (rpc("info", {}), {"x-loki-long-poll": "1"}, 410, "now"),
        (b"x" * (MAX_BODY + 1), None, 413, "now"),
        (rpc("info", {}), {"content-encoding": "br"}, 415, "now"),
    ]  # fmt: skip
    for body, headers, status, how in cases:
        got, came = await both(node, body, headers)
        assert (got[0], came) == (status, how), (body[:60], got)
    retrieved = json.loads((await answer(node, json.dumps(client.retrieve()).encode()))[0].body)
    assert [m["hash"] for m in retrieved["messages"]] == hashes
    # a read the catching-up member refuses; the node not ready
    node.rpc.catching_up = lambda: "catching up with the swarm"
    got, came = await both(node, json.dumps(client.retrieve()).encode())
    assert (got[0], came) == (503, "now")
    node.rpc.catching_up = lambda: None
    node.why = "not in a swarm yet"
    got, came = await both(node, rpc("info", {}))
    assert (got[0], got[1], came) == (503, b"Service node is not ready: not in a swarm yet", "now")
    node.why = None
    # every answer above counted once per way, by endpoint and status
    assert metric_values(node)['session_node_requests_total{endpoint="storage_rpc",status="200"}']


async def test_a_subaccount_read_is_the_same_now_or_in_a_task(node: Node) -> None:
    """A group member's read needs the revocation lookup before its signature check: at once
    or in the task alike, and refused alike once the token is revoked."""
    group = node.swarm.client_in_swarm(group=True)
    member = Identity.generate()
    token = bytes([0x03, int(P.Access.READ | P.Access.WRITE), 0, 0]) + member.ed25519_public
    tok_sig = group.ident.sign(token)

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    def sub_auth(text: str) -> dict[str, str]:
        return {
            "signature": b64(member.sign(text.encode())),
            "subaccount": b64(token),
            "subaccount_sig": b64(tok_sig),
        }

    auth = sub_auth(f"retrieve11{NOW}")
    retrieve = rpc("retrieve", {"pubkey": group.account, "namespace": 11, "timestamp": NOW, **auth})
    got, came = await both(node, retrieve)
    assert (got[0], came) == (200, "now")
    revoke = {
        "method": "revoke_subaccount",
        "params": {
            "pubkey": group.account,
            "revoke": b64(token),
            "timestamp": NOW,
            **group.auth(f"revoke_subaccount{NOW}".encode() + token),
        },
    }
    r = await node.rpc.respond(json.dumps(revoke).encode())
    assert r.status == 200, r.body
    got, came = await both(node, retrieve)
    assert (got[0], came) == (401, "now"), got


async def test_a_store_failure_is_the_same_500_now_or_in_a_task(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    client = node.swarm.client_in_swarm()
    node.store.fail = True
    with caplog.at_level(logging.ERROR, "session.node.rpc"):
        got, came = await both(node, json.dumps(client.retrieve()).encode())
    assert (got[0], came) == (500, "now")
    assert got[1].startswith(b"Internal Server Error. Could not retrieve messages for ")
    assert client.account.encode() not in got[1]  # obfuscated
    failures = [r for r in caplog.records if r.getMessage() == "retrieve failed"]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


async def test_the_rate_limit_is_the_same_now_or_in_a_task(node: Node) -> None:
    body = json.dumps(node.swarm.client_in_swarm().retrieve()).encode()
    for later, ways in ((False, ["now", "now", "now"]), (True, ["task", "task", "now"])):
        node.store.later = later
        node.site = ClientSite(
            rpc=node.rpc, router=None, limiter=RateLimiter(1e-3, 2.0), metrics=NodeMetrics(),
            ready=lambda: None, ed25519_public=bytes(32), max_body=MAX_BODY,
        )  # fmt: skip
        answers = [await answer(node, body) for _ in range(3)]
        assert [(r.status, how) for r, how in answers] == list(
            zip([200, 200, 429], ways, strict=True)
        )
        assert node.site.metrics.rate_limited.value == 1


class Raising:
    """An RPC with a bug: raises at once (``now``), in the rest it hands on (``task``), or in
    the callback that ends its :class:`RpcLater` (``later``)."""

    def __init__(self, later: str) -> None:
        self.later = later

    def respond_later(self, body: bytes) -> RpcSoon:
        if self.later == "task":
            return self._raise()
        if self.later == "later":
            out = RpcLater()
            asyncio.get_running_loop().call_soon(out.end_with, self._bug)
            return out
        raise RuntimeError("a bug in the RPC")

    def _bug(self) -> RpcResponse:
        raise RuntimeError("a bug in the RPC")

    async def _raise(self) -> RpcResponse:
        raise RuntimeError("a bug in the RPC")


@pytest.mark.parametrize("later", ["now", "task", "later"])
async def test_an_rpc_that_raises_is_a_logged_500_either_way(
    later: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = NodeMetrics()
    site = ClientSite(
        rpc=Raising(later), router=None, limiter=RateLimiter(1e6, 1e6), metrics=metrics,
        ready=lambda: None, ed25519_public=bytes(32), max_body=MAX_BODY,
    )  # fmt: skip
    served = await http1.serve(site.routes(), "127.0.0.1", 0, max_body=MAX_BODY)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{served.port}/storage_rpc/v1"
            async with http.post(url, data=rpc("info", {})) as r:
                assert (r.status, await r.read()) == (500, b"500: Internal Server Error")
        assert site.inflight == 0
        assert any(
            rec.exc_info and "a bug in the RPC" in str(rec.exc_info[1]) for rec in caplog.records
        )
        # no answer counted for the endpoint: the handler never answered
        assert 'endpoint="storage_rpc"' not in metrics.registry.render().decode()
    finally:
        await served.close()
