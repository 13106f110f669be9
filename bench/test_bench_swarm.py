"""Swarm benchmarks.

``closest-swarm-1000``: the swarm for one account among 1,000 swarms —

* ``ours-closest_swarm``: ``session.swarm.closest_swarm`` (one linear pass in Rust, including
  converting the 1,000-int list);
* ``ours-SwarmIndex``: ``SwarmIndex.closest`` (sorted once, binary search in Rust);
* ``python-linear``: the same one-pass algorithm in pure Python (swarm space included);
* ``python-bisect``: pure Python over a pre-sorted list with ``bisect``.

``message-hash`` / ``message-hash-76k``: the storage message hash of 1 KiB / 76,800 bytes (the
largest message) — ours vs ``hashlib.blake2b`` + ``base64`` in Python.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import random

import pytest

from session import swarm

M64 = 2**64
_rng = random.Random(20240601)
SWARM_IDS = [_rng.randrange(0, M64 - 1) for _ in range(1000)]
SORTED_IDS = sorted(SWARM_IDS)
INDEX = swarm.SwarmIndex(SWARM_IDS)
ACCOUNT = "05" + _rng.randbytes(32).hex()


def py_space(account_id: str) -> int:
    key = bytes.fromhex(account_id)[1:]
    return (
        int.from_bytes(key[0:8], "big")
        ^ int.from_bytes(key[8:16], "big")
        ^ int.from_bytes(key[16:24], "big")
        ^ int.from_bytes(key[24:32], "big")
    )


def py_closest_linear(account_id: str, ids: list[int]) -> int:
    v = py_space(account_id)
    right = left = ids[0]
    dright, dleft = (right - v) % M64, (v - left) % M64
    for i in ids:
        d = (i - v) % M64
        if d < dright:
            right, dright = i, d
        d = (v - i) % M64
        if d < dleft:
            left, dleft = i, d
    return right if dright < dleft else left


def py_closest_bisect(account_id: str, ids: list[int]) -> int:
    v = py_space(account_id)
    r = bisect.bisect_left(ids, v)
    right = ids[0] if r == len(ids) else ids[r]
    left = ids[-1] if r in (0, len(ids)) else ids[r - 1]
    return right if (right - v) % M64 < (v - left) % M64 else left


EXPECTED = py_closest_linear(ACCOUNT, SWARM_IDS)


@pytest.mark.parametrize(
    "impl", ["ours-closest_swarm", "ours-SwarmIndex", "python-linear", "python-bisect"]
)
def test_bench_closest_swarm(benchmark, impl: str) -> None:
    benchmark.group = "closest-swarm-1000"
    benchmark.extra_info.update(impl=impl, swarms=len(SWARM_IDS))
    if impl == "ours-closest_swarm":
        got = benchmark(swarm.closest_swarm, ACCOUNT, SWARM_IDS)
    elif impl == "ours-SwarmIndex":
        got = benchmark(INDEX.closest, ACCOUNT)
    elif impl == "python-linear":
        got = benchmark(py_closest_linear, ACCOUNT, SWARM_IDS)
    else:
        got = benchmark(py_closest_bisect, ACCOUNT, SORTED_IDS)
    ok = got == EXPECTED
    benchmark.extra_info.update(correct=ok, checked="same swarm as the pure-Python linear scan")
    assert ok


def py_message_hash(account_id: str, namespace: int, data: bytes) -> str:
    ns = b"" if namespace == 0 else str(namespace).encode()
    digest = hashlib.blake2b(bytes.fromhex(account_id) + ns + data, digest_size=32).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


@pytest.mark.parametrize("impl", ["ours", "python-hashlib"])
@pytest.mark.parametrize(("group", "size"), [("message-hash", 1024), ("message-hash-76k", 76_800)])
def test_bench_message_hash(benchmark, impl: str, group: str, size: int) -> None:
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, data_bytes=size, namespace=2)
    data = random.Random(size).randbytes(size)
    fn = swarm.message_hash if impl == "ours" else py_message_hash
    got = benchmark(fn, ACCOUNT, 2, data)
    ok = got == py_message_hash(ACCOUNT, 2, data)
    benchmark.extra_info.update(correct=ok, checked="same hash as hashlib.blake2b + base64")
    assert ok
