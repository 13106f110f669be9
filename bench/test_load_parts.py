"""The load tool's pieces that need no network: rate parsing, the result schema check, the
comparison, the profile summary, store-scale checkpoints, the worker's error kinds, the
community scenario's schedule and member bookkeeping, and the per-thread CPU readers."""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.figure
import pytest

from bench.load import cli, report
from bench.load.cli import build_parser, parse_rate, profile_summary
from bench.load.community import Member, schedule
from bench.load.probe import thread_cpu_ns, threads
from bench.load.search import RateSearch, parse_slo, shortfall
from bench.load.storescale import checkpoints
from bench.load.worker import HEX_RUN, due_times, error_kind
from session.client.transport import PathFailure
from session.devnet import DevnetError
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


def test_live_percentiles_are_the_summarys() -> None:
    h = report.new_histogram()
    assert report.live_percentiles(h) == {"p50": 0.0, "p99": 0.0}
    for i in range(1, 2001):  # 1 ms .. 2 s, evenly
        report.record(h, i / 1000)
    s = report.summary(h)
    live = report.live_percentiles(h)
    assert live == {"p50": s["p50"], "p99": s["p99"]}
    assert 990 <= live["p50"] <= 1010 and 1970 <= live["p99"] <= 1990


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("p75=10", "not an objective: 'p75=10'"),
        ("p99", "not an objective: 'p99'"),
        ("p99=soon", "p99: not a number of milliseconds"),
        ("p50=0", "p50 must be positive"),
        ("p50=10,p50=12", "p50 given twice"),
        (",", "names at least one percentile"),
    ],
)
def test_slo_text_is_checked(text: str, said: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=said):
        parse_slo(text)


def test_slo_text() -> None:
    assert parse_slo("p50=15, P99=60ms") == {"p50": 15.0, "p99": 60.0}
    assert parse_slo("p90=2.5") == {"p90": 2.5}


def step_result(p50: float, p99: float, lost: int = 0, errors: int = 0) -> dict[str, Any]:
    return {
        "lost": lost,
        "errors": {"timeout": errors} if errors else {},
        "latency_ms": {"p50": p50, "p90": p99, "p99": p99},
    }


def test_shortfall_names_each_miss() -> None:
    slo = {"p50": 15.0, "p99": 60.0}
    assert shortfall(step_result(7, 51), slo) == ""
    assert shortfall(step_result(7, 61.25), slo) == "p99 61.2 ms > 60"
    assert shortfall(step_result(20, 80, lost=2, errors=3), slo) == (
        "2 lost, 3 errors, p50 20.0 ms > 15, p99 80.0 ms > 60"
    )


def search_against(capacity: float, start: float, steps: int = 8) -> RateSearch:
    """A search whose steps pass exactly up to ``capacity`` messages/s."""
    rs = RateSearch(start, max_steps=steps)
    while (r := rs.next_rate()) is not None:
        rs.record(r, "" if r <= capacity else "p99 too high")
    return rs


def test_rate_search_doubles_then_bisects() -> None:
    rs = search_against(300, 50)
    assert [r for r, _, _ in rs.tried] == [50, 100, 200, 400, 300, 350, 325]
    assert rs.best() == 300 and rs.first_failing() == (325, "p99 too high")
    s = rs.summary({"p99": 60.0})
    assert s["meets_up_to_per_s"] == 300 and s["fails_at_per_s"] == 325
    assert [x["met"] for x in s["steps"]] == [True, True, True, False, True, False, False]
    assert "held up to 300/s; 325/s did not (p99 too high)" in rs.sentence({"p99": 60.0})


def test_rate_search_halves_when_the_start_fails_and_stops_within_budget() -> None:
    rs = search_against(30, 200, steps=4)
    assert [r for r, _, _ in rs.tried] == [200, 100, 50, 25]
    assert rs.best() == 25 and rs.first_failing() == (50, "p99 too high")
    never = search_against(0, 4)
    assert [r for r, _, _ in never.tried] == [4, 2, 1]  # not below 1/s
    assert never.best() is None and "not met at any rate tried (lowest 1/s" in never.sentence(
        {"p50": 1.0}
    )
    # doubling never repeats a rate, however small the start (a rate of 0/s stops a worker)
    small = RateSearch(0.2, max_steps=5)
    assert small.next_rate() == 0.2
    small.record(0.2, "")
    assert small.next_rate() is None
    always = search_against(10**6, 10, steps=3)
    assert [r for r, _, _ in always.tried] == [10, 20, 40]
    assert "held at every rate tried, up to 40/s" in always.sentence({"p50": 1.0})


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


