"""The ``community`` scenario: one room (the devnet's ``lobby``) with ``--members`` members
polling it every ``--interval`` seconds (Session's 5 s) through 3-hop onion requests, while
some of them post at ``--rate`` (issue 11's benchmark).

A member is cheap: an identity whose 15-blinded key for the server signs its requests, and
its place in the room (the ``info_updates`` and ``seqno`` it has seen). Its requests are the
library's own (:func:`session.client.community.server_request`: a v4 onion request over a
3-hop path, signed with the ``X-SOGS-*`` headers), its poll is the library's ``/batch`` poll
of one room on a blinded server (``/capabilities``, ``pollInfo``, ``messages/since``,
``/inbox``, ``/outbox``), its post the library's post
body (``post_content``, padded, blind-signed). There is no SQLite per member and no Client:
what is measured is the server and the onion path, not the client's storage. Members share
onion transports (:data:`MEMBERS_PER_TRANSPORT` a transport, each with its own paths) rather
than holding 1,000 connection pools.

Open loop: member *i*'s *k*-th poll is due at ``t0 + (i / M + k) · interval`` (the members'
polls spread evenly over the interval) and post *n* at ``t0 + n / rate``; each is sent when
due whether or not earlier ones finished, and its latency runs from when it was due.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.load import report
from bench.load.worker import error_kind
from session import blinding
from session.client.community import (
    batch_answers,
    counter,
    dm_poll_requests,
    encode_post,
    parse_join_url,
    post_content,
    room_poll_requests,
    server_request,
)
from session.client.network import NetworkClock
from session.client.paths import PathManager
from session.client.transport import OnionTransport, PathFailure
from session.errors import SessionError
from session.identity import Identity
from session.proto.snodes import parse_community_servers, parse_node_list

#: Members sharing one onion transport (one aiohttp pool, one set of paths).
MEMBERS_PER_TRANSPORT = 25
#: The room the devnet's community server has.
ROOM = "lobby"


def schedule(
    members: int, interval: float, posters: int, rate: float, duration: float
) -> Iterator[tuple[float, str, int, int]]:
    """Every request of a run, in order of when it is due (seconds from the start):
    ``(due, "poll" | "post", member, n)`` where ``n`` is the member's poll number or the
    post's sequence number. Posters are members ``0 .. posters-1``, taking posts in turn."""
    heap: list[tuple[float, str, int, int]] = [
        (i / members * interval, "poll", i, 0) for i in range(members)
    ]
    if rate > 0 and posters > 0:
        heap.append((0.0, "post", 0, 0))
    heapq.heapify(heap)
    while heap:
        due, kind, who, n = heapq.heappop(heap)
        if due >= duration:
            continue
        yield due, kind, who, n
        if kind == "poll":
            heapq.heappush(heap, (due + interval, "poll", who, n + 1))
        else:
            heapq.heappush(heap, ((n + 1) / rate, "post", (n + 1) % posters, n + 1))


class Member:
    """One member's identity and what it has seen of the room."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.info_updates = 0
        self.seqno: int | None = None

    def poll_requests(self) -> list[dict[str, Any]]:
        """The subrequests of this member's next ``/batch`` poll."""
        return [
            {"method": "GET", "path": "/capabilities"},
            *room_poll_requests(ROOM, self.info_updates, self.seqno),
            *dm_poll_requests(0, 0),  # no DMs come to the load's members
        ]

    def apply(self, answers: list[tuple[int, Any]]) -> int:
        """Take a poll's answers in; returns how many posts it brought (0 on the first poll,
        which lists the recent ones rather than new ones)."""
        (info_status, info), (msg_status, msgs) = answers[1:3]
        if info_status == 200 and isinstance(info, dict):
            self.info_updates = counter(info.get("info_updates")) or self.info_updates
        if msg_status != 200 or not isinstance(msgs, list):
            return 0
        seqnos = [s for m in msgs if isinstance(m, dict) and (s := counter(m.get("seqno")))]
        first = self.seqno is None
        if seqnos:
            self.seqno = max([*seqnos, self.seqno or 0])
        elif first:
            self.seqno = 0
        return 0 if first else len(msgs)


