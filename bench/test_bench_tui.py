"""``session tui`` at idle with 50 conversations and 10,000 stored messages (issue 15's goal:
under 60 MB RSS and under 1 % CPU; opening the conversation of 10,000 messages instant).

Each side runs in its own process (``bench/tui_probe.py``) for a clean resident set:
``extra_info`` holds the TUI's RSS and idle CPU, the same client without a UI as baseline
(``rss_ratio``), and the time to open the conversation of 10,000 messages against one of 200
(``open_ratio``: ≈ 1 means paging makes the size irrelevant). Figures, not asserts on time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from session.client import Client

PROBE = Path(__file__).with_name("tui_probe.py")
CONVERSATIONS = 50
BIG = 10_000 - (CONVERSATIONS - 1) * 200  # one long conversation; the rest 200 each
IDLE_S = 5.0


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile with 50 accepted conversations holding 10,000 messages in all."""
    root = tmp_path_factory.mktemp("tui-bench")
    c = Client.open(root, background=False)
    base = 1_700_000_000_000
    with c.db.tx():
        for k in range(CONVERSATIONS):
            peer = "05" + f"{k:02x}" * 32
            c.db.upsert_contact(peer, name=f"Peer {k}", approved=1)
            n = BIG if k == 0 else 200
            for i in range(n):
                mine = i % 3 == 0
                c.db.add_message(
                    conversation=peer,
                    author=c.session_id if mine else peer,
                    sent_ms=base + i * 60_000,
                    outgoing=mine,
                    body=f"message {i} of conversation {k}",
                    status="sent" if mine else "read",
                )
    assert sum(s.count for s in c.conversations()) == 10_000
    c.db.close()
    return root


def probe(profile: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(PROBE), str(profile), mode, str(IDLE_S)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, float] = json.loads(out.stdout)
    return doc


def test_bench_tui_idle(benchmark: Any, profile: Path) -> None:
    benchmark.group = "tui-idle"
    ui = benchmark.pedantic(lambda: probe(profile, "ui"), rounds=1, iterations=1)
    base = probe(profile, "client")
    assert ui["loaded"] == 60  # one page of the 10,000 was read
    benchmark.extra_info.update(
        tui_rss_mb=round(ui["rss_mb"], 1),
        tui_idle_cpu_pct=round(ui["cpu_pct"], 2),
        client_rss_mb=round(base["rss_mb"], 1),
        client_idle_cpu_pct=round(base["cpu_pct"], 2),
        rss_ratio=round(ui["rss_mb"] / base["rss_mb"], 2),
        open_big_ms=round(ui["open_big_ms"], 1),
        open_small_ms=round(ui["open_small_ms"], 1),
        open_ratio=round(ui["open_big_ms"] / ui["open_small_ms"], 2),
    )
    print(json.dumps(benchmark.extra_info))
