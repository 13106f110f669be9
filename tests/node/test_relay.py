"""The onion router of a node (session/node/relay.py), driven directly: real frames built by
the client code and peeled by the native core, with in-process stand-ins for the node links
(a link request reaches the next router's ``serve_link``, as over the node links), the node list and
the storage RPC.

Covered: deliver (the RPC's answer encrypted for the client), relay through a chain of routers
to the destination, unknown / unreachable / slow / confused next hops, the hop limit, the v4
proxy decision and its failures, bad layers (plain and encrypted errors), the link handler's
input check, and the peel pool's burst split.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt, crypto_scalarmult

from session import onion
from session.client.network import NetworkClock
from session.client.paths import PathManager
from session.client.transport import OnionTransport, PathFailure
from session.errors import HttpConnectError, HttpProtocolError, HttpTimeout, OnionError
from session.http1.client import Response
from session.identity import Identity
from session.node.links import KIND_ONION, LinkError, LinkTimeout, LinkUnreachable
from session.node.relay import PROXY_FAILED, PROXY_MAX_REPLY, OnionRouter, PeelPool
from session.node.rpc import RpcResponse
from session.proto.onion_status import named_next_node
from session.proto.snodes import ServiceNode

PUBLIC_IP = "93.184.215.14"  # a public address literal: the proxy tests never open a socket


class ListView:
    """The part of ``SwarmView`` the router uses: look a node up by its Ed25519 key."""

    def __init__(self) -> None:
        self.nodes: dict[str, ServiceNode] = {}

    def node_by_ed25519(self, ed: str) -> ServiceNode | None:
        return self.nodes.get(ed)


class Links:
    """In-process node links: a request for node X is served by X's router, as the real link
    would; ``fail`` makes the link to a node raise instead."""

    def __init__(self) -> None:
        self.routers: dict[str, OnionRouter] = {}  # x25519 hex -> router
        self.fail: dict[str, LinkError] = {}
        self.reply: dict[str, Any] = {}  # x25519 hex -> a raw link answer instead of the router's
        self.calls: list[tuple[str, str, bytes, float]] = []
        self.down: set[str] = set()  # peers the links know are down ...
        self.due: set[str] = set()  # ... and those of them whose probe back-off has elapsed

    def is_down(self, x25519: str) -> bool:
        return x25519 in self.down

    def due_for_probe(self) -> list[str]:
        return sorted(self.down & self.due)

    async def request(
        self, x25519: str, address: str, kind: bytes, body: Any, timeout: float
    ) -> Any:
        self.calls.append((x25519, address, kind, timeout))
        assert kind == KIND_ONION and set(body) == {"f"}
        if x25519 in self.fail:
            raise self.fail[x25519]
        if x25519 in self.reply:
            return self.reply[x25519]
        return await self.routers[x25519].serve_link("previous hop", body)


class Rpc:
    """The storage RPC at a destination node: records payloads, answers a fixed document."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def respond_now(self, body: bytes) -> RpcResponse:
        self.payloads.append(body)
        return RpcResponse(200, {"echo": json.loads(body)})

    #: (a layer that came over HTTPS or a link: answered at once all the same)
    respond_later = respond_now