class CommunityLoad:
    """The members, their transports, and the figures of one run."""

    def __init__(
        self,
        nodes_json: str,
        members: int,
        *,
        interval: float,
        rate: float,
        posters: int,
        seed: int,
    ) -> None:
        doc = json.loads(Path(nodes_json).read_text())
        servers = parse_community_servers(doc)
        if not servers or ROOM not in servers[0].rooms:
            raise SystemExit(f"{nodes_json} lists no community server with a room {ROOM!r}")
        url = parse_join_url(servers[0].rooms[ROOM])
        self.base_url, self.pubkey = url.base_url, url.pubkey
        nodes = parse_node_list(doc)
        self.members = [Member(Identity.generate()) for _ in range(members)]
        self.clock = NetworkClock()
        self.transports = [
            OnionTransport(PathManager(nodes, rng=random.Random(seed * 1000 + t)), self.clock)
            for t in range(-(-members // MEMBERS_PER_TRANSPORT))
        ]
        self.interval, self.rate, self.posters = interval, rate, min(posters, members)
        self.poll_hist = report.new_histogram()
        self.post_hist = report.new_histogram()
        self.polls = self.posts = self.received = 0
        self.errors: dict[str, int] = {}
        self.examples: dict[str, str] = {}

    def now_s(self) -> int:
        return int(self.clock.now_ms() // 1000)

    async def request(self, i: int, path: str, body: Any) -> bytes:
        """A signed POST of member ``i`` through a 3-hop onion path."""
        _, payload = await server_request(
            self.transports[i % len(self.transports)],
            self.members[i].identity,
            self.now_s,
            self.base_url,
            self.pubkey,
            "POST",
            path,
            json_body=body,
        )
        return payload

    def failed(self, what: str, e: BaseException) -> None:
        kind = f"{what} {error_kind(e)}"
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.examples.setdefault(kind, str(e)[:200])

    async def poll(self, i: int, due: float) -> None:
        m = self.members[i]
        reqs = m.poll_requests()
        try:
            answers = batch_answers(await self.request(i, "/batch", reqs), len(reqs))
        except (SessionError, PathFailure, TimeoutError) as e:
            self.failed("poll", e)
            return
        report.record(self.poll_hist, time.monotonic() - due)
        self.polls += 1
        self.received += m.apply(answers)

    async def post(self, i: int, due: float, n: int) -> None:
        m = self.members[i]
        data = encode_post(
            post_content(f"load post {n}", sent_ms=self.clock.now_ms(), display_name=f"m{i}")
        )
        sig = blinding.blind15_sign(m.identity, self.pubkey, data)
        doc = {"data": base64.b64encode(data).decode(), "signature": base64.b64encode(sig).decode()}
        try:
            await self.request(i, f"/room/{ROOM}/message", doc)
        except (SessionError, PathFailure, TimeoutError) as e:
            self.failed("post", e)
            return
        report.record(self.post_hist, time.monotonic() - due)
        self.posts += 1

    async def run(self, duration: float, tick: Callable[[float], None]) -> float:
        """Send every request of the schedule when due, then wait for the last answers;
        ``tick(elapsed)`` is called about once a second. Returns the wall time."""
        tasks: set[asyncio.Task[None]] = set()
        t0 = time.monotonic() + 0.5
        last_tick = t0
        for due, kind, who, n in schedule(
            len(self.members), self.interval, self.posters, self.rate, duration
        ):
            at = t0 + due
            now = time.monotonic()
            if at > now:
                await asyncio.sleep(at - now)
            if now - last_tick >= 1.0:
                tick(now - t0)
                last_tick = now
            coro = self.poll(who, at) if kind == "poll" else self.post(who, at, n)
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        wall = time.monotonic() - t0
        for t in self.transports:
            await t.close()
        return wall
