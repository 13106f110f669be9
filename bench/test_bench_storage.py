"""Store and retrieve rates through RpcHandler on SQLite, each beside a raw-sqlite3 floor of the
same rows measured in the same run."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3

import pytest

from session.storage import SqliteMessageStore
from session.testing.rpc import NOW, LocalSwarm

BATCH = 200  # messages per measured round
DATA = 1000  # bytes per message (a typical padded Session message is ~1 KB)


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _node(loop, tmp_path):
    store = loop.run_until_complete(SqliteMessageStore.open(tmp_path / "bench.db", max_bytes=None))
    sw = LocalSwarm([store], n_swarms=1)
    return store, sw


def test_store_rpc(benchmark, loop, tmp_path):
    benchmark.group = "storage-store"
    store, sw = _node(loop, tmp_path)
    node = sw.node(0)
    client = sw.client_in_swarm()
    counter = itertools.count()

    def bodies():
        return [
            json.dumps(client.store(next(counter).to_bytes(8, "big") * (DATA // 8))).encode()
            for _ in range(BATCH)
        ]

    async def round_(bs):
        return await asyncio.gather(*(node.handle_client(b) for b in bs))

    def setup():
        return (bodies(),), {}

    results = benchmark.pedantic(
        lambda bs: loop.run_until_complete(round_(bs)), setup=setup, rounds=5
    )
    answered = all(st == 200 for st, _ in results)
    total = next(counter)
    stats = loop.run_until_complete(store.stats())
    ok = answered and stats.messages == total  # every stored message landed
    benchmark.extra_info.update(messages_per_round=BATCH, data_bytes=DATA, path="RpcHandler+SQLite")
    benchmark.extra_info.update(
        correct=ok, checked="last round all 200; the store holds every message of every round"
    )
    assert answered
    assert stats.messages == total
    loop.run_until_complete(store.close())


def test_store_raw_sqlite_floor(benchmark, tmp_path):
    benchmark.group = "storage-store"
    conn = sqlite3.connect(tmp_path / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, hash TEXT UNIQUE, owner INTEGER,"
        " namespace INTEGER, timestamp INTEGER, expiry INTEGER, data BLOB)"
    )
    counter = itertools.count()

    def setup():
        rows = []
        for _ in range(BATCH):
            i = next(counter)
            rows.append((f"h{i}", 1, 0, NOW, NOW + 86_400_000, i.to_bytes(8, "big") * (DATA // 8)))
        return (rows,), {}

    def insert(rows):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO messages (hash, owner, namespace, timestamp, expiry, data)"
            " VALUES (?,?,?,?,?,?)",
            rows,
        )
        conn.execute("COMMIT")

    benchmark.pedantic(insert, setup=setup, rounds=5)
    ok = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == next(counter)
    benchmark.extra_info.update(messages_per_round=BATCH, data_bytes=DATA, path="raw sqlite3 floor")
    benchmark.extra_info.update(correct=ok, checked="the table holds every row of every round")
    assert ok
    conn.close()


def test_retrieve_rpc(benchmark, loop, tmp_path):
    benchmark.group = "storage-retrieve"
    store, sw = _node(loop, tmp_path)
    node = sw.node(0)
    client = sw.client_in_swarm()

    async def fill():
        for i in range(BATCH):
            st, _ = await node.handle_client(
                json.dumps(client.store(i.to_bytes(8, "big") * (DATA // 8))).encode()
            )
            assert st == 200

    loop.run_until_complete(fill())
    body = json.dumps(client.retrieve(max_count=BATCH)).encode()

    def run():
        return loop.run_until_complete(node.handle_client(body))

    st, out = benchmark(run)
    got = json.loads(out)
    ok = st == 200 and len(got["messages"]) == BATCH and not got["more"]
    benchmark.extra_info.update(
        messages_per_call=BATCH, data_bytes=DATA, path="RpcHandler+SQLite (signed)"
    )
    benchmark.extra_info.update(correct=ok, checked="200 with all stored messages, no more")
    assert ok
    loop.run_until_complete(store.close())


def test_retrieve_raw_sqlite_floor(benchmark, tmp_path):
    benchmark.group = "storage-retrieve"
    conn = sqlite3.connect(tmp_path / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, hash TEXT UNIQUE, owner INTEGER,"
        " namespace INTEGER, timestamp INTEGER, expiry INTEGER, data BLOB)"
    )
    conn.execute("CREATE INDEX messages_owner ON messages(owner, namespace, id)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO messages (hash, owner, namespace, timestamp, expiry, data)"
        " VALUES (?,?,?,?,?,?)",
        [(f"h{i}", 1, 0, NOW, NOW + 1, i.to_bytes(8, "big") * (DATA // 8)) for i in range(BATCH)],
    )
    conn.execute("COMMIT")

    def run():
        return conn.execute(
            "SELECT hash, data, timestamp, expiry FROM messages WHERE owner = ? AND namespace = ?"
            " AND id > ? ORDER BY id LIMIT ?",
            (1, 0, 0, BATCH + 1),
        ).fetchall()

    rows = benchmark(run)
    ok = len(rows) == BATCH
    benchmark.extra_info.update(messages_per_call=BATCH, data_bytes=DATA, path="raw sqlite3 floor")
    benchmark.extra_info.update(correct=ok, checked="every stored row selected")
    assert ok
    conn.close()
