"""The load tool end to end, once per CI run: ``python -m bench.load chat`` for 20 seconds at a
low rate on its own small devnet. It prints the run's figures; it asserts only correctness
(nothing acknowledged was lost, every message sent arrived, the JSON follows its schema, the
plots were written, ``--compare`` reads the result back), never a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load import report

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_load_chat_smoke(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "bench.load", "chat", "--nodes", "6", "--rate", "10/s",
        "--duration", "20", "--workers", "1", "--pairs", "3", "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    print(r.stdout)
    print(r.stderr[-3000:], file=sys.stderr)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert report.validate(doc) == []
    (step,) = doc["steps"]
    assert step["lost"] == 0
    assert step["sent"] == 200  # 10/s for 20 s, open loop
    assert step["delivered"] == step["sent"], (step["errors"], step["delivered"])
    assert step["latency_ms"]["count"] == step["delivered"]
    assert all(n["cpu_s"] > 0 and n["rss_mb"] > 0 for n in step["nodes"])
    for name in ("latency-throughput.png", "timeline.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # --compare reads a result back and prints ratios (1.0 against itself)
    rows = report.compare(doc, report.load(out / "result.json"))
    assert {row[4] for row in rows if row[0] == step["name"] and row[2]} == {1.0}


@pytest.mark.integration
@pytest.mark.timeout(200)
def test_client_cpu_per_message_tool(tmp_path: Path) -> None:
    """``python -m bench.load.clientcpu`` on its own 5-node devnet: every message sent is
    received and the per-thread CPU figures come out (their values are not asserted)."""
    cmd = [
        sys.executable, "-m", "bench.load.clientcpu", "--nodes", "5", "--messages", "12",
        "--warmup", "3",
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    print(r.stdout)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["messages"] == doc["received"] == 12
    assert doc["cpu_us"] > 0 and doc["loop_thread_us"] > 0
    assert doc["cpu_us"] >= doc["loop_thread_us"]
