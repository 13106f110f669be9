"""Community client benchmarks (``community-client-poll-256``): what a member's client spends on
one full poll answer of a room, 256 posts (SOGS's largest page) from 16 members.

* ``apply``: :meth:`CommunityManager.apply_poll` as a poll runs it: every post's signature
  checked under its blinded key, the Content unpadded and parsed, the post stored (sealed) in
  the client's SQLite, in one transaction.
* ``verify-only`` (the floor, same run): only the 256 Ed25519 verifications under the blinded
  keys, which no client can skip.

``extra_info["posts"]`` is 256; posts/s = posts / mean time; apply/verify-only is the overhead
of parsing and storing on top of the cryptography.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from session import _core, blinding
from session.client import Client
from session.client import community as C
from session.groups.user_groups import CommunityEntry
from session.identity import Identity

pytestmark = pytest.mark.skipif(
    not hasattr(_core, "blinded_dm_encrypt"),
    reason="session/_core.abi3.so predates blinded DMs: rebuild it (maturin build)",
)

SERVER_PK = Identity(bytes(range(32))).x25519_public.hex()
BASE = "http://sogs.bench:8080"
POSTS = 256


@pytest.fixture(scope="module")
def answer() -> list[dict[str, Any]]:
    members = [Identity(bytes([i]) * 32) for i in range(16)]
    out = []
    for i in range(POSTS):
        who = members[i % len(members)]
        content = C.post_content(f"post {i}: lunch at noon?", sent_ms=1_700_000_000_000 + i,
                                 display_name=f"Member {i % 16}")  # fmt: skip
        data = C.encode_post(content)
        out.append(
            {
                "id": i + 1,
                "seqno": i + 1,
                "session_id": blinding.blinded15_id(who, SERVER_PK),
                "posted": 1_700_000_000.0 + i,
                "data": base64.b64encode(data).decode(),
                "signature": base64.b64encode(blinding.blind15_sign(who, SERVER_PK, data)).decode(),
            }
        )
    return out


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    c = Client.open(Path(tmp_path_factory.mktemp("bench-community")), [], background=False)
    with c.db.tx():
        c.communities.adopt_config([CommunityEntry(BASE, "lobby", bytes.fromhex(SERVER_PK))])
    yield c
    asyncio.run(c.close())


@pytest.mark.parametrize("impl", ["apply", "verify-only"])
def test_bench_poll_256(
    benchmark: Any, answer: list[dict[str, Any]], member: Client, impl: str
) -> None:
    benchmark.group = "community-client-poll-256"
    benchmark.extra_info["posts"] = POSTS
    mgr = member.communities
    reqs = [{"method": "GET", "path": "/room/lobby/messages/since/0?t=r&reactors=5"}]
    decoded = [
        (m["session_id"], base64.b64decode(m["data"]), base64.b64decode(m["signature"]))
        for m in answer
    ]
    if impl == "apply":

        def run() -> int:
            return mgr.apply_poll(BASE, reqs, [(200, answer)]).posts

        assert benchmark(run) == POSTS
        assert len(mgr.posts("lobby", limit=1000)) == POSTS
    else:

        def run() -> int:
            for sid, data, sig in decoded:
                blinding.verify_blinded(sid, data, sig)
            return len(decoded)

        assert benchmark(run) == POSTS