class Net:
    """Routers for ``n`` nodes sharing one node list and one set of links."""

    def __init__(self, n: int, max_hops: int = 15) -> None:
        self.view = ListView()
        self.links = Links()
        self.idents = [Identity.generate() for _ in range(n)]
        self.rpcs = [Rpc() for _ in range(n)]
        self.routers: list[OnionRouter] = []
        for i, ident in enumerate(self.idents):
            entry = ServiceNode(
                pubkey_ed25519=ident.ed25519_public.hex(),
                pubkey_x25519=ident.x25519_public.hex(),
                public_ip="127.0.0.1",
                storage_port=1,
                storage_lmq_port=20000 + i,
            )
            self.view.nodes[entry.pubkey_ed25519] = entry
            pool = PeelPool(onion.Peeler.from_x25519_secret(ident.export_x25519_secret()))
            router = OnionRouter(
                pool, self.view, self.links, self.rpcs[i], max_hops=max_hops, relay_timeout=7.0
            )
            self.links.routers[entry.pubkey_x25519] = router
            self.routers.append(router)

    def hop(self, i: int) -> onion.Hop:
        return onion.Hop(self.idents[i].ed25519_public.hex(), self.idents[i].x25519_public)

    def dest(self, i: int) -> onion.NodeDestination:
        return onion.NodeDestination(
            self.idents[i].ed25519_public.hex(), self.idents[i].x25519_public
        )

    def x(self, i: int) -> str:
        return self.idents[i].x25519_public.hex()

    async def close(self) -> None:
        for r in self.routers:
            await r.close()
            r.pool.close()


@pytest.fixture
async def net():
    n = Net(5)
    yield n
    await n.close()


def opened(key: onion.ReplyKey, body: bytes) -> tuple[int, Any]:
    doc = json.loads(key.decrypt(body))
    inner = doc["body"]
    return doc["status"], json.loads(inner) if isinstance(inner, str) else inner


INFO = json.dumps({"method": "info", "params": {}}).encode()


@pytest.mark.parametrize("enc", ["xchacha20", "aes-gcm"])
async def test_deliver_runs_the_rpc_and_encrypts_its_answer(net: Net, enc: str) -> None:
    # the layer a relay (node 1) hands on to the destination (node 0)
    frame, key = onion.build([net.hop(1)], net.dest(0), INFO, enc)
    relayed = onion.Peeler.from_x25519_secret(net.idents[1].export_x25519_secret()).peel(frame)
    assert isinstance(relayed, onion.Relay)
    status, body = await net.routers[0].handle(relayed.frame)
    assert status == 200
    assert opened(key, body) == (200, {"echo": {"method": "info", "params": {}}})
    assert net.rpcs[0].payloads == [INFO]
    assert INFO not in body  # the answer is encrypted
    assert net.links.calls == []


async def test_relay_through_three_hops_reaches_the_destination(net: Net) -> None:
    frame, key = onion.build([net.hop(0), net.hop(1), net.hop(2)], net.dest(3), INFO)
    status, body = await net.routers[0].handle(frame)
    assert status == 200 and opened(key, body)[0] == 200
    # each hop forwarded to the next over its link, to the address the node list gives
    assert [(x, a) for x, a, _, _ in net.links.calls] == [
        (net.x(1), "tcp://127.0.0.1:20001"),
        (net.x(2), "tcp://127.0.0.1:20002"),
        (net.x(3), "tcp://127.0.0.1:20003"),
    ]
    assert all(t == 7.0 for *_, t in net.links.calls)
    # only the destination ran the request
    assert [len(r.payloads) for r in net.rpcs] == [0, 0, 0, 1, 0]


async def test_the_next_hops_answer_comes_back_unchanged(net: Net) -> None:
    net.links.reply[net.x(1)] = {"s": 418, "b": b"opaque bytes from further down"}
    frame, _ = onion.build([net.hop(0)], net.dest(1), INFO)
    assert await net.routers[0].handle(frame) == (418, b"opaque bytes from further down")


async def test_unknown_next_hop_is_502_naming_it(net: Net) -> None:
    stranger = Identity.generate()
    dest = onion.NodeDestination(stranger.ed25519_public.hex(), stranger.x25519_public)
    frame, _ = onion.build([net.hop(0)], dest, INFO)
    status, body = await net.routers[0].handle(frame)
    assert status == 502 and stranger.ed25519_public.hex().encode() in body
    assert net.links.calls == []


async def test_unreachable_next_hop_is_502_naming_it(net: Net) -> None:
    net.links.fail[net.x(1)] = LinkUnreachable("connection refused")
    frame, _ = onion.build([net.hop(0)], net.dest(1), INFO)
    status, body = await net.routers[0].handle(frame)
    assert status == 502
    assert body == f"Next node unreachable: {net.idents[1].ed25519_public.hex()}".encode()


