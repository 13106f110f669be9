"""RpcHandler: an in-process swarm of 5 nodes connected by LocalFanout."""

from __future__ import annotations

import base64
import json

import pytest

from rpc_helpers import NOW, Clock, LocalSwarm, b64, call
from session.identity import verify
from session.proto import rpc as P
from session.storage import MemoryMessageStore, SqliteMessageStore
from vectorlib import case_ids, load_vectors


@pytest.fixture(params=["memory", "sqlite"])
async def swarm(request, tmp_path):
    if request.param == "memory":
        stores = [MemoryMessageStore() for _ in range(5)]
    else:
        stores = [
            await SqliteMessageStore.open(tmp_path / f"n{i}.db", max_bytes=None) for i in range(5)
        ]
    sw = LocalSwarm(stores)
    yield sw
    for s in stores:
        await s.close()


def check_member_signatures(sw: LocalSwarm, swarm: dict, text_of) -> None:
    """Every member answered and every signature verifies under that member's key."""
    assert set(swarm) == set(sw.order)
    for ed, res in swarm.items():
        assert "failed" not in res, res
        verify(bytes.fromhex(ed), text_of(res), base64.b64decode(res["signature"]))


async def test_store_at_one_retrieve_at_another(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    st, body = await call(sw.node(0), c.store(b"hello"))
    assert st == 200
    h = body["hash"]
    assert body["t"] == NOW and body["hf"] == list(P.DEFAULT_HARDFORK)
    check_member_signatures(sw, body["swarm"], lambda r: r["hash"].encode())
    assert all(r["hash"] == h and r["expiry"] == NOW + 86_400_000 for r in body["swarm"].values())
    assert body["swarm"][sw.order[0]]["t"] == NOW  # entry node's own entry carries t
    for i in range(5):
        st, got = await call(sw.node(i), c.retrieve())
        assert st == 200 and got["more"] is False and got["t"] == NOW
        assert got["messages"] == [
            {"hash": h, "timestamp": NOW, "expiration": NOW + 86_400_000, "data": b64(b"hello")}
        ]
    # duplicate: idempotent, expiry raised, "already"
    st, body = await call(sw.node(2), c.store(b"hello", ttl=2 * 86_400_000))
    assert st == 200 and body["hash"] == h
    assert all(
        r["already"] is True and r["expiry"] == NOW + 2 * 86_400_000 for r in body["swarm"].values()
    )
    st, got = await call(sw.node(4), c.retrieve())
    assert len(got["messages"]) == 1 and got["messages"][0]["expiration"] == NOW + 2 * 86_400_000


async def test_retrieve_paging(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    hashes = []
    for i in range(5):
        st, body = await call(sw.node(i), c.store(bytes([i]) * 10, ns=2))
        hashes.append(body["hash"])
    st, got = await call(sw.node(1), c.retrieve(ns=2, max_count=2))
    assert st == 200 and [m["hash"] for m in got["messages"]] == hashes[:2] and got["more"]
    st, got = await call(sw.node(3), c.retrieve(ns=2, last_hash=hashes[1]))
    assert st == 200 and [m["hash"] for m in got["messages"]] == hashes[2:] and not got["more"]
    st, got = await call(sw.node(3), c.retrieve())  # namespace 0 is empty
    assert st == 200 and got["messages"] == []


@pytest.mark.parametrize(
    "case", load_vectors("message_hash"), ids=case_ids(load_vectors("message_hash"))
)
async def test_message_hash_vectors_via_store(case):
    ts = case.get("timestamp_ms", NOW)
    sw = LocalSwarm([MemoryMessageStore() for _ in range(5)], clock=Clock(ts), n_swarms=1)
    data = base64.b64decode(case["data_b64"]) if "data_b64" in case else case["data_utf8"].encode()
    params = {"pubkey": case["account_id"], "timestamp": ts, "ttl": 172_800_000, "data": b64(data)}
    if case["namespace"]:
        params["namespace"] = case["namespace"]
    if case["namespace"] % 10 != 0:  # private namespace: the §11.15 account (seed 00..1f) signs
        from rpc_helpers import Client

        owner = Client(seed=bytes(range(32)))
        assert owner.account == case["account_id"]
        params.update(owner.auth(f"store{case['namespace']}{ts}"))
    st, body = await call(sw.node(0), {"method": "store", "params": params})
    assert st == 200, body
    assert body["hash"] == case["hash_b64"]
    assert (await sw.node(3).store.get_by_hash(case["hash_b64"])).data == data


async def test_delete_and_required(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    hs = [(await call(sw.node(0), c.store(bytes([i]))))[1]["hash"] for i in range(3)]
    req = [hs[0], hs[2], "A" * 43]
    st, body = await call(sw.node(1), c.delete(req))
    assert st == 200 and body["t"] == NOW
    expect = sorted([hs[0], hs[2]])
    check_member_signatures(
        sw, body["swarm"], lambda r: P.delete_result_text(c.account, req, r["deleted"])
    )
    assert all(r["deleted"] == expect for r in body["swarm"].values())
    st, body = await call(sw.node(1), c.delete([hs[0]], required=True))
    assert st == 404  # nobody deleted anything
    st, got = await call(sw.node(4), c.retrieve())
    assert [m["hash"] for m in got["messages"]] == [hs[1]]


async def test_delete_all_before_and_expire_all(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    h0 = (await call(sw.node(0), c.store(b"a", ts=NOW - 5000)))[1]["hash"]
    h1 = (await call(sw.node(0), c.store(b"b", ns=3)))[1]["hash"]
    h2 = (await call(sw.node(0), c.store(b"c", ns=5)))[1]["hash"]

    st, body = await call(sw.node(2), c.expire_all(NOW + 3_600_000, ns="all"))
    assert st == 200
    check_member_signatures(
        sw,
        body["swarm"],
        lambda r: P.ns_action_result_text(
            c.account, NOW + 3_600_000, sorted(h for v in r["updated"].values() for h in v)
        ),
    )
    assert body["swarm"][sw.order[3]]["updated"] == {
        k: v for k, v in {"0": [h0], "3": [h1], "5": [h2]}.items()
    }

    st, body = await call(sw.node(3), c.delete_before(NOW - 1000))
    assert st == 200 and all(r["deleted"] == [h0] for r in body["swarm"].values())
    check_member_signatures(
        sw, body["swarm"], lambda r: P.ns_action_result_text(c.account, NOW - 1000, r["deleted"])
    )

    st, body = await call(sw.node(4), c.delete_all(ns=3))
    assert st == 200 and all(r["deleted"] == [h1] for r in body["swarm"].values())
    check_member_signatures(
        sw, body["swarm"], lambda r: P.ns_action_result_text(c.account, NOW, r["deleted"])
    )

    st, body = await call(sw.node(1), c.delete_all(ns="all"))
    assert all(r["deleted"] == {"5": [h2]} for r in body["swarm"].values())
    for i in range(5):
        assert await sw.node(i).store.owners() == []


async def test_expire_and_get_expiries(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    h = [(await call(sw.node(0), c.store(bytes([i]), ttl=3_600_000)))[1]["hash"] for i in range(2)]
    new = NOW + 7_200_000
    st, body = await call(sw.node(1), c.expire(h, new, "extend"))
    assert st == 200
    check_member_signatures(
        sw,
        body["swarm"],
        lambda r: P.expire_result_text(c.account, [r["expiry"]], h, r["updated"], r["unchanged"]),
    )
    assert all(
        r["updated"] == sorted(h) and r["expiry"] == new and r["unchanged"] == {}
        for r in body["swarm"].values()
    )
    # shorten to a later time: nothing changes, "unchanged" reports current expiries
    st, body = await call(sw.node(2), c.expire(h[:1], new + 1000, "shorten"))
    r = body["swarm"][sw.order[4]]
    assert r["updated"] == [] and r["unchanged"] == {h[0]: new}
    check_member_signatures(
        sw,
        body["swarm"],
        lambda r: P.expire_result_text(
            c.account, [r["expiry"]], h[:1], r["updated"], r["unchanged"]
        ),
    )
    # multi-expiry
    exps = [NOW + 100_000, NOW + 200_000]
    st, body = await call(sw.node(3), c.expire(h, exps))
    r = body["swarm"][sw.order[0]]
    pairs = sorted(zip(h, exps, strict=False))
    assert r["updated"] == [p[0] for p in pairs] and r["expiry"] == [p[1] for p in pairs]
    check_member_signatures(
        sw,
        body["swarm"],
        lambda r: P.expire_result_text(c.account, r["expiry"], h, r["updated"], {}),
    )
    st, body = await call(sw.node(4), c.get_expiries([*h, "A" * 43]))
    assert st == 200 and body == {"expiries": dict(pairs)}


async def test_private_namespace_auth(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    st, body = await call(sw.node(0), c.store(b"cfg", ns=2, sign=False))
    assert (st, body) == (401, "store: signature required to store to namespace 2")
    st, body = await call(sw.node(0), c.store(b"cfg", ns=2))
    assert st == 200
    other = sw.client_in_swarm()
    forged = other.retrieve(ns=2)
    forged["params"]["pubkey"] = c.account
    st, body = await call(sw.node(1), forged)
    assert (st, body) == (401, "retrieve signature verification failed")
    st, body = await call(sw.node(1), c.retrieve(ns=2))
    assert st == 200 and len(body["messages"]) == 1
    # clock skew
    st, body = await call(sw.node(1), c.retrieve(ns=2, ts=NOW + 61_000))
    assert st == 406


async def test_wrong_swarm_421(swarm):
    sw = swarm
    o = sw.client_elsewhere()
    st, body = await call(sw.node(0), o.store(b"x"))
    assert st == 421
    sid = sw.map.swarm_id_for(o.account)
    assert body["swarm"] == format(sid, "x") and body["t"] == NOW
    assert {n["pubkey_ed25519"] for n in body["snodes"]} == {
        n.pubkey_ed25519 for n in sw.map.swarms[sid]
    }
    assert all(n["port_https"] == 22021 and n["port"] == "22021" for n in body["snodes"])
    st, _body2 = await call(sw.node(0), o.retrieve())
    assert st == 421
    st, gs = await call(sw.node(0), {"method": "get_swarm", "params": {"pubkey": o.account}})
    assert st == 200 and gs["snodes"] == body["snodes"]
    for s in range(5):
        assert await sw.node(s).store.owners() == []


async def test_member_down_and_not_ready(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    down = sw.order[4]
    sw.fanouts[sw.order[0]].down.add(down)
    st, body = await call(sw.node(0), c.store(b"partial"))
    assert st == 200
    assert body["swarm"][down] == {"failed": True, "timeout": True}
    assert sum("failed" not in r for r in body["swarm"].values()) == 4
    # a not-ready peer answers with a failure entry; a not-ready entry node refuses with 503
    sw.node(3).swarm.ready = False
    st, body = await call(sw.node(0), c.store(b"partial2"))
    assert st == 200 and body["swarm"][sw.order[3]]["code"] == 503
    st, body = await call(sw.node(3), c.store(b"x"))
    assert st == 503 and body.startswith("Service node is not ready")


async def test_full_store_clear_error_and_nothing_lost(tmp_path):
    stores = [
        await SqliteMessageStore.open(tmp_path / f"n{i}.db", max_bytes=200 * 1024) for i in range(5)
    ]
    sw = LocalSwarm(stores)
    c = sw.client_in_swarm()
    stored = []
    while True:
        st, body = await call(sw.node(0), c.store(len(stored).to_bytes(4, "big") * 10_000))
        if st != 200:
            break
        stored.append(body["hash"])
        assert len(stored) < 100
    assert st == 500  # every member refused
    assert all(
        r["failed"] and r["query_failure"] and "full" in r["reason"] for r in body["swarm"].values()
    )
    assert "hash" not in body
    for i in range(5):
        got = []
        last = None
        while True:
            _, page = await call(sw.node(i), c.retrieve(last_hash=last))
            got += [m["hash"] for m in page["messages"]]
            if not page["more"]:
                break
            last = got[-1]
        assert got == stored
    # a duplicate store still succeeds; deleting makes room again
    st, body = await call(sw.node(1), c.store((0).to_bytes(4, "big") * 10_000))
    assert st == 200 and body["swarm"][sw.order[1]]["already"] is True
    st, _ = await call(sw.node(2), c.delete_all())
    st, body = await call(sw.node(0), c.store(b"room again"))
    assert st == 200
    for s in stores:
        await s.close()


async def test_garbage_bodies_then_keeps_serving(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    garbage = [
        b"",
        b"\x00\xff\x01",
        b"{",
        b"[]",
        b"null",
        b'{"method":"store","params":{"pubkey":"05","data":7}}',
        b'{"method":"retrieve","params":{"pubkey":[1,2]}}',
        json.dumps(
            {"method": "store", "params": {**c.store(b"x")["params"], "timestamp": "soon"}}
        ).encode(),
        b'{"method":"batch","params":{"requests":[{"method":"info","params":{}},{"method":"nope","params":{}}]}}',
        b"9" * 5000,
        b'{"method":"expire","params":' + b"[" * 3000 + b"]" * 3000 + b"}",
    ]
    for g in garbage:
        st, out = await sw.node(0).handle_client(g)
        assert st == 400, (g[:40], out)
    st, body = await call(sw.node(0), c.store(b"still fine"))
    assert st == 200 and len(body["swarm"]) == 5


async def test_forwarded_validation():
    sw = LocalSwarm([MemoryMessageStore() for _ in range(5)])
    c = sw.client_in_swarm()
    n = sw.node(1)
    # non-recursive methods may not be forwarded
    r = await n.handle_forwarded(c.retrieve())
    assert r["failed"] and r["code"] == 400
    # a forwarded request is verified again
    bad = P.forward_body(P.parse_request(c.store(b"x", ns=3)))
    bad["params"]["signature"] = b64(bytes(64))
    r = await n.handle_forwarded(bad)
    assert r == {"failed": True, "code": 401, "reason": "store signature verification failed"}
    # a good one is applied locally only
    good = P.forward_body(P.parse_request(c.store(b"x")))
    r = await n.handle_forwarded(good)
    assert "t" not in r
    stored_hash = r["hash"]
    assert (await sw.node(2).store.stats()).messages == 0
    # forwarded delete_all gets the wider 70 s window
    sw.clock.now = NOW + 65_000
    r = await n.handle_forwarded(P.forward_body(P.parse_request(c.delete_all())))
    assert r["deleted"] == [stored_hash]
    verify(
        bytes.fromhex(sw.order[1]),
        P.ns_action_result_text(c.account, NOW, [stored_hash]),
        base64.b64decode(r["signature"]),
    )
    st, _body = await call(n, c.delete_all())  # the same request direct from a client: 406
    assert st == 406


async def test_info_batch_sequence_ifelse(swarm):
    sw = swarm
    c = sw.client_in_swarm()
    st, info = await call(sw.node(0), {"method": "info", "params": {}})
    assert st == 200 and info == {"version": [2, 8, 0], "timestamp": NOW, "t": NOW, "hf": [19, 4]}
    batch = {
        "method": "batch",
        "params": {"requests": [c.store(b"b1"), c.store(b"b2", ns=3, sign=False), c.retrieve()]},
    }
    st, body = await call(sw.node(1), batch)
    assert st == 200
    codes = [r["code"] for r in body["results"]]
    assert codes[:2] == [200, 401]
    assert body["results"][1]["body"] == "store: signature required to store to namespace 3"
    seq = {
        "method": "sequence",
        "params": {"requests": [c.store(b"s1"), c.store(b"s2", ttl=1), c.store(b"s3")]},
    }
    st, body = await call(sw.node(2), seq)
    assert st == 200 and [r["code"] for r in body["results"]] == [200, 403]
    st, got = await call(sw.node(3), c.retrieve())
    assert {base64.b64decode(m["data"]) for m in got["messages"]} == {b"b1", b"s1"}
    ife = {
        "method": "ifelse",
        "params": {
            "if": {"hf_at_least": [19, 4]},
            "then": {"method": "info", "params": {}},
            "else": c.store(b"x"),
        },
    }
    st, body = await call(sw.node(4), ife)
    assert st == 200 and body["condition"] is True and body["result"]["code"] == 200
    assert body["result"]["body"]["version"] == [2, 8, 0]
    ife["params"]["if"] = {"v_at_least": [3]}
    st, body = await call(sw.node(4), ife)
    assert body["condition"] is False and body["result"]["body"]["swarm"]


async def test_oxend_request():
    sw = LocalSwarm([MemoryMessageStore() for _ in range(5)])
    n = sw.node(0)
    st, body = await call(
        n, {"method": "oxend_request", "params": {"endpoint": "get_service_nodes"}}
    )
    assert (st, body) == (400, "Unknown oxend error")

    async def oxend(endpoint, params):
        return P.service_nodes_result(sw.map.nodes, params)

    n.oxend = oxend
    st, body = await call(
        n,
        {
            "method": "oxend_request",
            "params": {
                "endpoint": "get_service_nodes",
                "params": {
                    "active_only": True,
                    "fields": {"public_ip": True, "pubkey_ed25519": True, "swarm_id": True},
                },
            },
        },
    )
    assert st == 200 and body["t"] == NOW
    states = body["result"]["service_node_states"]
    assert len(states) == 10 and set(states[0]) == {"public_ip", "pubkey_ed25519", "swarm_id"}


async def test_subaccount_revocation_flow():
    """A group (03) account: a member token can store/retrieve until the admin revokes it."""
    from rpc_helpers import Client
    from session.identity import Identity

    sw = LocalSwarm([MemoryMessageStore() for _ in range(5)])
    group = sw.client_in_swarm(group=True)
    member = Identity.generate()
    token = bytes([0x03, int(P.Access.READ | P.Access.WRITE), 0, 0]) + member.ed25519_public
    tok_sig = group.ident.sign(token)

    def sub_auth(text: str) -> dict:
        return {
            "signature": b64(member.sign(text.encode())),
            "subaccount": b64(token),
            "subaccount_sig": b64(tok_sig),
        }

    store = {
        "method": "store",
        "params": {
            "pubkey": group.account,
            "namespace": 11,
            "timestamp": NOW,
            "ttl": 3_600_000,
            "data": b64(b"grp"),
            **sub_auth(f"store11{NOW}"),
        },
    }
    st, body = await call(sw.node(0), store)
    assert st == 200, body
    retrieve = {
        "method": "retrieve",
        "params": {
            "pubkey": group.account,
            "namespace": 11,
            "timestamp": NOW,
            **sub_auth(f"retrieve11{NOW}"),
        },
    }
    st, body = await call(sw.node(1), retrieve)
    assert st == 200 and len(body["messages"]) == 1
    # a read|write token cannot delete
    h = body["messages"][0]["hash"]
    st, _ = await call(
        sw.node(1),
        {
            "method": "delete",
            "params": {"pubkey": group.account, "messages": [h], **sub_auth("delete" + h)},
        },
    )
    assert st == 401
    revoke = {
        "method": "revoke_subaccount",
        "params": {
            "pubkey": group.account,
            "revoke": [b64(token)],
            "timestamp": NOW,
            **Client.auth(group, f"revoke_subaccount{NOW}".encode() + token),
        },
    }
    st, body = await call(sw.node(2), revoke)
    assert st == 200
    check_member_signatures(
        sw, body["swarm"], lambda r: P.revoke_result_text(group.account, NOW, [token])
    )
    st, body = await call(sw.node(3), retrieve)
    assert (st, body) == (401, "retrieve signature verification failed")
    unrevoke = {
        "method": "unrevoke_subaccount",
        "params": {
            "pubkey": group.account,
            "unrevoke": [token.hex()],
            "timestamp": NOW,
            **Client.auth(group, f"unrevoke_subaccount{NOW}".encode() + token),
        },
    }
    st, body = await call(sw.node(2), unrevoke)
    assert st == 200 and all(r["count"] == 1 for r in body["swarm"].values())
    st, body = await call(sw.node(3), retrieve)
    assert st == 200