# ---------------------------------------------------------------------- bad inputs
# Each refused with one line naming the option, before a devnet starts or anything is written.

KEY = "ab" * 32


def node_list(ip: str) -> dict[str, object]:
    return {
        "service_node_states": [
            {
                "public_ip": ip,
                "storage_port": 1,  # a port nothing listens on
                "storage_lmq_port": 2,
                "pubkey_ed25519": KEY,
                "pubkey_x25519": KEY,
                "swarm_id": 1,
            }
        ]
    }


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["chat", "--duration", "0"], "--duration must be positive, got 0"),
        (["chat", "--duration", "nan"], "--duration must be positive, got nan"),
        (["chat", "--count", "0"], "--count must be at least 1, got 0"),
        (["backlog", "--count", "-5"], "--count must be at least 1, got -5"),
        (["chat", "--nodes", "0"], "--nodes must be at least 3"),
        (["chat", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["chat", "--saturate", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["burst", "--burst", "0"], "--burst must be at least 1, got 0"),
        (["churn", "--churn-every", "0"], "--churn-every must be positive"),
        (["churn", "--duration", "5"], "churn: no node would change in a 5 s step"),
        (["chat", "--drain", "-1"], "--drain must not be negative"),
        (["chat", "--warmup", "-1"], "--warmup must be a number of seconds, 0 or more"),
        (["kill", "--rate", "5/s,10/s"], "kill runs one step: give one --rate"),
        (["burst", "--saturate"], "--saturate is for the chat scenario"),
        (["chat", "--bulk-fill"], "--bulk-fill is for the store-scale scenario"),
        (["chat", "--node-env", "FOO"], "--node-env wants SESSION_NODE_…=VALUE, got 'FOO'"),
        (["kill", "--network", "n.json"], "kill needs the devnet the tool starts itself"),
        (["store-scale", "--bulk-fill", "--network", "n.json"], "--bulk-fill needs the devnet"),
        (["info", "--network", "x.json"], "--network: not for the request scenarios"),
        (["info", "--compare", "x.json"], "--compare: not for the request scenarios"),
        (["nosuch"], "unknown scenario 'nosuch'"),
        (["chat", "--target", "oxenss"], "--target oxenss is for request scenarios"),
        (["burst", "--slo", "p99=60"], "--slo is for the chat scenario"),
        (["chat", "--slo", "p99=60", "--rate", "5/s,10/s"], "give at most one --rate"),
        (["chat", "--slo", "p99=60", "--saturate"], "--slo chooses its own rates"),
        (["chat", "--slo", "p99=60", "--profile"], "profile a rate of your choosing"),
        (["chat", "--slo", "p99=60", "--search-steps", "1"], "--search-steps must be at least 2"),
        (["chat", "--slo", "p99=60", "--rate", "0.2/s"], "must be at least 1/s for a search"),
        (["chat", "--search-steps", "4"], "--search-steps is for a --slo search"),
        (["burst", "--warmup", "2"], "--warmup is for the chat scenario"),
        (["chat", "--warmup", "inf"], "--warmup must be a number of seconds, 0 or more"),
        (["info", "--search-steps", "3"], "--search-steps: not for the request scenarios"),
        (["info", "--slo", "p99=60"], "--slo: not for the request scenarios"),
    ],
)
def test_bad_options_are_refused_by_name(argv: list[str], said: str) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert isinstance(e.value.code, str) and said in e.value.code


