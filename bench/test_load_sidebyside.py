"""The request scenarios of ``python -m bench.load`` (``--target ours|oxenss``): the requests
they build and the replies they accept, against our own node (so CI checks them without
Session's C++ server), and the side-by-side run itself where that server has been built
(``OXENSS_ROOT``; skipped with the reason otherwise). Correctness only, never a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nacl import bindings as sodium

from bench.load import cli, sidebyside
from bench.load.oxenss import OxenssUnavailable, find_root, node_keys, swarm_stored
from session import onion
from session.identity import Identity

ROOT = Path(__file__).resolve().parent.parent
KINDS = list(sidebyside.SCENARIOS)


def run_cli(args: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "bench.load", *args, "--out", str(out)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    print(r.stdout)
    print(r.stderr[-3000:], file=sys.stderr)
    return r


def test_one_layer_onion_peels_to_the_payload_and_its_reply_opens() -> None:
    node = Identity.generate()
    peeler = onion.Peeler(node)
    frame, key = sidebyside.one_layer_onion(node.x25519_public, sidebyside.INFO_BODY)
    decision = peeler.peel(frame)
    assert isinstance(decision, onion.Deliver)
    assert decision.payload == sidebyside.INFO_BODY
    reply = json.dumps({"status": 200, "body": json.dumps({"version": [2, 8, 0]})}).encode()
    sealed = decision.reply.encrypt(reply)
    assert sidebyside.check_onion(200, bytes(sealed), key) is None
    # a reply sealed for another request does not open; a node's error is not a success
    _, other = sidebyside.one_layer_onion(node.x25519_public, sidebyside.INFO_BODY)
    assert sidebyside.check_onion(200, bytes(sealed), other) == "reply does not open"
    assert sidebyside.check_onion(503, b"Snode not ready", key) == "status 503"
    bad = decision.reply.encrypt(json.dumps({"status": 421, "body": "{}"}).encode())
    assert sidebyside.check_onion(200, bytes(bad), key) == "inner status 421"


def test_an_onion_store_reply_is_checked_for_its_hash() -> None:
    node = Identity.generate()
    body = sidebyside.store_body("05" + "ab" * 32, b"m" * 16, 1_700_000_000_000)
    frame, key = sidebyside.one_layer_onion(node.x25519_public, body)
    decision = onion.Peeler(node).peel(frame)
    assert isinstance(decision, onion.Deliver) and decision.payload == body

    def sealed(status: int, inner: str) -> bytes:
        doc = json.dumps({"status": status, "body": inner}).encode()
        return bytes(decision.reply.encrypt(doc))

    assert sidebyside.check_onion_store(200, sealed(200, '{"swarm":{},"hash":"h"}'), key) is None
    assert sidebyside.check_onion_store(200, sealed(200, '{"version":[2]}'), key) == (
        "inner body without hash"
    )
    assert sidebyside.check_onion_store(200, sealed(406, "too old"), key) == "inner status 406"
    assert sidebyside.check_onion_store(200, b"garbage", key) == "reply does not open"
    assert sidebyside.check_onion_store(502, b"", key) == "status 502"


def test_a_three_hop_store_goes_through_three_other_nodes_and_its_reply_is_checked() -> None:
    """``path-store`` with three other nodes: the target (where the request is sent) peels
    to the next one, which peels to the next, which relays to the last, the destination,
    which gets the store; only a reply sealed for this request, a 200 whose body says every
    member stored the message, passes."""
    first, *others = [Identity.generate() for _ in range(4)]
    target = sidebyside.Target(
        "ours", "127.0.0.1", 1, first.ed25519_public.hex(), bytes(first.x25519_public).hex(),
        (1,), 2, tuple((r.ed25519_public.hex(), bytes(r.x25519_public).hex()) for r in others),
    )  # fmt: skip
    path, frame, check = sidebyside.Requests("path-store", target, 64, 0).next()
    assert path == "/onion_req/v2"
    for relay, after in zip([first, *others[:2]], others, strict=True):
        decision = onion.Peeler(relay).peel(frame)
        assert isinstance(decision, onion.Relay)
        assert decision.next_ed25519 == after.ed25519_public.hex()
        frame = decision.frame
    decision = onion.Peeler(others[2]).peel(frame)
    assert isinstance(decision, onion.Deliver)
    assert json.loads(decision.payload)["method"] == "store"

    def sealed(status: int, inner: dict[str, Any] | str) -> bytes:
        body = inner if isinstance(inner, str) else json.dumps(inner)
        doc = json.dumps({"status": status, "body": body}).encode()
        return bytes(decision.reply.encrypt(doc))

    ok = {"hash": "h", "signature": "s"}
    assert check(200, sealed(200, {"swarm": {"a": ok, "b": ok}, "hash": "h"})) is None
    assert check(200, sealed(200, {"swarm": {"a": ok}, "hash": "h"})) == (
        "stored by 1 of the swarm's 2"
    )
    assert check(200, sealed(200, {"version": [2]})) == "inner body without hash"
    assert check(200, sealed(421, "wrong swarm")) == "inner status 421"
    assert check(200, b"garbage").startswith("reply does not open")
    assert check(502, b"") == "status 502"


def test_reply_checks() -> None:
    assert sidebyside.check_info(200, b'{"version":[2,8,0],"timestamp":1}') is None
    assert sidebyside.check_info(429, b"Too many requests") == "status 429"
    assert sidebyside.check_store(200, b'{"swarm":{},"hash":"x"}') is None
    assert sidebyside.check_store(200, b'{"swarm":{}}') == "reply without hash"
    msgs = json.dumps({"messages": [{}] * sidebyside.PREFILL}).encode()
    assert sidebyside.check_retrieve(200, msgs) is None
    assert sidebyside.check_retrieve(200, b'{"messages":[]}') == "0 messages, wanted 10"
    assert sidebyside.check_retrieve(401, b"no") == "status 401"


def test_a_swarms_store_reply_must_say_every_member_stored() -> None:
    def reply(results: dict[str, Any]) -> bytes:
        return json.dumps({"swarm": results, "hash": "h"}).encode()

    ok = {"hash": "h", "signature": "s"}
    three = reply({"a": ok, "b": ok, "c": ok})
    assert swarm_stored(three) == 3
    assert sidebyside.check_store(200, three, swarm=3) is None
    # a member that failed or timed out (Session's server marks it so) is not stored
    failed = reply({"a": ok, "b": ok, "c": {"failed": True, "timeout": True}})
    assert sidebyside.check_store(200, failed, swarm=3) == "stored by 2 of the swarm's 3"
    assert sidebyside.check_store(200, reply({"a": ok}), swarm=3) == (
        "stored by 1 of the swarm's 3"
    )
    assert swarm_stored(b"not json") == 0 and swarm_stored(b'{"swarm": []}') == 0
    assert swarm_stored(b"[1]") == 0
    # a swarm of one is not asked for the others
    assert sidebyside.check_store(200, reply({"a": ok}), swarm=1) is None


def test_the_standins_node_keys_are_the_seeds() -> None:
    """The node list we hand Session's servers names each by the keys its stand-in derives
    from the seed (oxend_standin.cpp: libsodium's seed keypair and its Ed25519-to-Curve25519
    conversion), computed here with libsodium directly."""
    seed = bytes(range(32))
    pk, sk = sodium.crypto_sign_seed_keypair(seed)
    ed_hex, x = node_keys(seed)
    assert ed_hex == pk.hex()
    assert x == sodium.crypto_scalarmult_base(sodium.crypto_sign_ed25519_sk_to_curve25519(sk))


def test_a_path_goes_through_three_other_nodes_when_there_are_three() -> None:
    keys = [(f"ed{i}", f"x{i}") for i in range(5)]
    assert sidebyside.path_relays(keys) == (("ed1", "x1"), ("ed2", "x2"), ("ed3", "x3"))
    assert sidebyside.path_relays(keys[:4]) == (("ed1", "x1"), ("ed2", "x2"), ("ed3", "x3"))
    assert sidebyside.path_relays(keys[:3]) == ()  # too few others: the target relays itself
    assert sidebyside.path_relays(keys[:1]) == ()


def test_request_scenarios_take_one_swarm_of_nodes() -> None:
    top = cli.MAX_ONE_SWARM
    with pytest.raises(SystemExit, match=f"--nodes in request scenarios: 1 to {top}"):
        cli.main(["store", "--nodes", str(top + 1)])
    with pytest.raises(SystemExit, match="1 to"):
        cli.main(["store", "--nodes", "0"])


def test_scenario_names() -> None:
    assert sidebyside.parse_kinds("chat") is None
    assert sidebyside.parse_kinds("info,store,info") == ["info", "store"]
    with pytest.raises(SystemExit, match="request scenarios only"):
        sidebyside.parse_kinds("info,chat")
    with pytest.raises(SystemExit, match="request scenarios"):
        cli.main(["chat", "--target", "oxenss"])


def test_oxenss_target_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(OxenssUnavailable, match="no executable build/oxen-storage"):
        find_root(tmp_path)
    # before anything starts, the command says so in one sentence
    with pytest.raises(SystemExit, match="no executable build/oxen-storage under"):
        cli.main(["info", "--target", "oxenss", "--oxenss-root", str(tmp_path)])


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_every_request_scenario_against_our_node(tmp_path: Path) -> None:
    """What ``--target oxenss`` sends to both servers, sent to ours: every request answered
    as asked (info's version, a stored hash, the 10 prefilled messages, onion replies that
    open to a 200), and the CPU read from the node's clock. One worker answered at once can
    send ~6,000 ``info`` a second: 32 source addresses keep it under the 300/s per address
    both servers allow (else 429s)."""
    out = tmp_path / "run"
    r = run_cli(
        [",".join(KINDS), "--duration", "1.5", "--rounds", "1", "--workers", "1",
         "--ips-per-worker", "32"],
        out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert sidebyside.validate(doc) == []
    assert list(doc["results"]) == KINDS
    for kind, sc in doc["results"].items():
        (rnd,) = sc["rounds"]
        assert rnd["server"] == "ours"
        assert rnd["errors"] == {}, (kind, rnd["error_examples"])
        assert rnd["ok"] > 0 and rnd["server_cpu_s"] > 0, kind
        assert rnd["latency_ms"]["count"] == rnd["ok"]
        assert rnd["connections"] == 32, kind  # kept alive: one per source address
        assert "ratios" not in sc  # no C++ server in this run


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_stores_to_a_swarm_are_replicated_and_charged_to_every_node(tmp_path: Path) -> None:
    """``--nodes 4``: stores (direct, through an onion layer, through a 3-hop path whose
    relays are the three other nodes) go to the first node of a 4-node devnet, every reply
    says all four stored the message (else the round counts an error), and the CPU is read
    from all four processes."""
    out = tmp_path / "run"
    r = run_cli(
        ["store,onion-store,onion-path,path-store", "--nodes", "4", "--duration", "1.5",
         "--rounds", "1", "--workers", "1", "--ips-per-worker", "8"],
        out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert sidebyside.validate(doc) == [] and doc["load"]["nodes"] == 4
    for kind, sc in doc["results"].items():
        (rnd,) = sc["rounds"]
        assert rnd["errors"] == {}, (kind, rnd["error_examples"])
        assert rnd["ok"] > 0 and rnd["server_processes"] == 4, kind


def side_by_side(tmp_path: Path, args: list[str]) -> dict[str, Any]:
    """Run the request scenarios ``args`` against Session's server (skipped where it is not
    built) and ours; check every round answered everything as asked; the result."""
    try:
        root = find_root(None)
    except OxenssUnavailable as e:
        pytest.skip(f"Session's storage server is not built here: {e}")
    out = tmp_path / "run"
    r = run_cli([*args, "--target", "oxenss", "--oxenss-root", str(root), "--rounds", "1"], out)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert sidebyside.validate(doc) == []
    for kind, sc in doc["results"].items():
        assert set(sc["servers"]) == {"ours", "oxenss"}, kind
        for rnd in sc["rounds"]:
            assert rnd["errors"] == {}, (kind, rnd["server"], rnd["error_examples"])
            assert rnd["ok"] > 0, (kind, rnd["server"])
        assert sc["ratios"]["cpu_per_request"] > 0
    return doc


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_side_by_side_with_sessions_server(tmp_path: Path) -> None:
    doc = side_by_side(
        tmp_path,
        [",".join(KINDS), "--duration", "1.5", "--workers", "2", "--ips-per-worker", "32"],
    )
    for rnd in (r for sc in doc["results"].values() for r in sc["rounds"]):
        # 2 workers × 32, kept alive: 64 source addresses keep a quiet machine's ~12,000
        # `info` a second under the 300/s per address both servers allow (else 429s)
        assert rnd["connections"] == 64 and rnd["server_processes"] == 1, rnd["server"]


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_side_by_side_with_a_swarm_of_sessions_servers(tmp_path: Path) -> None:
    """Four of Session's servers in one swarm (our stand-ins list all four) against our
    4-node devnet: every store, on either, is stored by all four (else the round counts an
    error), also through a 3-hop path of the other three, and the CPU is read from all four
    processes of each."""
    doc = side_by_side(
        tmp_path,
        ["store,onion-store,onion-path,path-store", "--nodes", "4", "--duration", "1.5",
         "--workers", "2", "--ips-per-worker", "8"],
    )  # fmt: skip
    for rnd in (r for sc in doc["results"].values() for r in sc["rounds"]):
        assert rnd["server_processes"] == 4, rnd["server"]


def test_profile_samples_are_charged_to_the_innermost_known_layer(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (session/node/__main__.py:1);run (uvloop/__init__.py:9);"
        "_handle (aiohttp/web_app.py:5);respond (session/node/rpc.py:3);"
        "parse_json (session/proto/rpc/codec.py:96) 6\n"
        "main (session/node/__main__.py:1);_handle (aiohttp/web_app.py:5);"
        "write (ssl.py:930) 3\n"
        "main (session/node/__main__.py:1);run (uvloop/__init__.py:9) 1\n"
        "_bootstrap (threading.py:995) 2\n"
    )
    assert sidebyside.by_layer(raw) == {
        "rpc": 0.5,
        "tls": 0.25,
        "other": 0.167,
        "event loop": 0.083,
    }