async def test_unreachable_hop_further_down_comes_back_to_the_guard(net: Net) -> None:
    net.links.fail[net.x(2)] = LinkUnreachable("down")
    frame, _ = onion.build([net.hop(0), net.hop(1)], net.dest(2), INFO)
    status, body = await net.routers[0].handle(frame)
    # the relay in the middle answered 502; the guard passes it back unchanged
    assert status == 502 and net.idents[2].ed25519_public.hex().encode() in body


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (LinkTimeout("no answer"), 504, b"Request time out"),
        (LinkError("curve handshake failed"), 502, b"curve handshake failed"),
    ],
)
async def test_link_failures(net: Net, error: LinkError, status: int, text: bytes) -> None:
    net.links.fail[net.x(1)] = error
    frame, _ = onion.build([net.hop(0)], net.dest(1), INFO)
    got_status, body = await net.routers[0].handle(frame)
    assert got_status == status and text in body


@pytest.mark.parametrize("reply", [{}, {"s": "x", "b": b""}, {"s": 200}, None])
async def test_a_confused_next_hop_is_502(net: Net, reply: Any) -> None:
    net.links.reply[net.x(1)] = reply
    frame, _ = onion.build([net.hop(0)], net.dest(1), INFO)
    assert await net.routers[0].handle(frame) == (502, b"Bad reply from next node")


async def test_hop_limit_of_the_router() -> None:
    chain = Net(5, max_hops=2)
    try:
        # guard (hop 0) → 1 → 2 is within the limit ...
        frame, key = onion.build([chain.hop(0), chain.hop(1)], chain.dest(2), INFO)
        status, body = await chain.routers[0].handle(frame)
        assert status == 200 and opened(key, body)[0] == 200
        # ... one more relay is not: node 2 would pass it on as hop 3
        chain.links.calls.clear()
        frame, _ = onion.build([chain.hop(0), chain.hop(1), chain.hop(2)], chain.dest(3), INFO)
        status, body = await chain.routers[0].handle(frame)
        assert status == 400 and b"max path length" in body
        assert chain.rpcs[3].payloads == []
        assert [x for x, *_ in chain.links.calls] == [chain.x(1), chain.x(2)]  # 2 stopped
    finally:
        await chain.close()


async def test_hop_limit_of_the_layer_itself(net: Net) -> None:
    # a previous hop claiming this is hop 16: refused before any decryption, in plain text
    frame, _ = onion.build([net.hop(0)], net.dest(1), INFO)
    blob, meta = onion.decode_layer(frame)
    forged = onion.encode_layer(blob, {**meta, "hop_no": onion.MAX_HOPS + 1})
    status, body = await net.routers[0].handle(forged)
    assert status == 400 and body and net.links.calls == []


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x01\x00",
        b"\xff\xff\xff\x7f" + b"short",
        b"\x04\x00\x00\x00abcd" + b"not json",
        b"\x04\x00\x00\x00abcd"
        + json.dumps({"ephemeral_key": "zz", "enc_type": "xchacha20"}).encode(),
        b"\x04\x00\x00\x00abcd"
        + json.dumps({"ephemeral_key": "11" * 32, "enc_type": "rot"}).encode(),
    ],
    ids=["empty", "truncated-length", "length-past-end", "bad-json", "bad-key", "bad-cipher"],
)
async def test_malformed_layers_are_400_in_plain_text(net: Net, frame: bytes) -> None:
    status, body = await net.routers[0].handle(frame)
    assert status == 400 and body
    assert net.links.calls == [] and net.rpcs[0].payloads == []


async def test_a_layer_for_another_node_is_400(net: Net) -> None:
    frame, _ = onion.build([net.hop(1)], net.dest(1), INFO)  # encrypted for node 1
    status, body = await net.routers[0].handle(frame)
    assert status == 400 and body and net.rpcs[0].payloads == []


