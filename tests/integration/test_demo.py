"""The README's main demo, end to end, as a user runs it (``python3 -m session.cli.demo``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_and_every_check_passes(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    out = subprocess.run([sys.executable, "-m", "session.cli.demo", "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for needle in (
        "14 nodes in 2 swarms",
        "Bob decrypted: “Hi Bob, it's Alice. Lunch at the usual place at noon?”",
        "[message request]",
        "Alice decrypted: “Hi Alice! Noon works, see you there.”",
        "Bob got a read receipt",
        "← Alice's message",
        "✓ Alice's message is stored under Bob's ID",
        "✓ Alice's key opens none of them",
        "✓ no sender column",
        "✓ no message stored for Bob contains Alice's Session ID or keys",
        "✓ no plaintext in any node file",
        "✓ Alice's signing key (Ed25519) is on no node in any form",
        "✓ 14 nodes and the registry stopped cleanly (exit status 0)",
        "all checks passed",
    ):
        assert needle in text, f"missing {needle!r} in:\n{text}"
    assert "✗" not in text
    # Onion routes are printed as "who → relay → relay → relay ⇒ destination".
    routes = [line for line in text.splitlines() if "⇒" in line]
    assert len(routes) >= 4 and all(line.count("→") == 3 for line in routes)
    # --data-dir is kept: the nodes' stores and both profiles are there to look at.
    assert len(list((data / "devnet").glob("node-*/db/storage.db"))) == 14
    assert (data / "profiles" / "alice" / "current").is_file()


def test_demo_rejects_too_few_nodes() -> None:
    out = subprocess.run([sys.executable, "-m", "session.cli.demo", "--nodes", "2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--nodes" in out.stderr
