"""Issue 8, "bad input that ends in 500", at the storage RPC: each class of bad input gets a
4xx with one sentence, no traceback in the log, and the node keeps serving.

* lone UTF-16 surrogates in any string (a method name, a message hash, an ``oxend_request``
  endpoint, a batch sub-method, a key) are refused when the JSON is parsed, so nothing the node
  echoes can hold one; also inside an onion whose destination is the node (an encrypted 400);
* ``ifelse`` nests (ifelse in ifelse, batch/sequence in ifelse; never ifelse in a batch) at
  most ``MAX_IFELSE_DEPTH`` deep, and any JSON deeper than ``MAX_JSON_DEPTH`` is refused before
  anything recurses over it;
* integers thousands of digits long.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from session import onion
from session.identity import Identity
from session.node.relay import OnionRouter, PeelPool
from session.node.rpc import RpcResponse
from session.proto import rpc as P
from session.storage.memory import MemoryMessageStore
from session.testing.hostile import dumps
from session.testing.http import open_onion_reply
from session.testing.rpc import LocalSwarm, call

SURROGATE_MESSAGE = "invalid json: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
ACCT = "05" + "ab" * 32


@pytest.fixture
def swarm() -> LocalSwarm:
    return LocalSwarm([MemoryMessageStore() for _ in range(3)])


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def ifelse_chain(depth: int, inner: dict[str, Any]) -> dict[str, Any]:
    body = inner
    for _ in range(depth):
        body = {"method": "ifelse", "params": {"if": {"hf_at_least": [1]}, "then": body}}
    return body


SURROGATE_BODIES = {
    "method name": b'{"method":"\\ud800","params":{}}',
    "message hash": b'{"method":"delete","params":{"pubkey":"'
    + ACCT.encode()
    + b'","signature":"'
    + b"A" * 86
    + b'","messages":["\\ud800"]}}',
    "oxend endpoint": b'{"method":"oxend_request","params":{"endpoint":"\\udfff"}}',
    "batch sub-method": b'{"method":"batch","params":{"requests":'
    b'[{"method":"\\ud800x","params":{}}]}}',
    "object key": b'{"method":"info","params":{"\\udc00":1}}',
    "low then high (no pair)": b'{"method":"info\\udc00\\ud800","params":{}}',
}


@pytest.mark.parametrize("body", SURROGATE_BODIES.values(), ids=SURROGATE_BODIES.keys())
async def test_lone_surrogates_are_refused_when_parsed(
    swarm: LocalSwarm, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    status, out = await swarm.node(0).handle_client(body)
    assert (status, out.decode()) == (400, SURROGATE_MESSAGE)
    # a valid pair is text: "\ud83d\ude00" is 😀, and the echo is plain UTF-8
    status, out = await swarm.node(0).handle_client(b'{"method":"\\ud83d\\ude00","params":{}}')
    assert (status, out.decode()) == (400, "no method \U0001f600")
    no_tracebacks(caplog)


async def test_a_surrogate_that_gets_past_parsing_is_still_encoded(swarm: LocalSwarm) -> None:
    # a request handed over already decoded (not from JSON): the reply is escaped, not a crash
    r = await swarm.node(0).respond({"method": "\ud800", "params": {}})
    assert r.status == 400 and r.to_bytes() == b"no method \\ud800"
    assert RpcResponse(400, "x\udfff").to_bytes() == b"x\\udfff"


async def test_surrogates_in_an_onion_to_the_node_get_an_encrypted_400(
    swarm: LocalSwarm, caplog: pytest.LogCaptureFixture
) -> None:
    me = Identity.generate()
    router = OnionRouter(
        PeelPool(onion.Peeler(me), workers=0), view=None, links=None, rpc=swarm.node(0)
    )
    dest = onion.NodeDestination(me.ed25519_public.hex(), bytes(me.x25519_public))
    guard = onion.Hop(me.ed25519_public.hex(), bytes(me.x25519_public))
    for body in SURROGATE_BODIES.values():
        frame, key = onion.build([guard], dest, body)
        relay = await onion_peel_once(router, frame)  # the guard's layer names the node itself
        status, answer = await router.handle(relay)
        assert status == 200
        assert open_onion_reply(key, answer) == {"status": 400, "body": SURROGATE_MESSAGE}
    no_tracebacks(caplog)


async def onion_peel_once(router: OnionRouter, frame: bytes) -> bytes:
    """The frame the guard (``router``) would relay on: peel its own layer."""
    d = await router.pool.peel(frame)
    assert isinstance(d, onion.Relay)
    return bytes(d.frame)


async def test_ifelse_nests_up_to_the_limit(swarm: LocalSwarm) -> None:
    c = swarm.client_in_swarm()
    # ifelse in ifelse, MAX_IFELSE_DEPTH levels, around a batch (batch in ifelse is allowed)
    batch = {"method": "batch", "params": {"requests": [c.store(b"deep"), c.retrieve()]}}
    status, body = await call(swarm.node(0), ifelse_chain(P.MAX_IFELSE_DEPTH, batch))
    assert status == 200
    for _ in range(P.MAX_IFELSE_DEPTH):
        assert body["condition"] is True
        body = body["result"]["body"]
    assert [r["code"] for r in body["results"]] == [200, 200]
    seq = {"method": "sequence", "params": {"requests": [{"method": "info", "params": {}}]}}
    status, body = await call(swarm.node(0), ifelse_chain(2, seq))
    assert status == 200 and body["result"]["body"]["result"]["body"]["results"][0]["code"] == 200


@pytest.mark.parametrize("depth", [P.MAX_IFELSE_DEPTH + 1, 20])
async def test_ifelse_deeper_than_the_limit_is_one_sentence(
    swarm: LocalSwarm, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    status, out = await call(swarm.node(0), ifelse_chain(depth, {"method": "info", "params": {}}))
    assert status == 400
    assert out == (
        "invalid request: Invalid ifelse request: ifelse may be nested at most "
        f"{P.MAX_IFELSE_DEPTH} levels deep"
    )
    no_tracebacks(caplog)


@pytest.mark.parametrize("depth", [300, 2_000, 100_000])
async def test_hundreds_of_levels_never_recurse(
    swarm: LocalSwarm, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    head = b'{"method":"ifelse","params":{"if":{"hf_at_least":[1]},"then":'
    body = head * depth + b'{"method":"info","params":{}}' + b"}}" * depth
    status, out = await swarm.node(0).handle_client(body)
    assert status == 400 and out.startswith(b"invalid json"), out[:100]
    status, out = await swarm.node(0).handle_client(b"[" * depth + b"]" * depth)
    assert status == 400
    no_tracebacks(caplog)
    st, _ = await call(swarm.node(0), {"method": "info", "params": {}})
    assert st == 200


def test_json_depth_limit_is_exact() -> None:
    ok = "[" * P.MAX_JSON_DEPTH + "]" * P.MAX_JSON_DEPTH
    assert P.parse_json(ok) is not None
    deeper = "[" + ok + "]"
    with pytest.raises(P.RpcStatusError) as ei:
        P.parse_json(deeper)
    assert ei.value.message == f"invalid json: nested more than {P.MAX_JSON_DEPTH} levels deep"
    # many brackets side by side are not depth
    assert P.parse_json("[" + ",".join(["[]"] * 500) + "]") is not None


async def test_ifelse_is_never_allowed_inside_a_batch(swarm: LocalSwarm) -> None:
    inner = ifelse_chain(1, {"method": "info", "params": {}})
    for method in ("batch", "sequence"):
        status, out = await call(swarm.node(0), {"method": method, "params": {"requests": [inner]}})
        assert (status, out) == (
            400,
            "invalid request: Invalid batch subrequest: subrequests may not contain meta-requests",
        )


@pytest.mark.parametrize("digits", [4_301, 10_000])
async def test_huge_integers(
    swarm: LocalSwarm, caplog: pytest.LogCaptureFixture, digits: int
) -> None:
    c = swarm.client_in_swarm()
    store = json.dumps(c.store(b"x")).replace('"ttl": 86400000', '"ttl": ' + "9" * digits)
    status, out = await swarm.node(0).handle_client(store.encode())
    assert (status, out) == (400, b"invalid json")
    # big but parseable: refused by the field's range check
    store = json.dumps(c.store(b"x")).replace('"ttl": 86400000', '"ttl": ' + "9" * 400)
    status, out = await swarm.node(0).handle_client(store.encode())
    assert (
        status == 400
        and out == b"invalid request: Invalid value given for 'ttl': expected positive integer"
    )
    no_tracebacks(caplog)


def test_hostile_dumps_writes_surrogate_escapes() -> None:
    assert dumps({"\ud800": ["\udfff", 1]}) == '{"\\ud800":["\\udfff",1]}'
