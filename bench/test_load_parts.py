"""The load tool's pieces that need no network: rate parsing, the result schema check, the
comparison, the profile summary, store-scale checkpoints and the worker's error kinds."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import pytest

from bench.load import report
from bench.load.cli import build_parser, parse_rate, profile_summary
from bench.load.storescale import checkpoints
from bench.load.worker import HEX_RUN, error_kind
from session.client.transport import PathFailure
from session.errors import NetworkError, NodeRequestFailed

REFERENCE = Path(__file__).parent / "results" / "chat-x86_64-2cpu" / "result.json"


def test_parse_rate() -> None:
    assert parse_rate("500/s") == 500
    assert parse_rate("500") == 500
    assert parse_rate("30000/min") == 500
    for bad in ("fast", "0/s", "-3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rate(bad)
    args = build_parser().parse_args(["chat", "--rate", "50/s,100/s"])
    assert args.rate == [50, 100]


def test_help_lists_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for name in ("chat", "burst", "backlog", "churn", "kill", "fanout", "store-scale"):
        assert f"\n  {name}" in out


def test_reference_run_follows_the_schema() -> None:
    doc = json.loads(REFERENCE.read_text())
    assert report.validate(doc) == []
    rows = report.compare(doc, doc)
    assert rows and all(r[4] in (1.0, None) for r in rows)


def test_validate_names_what_is_wrong() -> None:
    doc = json.loads(REFERENCE.read_text())
    broken = copy.deepcopy(doc)
    del broken["steps"][0]["latency_ms"]["p99"]
    broken["steps"][1]["lost"] = "none"
    broken["floors"].pop("peel_us")
    bad = report.validate(broken)
    assert any("latency_ms: missing 'p99'" in b for b in bad)
    assert any("steps[1].lost" in b for b in bad)
    assert any("floors: missing 'peel_us'" in b for b in bad)
    assert report.validate([]) == ["the document is not a JSON object"]


def test_profile_summary(tmp_path: Path) -> None:
    (tmp_path / "raw-a.txt").write_text("main;loop;peel 3\nmain;loop;store 1\n")
    (tmp_path / "raw-b.txt").write_text("main;loop;store 4\n")
    text = profile_summary(sorted(tmp_path.glob("raw-*.txt")))
    assert "2 processes, 8 samples" in text
    self_part = text.split("-- top 40 by self")[1].split("-- top 40 by inclusive")[0]
    assert " 62.50%  store\n 37.50%  peel\n" in self_part
    assert "100.00%  loop" in text


def test_checkpoints() -> None:
    assert checkpoints(100_000) == [1000, 10_000, 100_000]
    assert checkpoints(25_000) == [1000, 10_000, 25_000]
    assert checkpoints(500) == [500]


def test_error_kinds() -> None:
    assert error_kind(NodeRequestFailed(421, "wrong swarm")) == "status 421"
    assert error_kind(PathFailure("onion request timed out")) == "timeout"
    assert error_kind(PathFailure("path error 502: Next node unreachable")) == "path 502"
    assert error_kind(NetworkError("no swarm known")) == "network"
    assert HEX_RUN.sub("…", "no swarm known for 05ab12cd34ef") == "no swarm known for …"
