"""The relay's hot path on real node links (TCP with a Noise handshake on 127.0.0.1): a driver sends
one-layer frames to a relay whose links serve ``onion`` with the router's direct handler
(:meth:`OnionRouter.serve_link_now`, no task per layer), and the relay passes them to a sink.
What comes back for a good reply, a malformed one, an error reply, a sink that does not answer
in time, a frame that does not peel and a next node nobody knows. Every answer is awaited."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from session import onion
from session.http1 import server as http1
from session.identity import Identity
from session.node import links as links_mod
from session.node.http import SERVER_HEADER, ClientSite
from session.node.links import KIND_ONION, NodeLinks
from session.node.metrics import NodeMetrics
from session.node.relay import OnionRouter, PeelPool
from session.proto.onion_status import (
    NEXT_NODE_NOT_FOUND,
    NEXT_NODE_STATUS,
    NEXT_NODE_UNREACHABLE,
    named_next_node,
)
from session.proto.snodes import ServiceNode
from session.service.ratelimit import RateLimiter
from session.testing.links import open_links
from session.testing.rpc import FixedSwarmView
from session.testing.waits import until


def _node(ident: Identity, port: int) -> ServiceNode:
    return ServiceNode.from_json(
        {
            "pubkey_ed25519": ident.ed25519_public.hex(),
            "pubkey_x25519": ident.x25519_public.hex(),
            "public_ip": "127.0.0.1",
            "storage_port": 1,
            "storage_lmq_port": port,
            "swarm_id": 0,
        }
    )


class Rig:
    """Driver → relay → sink; ``sink_answer`` decides what the sink does with a layer."""

    def __init__(self) -> None:
        self.relay_id, self.sink_id, self.driver_id = (Identity.generate() for _ in range(3))
        self.sink_answer: Any = {"s": 200, "b": b"ok"}
        self.release = asyncio.Event()
        self.started: list[NodeLinks] = []

    async def _sink(self, peer: str, body: Any) -> Any:
        answer = self.sink_answer
        if answer == "slow":
            await self.release.wait()
            return {"s": 200, "b": b"late"}
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def start(self) -> None:
        self.sink = open_links(self.sink_id, {KIND_ONION: self._sink})
        self.driver = open_links(self.driver_id, {})
        self.relay = open_links(self.relay_id, {})
        for links in (self.sink, self.driver, self.relay):
            self.started.append(links)
        sink_port = await self.sink.start("127.0.0.1", 0)
        await self.driver.start("127.0.0.1", 0)
        relay_port = await self.relay.start("127.0.0.1", 0)
        view = FixedSwarmView("", [_node(self.sink_id, sink_port), _node(self.driver_id, 1)])
        peeler = onion.Peeler.from_x25519_secret(self.relay_id.export_x25519_secret())
        self.router = OnionRouter(PeelPool(peeler), view, self.relay, rpc=None, relay_timeout=30.0)
        self.relay.direct[KIND_ONION] = self.router.serve_link_now
        self.address = f"tcp://127.0.0.1:{relay_port}"

    def frame(self, to: Identity | None = None) -> bytes:
        to = to or self.sink_id
        hop = onion.Hop(self.relay_id.ed25519_public.hex(), self.relay_id.x25519_public)
        dst = onion.NodeDestination(to.ed25519_public.hex(), to.x25519_public)
        return onion.build([hop], dst, os.urandom(100), "xchacha20")[0]

    async def send(self, frame: bytes) -> Any:
        return await self.driver.request(
            self.relay_id.x25519_public.hex(), self.address, KIND_ONION, {"f": frame}, 10.0
        )

    async def close(self) -> None:
        self.release.set()
        await self.router.close()
        for links in self.started:
            await links.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    await r.start()
    yield r
    await r.close()


async def test_a_relayed_reply_comes_back_as_the_next_node_sent_it(rig: Rig) -> None:
    """The first layer finds no connected link to the sink (the links connect, then send it);
    later ones go at once, and a well-formed reply is passed back unchanged (even a key the
    relay itself would not have written)."""
    assert await rig.send(rig.frame()) == {"s": 200, "b": b"ok"}
    rig.sink_answer = {"s": 201, "b": b"as sent", "x": 1}
    sent = rig.relay.sent
    got = await asyncio.gather(*(rig.send(rig.frame()) for _ in range(20)))
    assert got == [{"s": 201, "b": b"as sent", "x": 1}] * 20
    assert rig.relay.sent == sent + 20 and not rig.relay._pending


@pytest.mark.parametrize(
    "answer",
    [
        {"s": "two hundred", "b": b"x"},
        {"s": 200},
        [1, 2],
        "not a map",
        # not a status and a body at all: an infinite float (int() overflows), a number for
        # the body (bytes() of it would be that many zero bytes, or overflow)
        {"s": float("inf"), "b": b"x"},
        {"s": 200, "b": 2**63},
        {"s": 200, "b": 16},
        {"s": True, "b": b"x"},
    ],
)
async def test_a_malformed_reply_from_the_next_node_is_a_502(rig: Rig, answer: Any) -> None:
    await rig.send(rig.frame())  # connected
    rig.sink_answer = answer
    assert await rig.send(rig.frame()) == {"s": 502, "b": b"Bad reply from next node"}


async def test_an_error_reply_names_the_next_node(rig: Rig) -> None:
    await rig.send(rig.frame())
    rig.sink_answer = ValueError("sink refuses")
    got = await rig.send(rig.frame())
    assert got["s"] == NEXT_NODE_STATUS
    assert got["b"].startswith(NEXT_NODE_UNREACHABLE.encode())
    assert named_next_node(got["s"], got["b"]) == rig.sink_id.ed25519_public.hex()
    assert got["b"].endswith(b"(sink refuses)")


async def _connected_then_short_timeout(rig: Rig) -> int:
    """Connect the relay to the sink with the default timeout (a loaded machine may take
    longer than a short one to connect and answer), then shorten the relay's; the links'
    timeouts so far."""
    assert await rig.send(rig.frame()) == {"s": 200, "b": b"ok"}
    rig.router.relay_timeout = 0.3
    return rig.relay.timeouts


async def test_a_next_node_that_does_not_answer_in_time_is_a_504(rig: Rig) -> None:
    before = await _connected_then_short_timeout(rig)
    rig.sink_answer = "slow"
    assert await rig.send(rig.frame()) == {"s": 504, "b": b"Request time out"}
    assert rig.relay.timeouts - before == 1 and not rig.relay._pending


async def test_what_cannot_be_relayed_at_once_is_answered_by_the_coroutine_path(
    rig: Rig,
) -> None:
    """A frame that does not peel: its plain error; a next node not in the list: 502 naming
    it; a layer that is not JSON-framed at all: 400."""
    stranger = Identity.generate()
    got = await rig.send(rig.frame(stranger))
    assert got["s"] == NEXT_NODE_STATUS and got["b"].startswith(NEXT_NODE_NOT_FOUND.encode())
    assert named_next_node(got["s"], got["b"]) == stranger.ed25519_public.hex()
    other = Rig()  # a frame for another relay: this relay's key does not open it
    got = await rig.send(other.frame())
    assert got["s"] == 400 and got["b"]
    assert (await rig.send(b"\x00" * 40))["s"] == 400
    assert await rig.driver.request(
        rig.relay_id.x25519_public.hex(), rig.address, KIND_ONION, {"g": 1}, 10.0
    ) == {"s": 400, "b": b"bad relay message"}


async def test_a_layer_cancelled_before_its_coroutine_starts_leaves_nothing_never_awaited(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    """A layer answered by the coroutine path (the links refusing it: here, by a stand-in)
    whose task is cancelled before its first step, as closing the links does: the relay's own
    coroutine inside it is closed too, not left never awaited."""
    monkeypatch.setattr(rig.relay, "send_request", lambda *a, **kw: False)
    spawned: list[asyncio.Task[Any]] = []
    spawn = rig.relay._spawn

    def spawn_and_cancel(coro: Any) -> asyncio.Task[Any]:
        t = spawn(coro)
        if coro.cr_code.co_qualname == "NodeLinks._serve":  # (not a handshake's ZAP answer)
            t.cancel()  # before its first step
            spawned.append(t)
        return t

    monkeypatch.setattr(rig.relay, "_spawn", spawn_and_cancel)
    sent = asyncio.ensure_future(rig.send(rig.frame()))
    await until(lambda: bool(spawned) and spawned[0].done(), "the layer's cancelled task")
    sent.cancel()
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


async def test_a_next_node_whose_address_the_link_refuses_costs_no_other_layer_its_answer(
    rig: Rig,
) -> None:
    """A listed next node whose address the links will not connect to (here a host name with a
    space in it): its layer is a 502 naming it, and the layers peeled in the same batch (sent
    together, so they arrive in one drain) are relayed as usual, not left unanswered."""
    await rig.send(rig.frame())  # the link to the sink is connected
    bad = Identity.generate()
    # (a list from the registry refuses such an entry: ServiceNode.from_json; a view holds it
    # here to show the relay's own guard)
    odd = dataclasses.replace(_node(bad, 5), public_ip="no such host")
    sink = rig.router.view.node_by_ed25519(rig.sink_id.ed25519_public.hex())
    assert sink is not None
    rig.router.view = FixedSwarmView("", [sink, odd])
    got = await asyncio.gather(rig.send(rig.frame(bad)), *(rig.send(rig.frame()) for _ in range(5)))
    assert got[0]["s"] == NEXT_NODE_STATUS
    assert named_next_node(got[0]["s"], got[0]["b"]) == bad.ed25519_public.hex()
    assert got[1:] == [{"s": 200, "b": b"ok"}] * 5
    assert not rig.relay._pending
    # and so does the next layer to it (no half-made link left behind)
    got = await rig.send(rig.frame(bad))
    assert named_next_node(got["s"], got["b"]) == bad.ed25519_public.hex()


# -- a layer that came over HTTPS (the node's site): answered at once, from the links' reply
# callback (a Pending: no task), or by a task, and each the same as the coroutine path's answer


def _site(rig: Rig) -> ClientSite:
    return ClientSite(
        rpc=None, router=rig.router, limiter=RateLimiter(1e6, 1e6), metrics=NodeMetrics(),
        ready=lambda: None, ed25519_public=bytes(32), max_body=1 << 20,
    )  # fmt: skip


def _onion_request(frame: bytes) -> http1.Request:
    return http1.Request("POST", "/onion_req/v2", "", {}, frame, "127.0.0.1")


async def _by_site(site: ClientSite, frame: bytes) -> tuple[tuple[int, bytes], str]:
    """The site's answer to ``frame`` and how it came: "now", "later" (a Pending) or "task"."""
    out = site.onion_req(_onion_request(frame))
    if isinstance(out, http1.Response):
        how = "now"
    elif isinstance(out, http1.Pending):
        assert site.inflight == 1
        ended = asyncio.Event()
        out.deliver = lambda outcome: ended.set()
        async with asyncio.timeout(10):
            await ended.wait()
        out, how = out.result(), "later"
    else:
        out, how = await out, "task"
    assert site.inflight == 0
    assert (out.content_type, out.headers) == (
        "text/plain; charset=utf-8",
        {"Server": SERVER_HEADER},
    )
    return (out.status, out.body), how