def test_a_negative_rate_gets_the_rates_own_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse reads ``-5/s`` as an option ("expected one argument"); the tool says why."""
    with pytest.raises(SystemExit) as e:
        cli.main(["chat", "--rate", "-5/s"])
    assert e.value.code == 2
    assert "a rate must be positive: '-5/s'" in capsys.readouterr().err


def test_network_files_that_are_not_a_loopback_node_list(tmp_path: Path) -> None:
    cases = {
        "missing.json": (None, "cannot read it"),
        "bad.json": ("{bad", "not a node list"),
        "list.json": ("[1]", "not a node list (node list is not a JSON object)"),
        "empty.json": ('{"service_node_states": []}', "the node list is empty"),
        "remote.json": (json.dumps(node_list("10.1.2.3")), "10.1.2.3 is not a loopback"),
    }
    for name, (text, said) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(SystemExit) as e:
            cli.main(["chat", "--network", str(path), "--out", str(tmp_path / "out")])
        assert isinstance(e.value.code, str) and said in e.value.code, name
    assert not (tmp_path / "out").exists()
    # loopback, but nothing runs there
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(node_list("127.0.0.9")))
    assert [n.public_ip for n in cli.read_network(stale)] == ["127.0.0.9"]
    with pytest.raises(SystemExit, match="no process listens on any of its nodes' ports"):
        cli.Network(argparse.Namespace(network=str(stale)), tmp_path)


@pytest.fixture
def no_floors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Runs that stop before the network: floors not measured, temporary files under
    tmp_path/tmp (returned) to check that nothing is left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(cli.floors, "measure", lambda: {"peel_us": 1.0})
    return tmp


def test_out_and_compare_are_checked_before_the_run(tmp_path: Path, no_floors: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(SystemExit, match="exists and is not a directory"):
        cli.main(["chat", "--out", str(a_file)])
    out = tmp_path / "out"
    for name, text, said in (
        ("missing.json", None, "cannot read it"),
        ("bad.json", "{bad", "Expecting property name"),
        ("other.json", '{"schema": "x"}', "is not a bench.load result"),
    ):
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(SystemExit) as e:
            cli.main(["chat", "--compare", str(path), "--out", str(out)])
        assert isinstance(e.value.code, str) and e.value.code.startswith("--compare ")
        assert said in e.value.code
        # the empty results directory it made is gone again, and so is its temporary one
        assert not out.exists() and list(no_floors.iterdir()) == []


def test_a_devnet_that_does_not_start_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_floors: Path
) -> None:
    class Broken:
        def __init__(self, *_: object, **__: object) -> None:
            pass

        def start(self) -> None:
            raise DevnetError("registry did not start")

    monkeypatch.setattr(cli, "Devnet", Broken)
    with pytest.raises(SystemExit, match=r"^the devnet did not start: registry did not start$"):
        cli.main(["chat", "--nodes", "3", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists() and list(no_floors.iterdir()) == []


def test_ctrl_c_ends_cleanly(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_floors: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C (or SIGTERM) once the devnet runs: no traceback, exit 130, the devnet stopped,
    nothing left behind."""
    stopped: list[bool] = []

    class Started:
        def __init__(self, path: Path, *_: object, **__: object) -> None:
            self.dir = path
            self.nodes: list[object] = []

        def start(self) -> None:
            pass

        def stop(self) -> None:
            stopped.append(True)

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "Devnet", Started)
    monkeypatch.setattr(cli.Run, "idle_rate", interrupted)
    assert cli.main(["chat", "--nodes", "3", "--out", str(tmp_path / "out")]) == 130
    assert stopped == [True]
    assert "interrupted; the workers and the devnet are stopped" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and list(no_floors.iterdir()) == []


# ---------------------------------------------------------------------- open-loop schedule


def test_workers_share_the_count_and_interleave_their_sends() -> None:
    """--count 5 over 2 workers is 3 + 2 messages (it was 2 + 2; --count 1 sent 2), and at
    --rate R the workers' messages are due at t0 + i/R together, not two at a time."""
    assert [cli.worker_share(5, 2, w) for w in range(2)] == [3, 2]
    assert [cli.worker_share(1, 2, w) for w in range(2)] == [1, 0]
    assert sum(cli.worker_share(1001, 7, w) for w in range(7)) == 1001
    rate, workers, t0, end = 10.0, 2, 100.0, 101.0
    due = sorted(
        t for wid in range(workers) for t in due_times(t0, end, rate / workers, wid / rate, None)
    )
    assert due == pytest.approx([t0 + i / rate for i in range(10)])
    counted = [
        list(due_times(t0, end, rate / workers, wid / rate, cli.worker_share(3, workers, wid)))
        for wid in range(workers)
    ]
    assert [len(c) for c in counted] == [2, 1]


def test_delivered_per_second_is_over_the_time_the_step_took() -> None:
    """A 6 s step at 40/s whose last message arrived 30 ms late carried 240 in 6.03 s (not in
    7: the last delivery's second was rounded up); a --count step that ended early carried
    its messages in the time it took (not in --duration)."""
    step = cli.Step("rate-40", "rate", 6.0, rate=40.0)
    assert cli.busy_seconds(step, 6.03) == pytest.approx(6.03)
    assert cli.busy_seconds(step, 2.0) == 6.0  # nothing delivered late: the window
    assert cli.busy_seconds(step, 9.5) == 9.5  # a backlog drained after the window
    counted = cli.Step("rate-50", "rate", 20.0, rate=50.0, count=100)
    assert cli.busy_seconds(counted, 1.9) == pytest.approx(2.0)
    closed = cli.Step("saturate", "closed", 20.0, count=500)
    assert cli.busy_seconds(closed, 3.2) == pytest.approx(3.2)


