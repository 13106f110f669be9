"""``python -m bench.load SCENARIO [options]``: drive real messaging load through a network of
our nodes and publish what it carried, what it cost and what limits it.

The driver (this process) starts a devnet (``--nodes``, default 12) or uses an existing one on
loopback (``--network nodes.json``), measures the floors (:mod:`bench.load.floors`), starts
``--workers`` worker processes (:mod:`bench.load.worker`), each holding ``--pairs`` pairs of
library clients, runs the scenario's steps, samples every node process (CPU clock, RSS,
database size, onion layers), shows live progress, and writes ``result.json`` (schema in
:mod:`bench.load.report`), ``latency-throughput.png`` and ``timeline.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bench.load import floors, report, sidebyside
from bench.load.community import CommunityLoad
from bench.load.probe import NodeProbe, NodeRef, find_node_pids
from bench.load.probe import threads as process_threads
from bench.load.search import MIN_RATE, RateSearch, describe, parse_slo, shortfall
from bench.load.storescale import StoreScale
from bench.load.worker import run as worker_run
from session.client.paths import HOPS
from session.devnet import Devnet, DevnetError
from session.errors import DecodeError
from session.proto.snodes import ServiceNode, parse_node_list
from session.registry.assign import EXCESS_BASE, IDEAL_SWARM_MARGIN, NEW_SWARM_SIZE

#: Node settings of the driver's own devnet: the per-address token buckets and connection cap
#: out of the way (all the load comes from 127.0.0.1: with the default 64 connections per
#: address, 32 clients' connections to one guard are refused and the clients give up on it).
UNLIMITED = {
    "SESSION_NODE_LIMITS__REQUESTS_PER_SECOND": "1000000",
    "SESSION_NODE_LIMITS__BURST": "1000000",
    "SESSION_NODE_CONNECTIONS__MAX_CONNECTIONS": "4096",
    "SESSION_NODE_CONNECTIONS__MAX_CONNECTIONS_PER_ADDRESS": "4096",
}  # (every devnet lifts the new-connection rate itself: session.devnet)

SCENARIOS = {
    "chat": "pairs of people exchanging 1:1 messages at --rate (a list gives one step per "
    "rate), or as fast as they can with --saturate; --slo p50=15,p99=60 finds the highest "
    "rate that meets a latency objective",
    "burst": "every client sends --burst messages at the same instant; time until all arrive",
    "backlog": "a recipient comes back to --count (default 10,000) waiting messages; time to "
    "retrieve and open them all",
    "churn": "chat while nodes join and leave (one of each every --churn-every s); nothing "
    "acknowledged may be lost",
    "fanout": "one member of a --members (default 100) closed group sends group messages at "
    "--rate (default 1/s); every other member polls the group and opens each one",
    "store-scale": "fill one swarm to --count messages (default 100,000; 1,000,000 works) "
    "and measure store/retrieve cost per message at 1k, 10k, 100k, …: it must stay flat",
    "community": "--members (default 1,000) members of one room poll it every --interval s "
    "(default 5) through 3-hop onion requests while --posters of them post at --rate "
    "(default 2/s)",
    "kill": "chat while a member of a recipient's swarm is SIGKILLed (at 1/3) and restarted "
    "(at 2/3)",
}


def parse_rate(text: str) -> float:
    """``500``, ``500/s`` or ``30000/min`` → messages per second."""
    t = text.strip().lower()
    per = 1.0
    if t.endswith("/s"):
        t = t[:-2]
    elif t.endswith("/min"):
        t, per = t[:-4], 60.0
    try:
        r = float(t) / per
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (e.g. 500/s)") from None
    if r <= 0:
        raise argparse.ArgumentTypeError(f"a rate must be positive: {text!r}")
    return r


def parse_rates(text: str) -> list[float]:
    return [parse_rate(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Drive real Session messaging load through a network of our nodes and "
        "report throughput, latency, CPU cost and ratios to this machine's floors.",
        epilog="scenarios:\n"
        + "\n".join(f"  {k:11s} {v}" for k, v in SCENARIOS.items())
        + "\n\nrequest scenarios (one server alone; --target oxenss: Session's C++ storage "
        "server beside ours, same load, CPU per request ours / C++):\n"
        + "\n".join(f"  {k:11s} {v}" for k, v in sidebyside.SCENARIOS.items())
        + "\n\nSee docs/performance.md (load testing) for what the figures mean.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="one scenario below; request scenarios also as a comma list (info,store,retrieve)",
    )
    ap.add_argument(
        "--nodes",
        type=int,
        help="devnet size (default 12); request scenarios: nodes of each server's swarm "
        "(default 1; with --target oxenss as many of Session's servers in one swarm too, and "
        "CPU per request sums every node's)",
    )
    ap.add_argument(
        "--network", metavar="NODES_JSON", help="use this running devnet (loopback only)"
    )
    ap.add_argument(
        "--rate",
        type=parse_rates,
        default=None,
        help="offered load, open loop: 500/s; a comma list runs one step per rate (chat); "
        "default 50/s, fanout 1/s, community 2/s",
    )
    ap.add_argument(
        "--saturate", action="store_true", help="closed loop: each sender sends when free"
    )
    ap.add_argument(
        "--slo",
        type=parse_slo,
        default=None,
        metavar="p50=MS,p99=MS",
        help="chat: find the highest offered rate whose step meets this objective (send to "
        "plaintext, milliseconds) with nothing lost and no error: starts at --rate (default "
        "50/s), doubles while steps pass, then bisects to within 10%% (at most --search-steps "
        "steps of --duration each)",
    )
    ap.add_argument(
        "--search-steps",
        type=int,
        default=None,
        help="at most this many steps in a --slo search (default 8)",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="senders per worker with --saturate (default 8); requests in flight per worker "
        "in request scenarios (default 1)",
    )
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per step (default 20)")
    ap.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="chat: seconds of load before the first step, not measured (connections, paths "
        "and caches made; at the first step's rate, 50/s before --saturate; default 3, 0: none)",
    )
    ap.add_argument(
        "--count",
        type=int,
        default=None,
        help="at most this many messages a step (default: no limit; backlog 10,000, "
        "store-scale 100,000)",
    )
    ap.add_argument(
        "--members",
        type=int,
        default=None,
        help="group size in `fanout` (default 100), room members in `community` (default 1000)",
    )
    ap.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="seconds between a member's polls (community; default 5)",
    )
    ap.add_argument(
        "--posters", type=int, default=10, help="members who post (community; default 10)"
    )
    ap.add_argument(
        "--burst", type=int, default=5, help="messages per client in `burst` (default 5)"
    )
    ap.add_argument(
        "--churn-every",
        type=float,
        default=5.0,
        help="seconds between changes in `churn` (default 5)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default 2; 4 in request scenarios)",
    )
    ap.add_argument("--pairs", type=int, default=8, help="client pairs per worker (default 8)")
    ap.add_argument(
        "--idle-poll",
        type=float,
        default=1.0,
        help="seconds between polls of an idle client (default 1)",
    )
    ap.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="seconds to wait for stragglers after a step (default 15)",
    )
    ap.add_argument(
        "--node-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a node setting for the driver's devnet, e.g. "
        "SESSION_NODE_REPLICATION__SYNC_INTERVAL=600 (repeatable)",
    )
    ap.add_argument(
        "--bulk-fill",
        action="store_true",
        help="store-scale: write most of the fill into the members' databases through the "
        "node's storage layer, the rest and every measurement through the real path (1M in "
        "minutes; the driver's own devnet only)",
    )
    ap.add_argument("--out", type=Path, default=None, help="results directory")
    ap.add_argument("--compare", type=Path, help="an earlier result.json: print ratios")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="py-spy flame graphs (SVG) of the two busiest nodes and worker 0 in the last step "
        "(request scenarios: of our node, the first with --nodes, in one extra, unmeasured "
        "round per scenario)",
    )
    ap.add_argument("--quiet", action="store_true", help="no live display")
    ap.add_argument("--seed", type=int, default=1, help="randomness of the clients' choices")
    req = ap.add_argument_group("request scenarios")
    req.add_argument(
        "--target",
        choices=("ours", "oxenss"),
        default="ours",
        help="ours: our node alone; oxenss: Session's C++ storage server too, in the same run",
    )
    req.add_argument(
        "--oxenss-root",
        metavar="DIR",
        help="where Session's storage server was built (default $OXENSS_ROOT)",
    )
    req.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3)")
    req.add_argument(
        "--ips-per-worker", type=int, default=16, help="source addresses per worker (default 16)"
    )
    req.add_argument(
        "--base-ip",
        default="127.0.1.",
        help="source addresses BASE_IP2, BASE_IP3, … ('' : the system's choice)",
    )
    req.add_argument("--size", type=int, default=256, help="bytes of a stored message")
    return ap


# ---------------------------------------------------------------------- the network


def read_network(path: Path) -> list[ServiceNode]:
    """The nodes of a ``--network`` nodes.json, refused (SystemExit with the reason) unless it
    is a readable node list of loopback nodes: the load is never aimed at other machines."""
    try:
        nodes = parse_node_list(json.loads(path.read_text()))
    except OSError as e:
        raise SystemExit(f"--network {path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, DecodeError) as e:  # JSON errors are ValueErrors
        raise SystemExit(f"--network {path}: not a node list ({e})") from None
    if not nodes:
        raise SystemExit(f"--network {path}: the node list is empty")
    for n in nodes:
        if not ipaddress.ip_address(n.public_ip).is_loopback:  # (the parser checked its form)
            raise SystemExit(
                f"--network {path}: {n.public_ip} is not a loopback address; the load tool "
                "only drives a devnet on this machine"
            )
    return nodes


class Network:
    """The devnet the load runs against: one the driver starts, or one named by nodes.json."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.devnet: Devnet | None = None
        self.pids: dict[int, int] = {}
        #: the driver's nodes a scenario stops on purpose (kill, churn): not a failure
        self.stopped: set[str] = set()
        if args.network:
            self.nodes_json = Path(args.network).absolute()
            nodes = read_network(self.nodes_json)
            self.count = len(nodes)
            self.ports = [n.storage_port for n in nodes]
            self.pids = find_node_pids(self.ports)
            if not self.pids:
                raise SystemExit(
                    f"--network {args.network}: no process listens on any of its nodes' ports "
                    f"({', '.join(map(str, self.ports[:6]))}…): is that devnet running?"
                )
        else:
            env = dict(UNLIMITED)
            for item in args.node_env:
                key, sep, value = item.partition("=")
                if not sep or not key.startswith("SESSION_NODE_"):
                    raise SystemExit(f"--node-env wants SESSION_NODE_…=VALUE, got {item!r}")
                env[key] = value
            self.devnet = Devnet(
                work / "devnet", nodes=args.nodes, extra_env=env, file_server=False
            )
            self.devnet.start()
            self.nodes_json = self.devnet.dir / "nodes.json"
            self.count = args.nodes

    def refs(self) -> list[NodeRef]:
        if self.devnet is not None:
            return [
                NodeRef(n.name, n.proc.pid, n.admin_url)
                for n in self.devnet.nodes
                if n.proc is not None and n.running
            ]
        return [NodeRef(f"port-{port}", pid) for port, pid in sorted(self.pids.items())]

    def unexpected_exits(self) -> str:
        """The driver's own nodes that exited though no scenario stopped them, with their
        exit codes and the last line of their logs ("" if none): figures measured without
        them are not the network's."""
        if self.devnet is None:
            return ""
        dead = []
        for n in self.devnet.nodes:
            code = n.proc.poll() if n.proc is not None else None
            if code is None or n.name in self.stopped:
                continue
            try:
                lines = (n.data_dir / "process.log").read_text(errors="replace").splitlines()
            except OSError:
                lines = []
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            last = f"; its log ends: {lines[-1].strip()[:160]}" if lines else ""
            dead.append(f"{n.name} ({how}{last})")
        return ", ".join(dead)

    def stop(self) -> None:
        if self.devnet is not None:
            self.devnet.stop()


