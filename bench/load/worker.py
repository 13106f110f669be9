"""A load worker process: a few pairs of library clients (:class:`session.client.Client`) that
send each other real 1:1 messages through 3-hop onion paths and receive them from their swarms.

The driver (:mod:`bench.load.cli`) starts one worker per process and talks to it through two
queues: commands in (``step``, ``stop``), reports out (``ready``, ``tick`` about every 0.25 s,
``done`` at the end of a step). Times are ``time.monotonic()``, which is one clock for every
process of the machine, so the driver's ``t0`` means the same instant everywhere.

Sending (per message): build the text content (its body is a token naming the worker and the
message's sequence number), seal it with the sender's identity (``messages.seal``) and store it
in the recipient's swarm with ``SwarmRPC.store`` (a fresh onion over one of the sender's paths,
the library's retries included). The outbox and the sender's own sync copy are not used: the
load is one store per message.

Receiving: each client's poller retrieves namespace 0 from one member of its swarm (the
library's ``Poller``) and opens and applies what it got (``Receiver.apply_unseen``: batch
decrypt and verify, SQLite). A recipient polls when a message to it has been acknowledged (the
push notification a Session app gets), again with a short backoff while an acknowledged
message has not arrived (replication to the member it polls may lag), and otherwise once every
``idle_poll`` seconds. A wake-up for messages that an earlier poll already brought is skipped.

Latency of a message: from its *scheduled* send time (open loop: ``t0 + i / rate``; closed
loop: when its sender became free) to the moment its recipient has the plaintext. Measuring
from the schedule, not from when the worker got round to sending, is what keeps coordinated
omission out: a stalled worker makes the messages behind it late, and that lateness counts.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from session.client import Client, MessageReceived
from session.client import messages as M
from session.client.events import EventStream
from session.client.transport import PathFailure
from session.errors import ClockOutOfSync, NetworkError, NodeRequestFailed, SessionError

#: Seconds between reports to the driver.
TICK = 0.25
#: First and largest pause before polling again for an acknowledged message still missing.
BACKOFF_MIN, BACKOFF_MAX = 0.002, 0.2
HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")
#: Time to live of the load's messages (milliseconds).
TTL_MS = 3600_000


def error_kind(e: BaseException) -> str:
    """A short, low-cardinality name for a failed store or poll (JSON key)."""
    if isinstance(e, NodeRequestFailed):
        return f"status {e.status}"
    if isinstance(e, ClockOutOfSync):
        return "clock"
    if isinstance(e, PathFailure):
        text = str(e)
        if "timed out" in text:
            return "timeout"
        if text.startswith("path error "):
            return "path " + text.split()[2].rstrip(":")
        return "path"
    if isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, NetworkError):
        return "network"
    return type(e).__name__


def due_times(
    t0: float, end: float, rate: float, offset: float, count: int | None
) -> Iterator[float]:
    """When this worker's messages are due in an open-loop step: ``rate`` is its share of the
    offered load, ``offset`` where its first message falls (the driver spreads the workers
    over one interval, so that together they send at ``t0 + i / total rate``, not in clumps
    of one message per worker), at most ``count``, none at or after ``end``."""
    interval = 1.0 / rate
    for i in itertools.count():
        sched = t0 + offset + i * interval
        if sched >= end or (count is not None and i >= count):
            return
        yield sched


class Worker:
    """The clients of one worker process and the bookkeeping of its messages."""

    def __init__(self, wid: int, cfg: dict[str, Any], out: Any) -> None:
        self.wid = wid
        self.cfg = cfg
        self.out = out
        self.clients: list[Client] = []
        self.rng = random.Random(cfg.get("seed", 0) * 1000 + wid)
        self.seq = itertools.count()
        #: token → (scheduled time, recipient index) of messages sent and not yet received
        self.pending: dict[str, tuple[float, int]] = {}
        #: per recipient: tokens acknowledged by the swarm and not yet received
        self.outstanding: list[set[str]] = []
        self.wake: list[asyncio.Event] = []
        self.requests = 0  # onion requests made (stores and polls, retries included)
        self.polls = self.empty_polls = 0  # polls of namespace 0, and those that got nothing
        #: recipients whose polling is held back (the backlog scenario's absent recipient)
        self.paused: set[int] = set()
        #: the first message of each error kind in a step (sent with the step's end)
        self.examples: dict[str, str] = {}
        self.new_stats()
        self.running = True
        #: the fanout scenario's group ID ("" otherwise) and each member's event stream
        self.gid = ""
        self.streams: list[EventStream] = []
        #: fanout: token → how many members still have to receive it
        self.copies: dict[str, int] = {}
        #: fanout: token → members that received it already (possibly before the ack)
        self.received: dict[str, set[int]] = {}

    def new_stats(self) -> None:
        self.sent = self.acked = self.delivered = self.late = 0
        self.errors: dict[str, int] = {}
        self.e2e: list[tuple[float, float]] = []  # (delivered at, latency s)
        self.store: list[float] = []  # store latency (schedule → acknowledged), s

    def count_error(self, kind: str, e: BaseException | None = None) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if e is not None and kind not in self.examples:
            # (hex runs, e.g. a key or account prefix, are cut out)
            self.examples[kind] = HEX_RUN.sub("…", str(e))[:200]

    # ------------------------------------------------------------------ set-up

    async def open_clients(self) -> None:
        base = Path(self.cfg["profile_dir"]) / f"w{self.wid}"
        members = int(self.cfg.get("fanout") or 0)
        for i in range(members or 2 * self.cfg["pairs"]):
            c = Client(
                base / f"c{i}",
                self.cfg["network"],
                background=False,
                rng=random.Random(self.rng.random()),
            )
            await c.start()

            def observe(*_: Any) -> None:
                self.requests += 1

            c.on_request(observe)
            self.clients.append(c)
            self.outstanding.append(set())
            self.wake.append(asyncio.Event())
        if members:
            await self.make_group()

    async def make_group(self) -> None:
        """The fanout scenario's group: client 0 creates it with every other client of this
        worker as a member (its invitations go out 1:1); each member polls, accepts and
        settles its cursors, so later polls see only new messages."""
        admin, rest = self.clients[0], self.clients[1:]
        self.gid = await admin.groups.create("load", [m.session_id for m in rest])
        if await admin.drain(120):
            raise RuntimeError("the group's invitations could not be delivered")
        for m in rest:
            await m.poll_once()
            await m.groups.accept(self.gid)
            await m.drain(60)
            await m.groups.poll(self.gid)
        self.streams = [c.events() for c in self.clients]

    async def close(self) -> None:
        for c in self.clients:
            await c.close()

    # ------------------------------------------------------------------ one message

    def pick_pair(self) -> tuple[int, int]:
        p = self.rng.randrange(self.cfg["pairs"])
        a, b = 2 * p, 2 * p + 1
        return (a, b) if self.rng.random() < 0.5 else (b, a)

    async def send_group(self, sched: float) -> None:
        """fanout: client 0 sends one group message (the library's outbox path), every other
        client is a recipient."""
        admin = self.clients[0]
        token = f"load L{self.wid}:{next(self.seq)}"
        n = len(self.clients) - 1
        self.pending[token] = (sched, -1)
        self.copies[token] = n
        self.sent += 1
        try:
            mid = await admin.groups.send(self.gid, token)
            await admin.flush_outbox()
        except SessionError as e:
            self.count_error(error_kind(e), e)
            return
        m = admin.message(mid)
        if m is None or m.status != "sent":
            self.count_error("outbox: " + (admin.delivery_error(mid) or "not sent"))
            return
        self.acked += 1
        self.store.append(time.monotonic() - sched)
        if token not in self.copies:
            return  # every member had it before the sender's flush returned
        got = self.received.get(token, set())
        for i in range(1, n + 1):
            if i not in got:
                self.outstanding[i].add(token)
                self.wake[i].set()

    async def send_one(self, sched: float, pair: tuple[int, int] | None = None) -> None:
        if self.gid:
            await self.send_group(sched)
            return
        a, b = pair or self.pick_pair()
        src, dst = self.clients[a], self.clients[b]
        token = f"load L{self.wid}:{next(self.seq)}"
        sent_ms = src.clock.now_ms()
        data = M.seal(src.identity, dst.session_id, M.text(token, sent_ms=sent_ms), sent_ms)
        self.pending[token] = (sched, b)
        self.sent += 1
        try:
            await src.rpc.store(dst.session_id, 0, data, sent_ms + TTL_MS)
        except SessionError as e:
            # Not acknowledged: an error, not a loss (it may still arrive; then it counts as
            # delivered, and its latency with it).
            self.count_error(error_kind(e), e)
            return
        self.acked += 1
        self.store.append(time.monotonic() - sched)
        if token in self.pending:  # (not already received)
            self.outstanding[b].add(token)
            self.wake[b].set()

    # ------------------------------------------------------------------ receiving

    async def receive_loop(self, idx: int) -> None:
        c = self.clients[idx]
        backoff = BACKOFF_MIN
        idle = float(self.cfg.get("idle_poll", 1.0))
        while self.running:
            woken = True
            try:
                await asyncio.wait_for(self.wake[idx].wait(), idle)
            except TimeoutError:
                woken = False
            self.wake[idx].clear()
            if not self.running:
                break
            if idx in self.paused:
                continue
            if woken and not self.gid and not self.outstanding[idx]:
                # Woken for messages an earlier poll already brought (it was in flight when
                # they were acknowledged): nothing to poll for.
                continue
            if self.gid:
                if idx == 0:
                    continue  # the sender of the group's messages
                rows = await self.poll_group(idx)
            else:
                self.polls += 1
                try:
                    rows = await c.receiver.poller.poll(0)
                except SessionError as e:
                    self.count_error("poll " + error_kind(e), e)
                    rows = []
                if not rows:
                    self.empty_polls += 1
            if rows and not self.gid:
                got = c.receiver.apply_unseen(rows)
                now = time.monotonic()
                for inc in got:
                    token = inc.content.dataMessage.body
                    entry = self.pending.pop(token, None)
                    if entry is None:
                        continue  # not this run's (an earlier step's straggler was counted)
                    self.outstanding[idx].discard(token)
                    self.delivered += 1
                    self.e2e.append((now, now - entry[0]))
            if self.outstanding[idx]:
                if not rows:
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX, backoff * 2)
                else:
                    backoff = BACKOFF_MIN
                self.wake[idx].set()
            else:
                backoff = BACKOFF_MIN

    async def poll_group(self, idx: int) -> list[Any]:
        """fanout: one member polls the group (its four namespaces); returns the received
        message events (empty when nothing new arrived)."""
        try:
            await self.clients[idx].groups.poll(self.gid)
        except SessionError as e:
            self.count_error("poll " + error_kind(e), e)
            return []
        now = time.monotonic()
        got = [ev for ev in self.streams[idx].pending() if isinstance(ev, MessageReceived)]
        for ev in got:
            token = ev.body
            if token not in self.outstanding[idx] and token not in self.copies:
                continue
            entry = self.pending.get(token)
            self.outstanding[idx].discard(token)
            self.received.setdefault(token, set()).add(idx)
            left = self.copies.get(token, 0) - 1
            if left <= 0:
                self.copies.pop(token, None)
                self.pending.pop(token, None)
                self.received.pop(token, None)
            else:
                self.copies[token] = left
            if entry is not None:
                self.delivered += 1
                self.e2e.append((now, now - entry[0]))
        return got

    # ------------------------------------------------------------------ steps

    async def run_step(self, step: dict[str, Any]) -> dict[str, Any]:
        self.examples = {}
        self.new_stats()
        self.requests = self.polls = self.empty_polls = 0
        cpu0 = time.process_time()
        t0 = float(step["t0"])
        end = t0 + float(step["duration"])
        count = step.get("count")  # this worker's share, or None
        mode = step["mode"]
        tasks: set[asyncio.Task[None]] = set()
        extra: dict[str, Any] = {}

        def spawn(sched: float, pair: tuple[int, int] | None = None) -> None:
            t = asyncio.create_task(self.send_one(sched, pair))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        reporter = asyncio.create_task(self.report_loop())
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        if mode == "rate":
            for sched in due_times(t0, end, float(step["rate"]), step.get("offset", 0.0), count):
                delay = sched - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                spawn(sched)
        elif mode == "burst":
            # everyone at once: each sender has `count` messages scheduled at t0
            per = int(count or 1)
            for a in range(len(self.clients)):
                b = a ^ 1
                for _ in range(per):
                    spawn(t0, (a, b))
        elif mode == "closed":
            budget = [count if count is not None else 10**12]

            async def sender() -> None:
                while time.monotonic() < end and budget[0] > 0:
                    budget[0] -= 1
                    await self.send_one(time.monotonic())

            await asyncio.gather(*(sender() for _ in range(int(step["concurrency"]))))
        elif mode == "backlog":
            # Client 1 is away while client 0 fills its swarm; then it comes back and polls.
            # Only worker 0 takes part (one recipient); the others idle through the step.
            if self.wid == 0:
                self.paused.add(1)
                left = [int(count or 10_000)]

                async def filler() -> None:
                    while left[0] > 0:
                        left[0] -= 1
                        await self.send_one(time.monotonic(), (0, 1))

                await asyncio.gather(*(filler() for _ in range(int(step["concurrency"]))))
                fill_s = time.monotonic() - t0
                drain_t0 = time.monotonic()
                self.paused.discard(1)
                self.wake[1].set()
                limit = drain_t0 + float(step.get("drain", 15.0)) + fill_s
                while self.outstanding[1] and time.monotonic() < limit:
                    await asyncio.sleep(0.01)
                extra.update(
                    fill_s=round(fill_s, 3),
                    drain_s=round(time.monotonic() - drain_t0, 3),
                    backlog=int(count or 10_000),
                )
        else:
            raise ValueError(f"unknown step mode {mode!r}")
        if tasks:
            await asyncio.gather(*tasks)
        # Drain: wait (bounded) for every acknowledged message to arrive.
        deadline = time.monotonic() + float(step.get("drain", 15.0))
        while any(self.outstanding) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lost = sum(len(o) for o in self.outstanding)
        for o in self.outstanding:
            o.clear()
        self.pending.clear()
        self.copies.clear()
        self.received.clear()
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        self.flush_report()
        return {
            "kind": "done",
            "wid": self.wid,
            "lost": lost,
            "cpu_s": time.process_time() - cpu0,
            "requests": self.requests,
            "polls": self.polls,
            "empty_polls": self.empty_polls,
            "extra": extra,
            "examples": self.examples,
        }

    async def report_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.flush_report()

    def flush_report(self) -> None:
        self.out.put(
            {
                "kind": "tick",
                "wid": self.wid,
                "sent": self.sent,
                "acked": self.acked,
                "delivered": self.delivered,
                "errors": dict(self.errors),
                "e2e": self.e2e,
                "store": self.store,
                "cpu_s": time.process_time(),
            }
        )
        self.sent = self.acked = self.delivered = 0
        self.errors = {}
        self.e2e = []
        self.store = []


async def _main(wid: int, cfg: dict[str, Any], commands: Any, out: Any) -> None:
    w = Worker(wid, cfg, out)
    loop = asyncio.get_running_loop()

    def on_loop_error(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # What the loop would print as a traceback (e.g. uvloop's "Fatal error on SSL
        # protocol" when a guard closes a connection mid-write): counted as an error kind.
        e = context.get("exception")
        w.count_error("loop " + (type(e).__name__ if e else "error"), e)

    loop.set_exception_handler(on_loop_error)
    await w.open_clients()
    receivers = [asyncio.create_task(w.receive_loop(i)) for i in range(len(w.clients))]
    out.put({"kind": "ready", "wid": wid, "clients": len(w.clients)})
    driver = os.getppid()
    try:
        while True:
            try:
                cmd = await loop.run_in_executor(None, commands.get, True, 1.0)
            except queue.Empty:
                if os.getppid() != driver:  # the driver died (SIGKILL): nobody to work for
                    break
                continue
            if cmd["cmd"] == "stop":
                break
            if cmd["cmd"] == "step":
                out.put(await w.run_step(cmd))
    finally:
        w.running = False
        for i in range(len(w.clients)):
            w.wake[i].set()
        await asyncio.gather(*receivers, return_exceptions=True)
        await w.close()


def run(wid: int, cfg: dict[str, Any], commands: Any, out: Any) -> None:
    """Entry point of a worker process (``multiprocessing`` target). Ctrl-C is the driver's
    to handle (it stops the workers and the devnet), so a worker ignores SIGINT; it ends on
    the driver's ``stop``, its SIGTERM, or when the driver is gone."""
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uvloop.run(_main(wid, cfg, commands, out))
