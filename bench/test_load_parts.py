"""The load tool's pieces that need no network: rate parsing, the result schema check, the
comparison, the profile summary, store-scale checkpoints, the worker's error kinds, the
community scenario's schedule and member bookkeeping, and the per-thread CPU readers."""

from __future__ import annotations

import argparse
import copy
import json
import os
import threading
import time
from pathlib import Path

import pytest

from bench.load import report
from bench.load.cli import build_parser, parse_rate, profile_summary
from bench.load.community import Member, schedule
from bench.load.probe import thread_cpu_ns, threads
from bench.load.storescale import checkpoints
from bench.load.worker import HEX_RUN, error_kind
from session.client.transport import PathFailure
from session.errors import NetworkError, NodeRequestFailed
from session.identity import Identity

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
    for name in ("chat", "burst", "backlog", "churn", "kill", "fanout", "store-scale", "community"):
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


def test_community_schedule_is_open_loop_and_spread() -> None:
    """Every member polls every interval, the members spread over it; posts at the rate,
    posters in turn; all in order of when they are due and none at or past the end."""
    got = list(schedule(members=4, interval=5.0, posters=2, rate=2.0, duration=10.0))
    dues = [d for d, *_ in got]
    assert dues == sorted(dues) and max(dues) < 10.0
    polls = [(d, who, n) for d, kind, who, n in got if kind == "poll"]
    posts = [(d, who, n) for d, kind, who, n in got if kind == "post"]
    assert len(polls) == 8  # 4 members x 2 intervals
    assert sorted(d for d, who, _ in polls if who == 1) == [1.25, 6.25]
    assert [(d, who) for d, who, _ in posts[:3]] == [(0.0, 0), (0.5, 1), (1.0, 0)]
    assert len(posts) == 20
    assert not [x for x in schedule(3, 5.0, 1, 0.0, 10.0) if x[1] == "post"]


def test_community_member_follows_the_room() -> None:
    """A member's poll is the library's /batch poll of the lobby; the first poll lists the
    recent posts (not counted as received), later ones what is new since its seqno."""
    m = Member(Identity.generate())
    first = m.poll_requests()
    assert first[0]["path"] == "/capabilities"
    assert first[1]["path"] == "/room/lobby/pollInfo/0"
    assert first[2]["path"].startswith("/room/lobby/messages/recent?")
    assert [r["path"] for r in first[3:]] == ["/inbox", "/outbox"]
    recent = [{"id": 1, "seqno": 3}, {"id": 2, "seqno": 7}]
    assert m.apply([(200, {}), (200, {"info_updates": 4}), (200, recent)]) == 0
    assert (m.seqno, m.info_updates) == (7, 4)
    later = m.poll_requests()
    assert later[1]["path"] == "/room/lobby/pollInfo/4"
    assert later[2]["path"].startswith("/room/lobby/messages/since/7?")
    assert m.apply([(200, {}), (200, {"info_updates": 4}), (200, [{"seqno": 9}])]) == 1
    assert m.seqno == 9
    assert m.apply([(200, {}), (500, None), (500, None)]) == 0  # a refused part changes nothing
    assert (m.seqno, m.info_updates) == (9, 4)
    empty = Member(Identity.generate())
    assert empty.apply([(200, {}), (200, {}), (200, [])]) == 0
    assert empty.poll_requests()[2]["path"].startswith("/room/lobby/messages/since/0?")


def test_thread_readers_see_each_thread_of_a_process() -> None:
    """``thread_cpu_ns`` (per thread, the scheduler's ns) and ``threads`` (by kind, ticks) read
    the same /proc threads: a thread that spins is in both, and its clock moves."""
    started, stop = threading.Event(), threading.Event()
    tid = 0

    def spin() -> None:
        nonlocal tid
        tid = threading.get_native_id()
        started.set()
        while not stop.is_set():
            pass

    th = threading.Thread(target=spin)
    th.start()
    try:
        assert started.wait(10)
        before = thread_cpu_ns(os.getpid())
        assert {os.getpid(), tid} <= set(before)
        end = time.monotonic() + 10
        while thread_cpu_ns(os.getpid())[tid] <= before[tid] and time.monotonic() < end:
            time.sleep(0.001)
        assert thread_cpu_ns(os.getpid())[tid] > before[tid]
        kinds = threads(os.getpid())
        assert {"cpu_s:loop", "cpu_s:other", "user_s", "sys_s"} <= set(kinds)
    finally:
        stop.set()
        th.join()
    # an ended thread is not listed (once the kernel has reaped it: join() returns before)
    end = time.monotonic() + 10
    while tid in thread_cpu_ns(os.getpid()) and time.monotonic() < end:
        time.sleep(0.001)
    assert tid not in thread_cpu_ns(os.getpid())
    assert thread_cpu_ns(2**22 + 1) == {} and threads(2**22 + 1) == {}  # no such process