def handmade_frame(node: Identity, inner: bytes) -> tuple[bytes, Callable[[bytes], Any]]:
    """A one-layer frame for ``node`` holding ``inner`` as it is (which ``onion.build`` would
    refuse to make), and a function that opens the node's encrypted reply (xchacha20, base64,
    key as in Session: BLAKE2b-256(X25519 shared ‖ client key ‖ node key))."""
    eph = Identity.generate().export_x25519_secret()
    eph_pub = onion.Peeler.from_x25519_secret(eph).x25519_public
    blob = onion.encrypt_hop("xchacha20", eph, node.x25519_public, inner)
    frame = onion.encode_layer(blob, {"ephemeral_key": eph_pub.hex(), "enc_type": "xchacha20"})
    key = hashlib.blake2b(
        crypto_scalarmult(eph, node.x25519_public) + eph_pub + node.x25519_public, digest_size=32
    ).digest()

    def open_reply(body: bytes) -> Any:
        raw = base64.b64decode(body)
        return json.loads(crypto_aead_xchacha20poly1305_ietf_decrypt(raw[24:], None, raw[:24], key))

    return frame, open_reply


async def test_a_bad_inner_layer_gets_an_encrypted_error(net: Net) -> None:
    # the layer decrypts, but what it holds is not a layer: the client gets its error encrypted
    frame, open_reply = handmade_frame(net.idents[0], b"\x02\x00\x00\x00{}garbage")
    status, body = await net.routers[0].handle(frame)
    assert status == 200
    doc = open_reply(body)
    assert doc["status"] == 400 and "JSON" in doc["body"]
    assert net.links.calls == [] and net.rpcs[0].payloads == []


class FakeHttp:
    """Stands in for the router's HTTP client: records POSTs, answers or raises."""

    def __init__(self, answer: Response | BaseException) -> None:
        self.answer = answer
        self.posts: list[tuple[str, bytes]] = []
        self.options: list[dict[str, Any]] = []

    async def request(self, method: str, url: str, *, body: bytes, **options: Any) -> Response:
        assert method == "POST"
        self.posts.append((url, body))
        self.options.append(options)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    async def close(self) -> None:
        return None


def server_frame(net: Net, server: Identity, payload: bytes, port: int = 443) -> bytes:
    dest = onion.ServerDestination(
        host=PUBLIC_IP, target="/oxen/v4/lsrpc", x25519=server.x25519_public, port=port
    )
    frame, _ = onion.build([net.hop(0)], dest, payload)
    return frame


async def test_v4_destination_is_proxied_and_the_answer_passed_back(net: Net) -> None:
    server = Identity.generate()
    request = onion.v4_encode_request({"method": "GET", "endpoint": "/room/x"}, None)
    http = FakeHttp(Response(201, {}, b"the server's encrypted answer"))
    net.routers[0]._http = http
    status, body = await net.routers[0].handle(server_frame(net, server, request, port=8443))
    assert (status, body) == (201, b"the server's encrypted answer")
    [(url, sent)] = http.posts
    assert url == f"https://{PUBLIC_IP}:8443/oxen/v4/lsrpc"
    assert http.options == [  # (the client follows no redirects)
        {
            "headers": {"Host": f"{PUBLIC_IP}:8443"},
            "server_hostname": PUBLIC_IP,
            "max_size": PROXY_MAX_REPLY,
        }
    ]
    # what the node posts is still encrypted for the server, and the server can open it
    assert b"/room/x" not in sent
    plain, _ = onion.Peeler.from_x25519_secret(server.export_x25519_secret()).open_request(sent)
    assert onion.v4_decode_request(plain)[0]["endpoint"] == "/room/x"
    assert net.links.calls == [] and net.rpcs[0].payloads == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (HttpConnectError("refused", ConnectionRefusedError(111, "refused")), 502),
        (HttpProtocolError("closed before answering"), 502),
        (HttpTimeout("did not answer"), 504),
        (TimeoutError(), 504),
    ],
)
async def test_v4_proxy_failures_come_back_plain_to_the_client(
    net: Net, error: BaseException, status: int
) -> None:
    """The last node of a 3-hop path cannot reach the server (refused, closed under its
    connection cap, silent): the guard answers the node's plain 502/504 (network spec §6.6),
    which the client acts on as a path error. A 200 encrypted with that node's layer key would
    not open with the client's key, which is the server's (the community load run's
    "undecryptable onion reply from the server's path")."""
    server = Identity.generate()
    dest = onion.ServerDestination(
        host=PUBLIC_IP, target="/oxen/v4/lsrpc", x25519=server.x25519_public
    )
    request = onion.v4_encode_request({"method": "GET", "endpoint": "/room/x"}, None)
    frame, key = onion.build([net.hop(0), net.hop(1), net.hop(2)], dest, request)
    net.routers[2]._http = FakeHttp(error)
    got, body = await net.routers[0].handle(frame)
    assert got == status
    assert body == (PROXY_FAILED if status == 502 else b"Request time out")
    assert named_next_node(got, body) is None  # no hop of the path is to blame
    with pytest.raises(OnionError):  # (the client answers PathFailure "undecryptable")
        key.decrypt(body)


