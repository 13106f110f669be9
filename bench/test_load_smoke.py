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


def run_tool(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m ARGS`` from this checkout (whatever the current directory); its output
    printed, for the figures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", *args]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(r.stdout)
    return r


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_load_chat_smoke(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        "bench.load", "chat", "--nodes", "6", "--rate", "10/s",
        "--duration", "20", "--workers", "1", "--pairs", "3", "--out", str(out), "--quiet",
    ]  # fmt: skip
    r = run_tool(cmd, ROOT, 280)
    print(r.stderr[-3000:], file=sys.stderr)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert report.validate(doc) == []
    (step,) = doc["steps"]  # (the warm-up is not a step)
    warm = doc["extra"]["warmup"]
    assert warm["offered_per_s"] == 10 and warm["lost"] == 0 and warm["delivered"] > 0
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
    cmd = ["bench.load.clientcpu", "--nodes", "5", "--messages", "12", "--warmup", "3"]
    r = run_tool(cmd, tmp_path, 180)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["messages"] == doc["received"] == 12
    assert doc["cpu_us"] > 0 and doc["loop_thread_us"] > 0
    assert doc["cpu_us"] >= doc["loop_thread_us"]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_load_slo_search(tmp_path: Path) -> None:
    """``--slo`` end to end: an objective no network can meet (p50 ≤ 1 µs) fails at every rate,
    so the search halves from its start, two steps; the result says so in its ``capacity``."""
    out = tmp_path / "run"
    cmd = [
        "bench.load", "chat", "--nodes", "5", "--rate", "4/s", "--slo", "p50=0.001",
        "--search-steps", "2", "--duration", "3", "--workers", "1", "--pairs", "2",
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    r = run_tool(cmd, ROOT, 280)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert report.validate(doc) == []
    assert [s["offered_per_s"] for s in doc["steps"]] == [4.0, 2.0]
    assert all(s["delivered"] == s["sent"] > 0 for s in doc["steps"])
    cap = doc["extra"]["capacity"]
    assert cap["objective_ms"] == {"p50": 0.001}
    assert cap["meets_up_to_per_s"] is None and cap["fails_at_per_s"] == 2.0
    assert cap["fails_because"].startswith("p50 ")
    assert [s["met"] for s in cap["steps"]] == [False, False]
    assert "not met at any rate tried (lowest 2/s" in r.stdout
