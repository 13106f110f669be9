"""What the driver reads from the node processes: CPU seconds (the process's own clock, from
/proc through psutil), resident memory, database size on disk, and, where the node's admin
port is known (a devnet the driver started), the onion layers it peeled.

A node process that is replaced (killed and restarted, or a new node joining) is followed by
its pid: CPU is accumulated as deltas between samples, per pid, so a process that dies between
two samples loses at most one sampling interval of CPU.

At a step's start and end the probe also reads each node's threads from /proc (:func:`threads`):
their CPU split by kind (the event loop's thread, ZeroMQ's I/O threads, the others: SQLite's
writer and reader, the peel pool, executors), user and kernel time, and context switches, the
count of times a thread stopped or was stopped (a wake-up costs one): where per-message
wake-ups across the processes show.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil


@dataclasses.dataclass
class NodeRef:
    """One node as the driver sees it at the moment: its name, pid and admin URL (or '')."""

    name: str
    pid: int
    admin_url: str = ""


@dataclasses.dataclass
class NodeTotals:
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    db_mb: float = 0.0
    layers: int = 0
    #: growth of each node counter series over the step
    counters: dict[str, float] = dataclasses.field(default_factory=dict)
    #: growth over the step of :func:`threads`' figures (between the step's start and end)
    threads: dict[str, float] = dataclasses.field(default_factory=dict)


#: clock ticks per second of /proc's utime/stime
_HZ = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def thread_kind(pid: int, tid: int, comm: str) -> str:
    """``loop`` (the process's main thread, which runs the event loop), ``zmq`` (ZeroMQ's
    I/O and reaper threads, named by libzmq) or ``other`` (Python's threads, unnamed)."""
    if tid == pid:
        return "loop"
    if comm.startswith("ZMQbg"):
        return "zmq"
    return "other"


def _thread_files(pid: int, *names: str) -> Iterator[tuple[int, list[str]]]:
    """Each thread of process ``pid`` (its id) with the text of its /proc files ``names``;
    a thread that ends before they are read is passed over. Nothing when the process is gone
    (or /proc is not Linux's)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for t in tids:
        texts = []
        try:
            for name in names:
                with open(f"/proc/{pid}/task/{t}/{name}", encoding="ascii", errors="replace") as f:
                    texts.append(f.read())
        except OSError:
            continue  # the thread ended meanwhile
        yield int(t), texts


def self_usage() -> tuple[float, int]:
    """This process's CPU seconds (user + system, every thread) and context switches
    (voluntary + involuntary) so far: for a bench measuring its own side."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_nvcsw + r.ru_nivcsw


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """Each thread of process ``pid`` → its CPU time so far (ns), from the scheduler's own
    clock (``schedstat``): finer than :func:`threads`' clock ticks, for a per-thread figure
    over a short run (``bench.load.clientcpu``)."""
    return {tid: int(schedstat.split()[0]) for tid, (schedstat,) in _thread_files(pid, "schedstat")}


def threads(pid: int) -> dict[str, float]:
    """A process's threads from /proc, summed: ``cpu_s:KIND`` per :func:`thread_kind`,
    ``user_s``, ``sys_s``, ``ctx_voluntary`` (a thread blocked: waited for a lock, the GIL, I/O)
    and ``ctx_involuntary`` (preempted), in clock ticks' resolution. Threads that ended before
    the read are not in it. Empty when the process is gone (or /proc is not Linux's)."""
    out: dict[str, float] = {}
    for tid, (stat, status) in _thread_files(pid, "stat", "status"):
        # comm is in parentheses and may hold spaces; the fields after it are numbers
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        user, sys_ = int(fields[11]) / _HZ, int(fields[12]) / _HZ
        kind = "cpu_s:" + thread_kind(pid, tid, comm)
        out[kind] = out.get(kind, 0.0) + user + sys_
        out["user_s"] = out.get("user_s", 0.0) + user
        out["sys_s"] = out.get("sys_s", 0.0) + sys_
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                out["ctx_voluntary"] = out.get("ctx_voluntary", 0.0) + int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                out["ctx_involuntary"] = out.get("ctx_involuntary", 0.0) + int(line.split()[1])
    return out


def counters(admin_url: str) -> dict[str, float] | None:
    """The node's ``session_node_*_total`` counters (series → value), or None."""
    try:
        with urllib.request.urlopen(admin_url + "/metrics", timeout=2.0) as r:
            body = r.read().decode(errors="replace")
    except OSError:
        return None
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("session_node_") and "_total" in line.split("{", 1)[0]:
            series, _, value = line.rpartition(" ")
            try:
                out[series] = float(value)
            except ValueError:
                continue
    return out


def onion_layers(c: dict[str, float]) -> int:
    """Onion layers peeled (every decision) in a counter snapshot."""
    return int(sum(v for k, v in c.items() if k.startswith("session_node_onion_layers_total")))


def db_bytes(proc: psutil.Process) -> int:
    """Size of the SQLite files (and their WAL) the process holds open."""
    seen: set[str] = set()
    total = 0
    try:
        files = proc.open_files()
    except (psutil.Error, OSError):
        return 0
    for f in files:
        p = f.path
        base = p.removesuffix("-wal").removesuffix("-shm")
        if base.endswith((".db", ".sqlite", ".sqlite3")) and base not in seen:
            seen.add(base)
            for suffix in ("", "-wal"):
                try:
                    total += Path(base + suffix).stat().st_size
                except OSError:
                    pass
    return total


class NodeProbe:
    """Samples the nodes ``refs()`` names; :meth:`sample` every second or so during a step."""

    def __init__(self, refs: Callable[[], list[NodeRef]]) -> None:
        self.refs = refs
        self._procs: dict[int, psutil.Process] = {}
        self._last_cpu: dict[int, float] = {}
        self._last_counters: dict[str, dict[str, float]] = {}
        self._last_threads: dict[int, dict[str, float]] = {}
        self.totals: dict[str, NodeTotals] = {}

    def reset(self) -> None:
        """Start a new step: totals from zero, current clocks as the base."""
        self.totals = {}
        self._last_cpu.clear()
        self._last_counters.clear()
        self._last_threads.clear()
        self.sample(count=False, scrape=True)

    def _proc(self, pid: int) -> psutil.Process | None:
        p = self._procs.get(pid)
        if p is None:
            try:
                p = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return p

    def sample(self, *, count: bool = True, sizes: bool = False, scrape: bool = False) -> None:
        """Read every node's CPU clock (and, with ``sizes``, RSS and database size; with
        ``scrape``, its counters and :func:`threads`: done at a step's start and end only, a
        scrape costs the node CPU)."""
        for ref in self.refs():
            t = self.totals.setdefault(ref.name, NodeTotals())
            p = self._proc(ref.pid)
            if p is None:
                continue
            try:
                c = p.cpu_times()
                cpu = c.user + c.system
                if sizes or not t.rss_mb:
                    t.rss_mb = p.memory_info().rss / 2**20
                    t.db_mb = db_bytes(p) / 2**20
            except psutil.Error:
                continue
            last = self._last_cpu.get(ref.pid)
            if count:
                t.cpu_s += cpu - last if last is not None else 0.0
            self._last_cpu[ref.pid] = cpu
            if scrape:
                th = threads(ref.pid)
                before = self._last_threads.get(ref.pid)
                if count and before is not None:
                    for k, v in th.items():
                        t.threads[k] = t.threads.get(k, 0.0) + max(0.0, v - before.get(k, 0.0))
                self._last_threads[ref.pid] = th
            if ref.admin_url and scrape:
                now = counters(ref.admin_url)
                if now is not None:
                    key = f"{ref.name}:{ref.pid}"
                    prev = self._last_counters.get(key)
                    if count and prev is not None:
                        for series, v in now.items():
                            d = v - prev.get(series, 0.0)
                            if d > 0:
                                t.counters[series] = t.counters.get(series, 0.0) + d
                        t.layers += max(0, onion_layers(now) - onion_layers(prev))
                    self._last_counters[key] = now


def find_node_pids(https_ports: list[int]) -> dict[int, int]:
    """port → pid of the processes listening on 127.0.0.1 at those ports (``--network``)."""
    want = set(https_ports)
    out: dict[int, int] = {}
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in want and c.pid:
            out[c.laddr.port] = c.pid
    return out