@pytest.mark.parametrize(
    ("host", "target", "protocol", "why"),
    [
        (PUBLIC_IP, "/admin", "https", "target"),
        (PUBLIC_IP, "/oxen/v4/lsrpc?x=1", "https", "target"),
        ("user@host", "/oxen/v4/lsrpc", "https", "host"),
        (PUBLIC_IP, "/oxen/v4/lsrpc", "file", "protocol"),
    ],
)
async def test_a_proxy_destination_outside_the_filter_is_refused(
    net: Net, host: str, target: str, protocol: str, why: str
) -> None:
    # the client library refuses to build these; a hand-made inner layer is refused by the node
    inner = onion.encode_layer(b"payload", {"host": host, "target": target, "protocol": protocol})
    frame, open_reply = handmade_frame(net.idents[0], inner)
    http = FakeHttp(Response(200, {}, b"must not be reached"))
    net.routers[0]._http = http
    status, body = await net.routers[0].handle(frame)
    assert http.posts == []
    assert status == 200  # decrypted before it failed: the error is encrypted for the client
    doc = open_reply(body)
    assert doc["status"] == 400 and why in doc["body"]


@pytest.mark.parametrize("body", [None, b"frame", {}, {"f": "text, not bytes"}, {"g": b"x"}])
async def test_serve_link_checks_its_input(net: Net, body: Any) -> None:
    assert await net.routers[0].serve_link("peer", body) == {"s": 400, "b": b"bad relay message"}


async def test_serve_link_handles_a_frame(net: Net) -> None:
    frame, key = onion.build([net.hop(1)], net.dest(1), INFO)
    out = await net.routers[1].serve_link("peer", {"f": frame})
    assert out["s"] == 200 and opened(key, out["b"])[0] == 200


async def test_peel_pool_splits_a_burst_and_keeps_each_result_with_its_frame() -> None:
    me = Identity.generate()
    peeler = onion.Peeler.from_x25519_secret(me.export_x25519_secret())
    pool = PeelPool(peeler, workers=1, burst=4)
    try:
        hop = onion.Hop(me.ed25519_public.hex(), me.x25519_public)
        nexts = [Identity.generate() for _ in range(12)]
        frames: list[bytes] = []
        for i, n in enumerate(nexts):
            dest = onion.NodeDestination(n.ed25519_public.hex(), n.x25519_public)
            frames.append(b"garbage" if i % 5 == 2 else onion.build([hop], dest, b"%d" % i)[0])
        results = await asyncio.gather(*(pool.peel(f) for f in frames), return_exceptions=True)
        for i, (n, r) in enumerate(zip(nexts, results, strict=True)):
            if i % 5 == 2:
                assert isinstance(r, OnionError) and r.status == 400
            else:
                assert isinstance(r, onion.Relay) and r.next_ed25519 == n.ed25519_public.hex()
    finally:
        pool.close()


