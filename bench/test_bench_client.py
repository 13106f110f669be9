"""Client benchmarks.

* ``client-backlog-10000``: decrypt + verify + parse a backlog of 10,000 stored 1:1 messages
  (base64 WebSocketMessage → Envelope → sealed box → Content) with the batch API
  (``messages.open_many``: one native ``decrypt_many`` call, GIL released, all cores) against
  one ``messages.open_stored`` call per message. ``extra_info["messages"]`` is the backlog size;
  messages/s = messages / mean time.
* ``client-onion-send`` (integration: a 6-node loopback devnet): the onion round trip of one
  ``store`` of a sealed message into the recipient's swarm (client → guard → 2 relays →
  swarm member and back), with ``extra_info`` p50/p99 over 60 sends measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from session.client import messages as M
from session.identity import Identity

SENDER = Identity.from_seed(bytes(range(16)))
RECIPIENT = Identity.from_seed(bytes(range(16, 32)))
BACKLOG = 10_000


@pytest.fixture(scope="module")
def backlog() -> list[tuple[str, str, int]]:
    rows = []
    for i in range(BACKLOG):
        c = M.text(f"backlog message {i}", sent_ms=1_700_000_000_000 + i, display_name="S")
        rows.append((f"h{i}", M.seal(SENDER, RECIPIENT.session_id, c, 1_700_000_000_000 + i), 0))
    return rows


def _check(out: list[Any]) -> bool:
    return len(out) == BACKLOG and all(
        isinstance(o, M.Incoming)
        and o.sender == SENDER.session_id
        and o.content.dataMessage.body == f"backlog message {i}"
        for i, o in enumerate(out)
    )


@pytest.mark.parametrize("impl", ["batch", "per-message"])
def test_bench_backlog_decrypt(
    benchmark: Any, backlog: list[tuple[str, str, int]], impl: str
) -> None:
    benchmark.group = "client-backlog-10000"
    benchmark.extra_info["messages"] = BACKLOG
    if impl == "batch":

        def run() -> list[Any]:
            return M.open_many(RECIPIENT, backlog)
    else:

        def run() -> list[Any]:
            return [M.open_stored(RECIPIENT, h, d, e) for h, d, e in backlog]

    out = benchmark.pedantic(run, rounds=3, iterations=1)
    ok = _check(out)
    benchmark.extra_info.update(correct=ok, checked="every message opened: sender and body")
    assert ok


@pytest.mark.integration
def test_bench_onion_send_round_trip(benchmark: Any, tmp_path: Path) -> None:
    from session.client import Client
    from session.devnet import Devnet

    benchmark.group = "client-onion-send"
    with Devnet(tmp_path / "devnet", nodes=6) as net:
        loop = asyncio.new_event_loop()
        try:
            c = Client.open(tmp_path / "a", str(net.dir / "nodes.json"), background=False)
            loop.run_until_complete(c.start())
            counter = [0]

            def one() -> str | None:
                counter[0] += 1
                now = c.clock.now_ms()
                data = M.seal(
                    c.identity,
                    RECIPIENT.session_id,
                    M.text(f"bench {counter[0]}", sent_ms=now),
                    now,
                )
                return loop.run_until_complete(
                    c.rpc.store(RECIPIENT.session_id, 0, data, now + 60_000)
                )

            one()  # warm up paths, TLS and the clock offset
            samples = []
            for _ in range(60):
                t0 = time.perf_counter()
                h = one()
                samples.append((time.perf_counter() - t0) * 1000)
                assert h and len(h) == 43
            q = statistics.quantiles(samples, n=100)
            benchmark.extra_info.update(
                p50_ms=round(q[49], 2), p99_ms=round(q[98], 2), sends=len(samples)
            )
            h = benchmark.pedantic(one, rounds=10, iterations=1)
            ok = bool(h) and len(str(h)) == 43
            benchmark.extra_info.update(correct=ok, checked="the swarm answered a message hash")
            assert ok
            loop.run_until_complete(c.close())
        finally:
            loop.close()