def test_timeline_labels_its_events_inside_the_plot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A kill's and a restart's labels were placed at y=0, below the axes of a timeline whose
    rates stay around 10/s: drawn nowhere. They are now inside the axes."""
    doc = json.loads(REFERENCE.read_text())
    step = doc["steps"][0]
    step["timeline"] = [
        {"t": t, "sent": 10, "delivered": 9 + t % 2, "p50_ms": 20.0, "p99_ms": 90.0, "errors": 0}
        for t in range(9)
    ]
    step["events"] = [{"t": 3.0, "what": "SIGKILL node-01"}, {"t": 6.0, "what": "restarted"}]
    doc["steps"] = [step]
    placed: dict[str, bool] = {}
    save = matplotlib.figure.Figure.savefig

    def check(fig: matplotlib.figure.Figure, path: Any, *a: Any, **k: Any) -> None:
        if Path(path).name == "timeline.png":
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            ax = fig.axes[0]
            box = ax.get_window_extent(renderer)
            for text in ax.texts:
                placed[text.get_text()] = box.overlaps(text.get_window_extent(renderer))
        save(fig, path, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", check)
    report.plot(doc, tmp_path)
    assert placed == {"SIGKILL node-01": True, "restarted": True}


def test_a_node_that_dies_on_its_own_is_named(tmp_path: Path) -> None:
    """A node of the driver's devnet that exits though no scenario stopped it voids the run
    (before, the load went on against the rest and the result was written, exit 0); one that
    the kill or churn scenario stopped is not a failure."""

    def node(name: str, code: int | None) -> SimpleNamespace:
        d = tmp_path / name
        d.mkdir()
        (d / "process.log").write_text("started\nfatal: the disk is full\n")
        proc = subprocess.Popen(
            [sys.executable, "-c", f"import os; os.kill(os.getpid(), {-code})" if code and code < 0
             else f"raise SystemExit({code})"]
        )  # fmt: skip
        proc.wait()
        return SimpleNamespace(name=name, proc=proc if code is not None else None, data_dir=d)

    net = cli.Network.__new__(cli.Network)
    net.devnet = SimpleNamespace(nodes=[node("node-00", None), node("node-01", 3)])
    net.stopped = set()
    assert net.unexpected_exits() == "node-01 (exit 3; its log ends: fatal: the disk is full)"
    killed = node("node-02", -9)
    killed.data_dir.joinpath("process.log").write_text("")
    net.devnet.nodes.append(killed)
    assert net.unexpected_exits().endswith(", node-02 (killed by signal 9)")
    net.stopped |= {"node-01", "node-02"}  # the kill scenario's victims
    assert net.unexpected_exits() == ""


def test_a_devnet_start_failure_says_what_its_log_said(tmp_path: Path) -> None:
    """The devnet's error points at a log in the run's temporary directory, which is gone
    when the message is read: the message carries the log's last line."""
    log = tmp_path / "node-01" / "process.log"
    log.parent.mkdir()
    log.write_text("starting\nerror: unknown setting SESSION_NODE_BOGUS\n\n")
    e = DevnetError(f"node-01 exited with 2 (see {log})")
    assert cli.devnet_failure(e) == (
        "node-01 exited with 2; its log ends: error: unknown setting SESSION_NODE_BOGUS"
    )
    log.write_text("")
    assert cli.devnet_failure(e) == "node-01 exited with 2 (empty log)"
    assert cli.devnet_failure(DevnetError("not ready in time: node-02")) == (
        "not ready in time: node-02"
    )


def test_compare_says_when_no_step_matches(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(REFERENCE.read_text())
    other = copy.deepcopy(doc)
    for st in other["steps"]:
        st["name"] = "burst-5"
    run = cli.Run.__new__(cli.Run)
    run.args = argparse.Namespace(compare="old.json")
    run.console = cli.Console(width=200)
    run.print_compare(other, doc)
    out = capsys.readouterr().out
    assert "no step in common with old.json" in out and "only the floors" in out
    run.print_compare(doc, doc)
    assert "no step in common" not in capsys.readouterr().out