# ---------------------------------------------------------------------- steps


@dataclass
class Step:
    name: str
    mode: str  # rate | closed | burst | backlog
    duration: float
    rate: float | None = None
    count: int | None = None
    concurrency: int = 8
    #: (seconds after t0, label, action run in a thread)
    actions: list[tuple[float, str, Callable[[], str]]] = field(default_factory=list)


def scenario_steps(args: argparse.Namespace, net: Network) -> list[Step]:
    sc = args.scenario
    rates = args.rate or [DEFAULT_RATE]
    if sc == "chat":
        steps = [
            Step(f"rate-{r:g}", "rate", args.duration, rate=r, count=args.count)
            for r in (args.rate or ([] if args.saturate else rates))
        ]
        if args.saturate:
            steps.append(
                Step(
                    "saturate",
                    "closed",
                    args.duration,
                    count=args.count,
                    concurrency=args.concurrency,
                )
            )
        return steps
    if sc == "burst":
        return [Step(f"burst-{args.burst}", "burst", args.duration, count=args.burst)]
    if sc == "fanout":
        r = (args.rate or [1.0])[0]
        return [Step(f"fanout-{args.members}-{r:g}", "rate", args.duration, rate=r)]
    if sc == "backlog":
        return [
            Step(
                "backlog",
                "backlog",
                args.duration,
                count=args.count or 10_000,
                concurrency=args.concurrency,
            )
        ]
    if net.devnet is None:
        raise SystemExit(f"{sc}: needs a devnet the driver starts (not --network)")
    dev = net.devnet
    if sc == "kill":
        victim = dev.nodes[1]

        def kill() -> str:
            net.stopped.add(victim.name)
            dev.kill_node(victim)
            return f"SIGKILL {victim.name}"

        def restart() -> str:
            dev.restart_node(victim)
            net.stopped.discard(victim.name)
            return f"{victim.name} restarted"

        d = args.duration
        return [
            Step(
                f"kill-{rates[0]:g}",
                "rate",
                d,
                rate=rates[0],
                actions=[(d / 3, "kill", kill), (2 * d / 3, "restart", restart)],
            )
        ]
    if sc == "churn":
        acts: list[tuple[float, str, Callable[[], str]]] = []
        t = args.churn_every
        while t < args.duration - 1:

            def change() -> str:
                new = dev.add_node()
                old = next(n for n in dev.nodes if n.running and n is not new)
                net.stopped.add(old.name)
                dev.remove_node(old)
                return f"+{new.name} −{old.name}"

            acts.append((t, "churn", change))
            t += args.churn_every
        return [Step(f"churn-{rates[0]:g}", "rate", args.duration, rate=rates[0], actions=acts)]
    raise SystemExit(f"unknown scenario {sc}")


def worker_share(count: int, workers: int, wid: int) -> int:
    """Worker ``wid``'s part of a step's ``--count``: the parts add up to ``count``."""
    return count // workers + (1 if wid < count % workers else 0)