@pytest.mark.parametrize("workers", [0, 1])
async def test_peel_pool_peels_a_few_frames_one_by_one_and_keeps_their_errors(workers: int) -> None:
    me = Identity.generate()
    peeler = onion.Peeler.from_x25519_secret(me.export_x25519_secret())
    pool = PeelPool(peeler, workers=workers, burst=4)
    hop = onion.Hop(me.ed25519_public.hex(), me.x25519_public)
    n = Identity.generate()
    dest = onion.NodeDestination(n.ed25519_public.hex(), n.x25519_public)
    frames = [onion.build([hop], dest, b"x")[0], b"garbage", onion.build([hop], dest, b"y")[0]]
    results = await asyncio.gather(*(pool.peel(f) for f in frames), return_exceptions=True)
    assert isinstance(results[1], OnionError) and results[1].status == 400
    for r in (results[0], results[2]):
        assert isinstance(r, onion.Relay) and r.next_ed25519 == n.ed25519_public.hex()
    pool.close()


async def test_a_next_node_known_down_is_named_at_once_until_its_probe_is_due(net: Net) -> None:
    frame, key = onion.build([net.hop(0), net.hop(1)], net.dest(2), INFO)
    net.links.down.add(net.x(1))
    status, body = await net.routers[0].handle(frame)
    assert status == 502 and net.idents[1].ed25519_public.hex().encode() in body
    assert b"unreachable" in body.lower() and net.links.calls == []  # no wait on a dead link
    net.links.due.add(net.x(1))  # back-off over: this relay is the probe
    frame, key = onion.build([net.hop(0), net.hop(1)], net.dest(2), INFO)
    status, body = await net.routers[0].handle(frame)
    assert status == 200 and opened(key, body)[0] == 200 and len(net.links.calls) == 2


class Guards:
    """Stands in for the client transport's HTTP client: a POST to a node's
    ``/onion_req/v2`` is handled by that node's router (the guard of the path)."""

    closed = False

    def __init__(self, by_url: dict[str, OnionRouter]) -> None:
        self.by_url = by_url

    async def request(self, method: str, url: str, *, body: bytes, **options: Any) -> Response:
        router = self.by_url[url.removesuffix("/onion_req/v2")]
        status, answer = await router.handle(body)
        return Response(status, {}, answer)

    async def close(self) -> None:
        return None


async def test_the_client_reads_a_last_node_failure_as_a_path_error(net: Net) -> None:
    """End to end through the client's transport: the server closes the last node's connection
    (its connection cap) and ``request_server`` raises the node's 502 as a path error, not
    "undecryptable onion reply from the server's path"."""
    nodes = [
        dataclasses.replace(n, storage_port=30000 + i)
        for i, n in enumerate(net.view.nodes.values())
    ]
    paths = PathManager(nodes, rng=random.Random(5), paths_wanted=1)
    t = OnionTransport(paths, NetworkClock(lambda: 1_700_000_000))
    t._http = Guards(  # type: ignore[assignment]  # the in-process routers stand in for HTTP
        {n.https_url: net.routers[i] for i, n in enumerate(nodes)}
    )
    for r in net.routers:
        r._http = FakeHttp(HttpProtocolError("closed before answering"))
    dest = onion.ServerDestination(
        host=PUBLIC_IP, target="/oxen/v4/lsrpc", x25519=Identity.generate().x25519_public
    )
    with pytest.raises(PathFailure, match="path error 502: Cannot reach the destination server"):
        await t.request_server(dest, {"method": "GET", "endpoint": "/room/x", "headers": {}})
    assert sum(len(r._http.posts) for r in net.routers) == 1  # the last node did try the server