async def _both(rig: Rig, site: ClientSite, frame: bytes) -> tuple[tuple[int, bytes], str]:
    """``frame`` through the site and through the router's coroutine path: the same answer."""
    got, how = await _by_site(site, frame)
    assert await rig.router.handle(frame) == got
    return got, how


@pytest.mark.parametrize(
    "answer",
    [
        {"s": 200, "b": b"ok"},
        {"s": 201, "b": b"as sent", "x": 1},
        {"s": "two hundred", "b": b"x"},
        {"s": 200, "b": 2**63},
        "not a map",
        ValueError("sink refuses"),
    ],
)
async def test_an_https_layer_sent_on_is_answered_from_the_reply_callback(
    rig: Rig, answer: Any
) -> None:
    site = _site(rig)
    (status, body), how = await _by_site(site, rig.frame())
    # not connected yet: the links wait for the connection, and the reply still comes to the
    # callback (no coroutine of the relay's)
    assert (status, body, how) == (200, b"ok", "later")
    rig.sink_answer = answer
    got, how = await _both(rig, site, rig.frame())
    assert how == "later"
    if isinstance(answer, Exception):
        assert got[0] == NEXT_NODE_STATUS and got[1].endswith(b"(sink refuses)")
    elif answer in ({"s": 200, "b": b"ok"}, {"s": 201, "b": b"as sent", "x": 1}):
        assert got == (answer["s"], answer["b"])
    else:
        assert got == (502, b"Bad reply from next node")
    requests = site.metrics.requests.labels("onion", str(got[0])).value
    assert requests == (2 if got[0] == 200 else 1)
    assert not rig.relay._pending