def busy_seconds(step: Step, last_delivery: float) -> float:
    """What a message step's delivered/s is over: its sending window (``--duration``; with
    ``--count``, open loop, the time the count takes at the rate; closed loop, none), or
    longer if deliveries went on after it (``last_delivery``, seconds after the first send:
    a backlog draining)."""
    window = step.duration
    if step.count is not None:
        window = min(window, step.count / step.rate) if step.rate else 0.0
    return max(window, last_delivery)


# ---------------------------------------------------------------------- profiles


def profile_summary(
    raw_files: list[Path], top: int = 40, sampled: str = "the thread holding the GIL"
) -> str:
    """Where the sampled processes spent their time, from py-spy's collapsed stacks (one
    ``frame;frame;… count`` line per stack): the functions with the most samples on top of
    the stack (self) and anywhere on it (inclusive), summed over the files."""
    self_n: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for f in raw_files:
        try:
            lines = f.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            k = int(n)
            total += k
            frames = stack.split(";")
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + k
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + k
    if not total:
        return "no samples\n"
    out = [
        f"{len(raw_files)} processes, {total} samples (py-spy: {sampled})",
        "(wall-clock samples: a thread that holds the GIL inside a system call is sampled while",
        "the kernel works or has it waiting for a core, so a loopback send, which runs the",
        "receiver's TCP input and wakes it, shows more than the CPU it costs; CPU per message",
        "is in result.json)",
        "",
    ]
    for title, d in (("self", self_n), ("inclusive", incl)):
        out.append(f"-- top {top} by {title} samples")
        for fr, k in sorted(d.items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"{100 * k / total:6.2f}%  {fr}")
        out.append("")
    return "\n".join(out)


def thread_figures(th: dict[str, float], delivered: int) -> dict[str, float]:
    """Per delivered message, from :func:`bench.load.probe.threads` growth summed over
    processes: CPU ms by thread kind (``loop_ms``, ``zmq_ms``, ``other_ms``), the kernel's share
    of it (``sys_share``: system calls, wake-ups) and context switches (``switches``: voluntary,
    a thread that blocked and was woken again; ``preempted``: involuntary)."""
    cpu = th.get("user_s", 0.0) + th.get("sys_s", 0.0)
    out = {
        f"{k.removeprefix('cpu_s:')}_ms": round(v / delivered * 1e3, 4)
        for k, v in sorted(th.items())
        if k.startswith("cpu_s:")
    }
    out["sys_share"] = round(th.get("sys_s", 0.0) / cpu, 3) if cpu else 0.0
    out["switches"] = round(th.get("ctx_voluntary", 0.0) / delivered, 2)
    out["preempted"] = round(th.get("ctx_involuntary", 0.0) / delivered, 2)
    return out


# ---------------------------------------------------------------------- machine


def node_rows(probe: NodeProbe) -> list[dict[str, Any]]:
    """The ``nodes`` of a step run without workers (no onion layer counts kept)."""
    return [
        {
            "name": k,
            "cpu_s": round(t.cpu_s, 3),
            "rss_mb": round(t.rss_mb, 1),
            "db_mb": round(t.db_mb, 2),
            "layers": 0,
        }
        for k, t in sorted(probe.totals.items())
    ]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "hostname_class": f"{platform.machine()}-{os.cpu_count()}cpu",
        "arch": platform.machine(),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------- inputs


def make_out_dir(out: Path) -> bool:
    """Create the results directory (refused, SystemExit, if it cannot be one); True if this
    run made it (removed again if the run ends before writing anything)."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a directory")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"--out {out}: cannot create it ({e.strerror or e})") from None
    return made


def load_compare(path: Path) -> dict[str, Any]:
    """The ``--compare`` result, read before the run starts (a run is not wasted on a typo)."""
    try:
        return report.load(path)
    except OSError as e:
        raise SystemExit(f"--compare {path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # not JSON, or not a session-load result
        raise SystemExit(f"--compare {path}: {e}") from None


def devnet_failure(e: DevnetError) -> str:
    """A devnet's start-up error with the last line of the log it points at: the log itself
    goes with the run's temporary directory."""
    text = str(e)
    m = re.search(r"\(see (\S+process\.log)\)", text)
    if m is None:
        return text
    try:
        lines = [x for x in Path(m.group(1)).read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return text
    head = text[: m.start()].rstrip()
    return f"{head}; its log ends: {lines[-1].strip()[:200]}" if lines else f"{head} (empty log)"


def check_args(args: argparse.Namespace) -> None:
    """Refuse (SystemExit naming the option) what a message scenario cannot run with."""
    sc = args.scenario
    positive = {
        "--duration": args.duration,
        "--idle-poll": args.idle_poll,
        "--churn-every": args.churn_every,
        "--interval": args.interval,
    }
    for name, value in positive.items():
        if not value > 0:  # (NaN too)
            raise SystemExit(f"{name} must be positive, got {value:g}")
    if not args.drain >= 0:
        raise SystemExit(f"--drain must not be negative, got {args.drain:g}")
    if args.warmup is not None and sc != "chat":
        raise SystemExit("--warmup is for the chat scenario")
    args.warmup = DEFAULT_WARMUP_S if args.warmup is None else args.warmup
    if not 0 <= args.warmup < math.inf:
        raise SystemExit(f"--warmup must be a number of seconds, 0 or more, got {args.warmup:g}")
    at_least_one = {
        "--workers": args.workers,
        "--pairs": args.pairs,
        "--concurrency": args.concurrency,
        "--burst": args.burst,
        "--posters": args.posters,
        "--count": 1 if args.count is None else args.count,
    }
    for name, n in at_least_one.items():
        if n < 1:
            raise SystemExit(f"{name} must be at least 1, got {n}")
    if args.network is None and args.nodes < HOPS:
        raise SystemExit(
            f"--nodes must be at least {HOPS} (a 3-hop onion path needs {HOPS} nodes), "
            f"got {args.nodes}"
        )
    if args.rate is not None and len(args.rate) > 1 and sc != "chat":
        raise SystemExit(f"{sc} runs one step: give one --rate (a list is for chat)")
    if sc != "chat" and args.saturate:
        raise SystemExit("--saturate is for the chat scenario")
    if args.slo is not None:
        if sc != "chat":
            raise SystemExit("--slo is for the chat scenario")
        if args.saturate or (args.rate is not None and len(args.rate) > 1):
            raise SystemExit(
                "--slo chooses its own rates: give at most one --rate (where it starts) and "
                "no --saturate"
            )
        if args.profile:
            raise SystemExit(
                "--slo does not know its last step in advance: profile a rate of your "
                "choosing with --rate R --profile"
            )
        if (args.rate or [MIN_RATE])[0] < MIN_RATE:
            raise SystemExit(
                f"--slo starts at --rate, which must be at least {MIN_RATE:g}/s for a search, "
                f"got {args.rate[0]:g}/s"
            )
    elif args.search_steps is not None:
        raise SystemExit("--search-steps is for a --slo search")
    args.search_steps = 8 if args.search_steps is None else args.search_steps
    if args.search_steps < 2:
        raise SystemExit(f"--search-steps must be at least 2, got {args.search_steps}")
    if args.bulk_fill and sc != "store-scale":
        raise SystemExit("--bulk-fill is for the store-scale scenario")
    if sc == "churn" and args.churn_every >= args.duration - 1:
        raise SystemExit(
            f"churn: no node would change in a {args.duration:g} s step with --churn-every "
            f"{args.churn_every:g} (changes start at --churn-every and stop 1 s before the end)"
        )
    for item in args.node_env:
        key, sep, _ = item.partition("=")
        if not sep or not key.startswith("SESSION_NODE_"):
            raise SystemExit(f"--node-env wants SESSION_NODE_…=VALUE, got {item!r}")
    if args.network and (sc in ("kill", "churn") or args.bulk_fill):
        what = "--bulk-fill" if args.bulk_fill else sc
        raise SystemExit(f"{what} needs the devnet the tool starts itself (not --network)")


#: A message scenario's rate when no --rate is given (chat's single step, a search's start).
DEFAULT_RATE = 50.0

#: The warm-up's rate when the first step is closed loop (``--saturate`` alone), and its
#: length unless ``--warmup`` says.
WARMUP_RATE = 50.0
DEFAULT_WARMUP_S = 3.0

#: How often the live table is redrawn (rich's own refresh rate).
LIVE_REFRESH_PER_S = 4

#: The devnet's size in the messaging scenarios.
DEFAULT_NODES = 12
#: The most nodes that stay one swarm under Session's rule (a network of one swarm splits when
#: its nodes beyond EXCESS_BASE reach the size of a new swarm plus its margin).
MAX_ONE_SWARM = EXCESS_BASE + NEW_SWARM_SIZE + IDEAL_SWARM_MARGIN - 1

#: The options a request scenario (info, store, …) does not use: refused, not ignored.
NOT_FOR_REQUESTS = (
    "network",
    "compare",
    "rate",
    "saturate",
    "count",
    "slo",
    "search_steps",
    "warmup",
)


def rate_values_joined(argv: list[str]) -> list[str]:
    """``--rate -5/s`` as ``--rate=-5/s``, so that a negative rate gets the rate's own error
    rather than argparse's "expected one argument" (it takes ``-5/s`` for an option)."""
    out: list[str] = []
    for tok in argv:
        if out and out[-1] == "--rate" and tok[:1] == "-" and tok[1:2].isdigit():
            out[-1] = f"--rate={tok}"
        else:
            out.append(tok)
    return out


# ---------------------------------------------------------------------- the run


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.console = Console(stderr=False)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        self.out = (args.out or Path("load-results") / f"{args.scenario}-{stamp}").absolute()
        self.made_out = make_out_dir(self.out)
        self.work = Path(tempfile.mkdtemp(prefix="bench-load-"))
        self.ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.cmds: list[Any] = []
        self.results: Any = self.ctx.Queue()

    # -------------------------------------------------------------- workers
    def start_workers(self, net: Network) -> None:
        a = self.args
        for wid in range(a.workers):
            cmd_q = self.ctx.Queue()
            cfg = {
                "profile_dir": str(self.work / "clients"),
                "network": str(net.nodes_json),
                "pairs": a.pairs,
                "idle_poll": a.idle_poll if a.scenario != "fanout" else max(10.0, a.idle_poll),
                "fanout": a.members if a.scenario == "fanout" else 0,
                "seed": a.seed,
            }
            p = self.ctx.Process(
                target=worker_run, args=(wid, cfg, cmd_q, self.results), daemon=True
            )
            p.start()
            self.procs.append(p)
            self.cmds.append(cmd_q)
        ready = 0
        deadline = time.monotonic() + (900 if a.scenario == "fanout" else 120)
        while ready < a.workers:
            try:
                msg = self.results.get(timeout=1.0)
            except queue.Empty:
                if any(not p.is_alive() for p in self.procs):
                    raise SystemExit("a worker process died while starting") from None
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not get ready in time") from None
                continue
            if msg["kind"] == "ready":
                ready += 1

    def stop_workers(self, gently: bool = True) -> None:
        """Stop the workers: between steps (``gently``) by asking them, so they close their
        clients; after an error or Ctrl-C, mid-step, with SIGTERM (their files go with the
        run's temporary directory)."""
        if gently:
            for q in self.cmds:
                q.put({"cmd": "stop"})
        else:
            for p in self.procs:
                if p.is_alive():
                    p.terminate()
        for p in self.procs:
            p.join(20 if gently else 5)
            if p.is_alive():
                p.kill()
                p.join(5)

    # -------------------------------------------------------------- one step
    def run_step(
        self, step: Step, net: Network, probe: NodeProbe, fl: dict[str, float]
    ) -> dict[str, Any]:
        a = self.args
        w = a.workers
        e2e, store = report.new_histogram(), report.new_histogram()
        timeline: dict[int, dict[str, Any]] = {}
        events: list[dict[str, Any]] = []
        totals = {"sent": 0, "acked": 0, "delivered": 0}
        errors: dict[str, int] = {}
        done: list[dict[str, Any]] = []
        # the nodes that worked hardest in the previous step (profiled if asked)
        busiest = [k for k, _ in sorted(probe.totals.items(), key=lambda kv: -kv[1].cpu_s)]
        probe.reset()
        workers_th0 = {p.pid: process_threads(p.pid) for p in self.procs if p.pid is not None}
        driver_cpu0 = time.process_time()
        t0 = time.monotonic() + 1.0
        cmd: dict[str, Any] = {
            "cmd": "step",
            "mode": step.mode,
            "t0": t0,
            "duration": step.duration,
            "concurrency": step.concurrency,
            "drain": a.drain,
        }
        if step.rate is not None:
            cmd["rate"] = step.rate / w
        # a burst's count is per client, the backlog's is worker 0's alone; others are split
        split = step.count is not None and step.mode not in ("burst", "backlog")
        for wid, q in enumerate(self.cmds):
            share = worker_share(step.count, w, wid) if split else step.count
            # open loop: worker wid's messages fall between worker wid-1's and wid+1's
            offset = wid / step.rate if step.rate else 0.0
            q.put({**cmd, "count": share, "offset": offset})
        threads: list[threading.Thread] = []
        if step.actions:

            def fire() -> None:
                # one after another: a node change must finish before the next begins
                for at, label, action in sorted(step.actions, key=lambda x: x[0]):
                    time.sleep(max(0.0, t0 + at - time.monotonic()))
                    start = time.monotonic() - t0
                    try:
                        what = action()
                    except (DevnetError, OSError, subprocess.SubprocessError) as e:
                        what = f"{label} failed: {e}"
                    events.append({"t": round(start, 2), "what": what})

            th = threading.Thread(target=fire, daemon=True)
            th.start()
            threads.append(th)
        spy = self.start_profile(net, step, busiest) if a.profile and step is self.last_step else []
        last_sample = last_drawn = time.monotonic()
        live_hist = report.new_histogram()
        last_delivery = 0.0  # seconds after t0

        def table() -> Table:
            el = max(0.0, time.monotonic() - t0)
            tb = Table(title=f"{a.scenario} · step {step.name}", show_header=True)
            for col in ("elapsed", "sent", "delivered/s", "p50 ms", "p99 ms", "errors", "events"):
                tb.add_column(col)
            s = report.live_percentiles(live_hist)
            tb.add_row(
                f"{el:5.1f}/{step.duration:g} s",
                str(totals["sent"]),
                f"{totals['delivered'] / el:7.1f}" if el > 0.5 else "-",
                f"{s['p50']:.1f}",
                f"{s['p99']:.1f}",
                str(sum(errors.values())) + (f" {errors}" if errors else ""),
                "; ".join(e["what"] for e in events)[-60:],
            )
            return tb

        live = (
            Live(table(), console=self.console, refresh_per_second=LIVE_REFRESH_PER_S)
            if not a.quiet
            else contextlib.nullcontext()
        )
        with live as lv:
            while len(done) < w:
                try:
                    msg = self.results.get(timeout=0.2)
                except queue.Empty:
                    msg = None
                    if any(not p.is_alive() for p in self.procs):
                        raise SystemExit("a worker process died during the step") from None
                if msg is not None and msg["kind"] == "tick":
                    for k in totals:
                        totals[k] += msg[k]
                    for k, v in msg["errors"].items():
                        errors[k] = errors.get(k, 0) + v
                    sec = int(max(0.0, time.monotonic() - t0))
                    row = timeline.setdefault(
                        sec, {"sent": 0, "delivered": 0, "errors": 0, "h": report.new_histogram()}
                    )
                    row["sent"] += msg["sent"]
                    row["errors"] += sum(msg["errors"].values())
                    for at, lat in msg["e2e"]:
                        last_delivery = max(last_delivery, at - t0)
                        report.record(e2e, lat)
                        report.record(live_hist, lat)
                        r2 = timeline.setdefault(
                            int(max(0.0, at - t0)),
                            {"sent": 0, "delivered": 0, "errors": 0, "h": report.new_histogram()},
                        )
                        r2["delivered"] += 1
                        report.record(r2["h"], lat)
                    for lat in msg["store"]:
                        report.record(store, lat)
                elif msg is not None and msg["kind"] == "done":
                    done.append(msg)
                now = time.monotonic()
                if now - last_sample >= 1.0:
                    probe.sample()
                    last_sample = now
                    dead = net.unexpected_exits()
                    if dead:
                        raise SystemExit(
                            f"step {step.name}: nodes of the devnet exited though nothing "
                            f"stopped them: {dead}; the run is stopped (its figures would not "
                            "be the network's)"
                        )
                # The table is redrawn at the display's own pace, not per message from the
                # workers: reading percentiles walks the histogram, and at 500/s that walk,
                # done per tick, cost the driver a sixth of a core (cores the nodes need).
                if lv is not None and now - last_drawn >= 1 / LIVE_REFRESH_PER_S:
                    lv.update(table())
                    last_drawn = now
        for th in threads:
            th.join(60)
        for p in spy:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
        if spy:
            summary = profile_summary(sorted(self.work.glob("raw-*.txt")))
            path = self.out / f"profile-summary-{step.name}.txt"
            path.write_text(summary)
            self.profiles.append(str(path))
        probe.sample(sizes=True, scrape=True)
        wall = time.monotonic() - t0
        driver_cpu = time.process_time() - driver_cpu0
        workers_cpu = sum(d["cpu_s"] for d in done)
        lost = sum(d["lost"] for d in done)
        requests = sum(d["requests"] for d in done)
        polls = sum(d.get("polls", 0) for d in done)
        empty_polls = sum(d.get("empty_polls", 0) for d in done)
        nodes = [
            {
                "name": name,
                "cpu_s": round(t.cpu_s, 3),
                "rss_mb": round(t.rss_mb, 1),
                "db_mb": round(t.db_mb, 2),
                "layers": t.layers,
            }
            for name, t in sorted(probe.totals.items())
        ]
        nodes_cpu = sum(t.cpu_s for t in probe.totals.values())
        layers = sum(t.layers for t in probe.totals.values())
        work: dict[str, float] = {}
        for t in probe.totals.values():
            for series, v in t.counters.items():
                work[series] = work.get(series, 0.0) + v
        node_th: dict[str, float] = {}
        for t in probe.totals.values():
            for k, v in t.threads.items():
                node_th[k] = node_th.get(k, 0.0) + v
        wth: dict[str, float] = {}
        for pid, before in workers_th0.items():
            for k, v in process_threads(pid).items():
                wth[k] = wth.get(k, 0.0) + max(0.0, v - before.get(k, 0.0))
        layers_source = "node metrics"
        if not layers:
            layers = 4 * requests  # guard, two relays, the destination
            layers_source = "client requests × 4"
        delivered = totals["delivered"]
        idle = self.idle_cpu_per_s * wall
        net_cpu = max(0.0, nodes_cpu - idle)
        # delivered/s over the time it took: the step, or longer while a backlog drained
        active = busy_seconds(step, last_delivery) if step.mode in ("rate", "closed") else wall
        lat = report.summary(e2e)
        cpu = {
            "nodes_s": round(nodes_cpu, 3),
            "workers_s": round(workers_cpu, 3),
            "driver_s": round(driver_cpu, 3),
            "per_delivered_ms": round(nodes_cpu / delivered * 1e3, 4) if delivered else 0.0,
            "per_layer_us": round(nodes_cpu / layers * 1e6, 2) if layers else 0.0,
            "idle_s": round(idle, 3),
            "net_per_delivered_ms": round(net_cpu / delivered * 1e3, 4) if delivered else 0.0,
            "net_per_layer_us": round(net_cpu / layers * 1e6, 2) if layers else 0.0,
            "layers": layers,
            "layers_source": layers_source,
            "onion_requests": requests,
            "client_share": round(workers_cpu / (workers_cpu + nodes_cpu), 3)
            if workers_cpu + nodes_cpu
            else 0.0,
            "driver_cores": round((workers_cpu + driver_cpu) / wall, 2) if wall else 0.0,
            "total_cores": round((workers_cpu + driver_cpu + nodes_cpu) / wall, 2) if wall else 0.0,
            "client_per_delivered_ms": round(workers_cpu / delivered * 1e3, 4)
            if delivered
            else 0.0,
        }
        if delivered:
            cpu["threads"] = thread_figures(node_th, delivered)
            cpu["worker_threads"] = thread_figures(wth, delivered)
        ratios = {
            "cpu_per_delivered_vs_crypto_floor": round(
                cpu["per_delivered_ms"] * 1e3 / fl["crypto_floor_us"], 2
            ),
            "cpu_per_layer_vs_peel": round(cpu["per_layer_us"] / fl["peel_us"], 2),
            "net_cpu_per_delivered_vs_crypto_floor": round(
                cpu["net_per_delivered_ms"] * 1e3 / fl["crypto_floor_us"], 2
            ),
            "net_cpu_per_layer_vs_peel": round(cpu["net_per_layer_us"] / fl["peel_us"], 2),
            "p50_vs_https_rtt": round(lat["p50"] * 1e3 / fl["https_rtt_us"], 1),
            "node_cpu_per_delivered_vs_sqlite_insert": round(
                cpu["per_delivered_ms"] * 1e3 / fl["sqlite_insert_us"], 1
            ),
        }
        tl = []
        for sec in sorted(timeline):
            r = timeline[sec]
            s = report.summary(r["h"])
            tl.append(
                {
                    "t": sec,
                    "sent": r["sent"],
                    "delivered": r["delivered"],
                    "p50_ms": s["p50"],
                    "p99_ms": s["p99"],
                    "errors": r["errors"],
                }
            )
        return {
            "name": step.name,
            "mode": step.mode,
            "offered_per_s": step.rate,
            "duration_s": step.duration,
            "wall_s": round(wall, 2),
            "sent": totals["sent"],
            "acked": totals["acked"],
            "delivered": delivered,
            "lost": lost,
            "errors": errors,
            "error_examples": {k: v for d in done for k, v in d.get("examples", {}).items()},
            "delivered_per_s": round(delivered / active, 2) if active else 0.0,
            "latency_ms": lat,
            "store_latency_ms": report.summary(store),
            "cpu": cpu,
            "ratios": ratios,
            "nodes": nodes,
            "timeline": tl,
            "events": sorted(events, key=lambda e: e["t"]),
            # node counters summed over the nodes, per delivered message (where the work is)
            "work_per_delivered": {
                k.removeprefix("session_node_"): round(v / delivered, 3)
                for k, v in sorted(work.items())
                if delivered and v / delivered >= 0.01
            },
            # the clients' requests per delivered message (polls that found nothing included)
            "client_work_per_delivered": {
                "onion_requests": round(requests / delivered, 3) if delivered else 0.0,
                "polls": round(polls / delivered, 3) if delivered else 0.0,
                "empty_polls": round(empty_polls / delivered, 3) if delivered else 0.0,
            },
            "extra": {k: v for d in done for k, v in d.get("extra", {}).items()},
        }

    def warm_up(
        self,
        net: Network,
        probe: NodeProbe,
        fl: dict[str, float],
        rate: float | None,
        extra: dict[str, Any],
    ) -> None:
        """chat: ``--warmup`` seconds of load before the first step, not among the steps: the
        first seconds of a fresh devnet (TLS connections, onion paths, node links, SQLite
        files and caches made) put 60-120 ms into the first step's p99 otherwise."""
        a = self.args
        if a.scenario != "chat" or a.warmup <= 0:
            return
        r = rate or WARMUP_RATE
        self.console.print(f"warming up: {a.warmup:g} s at {r:g}/s (not measured)")
        res = self.run_step(Step("warmup", "rate", a.warmup, rate=r), net, probe, fl)
        extra["warmup"] = {
            "duration_s": a.warmup,
            "offered_per_s": r,
            "delivered": res["delivered"],
            "lost": res["lost"],
            "errors": sum(res["errors"].values()),
        }
        if res["lost"] or res["errors"]:
            self.console.print(
                f"[yellow]the warm-up lost {res['lost']} and had {extra['warmup']['errors']} "
                "errors[/] (extra.warmup)"
            )

    def search(
        self,
        start: float,
        slo: dict[str, float],
        net: Network,
        probe: NodeProbe,
        fl: dict[str, float],
        results: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """``--slo``: chat steps at the rates a :class:`RateSearch` picks from ``start``, each
        appended to ``results`` and printed; returns the search's summary."""
        a = self.args
        rs = RateSearch(start, max_steps=a.search_steps)
        self.console.print(f"searching for the highest rate where {describe(slo)}")
        while (r := rs.next_rate()) is not None:
            st = Step(f"rate-{r:g}", "rate", a.duration, rate=r, count=a.count)
            results.append(self.run_step(st, net, probe, fl))
            self.print_step(results[-1])
            why = shortfall(results[-1], slo)
            rs.record(r, why)
            verdict = f"[red]missed[/] ({why})" if why else "[green]met[/]"
            self.console.print(f"  {r:g}/s: {verdict}")
        self.console.print(f"[bold]{rs.sentence(slo)}[/]")
        return rs.summary(slo)

    def store_scale(
        self, net: Network, probe: NodeProbe, fl: dict[str, float], extra: dict[str, Any]
    ) -> dict[str, Any]:
        """The store-scale scenario (no workers: see :mod:`bench.load.storescale`)."""
        a = self.args
        count = a.count or 100_000
        dbs = None
        if a.bulk_fill:
            if net.devnet is None:
                raise SystemExit("--bulk-fill writes into the nodes' databases: own devnet only")
            dbs = {n.https_port: str(n.data_dir / "db" / "storage.db") for n in net.devnet.nodes}
        sc = StoreScale(
            str(net.nodes_json), probe, self.idle_cpu_per_s, max(a.concurrency, 16), dbs
        )
        t0 = time.monotonic()

        def mark(m: dict[str, Any]) -> None:
            self.console.print(
                f"  {m['messages']:>9,} messages: store {m['store_cpu_us']:.0f} µs CPU "
                f"(p50 {m['store_p50_ms']:.1f} ms), retrieve {m['retrieve_cpu_us']:.0f} µs CPU "
                f"(p50 {m['retrieve_p50_ms']:.1f} ms), node RSS ≤ {m['max_rss_mb']} MB, "
                f"DB ≤ {m['max_db_mb']} MB  [{time.monotonic() - t0:.0f} s]"
            )

        whole = NodeProbe(net.refs)  # the whole run (the checkpoints reset `probe`)
        whole.reset()
        out = asyncio.run(sc.run(count, mark))
        whole.sample(sizes=True)
        wall = time.monotonic() - t0
        probe = whole
        extra["store_scale"] = out
        last = out["checkpoints"][-1]
        lat = report.summary(sc.hist)
        nodes_cpu = sum(t.cpu_s for t in probe.totals.values())
        net_cpu = max(0.0, nodes_cpu - self.idle_cpu_per_s * wall)
        # (node CPU per message stored through the real path: a bulk fill costs the nodes none)
        real = sc.stored - sc.bulked
        per = net_cpu / real * 1e3 if real else 0.0
        return {
            "name": f"store-scale-{count}",
            "mode": "store-scale",
            "offered_per_s": None,
            "duration_s": round(wall, 2),
            "wall_s": round(wall, 2),
            "sent": sc.stored,
            "acked": sc.stored,
            "delivered": sc.stored,
            "lost": 0 if all(m["retrieved_ok"] for m in out["checkpoints"]) else 1,
            "errors": out["errors"],
            "delivered_per_s": round(sc.stored / wall, 2),
            "latency_ms": lat,
            "store_latency_ms": lat,
            "cpu": {
                "nodes_s": round(nodes_cpu, 3),
                "workers_s": 0.0,
                "driver_s": 0.0,
                "per_delivered_ms": round(nodes_cpu / real * 1e3, 4) if real else 0.0,
                "per_layer_us": 0.0,
                "net_per_delivered_ms": round(per, 4),
                "net_per_layer_us": 0.0,
                "layers": 0,
                "idle_s": round(self.idle_cpu_per_s * wall, 3),
            },
            "ratios": {
                "store_cpu_vs_sqlite_insert": round(
                    last["store_cpu_us"] / fl["sqlite_insert_us"], 1
                ),
                "retrieve_cpu_vs_sqlite_insert": round(
                    last["retrieve_cpu_us"] / fl["sqlite_insert_us"], 1
                ),
            },
            "nodes": node_rows(probe),
            "timeline": [],
            "events": [],
            "extra": {},
        }

    def community(
        self, net: Network, probe: NodeProbe, fl: dict[str, float], extra: dict[str, Any]
    ) -> dict[str, Any]:
        """The community scenario (no workers: the members live in this process, see
        :mod:`bench.load.community`); the community server's own CPU and RSS are read from
        its process."""
        a = self.args
        rate = (a.rate or [2.0])[0]
        load = CommunityLoad(
            str(net.nodes_json),
            a.members,
            interval=a.interval,
            rate=rate,
            posters=a.posters,
            seed=a.seed,
        )
        port = urllib.parse.urlsplit(load.base_url).port or 80
        if net.devnet is not None and net.devnet.community and net.devnet.community.proc:
            pid = net.devnet.community.proc.pid
        elif port in (found := find_node_pids([port])):
            pid = found[port]
        else:
            raise SystemExit(f"no process listens on the community server's port {port}")
        server = psutil.Process(pid)

        def cpu() -> float:
            t = server.cpu_times()
            return float(t.user + t.system)

        def tick(elapsed: float) -> None:
            self.console.print(
                f"  {elapsed:5.0f} s: {load.polls} polls, {load.posts} posts, "
                f"errors {sum(load.errors.values())}"
            )

        me = psutil.Process()
        probe.reset()
        cpu0, me0 = cpu(), me.cpu_times()
        wall = asyncio.run(load.run(a.duration, tick))
        me1 = me.cpu_times()
        server_cpu = cpu() - cpu0
        rss_mb = server.memory_info().rss / 2**20
        probe.sample(sizes=True)
        nodes_cpu = sum(t.cpu_s for t in probe.totals.values())
        poll = report.summary(load.poll_hist)
        post = report.summary(load.post_hist)
        rtt_ms = fl["https_rtt_us"] / 1000
        done = load.polls + load.posts
        extra["community"] = {
            "members": a.members,
            "interval_s": a.interval,
            "posters": load.posters,
            "post_rate": rate,
            "polls": load.polls,
            "polls_per_s": round(load.polls / wall, 2),
            "posts": load.posts,
            "posts_per_s": round(load.posts / wall, 2),
            "posts_received": load.received,
            "poll_latency_ms": poll,
            "post_latency_ms": post,
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_share": round(server_cpu / wall, 3),
            "server_cpu_per_request_ms": round(server_cpu / done * 1e3, 3) if done else 0,
            "server_rss_mb": round(rss_mb, 1),
            "poll_p50_vs_https_rtt": round(float(poll["p50"]) / rtt_ms, 1),
            "poll_p99_vs_https_rtt": round(float(poll["p99"]) / rtt_ms, 1),
            "error_examples": load.examples,
        }
        return {
            "name": f"community-{a.members}-{rate:g}",
            "mode": "community",
            "offered_per_s": round(a.members / a.interval + rate, 2),
            "duration_s": a.duration,
            "wall_s": round(wall, 2),
            "sent": done + sum(load.errors.values()),
            "acked": done,
            "delivered": done,
            "lost": 0,
            "errors": load.errors,
            "delivered_per_s": round(done / wall, 2),
            "latency_ms": poll,
            "store_latency_ms": post,
            "cpu": {
                "nodes_s": round(nodes_cpu, 3),
                "workers_s": round(me1.user + me1.system - me0.user - me0.system, 3),
                "driver_s": 0.0,
                "per_delivered_ms": round(nodes_cpu / done * 1e3, 4) if done else 0.0,
                "per_layer_us": 0.0,
                "net_per_delivered_ms": round(
                    max(0.0, nodes_cpu - self.idle_cpu_per_s * wall) / done * 1e3, 4
                )
                if done
                else 0.0,
                "net_per_layer_us": 0.0,
                "layers": 0,
                "idle_s": round(self.idle_cpu_per_s * wall, 3),
            },
            "ratios": {
                "p50_vs_https_rtt": extra["community"]["poll_p50_vs_https_rtt"],
                "p99_vs_https_rtt": extra["community"]["poll_p99_vs_https_rtt"],
            },
            "nodes": node_rows(probe),
            "timeline": [],
            "events": [],
            "extra": {"community": extra["community"]},
        }

    def idle_rate(self, probe: NodeProbe, seconds: float = 3.0) -> float:
        """CPU seconds per second the nodes spend with no load (heartbeats, registry polls,
        swarm reconciliation): subtracted to give the ``net`` per-message figures."""
        probe.reset()
        t = time.monotonic()
        time.sleep(seconds)
        probe.sample()
        return sum(x.cpu_s for x in probe.totals.values()) / (time.monotonic() - t)

    idle_cpu_per_s = 0.0

    # -------------------------------------------------------------- profiling
    last_step: Step | None = None

    def start_profile(
        self, net: Network, step: Step, busiest: list[str]
    ) -> list[subprocess.Popen[bytes]]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            self.console.print("[yellow]--profile: py-spy is not installed (pip install py-spy)")
            return []
        secs = str(max(1, int(step.duration)))
        rank = {name: i for i, name in enumerate(busiest)}
        refs = sorted(net.refs(), key=lambda r: rank.get(r.name, len(rank)))
        out = []

        def record(pid: int, path: Path, fmt: str, rate: str) -> None:
            out.append(
                subprocess.Popen(
                    [spy, "record", "-p", str(pid), "-d", secs, "-r", rate, "-o", str(path),
                     "-f", fmt, "--nonblocking", "--gil"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip

        # flame graphs of the two busiest nodes and worker 0; collapsed stacks of every node
        # (summed into profile-summary.txt: where the nodes' CPU goes)
        for r in refs[:2]:
            svg = self.out / f"flame-{step.name}-{r.name}.svg"
            self.profiles.append(str(svg))
            record(r.pid, svg, "flamegraph", "50")
        svg = self.out / f"flame-{step.name}-worker-0.svg"
        self.profiles.append(str(svg))
        record(self.procs[0].pid, svg, "flamegraph", "50")
        for r in refs:
            record(r.pid, self.work / f"raw-{r.name}.txt", "raw", "20")
        return out

    profiles: list[str]

    # -------------------------------------------------------------- whole run
    def main(self) -> int:
        a = self.args
        self.profiles = []
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        mach = machine()
        net: Network | None = None
        finished = False
        try:
            old = load_compare(a.compare) if a.compare else None
            self.console.print("measuring floors…")
            fl = floors.measure()
            self.console.print(f"floors: {fl}")
            try:
                net = Network(a, self.work)
            except DevnetError as e:
                raise SystemExit(f"the devnet did not start: {devnet_failure(e)}") from None
            self.console.print(f"network: {net.count} nodes ({net.nodes_json})")
            probe = NodeProbe(net.refs)
            self.idle_cpu_per_s = self.idle_rate(probe)
            self.console.print(f"nodes at idle: {self.idle_cpu_per_s:.3f} CPU s/s (all nodes)")
            results = []
            extra: dict[str, Any] = {}
            alone = ("store-scale", "community")
            steps = [] if a.scenario in alone or a.slo else scenario_steps(a, net)
            if steps:
                self.last_step = steps[-1]
                self.start_workers(net)
                self.warm_up(net, probe, fl, steps[0].rate, extra)
            elif a.slo:
                self.start_workers(net)
                start = (a.rate or [DEFAULT_RATE])[0]
                self.warm_up(net, probe, fl, start, extra)
                extra["capacity"] = self.search(start, a.slo, net, probe, fl, results)
            elif a.scenario == "community":
                results.append(self.community(net, probe, fl, extra))
                self.print_step(results[-1])
            else:
                results.append(self.store_scale(net, probe, fl, extra))
                self.print_step(results[-1])
            for st in steps:
                results.append(self.run_step(st, net, probe, fl))
                self.print_step(results[-1])
            if a.scenario == "backlog":
                b = results[0]["extra"]
                if b.get("drain_s"):
                    b["drain_msgs_per_s"] = round(results[0]["delivered"] / b["drain_s"], 1)
                extra["backlog"] = b
            finished = True
        finally:
            self.stop_workers(gently=finished)
            if net is not None:
                net.stop()
            shutil.rmtree(self.work, ignore_errors=True)
            if not finished and self.made_out:
                with contextlib.suppress(OSError):  # only if nothing was written into it
                    self.out.rmdir()
        assert net is not None  # (set, or the try above raised)
        mach["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        doc: dict[str, Any] = {
            "schema": report.SCHEMA,
            "scenario": a.scenario,
            "command": ["python", "-m", "bench.load", *sys.argv[1:]],
            "started": started,
            "machine": mach,
            "network": {"nodes": net.count, "own_devnet": net.devnet is not None},
            "options": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(a).items()
                if k not in ("compare",)
            },
            "floors": fl,
            "steps": results,
            "extra": extra,
            "files": {},
        }
        plots = report.plot(doc, self.out)
        path = self.out / "result.json"
        doc["files"] = {
            "json": str(path),
            "plots": [str(p) for p in plots],
            "profiles": [p for p in self.profiles if Path(p).exists()],
        }
        bad = report.validate(doc)
        if bad:
            raise SystemExit("internal error: the result breaks its schema: " + "; ".join(bad))
        path.write_text(json.dumps(doc, indent=1))
        self.console.print(f"results: {path}")
        for p in [*plots, *doc["files"]["profiles"]]:
            self.console.print(f"  {p}")
        if old is not None:
            self.print_compare(doc, old)
        lost = sum(s["lost"] for s in results) + extra.get("warmup", {}).get("lost", 0)
        return 0 if lost == 0 else 3

    def print_step(self, s: dict[str, Any]) -> None:
        lat, cpu, r = s["latency_ms"], s["cpu"], s["ratios"]
        if s["mode"] == "store-scale":
            self.console.print(
                f"[bold]{s['name']}[/]: {s['delivered']:,} stored, {s['delivered_per_s']:.0f}/s "
                f"fill, node CPU {cpu['net_per_delivered_ms']:.3f} ms/store net of idle"
            )
            return
        if s["mode"] == "community":
            c = s["extra"]["community"]
            pl = c["poll_latency_ms"]
            self.console.print(
                f"[bold]{s['name']}[/]: {c['members']} members polling every "
                f"{c['interval_s']:g} s through onion requests, {c['posters']} posting at "
                f"{c['post_rate']:g}/s; errors {s['errors'] or 0}\n"
                f"  posts {c['posts_per_s']:.2f}/s sustained ({c['posts']}), polls "
                f"{c['polls_per_s']:.1f}/s ({c['polls']}), {c['posts_received']} posts received\n"
                f"  poll latency from schedule p50 {pl['p50']:.1f} ms  p99 {pl['p99']:.1f}  "
                f"max {pl['max']:.1f}  (= {c['poll_p50_vs_https_rtt']}× / "
                f"{c['poll_p99_vs_https_rtt']}× the bare HTTPS round trip); post p50 "
                f"{c['post_latency_ms']['p50']:.1f} ms\n"
                f"  community server CPU {c['server_cpu_s']:.2f} s "
                f"({c['server_cpu_share'] * 100:.0f}% of a core, "
                f"{c['server_cpu_per_request_ms']:.2f} ms a request), RSS {c['server_rss_mb']} MB; "
                f"nodes CPU {cpu['nodes_s']:.2f} s, members {cpu['workers_s']:.2f} s"
            )
            return
        off = f"{s['offered_per_s']:g}/s offered" if s["offered_per_s"] else s["mode"]
        if self.args.scenario == "fanout":  # delivered counts each member's copy
            carried = (
                f"{s['sent']} group messages sent, {s['delivered']} member copies delivered "
                f"({self.args.members - 1} members each)"
            )
        else:
            carried = f"{s['delivered']}/{s['sent']} delivered"
        self.console.print(
            f"[bold]{s['name']}[/] ({off}): {carried}, "
            f"{s['delivered_per_s']:.1f}/s, lost {s['lost']}, errors {s['errors'] or 0}\n"
            f"  latency send→plaintext p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f}  "
            f"p99 {lat['p99']:.1f}  max {lat['max']:.1f}   (store ack p50 "
            f"{s['store_latency_ms']['p50']:.1f} ms)\n"
            f"  node CPU {cpu['per_delivered_ms']:.2f} ms/delivered, "
            f"{cpu['net_per_delivered_ms']:.2f} net of idle "
            f"({r['net_cpu_per_delivered_vs_crypto_floor']}× crypto floor); "
            f"{cpu['per_layer_us']:.0f} µs/layer, {cpu['net_per_layer_us']:.0f} net "
            f"({r['net_cpu_per_layer_vs_peel']}× peel; "
            f"{cpu['layers']} layers, {cpu['layers_source']}); "
            f"clients {cpu['client_share'] * 100:.0f}% of CPU, driver+workers "
            f"{cpu['driver_cores']} cores, all {cpu['total_cores']} cores"
        )
        th, cw = cpu.get("threads"), s.get("client_work_per_delivered")
        if th and cw:
            # (ZeroMQ's threads: only in runs of nodes from before the links left ZeroMQ)
            zmq = f"ZeroMQ {th['zmq_ms']:.2f} ms, " if th.get("zmq_ms") else ""
            self.console.print(
                f"  per delivered: nodes' loop threads {th.get('loop_ms', 0.0):.2f} ms, {zmq}"
                f"other threads {th.get('other_ms', 0.0):.2f} ms "
                f"(kernel {th['sys_share'] * 100:.0f}%), {th['switches']:.0f} wake-ups; clients "
                f"{cpu['client_per_delivered_ms']:.2f} ms, {cw['polls']:.2f} polls "
                f"({cw['empty_polls']:.2f} empty)"
            )

    def print_compare(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        names = {s["name"] for s in old["steps"]}
        if not any(s["name"] in names for s in new["steps"]):
            self.console.print(
                f"--compare: no step in common with {self.args.compare} (its steps: "
                f"{', '.join(sorted(names))}; steps are matched by name, e.g. rate-50): "
                "only the floors are compared"
            )
        tb = Table(title="against " + str(self.args.compare))
        for c in ("step", "measure", "old", "new", "new/old"):
            tb.add_column(c)
        for row in report.compare(new, old):
            tb.add_row(*("-" if v is None else str(v) for v in row))
        self.console.print(tb)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(rate_values_joined(sys.argv[1:] if argv is None else argv))
    kinds = sidebyside.parse_kinds(args.scenario)
    if kinds is not None:
        unused = [
            "--" + k.replace("_", "-")
            for k in NOT_FOR_REQUESTS
            if getattr(args, k) not in (None, False)
        ]
        if unused:
            raise SystemExit(
                f"{', '.join(unused)}: not for the request scenarios ({args.scenario}); see "
                "--help, 'request scenarios'"
            )
        args.nodes = 1 if args.nodes is None else args.nodes
        if not 1 <= args.nodes <= MAX_ONE_SWARM:
            raise SystemExit(
                f"--nodes in request scenarios: 1 to {MAX_ONE_SWARM} (one swarm), got {args.nodes}"
            )
        args.workers = 4 if args.workers is None else args.workers
        args.concurrency = 1 if args.concurrency is None else args.concurrency
        if min(args.workers, args.concurrency, args.rounds, args.ips_per_worker) < 1:
            raise SystemExit("--workers, --concurrency, --rounds, --ips-per-worker: at least 1")
        if args.duration <= 0 or args.size < 1:
            raise SystemExit("--duration and --size must be positive")
        return sidebyside.main(args, kinds)
    if args.scenario not in SCENARIOS:
        raise SystemExit(
            f"unknown scenario {args.scenario!r}; see --help "
            f"({', '.join([*SCENARIOS, *sidebyside.SCENARIOS])})"
        )
    if args.target != "ours":
        raise SystemExit(
            f"--target oxenss is for request scenarios ({', '.join(sidebyside.SCENARIOS)})"
        )
    args.nodes = DEFAULT_NODES if args.nodes is None else args.nodes
    args.workers = 2 if args.workers is None else args.workers
    args.concurrency = 8 if args.concurrency is None else args.concurrency
    check_args(args)
    if args.network:
        read_network(Path(args.network).absolute())  # refused before anything is measured
    if args.members is None:
        args.members = 1000 if args.scenario == "community" else 100
    if args.scenario == "community" and (args.members < 1 or len(args.rate or [2.0]) != 1):
        raise SystemExit("community: --members at least 1, one --rate")
    if args.scenario == "fanout" and args.workers != 1:
        args.workers = 1  # one group, its members in one process
    if args.scenario == "fanout" and not 2 <= args.members <= 100:
        raise SystemExit("--members: a closed group has 2 to 100 members")
    run = Run(args)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return run.main()
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: Run.main's cleanup has stopped the workers and the devnet
        print("bench.load: interrupted; the workers and the devnet are stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