async def test_an_https_layer_the_next_node_does_not_answer_in_time_is_a_504(rig: Rig) -> None:
    site = _site(rig)
    before = await _connected_then_short_timeout(rig)
    rig.sink_answer = "slow"
    got, how = await _both(rig, site, rig.frame())
    assert (got, how) == ((504, b"Request time out"), "later")
    assert rig.relay.timeouts - before == 2 and not rig.relay._pending


async def test_an_https_layer_refused_at_once_is_answered_at_once(rig: Rig) -> None:
    site = _site(rig)
    stranger = Identity.generate()
    got, how = await _both(rig, site, rig.frame(stranger))
    assert how == "now" and named_next_node(*got) == stranger.ed25519_public.hex()
    got, how = await _both(rig, site, Rig().frame())  # not this relay's key
    assert how == "now" and got[0] == 400
    got, how = await _both(rig, site, b"\x00" * 40)
    assert how == "now" and got[0] == 400


async def test_a_client_gone_while_its_relayed_answer_is_pending(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled as the task would be: no longer in flight at once, and the reply that comes
    later is dropped, uncounted; the links forget the request when it comes."""
    site = _site(rig)
    await rig.send(rig.frame())  # connected
    rig.sink_answer = "slow"
    out = site.onion_req(_onion_request(rig.frame()))
    assert isinstance(out, http1.Pending) and site.inflight == 1
    out.cancel()  # what the server does when the connection is lost
    assert site.inflight == 0 and out.done and out.outcome is None
    rig.release.set()
    await until(lambda: not rig.relay._pending, "the late reply")
    assert site.metrics.requests.labels("onion", "200").value == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_relayed_https_answers_keep_their_order_on_a_pipelined_connection(
    rig: Rig,
) -> None:
    """Over real HTTP: a layer waiting for the next node holds back the answers behind it,
    even one answered at once."""
    site = _site(rig)
    served = await http1.serve(site.routes(), "127.0.0.1", 0, max_body=1 << 20)
    try:
        await rig.send(rig.frame())  # connected
        rig.sink_answer = "slow"
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        for frame in (rig.frame(), b"\x00" * 40, rig.frame()):
            writer.write(
                b"POST /onion_req/v2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(frame)
                + frame
            )
        await until(lambda: site.inflight == 1, "the first layer sent on")
        rig.release.set()
        statuses = []
        async with asyncio.timeout(10):
            for _ in range(3):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                statuses.append((int(head.split()[1]), body if length < 40 else b"..."))
        assert statuses[0] == (200, b"late") and statuses[1][0] == 400
        assert statuses[2] == (200, b"late")
        writer.close()
    finally:
        await served.close()


async def test_layers_waiting_for_the_next_nodes_link_count_against_the_previous_node(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layers the links hold for a next node whose link does not come up (it accepts TCP and
    never completes the handshake) count as running on the connection they came by: once
    MAX_RUNNING of them wait, that connection is read no further, as a coroutine handler's
    would be, so a previous node cannot make the relay hold layers without bound; each is then
    answered 502 naming the next node, and nothing stays counted."""
    monkeypatch.setattr(links_mod, "MAX_RUNNING", 8)
    monkeypatch.setattr(links_mod, "CONNECT_WAIT", 1.0)

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # (never a handshake answer)
        writer.close()

    deaf = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        assert await rig.send(rig.frame()) == {"s": 200, "b": b"ok"}  # (the driver's link up)
        (route,) = [c for c in rig.relay._conns if c.link is not None and c.peer is None]
        port = deaf.sockets[0].getsockname()[1]
        rig.router.view = FixedSwarmView("", [_node(rig.sink_id, port)])  # (the sink moved)
        sends = [asyncio.ensure_future(rig.send(rig.frame())) for _ in range(20)]
        await until(lambda: route.running >= 8, "the held layers counted")
        assert route.throttled
        got = await asyncio.gather(*sends)
        assert all(named_next_node(g["s"], g["b"]) == rig.sink_id.ed25519_public.hex() for g in got)
        assert route.running == 0 and not route.throttled
    finally:
        deaf.close()
