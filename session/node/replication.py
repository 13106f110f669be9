"""Swarm replication over node links: the write fan-out, reconciliation, and the data handoff.

* :class:`LinkFanout` implements the RPC handler's ``SwarmFanout``: a write accepted by one
  member is forwarded (the original signed request) to every other member of this node's swarm
  at once; each answers with its own signed result, or ``None`` when it is down or did not
  answer within a short deadline (the client is never held up by a dead or frozen member).
  Members re-validate everything themselves.
  Writes to one member within one event-loop iteration travel together as one link message
  (``KIND_CC_BATCH``, :func:`batch_handler` on the receiving side); a member too old to know
  that kind gets them one by one. Optionally (``hold``; off by default: on the devnet at
  200–300/s it cost throughput, docs/performance.md), while a link message to a member is
  still unanswered, later writes for it are held and go together when it answers (Nagle's
  rule).
* :class:`Reconciler` brings members level: after a restart (reads are refused with 503 until
  then), when a member answers again after being down, and periodically, two members compare
  digests per account bucket, then per account, and exchange only the messages, deletions
  (tombstones) and expiries that differ. See docs/design.md ("Replication and catch-up").
* :class:`SwarmHandoff` reacts to node-list changes. It pushes the accounts this node no longer
  owns to every member of their new swarm and drops them locally only once *every* member of
  that swarm has accepted them (so nothing is lost when a push fails, and nothing stays doubled
  once it succeeds: operators' complaint about swarm changes doubling data). New members of our
  own swarm get a copy of everything we own, retried until they acknowledge it (the other
  operators' complaint: new members missing the initial push).

Pushes carry the namespace (Session's ``sn.data`` v1 drops it; we keep it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped]

from session.errors import InvalidInput, StorageError
from session.node.links import (
    KIND_CC,
    KIND_CC_BATCH,
    KIND_DATA,
    KIND_SYNC,
    MSGPACK_ERRORS,
    PROBE_MIN,
    Handler,
    LinkError,
    NodeLinks,
    RawReply,
    pack_body,
    ping,
    unpack_body,
)
from session.node.rpc import ForwardDone
from session.node.swarm_view import SwarmChange, SwarmView
from session.proto.snodes import INVALID_SWARM_ID, ServiceNode
from session.service.tasks import cancel_and_wait, spawn
from session.storage.base import (
    ALL_BUCKETS,
    MessageStore,
    StoredMessage,
    SyncEntry,
    Tombstone,
    bucket_digest,
    bucket_of,
    check_owner,
    digest_rows,
    newer_expiry,
    now_ms,
)
from session.swarm import message_hash

log = logging.getLogger("session.node.replication")

#: Bytes of message data per bulk push (kept under the link's 10 MiB message cap).
PUSH_BATCH_BYTES = 4 * 1024 * 1024
#: accounts offered to one ``export_part`` call (a window, not the rest of the list: copying
#: the rest for every part made a handoff of many accounts quadratic)
EXPORT_WINDOW = 1024
#: How long a client's write waits for the other members before answering without them.
FORWARD_DEADLINE = 1.0
#: How long a forwarded write may take in the background before the member counts as down.
FORWARD_TIMEOUT = 5.0
PUSH_TIMEOUT = 30.0
RETRY_INTERVAL = 5.0
#: Most forwarded writes in one batch to a member, and about how many bytes (the link caps
#: a message at 10 MiB; a store's data is at most ~100 KB of base64).
CC_BATCH_MAX = 256
CC_BATCH_BYTES = 4 * 1024 * 1024
#: How long writes for a member may be held while a link message to it is unanswered (see
#: :class:`LinkFanout`): 0, never (what the node's ``replication.forward_hold`` defaults to).
CC_HOLD = 0.0
#: The reply :func:`batch_handler` gives a request it refused (the sender counts it failed).
REFUSED = None


class LinkFanout:
    """``SwarmFanout`` over node links that never waits long on a member that is down or slow.

    * A member the links know to be down (see :class:`session.node.links.PeerHealth`: its last
      request failed or timed out) is reported failed at once, without a request; reconciliation
      (:class:`Reconciler`) gives it what it missed when it answers a probe again.
    * The others get the write at once, and the client is answered when every one of them
      replied or ``deadline`` seconds passed, whichever is first. A member still silent at the
      deadline is reported failed (``timeout``) but its request keeps running up to ``timeout``:
      a merely slow member still gets every write. While it has such late requests, later
      writes are sent to it without waiting for it. If a late request times out, the links mark
      the member down (a frozen member), and later writes skip it.
    * Writes for one member made in the same loop iteration go as one link message. With
      ``hold`` above 0 (off by default: measured to cost throughput near saturation), while
      one to the member is unanswered, later writes for it are held until it answers, ``hold``
      seconds at most, and then go together (Nagle's rule: each link message, and each of the
      member's wake-ups, carries several writes; a held write waits about one round trip to
      that member). The order of writes to a member is kept either way.
    """

    def __init__(
        self,
        links: NodeLinks,
        view: SwarmView,
        *,
        deadline: float = FORWARD_DEADLINE,
        timeout: float = FORWARD_TIMEOUT,
        on_result: Callable[[str], None] | None = None,
        hold: float = CC_HOLD,
        on_held: Callable[[int], None] | None = None,
    ) -> None:
        self.links = links
        self.view = view
        self.deadline = deadline
        self.timeout = timeout
        self.on_result = on_result
        self.hold = hold
        #: called with the number of writes sent after being held (metrics)
        self.on_held = on_held
        #: members (Ed25519 hex) → their writes still running past a deadline
        self._late: dict[str, set[asyncio.Future[Any]]] = {}
        #: writes of this loop iteration not sent yet: member X25519 → (member, [(body, fut)])
        self._queued: dict[str, tuple[ServiceNode, list[tuple[Any, asyncio.Future[Any]]]]] = {}
        #: members that answered "unknown kind" to a batch (older nodes): sent one by one
        self._singly: set[str] = set()
        self._sending: set[asyncio.Task[None]] = set()
        #: member X25519 → its link messages of writes not answered yet
        self._unanswered: dict[str, int] = {}
        #: writes held while a link message to the member is unanswered: X25519 → (member,
        #: [(body, fut)], the timer that sends them when ``hold`` has passed)
        self._held: dict[
            str, tuple[ServiceNode, list[tuple[Any, asyncio.Future[Any]]], asyncio.TimerHandle]
        ] = {}
        #: link messages sent (a batch counts once), for tests and logs
        self.link_requests = 0
        #: writes that were held for a while before they were sent, for tests and metrics
        self.held_writes = 0

    def slow(self) -> list[str]:
        """Members whose writes are still running past a deadline (not waited for)."""
        return list(self._late)

    async def forward(self, request_body: dict[str, Any]) -> dict[str, Any]:
        """Send the write to the other members; their results (None: down, slow or failed)."""
        fut: asyncio.Future[Mapping[str, Any] | BaseException] = (
            asyncio.get_running_loop().create_future()
        )
        self.forward_then(request_body, functools.partial(_settle, fut))
        out = await fut
        if isinstance(out, BaseException):
            raise out  # a bug: surfaces
        return dict(out)

    def forward_then(self, request_body: dict[str, Any], done: ForwardDone) -> None:
        """:meth:`forward` with no task or coroutine: ``done`` gets the members' results once
        every member waited for answered or ``deadline`` passed (at once, before this returns,
        when none is waited for), or the exception a bug raised. One future per member (no
        task: a write reaches eleven members in a 12-node swarm, and each task would cost the
        entry node its creation and two steps per write), each finished one counted off by
        its callback, and one timer."""
        out: dict[str, Any] = {}
        waited: list[tuple[ServiceNode, asyncio.Future[Any]]] = []
        for n in self.view.peers_in_my_swarm():
            if self.links.is_down(n.pubkey_x25519):
                out[n.pubkey_ed25519] = None
                self._count("failed")
                continue
            f = self._queue(n, request_body)
            if n.pubkey_ed25519 in self._late:
                out[n.pubkey_ed25519] = None  # slow: it gets the write, nobody waits for it
                self._keep(n, f)
            else:
                waited.append((n, f))
        if not waited:
            done(out)
            return
        _Gather(self, out, waited, done)

    def _gathered(
        self,
        out: dict[str, Any],
        waited: list[tuple[ServiceNode, asyncio.Future[Any]]],
        done: ForwardDone,
    ) -> None:
        """(:class:`_Gather`) every member waited for answered, or the deadline passed: the
        results to ``done``; a member still silent is reported None and followed (:meth:`_keep`)."""
        for n, f in waited:
            if f.done():
                e = f.exception()
                if e is not None and not isinstance(e, LinkError):
                    done(e)  # a bug: surfaces
                    return
                out[n.pubkey_ed25519] = self._outcome(n, f)
                continue
            out[n.pubkey_ed25519] = None
            log.info(
                "replica %s… did not answer within %.1fs; not waiting for it for now",
                n.pubkey_ed25519[:12],
                self.deadline,
            )
            self._keep(n, f)
        done(out)

    def _keep(self, node: ServiceNode, fut: asyncio.Future[Any]) -> None:
        """Follow a write still running past its deadline: the member counts as slow until it
        ends, and its outcome is counted when it does."""
        ed = node.pubkey_ed25519
        self._late.setdefault(ed, set()).add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            left = self._late.get(ed)
            if left is not None:
                left.discard(f)
                if not left:
                    del self._late[ed]
            if not f.cancelled():
                self._outcome(node, f)

        fut.add_done_callback(done)

    def _queue(self, node: ServiceNode, body: dict[str, Any]) -> asyncio.Future[Any]:
        """Queue one write for the member; the future gets its reply (or LinkError). It is
        sent at the end of this loop iteration with the others queued for it meanwhile."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        # (read at once, so a failure nobody waits for any more is not reported as lost)
        fut.add_done_callback(_retrieved)
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.setdefault(node.pubkey_x25519, (node, []))[1].append((body, fut))
        return fut

    def _outcome(self, node: ServiceNode, fut: asyncio.Future[Any]) -> Any:
        """The member's result of a finished write, or None (counted either way)."""
        e = fut.exception()
        if e is not None:
            if not isinstance(e, LinkError):
                raise e  # a bug: surfaces
            log.info("replica %s… did not answer: %s", node.pubkey_ed25519[:12], e)
            self._count("failed")
            return None
        r = fut.result()
        if r is REFUSED:
            self._count("failed")
            return None
        self._count("ok")
        return r

    def _flush(self) -> None:
        """Send each member the writes queued for it, in order, in batches; or hold them while
        a link message to the member is unanswered (class docstring). The link messages go
        out one right after the other, each write packed once for all the members it goes to."""
        queued, self._queued = self._queued, {}
        packed = _Packed()
        for x, (node, items) in queued.items():
            held = self._held.get(x)
            if held is not None:
                held[1].extend(items)
            elif self._unanswered.get(x) and self.hold > 0:
                timer = asyncio.get_running_loop().call_later(self.hold, self._release, x)
                self._held[x] = (node, items, timer)
            else:
                self._send_all(node, items, packed)

    def _release(self, x: str) -> None:
        """Send the writes held for member ``x`` (it answered, or ``hold`` passed)."""
        held = self._held.pop(x, None)
        if held is None:
            return
        node, items, timer = held
        timer.cancel()
        self.held_writes += len(items)
        if self.on_held is not None:
            self.on_held(len(items))
        self._send_all(node, items, _Packed())

    def _send_all(
        self, node: ServiceNode, items: list[tuple[Any, asyncio.Future[Any]]], packed: _Packed
    ) -> None:
        """Send ``items`` to ``node`` in link messages of at most :data:`CC_BATCH_MAX` writes:
        through the links with reply callbacks (:meth:`_send_now`), else as a task
        (:meth:`_send`)."""
        x = node.pubkey_x25519
        for part in _cc_parts(items):
            self._unanswered[x] = self._unanswered.get(x, 0) + 1
            if not self._send_now(node, part, packed):
                self._spawn_send(node, part)

    def _spawn_send(self, node: ServiceNode, part: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        """:meth:`_send` as a task (counted unanswered by the caller until it ends)."""
        t = asyncio.ensure_future(self._send(node, part))
        self._sending.add(t)
        t.add_done_callback(self._sending.discard)
        t.add_done_callback(functools.partial(self._answered, node.pubkey_x25519))

    def _send_now(
        self, node: ServiceNode, part: list[tuple[Any, asyncio.Future[Any]]], packed: _Packed
    ) -> bool:
        """One link message of ``part`` handed to the links, its reply handed to the writes'
        futures by a callback (no task of ours; the links send it at once, or in its turn
        once the member's link can take it; to a member that takes no batches, one message
        a write: :meth:`_send_singly`); False, nothing sent: the links refused it (closed, too
        large: :meth:`_send` says why)."""
        x = node.pubkey_x25519
        if len(part) == 1:
            kind, frames = KIND_CC, packed.frames(part[0][0])
        elif x in self._singly:
            self._send_singly(node, part, packed)
            return True
        else:
            kind, frames = KIND_CC_BATCH, [packed.batch([b for b, _ in part])]
        sent = self.links.send_packed(
            x,
            node.zmq_address,
            kind,
            frames,
            self.timeout,
            functools.partial(self._replied, node, part),
        )
        if sent:
            self.link_requests += 1
        return sent

    def _send_singly(
        self, node: ServiceNode, part: list[tuple[Any, asyncio.Future[Any]]], packed: _Packed
    ) -> None:
        """``part`` to a member that takes no batches, one link message a write, each handed
        to the links in order now (each keeps its turn: a later write cannot leave first),
        counted unanswered one each (the caller counted the part once). Writes the links
        refuse (closed, too large) go on as a task, which says why."""
        x = node.pubkey_x25519
        self._unanswered[x] = self._unanswered.get(x, 0) + len(part) - 1
        for k, item in enumerate(part):
            if not self.links.send_packed(
                x,
                node.zmq_address,
                KIND_CC,
                packed.frames(item[0]),
                self.timeout,
                functools.partial(self._replied, node, [item]),
            ):
                self._unanswered[x] -= len(part) - k - 1  # (the task counts once for the rest)
                self._spawn_send(node, part[k:])
                return
            self.link_requests += 1

    def _replied(
        self,
        node: ServiceNode,
        part: list[tuple[Any, asyncio.Future[Any]]],
        outcome: RawReply | LinkError,
    ) -> None:
        """The reply to a link message sent by :meth:`_send_now` (or the LinkError that ended
        it): each write's future gets its result, as :meth:`_send` gives them."""
        x = node.pubkey_x25519
        if isinstance(outcome, LinkError):
            if len(part) > 1 and str(outcome) == "unknown kind":
                log.info("member %s… takes no batches: sending one by one", x[:12])
                self._singly.add(x)
                # sent again one by one: unanswered until answered, counted before this
                # message counts as answered (so nothing held for the member goes between)
                self._unanswered[x] = self._unanswered.get(x, 0) + 1
                self._send_singly(node, part, _Packed())
            else:
                _fail_all(part, outcome)
            self._answered(x)
            return
        self._answered(x)
        try:
            r = unpack_body(*outcome)
        except MSGPACK_ERRORS as e:
            _fail_all(part, LinkError(f"bad reply: {e}"))
            return
        if len(part) == 1:
            if not part[0][1].done():
                part[0][1].set_result(r)
            return
        results = r.get("r") if isinstance(r, dict) else None
        if not isinstance(results, list) or len(results) != len(part):
            _fail_all(part, LinkError("batch reply does not match the batch"))
            return
        for (_, f), res in zip(part, results, strict=True):
            if not f.done():
                f.set_result(res)

    def _answered(self, x: str, _: object = None) -> None:
        """A link message of writes to member ``x`` is over: what was held for it goes now."""
        left = self._unanswered.get(x, 0) - 1
        if left > 0:
            self._unanswered[x] = left
            return
        self._unanswered.pop(x, None)
        if x in self._held:
            self._release(x)

    async def _send(self, node: ServiceNode, items: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        """One link message to ``node`` for ``items`` (each future gets its result, or the
        LinkError); a member that does not know batches gets them one by one, in order."""
        x = node.pubkey_x25519
        try:
            if len(items) == 1:
                await self._send_one(node, *items[0])
                return
            if x in self._singly:
                await asyncio.gather(*(self._send_one(node, b, f) for b, f in items))
                return
            self.link_requests += 1
            try:
                r = await self.links.request(
                    x, node.zmq_address, KIND_CC_BATCH, {"r": [b for b, _ in items]}, self.timeout
                )
            except LinkError as e:
                if str(e) != "unknown kind":
                    raise
                log.info("member %s… takes no batches: sending one by one", x[:12])
                self._singly.add(x)
                await asyncio.gather(*(self._send_one(node, b, f) for b, f in items))
                return
            results = r.get("r") if isinstance(r, dict) else None
            if not isinstance(results, list) or len(results) != len(items):
                raise LinkError("batch reply does not match the batch")
            for (_, f), res in zip(items, results, strict=True):
                if not f.done():
                    f.set_result(res)
        except LinkError as e:
            _fail_all(items, e)

    async def _send_one(self, node: ServiceNode, body: Any, fut: asyncio.Future[Any]) -> None:
        self.link_requests += 1
        try:
            r = await self.links.request(
                node.pubkey_x25519, node.zmq_address, KIND_CC, body, self.timeout
            )
        except LinkError as e:
            if not fut.done():
                fut.set_exception(e)
            return
        if not fut.done():
            fut.set_result(r)

    def _count(self, outcome: str) -> None:
        if self.on_result:
            self.on_result(outcome)

    async def stop(self) -> None:
        """Cancel writes still running past their deadline; writes still held fail."""
        held, self._held = self._held, {}
        for _, items, timer in held.values():
            timer.cancel()
            for _, f in items:
                if not f.done():
                    f.set_exception(LinkError("replication stopped"))
        await cancel_and_wait([t for ts in self._late.values() for t in ts])
        await cancel_and_wait(list(self._sending))


def _fail_all(items: list[tuple[Any, asyncio.Future[Any]]], e: LinkError) -> None:
    """Each write of ``items`` not answered yet fails with (a copy of) ``e``."""
    for _, f in items:
        if not f.done():
            f.set_exception(LinkError(str(e)))


#: msgpack's map header of one key and the key "r": a batch body ``{"r": [...]}`` is this, an
#: array header and the packed writes one after the other
_BATCH_HEAD = msgpack.packb({"r": []}, use_bin_type=True)[:-1]


class _Packed:
    """Writes packed once for every member they go to in one flush (by identity: the same
    request body object is queued for each member)."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames: dict[int, tuple[Any, list[bytes]]] = {}

    def frames(self, body: Any) -> list[bytes]:
        """``pack_body(body)``."""
        got = self._frames.get(id(body))
        if got is None or got[0] is not body:
            got = self._frames[id(body)] = (body, pack_body(body))
        return got[1]

    def batch(self, bodies: list[Any]) -> bytes:
        """``msgpack.packb({"r": bodies})``, of the writes packed once each."""
        parts = [_BATCH_HEAD, _array_header(len(bodies))]
        for b in bodies:
            frames = self.frames(b)
            parts.append(frames[0] if len(frames) == 1 else msgpack.packb(b, use_bin_type=True))
        return b"".join(parts)


def _array_header(n: int) -> bytes:
    """msgpack's header of an array of ``n`` items."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    """``fut``'s result (unless it was cancelled: its waiter is gone)."""
    if not fut.done():
        fut.set_result(value)


class _Gather:
    """One fan-out's wait for the members it waits for (:meth:`LinkFanout.forward_then`):
    each member's future counts itself off as it finishes; the last one, or the deadline's
    timer, whichever is first, hands the results on (once)."""

    __slots__ = ("done", "fanout", "left", "out", "timer", "waited")

    def __init__(
        self,
        fanout: LinkFanout,
        out: dict[str, Any],
        waited: list[tuple[ServiceNode, asyncio.Future[Any]]],
        done: ForwardDone,
    ) -> None:
        self.fanout = fanout
        self.out = out
        self.waited = waited
        self.done: ForwardDone | None = done
        self.left = len(waited)
        self.timer = asyncio.get_running_loop().call_later(fanout.deadline, self.finish)
        for _, f in waited:
            f.add_done_callback(self._one)

    def _one(self, fut: asyncio.Future[Any]) -> None:
        self.left -= 1
        if self.left == 0:
            self.timer.cancel()
            self.finish()

    def finish(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            self.fanout._gathered(self.out, self.waited, done)


def _cc_parts(items: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]]:
    """``items`` in order, cut into batches of at most CC_BATCH_MAX writes and about
    CC_BATCH_BYTES bytes."""
    out: list[list[tuple[Any, Any]]] = []
    cur: list[tuple[Any, Any]] = []
    size = 0
    for it in items:
        params = it[0].get("params") if isinstance(it[0], dict) else None
        data = params.get("data") if isinstance(params, dict) else None
        n = 512 + (len(data) if isinstance(data, (str, bytes)) else 0)
        if cur and (len(cur) >= CC_BATCH_MAX or size + n > CC_BATCH_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(it)
        size += n
    if cur:
        out.append(cur)
    return out


def _account_key(body: Any, i: int) -> Any:
    params = body.get("params") if isinstance(body, dict) else None
    pk = params.get("pubkey") if isinstance(params, dict) else None
    return pk if isinstance(pk, str) else i


def batch_handler(one: Handler) -> Handler:
    """Link handler for ``KIND_CC_BATCH`` from ``one``, the handler of a single forwarded write
    (``KIND_CC``): runs the batch's writes, those of one account one after another in the
    batch's order and the accounts side by side (so their store writes reach the writer thread
    together), and answers their results in order; a write ``one`` refuses gets None (the
    sender counts that member failed for it, as for a refused single write)."""

    async def serve(peer: str, body: Any) -> dict[str, Any]:
        reqs = batch_requests(body)
        results: list[Any] = [REFUSED] * len(reqs)
        await run_in_chains(peer, reqs, results, lambda i: one(peer, reqs[i]))
        return {"r": results}

    return serve


def batch_requests(body: Any) -> list[Any]:
    """The writes of a forwarded batch's body ``{"r": [...]}``; TypeError for another shape,
    ValueError for more than :data:`CC_BATCH_MAX` (the link answers either as a refusal)."""
    if not isinstance(body, dict) or not isinstance(body.get("r"), list):
        raise TypeError("a forwarded batch must be a map with a list 'r'")
    reqs: list[Any] = body["r"]
    if len(reqs) > CC_BATCH_MAX:
        raise ValueError(f"a forwarded batch holds at most {CC_BATCH_MAX} requests")
    return reqs


async def run_in_chains(
    peer: str,
    reqs: list[Any],
    results: list[Any],
    one: Callable[[int], Awaitable[Any]],
    start: int = 0,
) -> None:
    """Run the writes ``reqs[start:]`` of a forwarded batch (``one(i)``: write ``i``'s
    result), into ``results``: those of one account one after another in the batch's order,
    the accounts side by side (so their store writes reach the writer thread together); a write
    refused (ValueError, TypeError, StorageError) keeps its ``REFUSED``."""
    chains: dict[Any, list[int]] = {}
    for i in range(start, len(reqs)):
        chains.setdefault(_account_key(reqs[i], i), []).append(i)

    async def run(indices: list[int]) -> None:
        for i in indices:
            try:
                results[i] = await one(i)
            except (ValueError, TypeError, StorageError) as e:
                log.info("refused a forwarded write from %s…: %s", peer[:12], e)

    await asyncio.gather(*(run(ix) for ix in chains.values()))


def owns(view: SwarmView, owner: str) -> bool:
    """Whether ``owner``'s account belongs to our swarm (True when it cannot be decided yet:
    nothing is dropped or refused on a guess)."""
    my = view.my_swarm_id()
    if my is None:
        return False
    try:
        return view.swarm_id_for(owner) == my
    except (LookupError, ValueError):
        return True


def _records(msgs: Iterable[Any]) -> list[list[Any]]:
    return [
        [m.owner, m.namespace, m.hash, m.timestamp_ms, m.expiry_ms, bytes(m.data)] for m in msgs
    ]


def _batches(records: Sequence[list[Any]]) -> list[list[list[Any]]]:
    out: list[list[list[Any]]] = []
    cur: list[list[Any]] = []
    size = 0
    for r in records:
        n = len(r[5]) + 200
        if cur and size + n > PUSH_BATCH_BYTES:
            out.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += n
    if cur:
        out.append(cur)
    return out


class SwarmHandoff:
    """Moves data when swarm membership changes (see the module docstring)."""

    def __init__(
        self,
        store: Any,
        links: NodeLinks,
        view: SwarmView,
        *,
        on_moved: Callable[[str, int], None] | None = None,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.store = store
        self.links = links
        self.view = view
        self.on_moved = on_moved
        self.retry_interval = retry_interval
        self._lock = asyncio.Lock()
        self._pending_members: dict[str, ServiceNode] = {}  # new members still owed a copy
        self._outgoing_pending = False  # some not-owned accounts could not be handed over yet
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ sending side
    def mine(self, owner: str) -> bool:
        return owns(self.view, owner)

    async def restore(self) -> None:
        """Load the members still owed a copy when the node last stopped (kept in the store:
        a restart must not forget them). Each is checked against the swarm on the next pass."""
        for ed, entry in (await self.store.handoff_targets()).items():
            try:
                node = ServiceNode.from_json(json.loads(entry))
            except (ValueError, TypeError, KeyError) as e:  # an unreadable row: drop it
                log.warning("dropping an unreadable hand-off target %s…: %s", ed[:12], e)
                await self.store.set_handoff_target(ed, None)
                continue
            self._pending_members.setdefault(ed, node)
        if self._pending_members:
            log.info("%d swarm members are still owed a copy", len(self._pending_members))

    async def _owe(self, node: ServiceNode) -> None:
        self._pending_members[node.pubkey_ed25519] = node
        await self.store.set_handoff_target(node.pubkey_ed25519, json.dumps(node.to_json()))

    async def _settled(self, ed: str) -> None:
        self._pending_members.pop(ed, None)
        await self.store.set_handoff_target(ed, None)

    async def on_change(self, change: SwarmChange) -> None:
        """``SwarmView.on_change`` callback."""
        for n in change.new_members:
            await self._owe(n)
        for n in change.departed:
            await self._settled(n.pubkey_ed25519)
            self.links.disconnect(n.pubkey_x25519)
        if change.old is not None:
            self._outgoing_pending = True
        await self.reconcile()

    async def reconcile(self) -> None:
        """One pass: copy our data to new members, hand over and drop what we no longer own."""
        if self.view.map is None or not self.view.map.swarms:
            return
        async with self._lock:
            if self._pending_members:
                await self._feed_new_members()
            if self._outgoing_pending:
                self._outgoing_pending = not await self._hand_over()

    async def _feed_new_members(self) -> None:
        my = self.view.my_swarm_id()
        current = {n.pubkey_ed25519 for n in self.view.members(my)} if my is not None else set()
        for ed, node in list(self._pending_members.items()):
            if ed not in current:
                await self._settled(ed)
                continue
            # (a part of the accounts at a time: a node holding a million messages must not
            # load them all to copy them)
            owners = [o for o in await self.store.owners() if self.mine(o)]
            copied, i, ok = 0, 0, True
            while ok and i < len(owners):
                msgs, k = await self.store.export_part(
                    owners[i : i + EXPORT_WINDOW], PUSH_BATCH_BYTES
                )
                ok = await self._push(node, _records(msgs)) is not None
                copied += len(msgs)
                i += k
            if ok:
                await self._settled(ed)
                if self.on_moved:
                    self.on_moved("copied", copied)
                log.info("copied %d messages to new swarm member %s…", copied, ed[:12])

    async def _hand_over(self) -> bool:
        """Push accounts we no longer own to their swarm (a part at a time); drop those every
        member accepted. Returns True when nothing is left to hand over."""
        gone = [o for o in await self.store.owners() if not self.mine(o)]
        if not gone:
            return True
        done_owners: set[str] = set()
        failed_owners: set[str] = set()
        i = 0
        while i < len(gone):
            msgs, k = await self.store.export_part(gone[i : i + EXPORT_WINDOW], PUSH_BATCH_BYTES)
            i += k
            by_swarm: dict[int, list[Any]] = {}
            for m in msgs:
                try:
                    sid = self.view.swarm_id_for(m.owner)
                except LookupError:
                    continue
                by_swarm.setdefault(sid, []).append(m)
            for sid, group in by_swarm.items():
                members = [n for n in self.view.members(sid) if n.pubkey_ed25519 != self.view.me]
                owners = {m.owner for m in group}
                if not members:
                    failed_owners |= owners
                    continue
                records = _records(group)
                results = await asyncio.gather(*(self._push(n, records) for n in members))
                for r in results:
                    if r is None:
                        failed_owners |= owners
                    else:
                        failed_owners |= set(r.get("rejected_owners", ()))
                done_owners |= owners
        done_owners -= failed_owners
        if done_owners:
            dropped = await self.store.drop_accounts(
                lambda owner: owner in done_owners and not self.mine(owner)
            )
            if self.on_moved:
                self.on_moved("handed_over", dropped)
            log.info(
                "handed over %d accounts (%d messages) to their new swarms",
                len(done_owners),
                dropped,
            )
        return not failed_owners

    async def _push(self, node: ServiceNode, records: list[list[Any]]) -> dict[str, Any] | None:
        """Send every record to ``node`` in batches; the merged reply, or None on failure."""
        total: dict[str, Any] = {"n": 0, "rejected_owners": []}
        for batch in _batches(records) or [[]]:
            try:
                r = await self.links.request(
                    node.pubkey_x25519,
                    node.zmq_address,
                    KIND_DATA,
                    {"v": self.view.version, "m": batch},
                    PUSH_TIMEOUT,
                )
            except LinkError as e:
                log.info("push to %s… failed: %s", node.pubkey_ed25519[:12], e)
                return None
            total["n"] += int(r.get("n", 0))
            total["rejected_owners"] += list(r.get("rejected_owners", ()))
        return total

    # ------------------------------------------------------------ receiving side
    async def accept_push(self, peer: str, body: Any) -> dict[str, Any]:
        """Link handler for ``KIND_DATA``: import the records of accounts we own."""
        if not isinstance(body, dict) or not isinstance(body.get("m"), list):
            raise TypeError("data push must be a map with a list 'm'")
        if body.get("v") and body["v"] != self.view.version:
            await self.view.refresh()  # the sender may know of a change we have not seen
        keep: list[Any] = []
        rejected: set[str] = set()
        for r in body["m"]:
            if not isinstance(r, list) or len(r) != 6:
                raise ValueError("data push record must have 6 fields")
            owner, ns, h, ts, exp, data = r
            m = _checked(StoredMessage(owner, ns, h, data, ts, exp))
            if self.mine(owner):
                keep.append(m)
            else:
                rejected.add(owner)
        n = await self.store.import_messages(keep) if keep else 0
        if n and self.on_moved:
            self.on_moved("received", n)
        return {"n": n, "rejected_owners": sorted(rejected)}

    # ------------------------------------------------------------ retries
    def start(self, *, hand_over: bool = False) -> None:
        """Start the retry loop; ``hand_over`` also schedules a check for accounts this node
        holds but no longer owns (a restarted node may hold some it lost while away)."""
        if hand_over:
            self._outgoing_pending = True
        if self._task is None:
            self._task = spawn(self._retry_loop(), log, "hand-off retry loop")

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            if self._pending_members or self._outgoing_pending:
                try:
                    await self.reconcile()
                except (StorageError, InvalidInput) as e:
                    log.error("handoff retry failed: %s", e)

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None


# ---------------------------------------------------------------------------- reconciliation
#
# Members converge by comparing digests, then exchanging only what differs (KIND_SYNC, msgpack;
# every request carries "c", the requester's cutoff: both sides ignore messages and tombstones
# that expire by then, so sweeps at different moments do not show up as differences):
#
#   {"op": "buckets"}                 -> {"b": {bucket: digest}}     256 buckets by owner byte
#   {"op": "accounts", "b": [bucket]} -> {"a": {owner: digest}}
#       (both may carry "s": only messages whose timestamp is before it; periodic sessions;
#       and "x": 1, the running digests (MessageStore.account_sums, kept as messages are
#       written: a session costs a row per account, not a read of every message); a member
#       that knows them answers with "x": 1 too. Older members ignore "x" and answer the
#       sorted-lines digests, which the requester then computes as well.)
#   {"op": "entries", "o": [owner]}   -> {"e": [[owner, ns, hash, expiry, updated]],
#                                         "t": [[owner, hash, expiry, deleted]]}
#       (with "n": the accounts in sorted order up to about n entries, at least one; "upto":
#       the last account covered when not all of them were. Older members ignore "s" and "n":
#       their answers are complete, only larger.)
#   {"op": "fetch", "h": [hash]}      -> {"m": [[owner, ns, hash, ts, expiry, data, updated]]}
#   {"op": "apply", "m": [...], "t": [...], "e": [...]} -> {"n", "d", "x"}
#
# The requester pulls what it lacks and pushes what the peer lacks in the same session, so one
# side running it is enough to bring both level (a member that comes back is synced by whoever
# notices it first). Only members of our swarm are served, and only accounts of our swarm.

#: Hashes per fetch or push request (messages are at most ~76 KB: under the link's 10 MiB cap).
SYNC_BATCH = 100
#: Seconds between periodic sessions (each with the next peer in turn).
SYNC_INTERVAL = 60.0
#: How long a restarted node keeps refusing reads while it cannot reach any peer.
CATCH_UP_TIMEOUT = 30.0
SYNC_TIMEOUT = 30.0
#: How far ahead of now the cutoff is put (covers clocks and the session's own duration).
CUTOFF_MARGIN_MS = 5_000
PROBE_TIMEOUT = 2.0
#: Most catch-up rounds before a restarted node serves reads (each pulls what the last missed).
MAX_CATCH_UP_ROUNDS = 3
#: Most differing accounts planned and exchanged at a time in one session (a session goes
#: through them in parts) ...
SYNC_ACCOUNTS = 256
#: ... and most message entries per side in one part (more only for a single account that
#: holds more): what a session holds in memory stays bounded as accounts fill up.
SYNC_ENTRIES = 2000
#: Periodic sessions compare only messages whose timestamp is this much older than now:
#: writes still on their way to the members would otherwise make accounts differ.
SETTLE_MS = 15_000
_BUCKETS = frozenset(ALL_BUCKETS)
#: Buckets whose account digests are compared per request (of 256).
SYNC_BUCKETS = 16
#: The value of "x" that asks for (and marks an answer of) running digests.
SUMS = 1


def account_digests(entries: Iterable[SyncEntry]) -> dict[str, bytes]:
    """owner → digest of its (namespace, hash, expiry) set (as the stores compute it)."""
    return digest_rows((e.owner, e.namespace, e.hash, e.expiry_ms) for e in entries)


def bucket_digests(accounts: Mapping[str, bytes]) -> dict[str, bytes]:
    """bucket → digest of its accounts' digests (as ``MessageStore.bucket_digests`` gives)."""
    by_bucket: dict[str, dict[str, bytes]] = {}
    for o, d in accounts.items():
        by_bucket.setdefault(bucket_of(o), {})[o] = d
    return {b: bucket_digest(a) for b, a in by_bucket.items()}


def differing(mine: Mapping[str, bytes], theirs: Mapping[str, bytes]) -> list[str]:
    """Keys present on one side only or with different digests, sorted."""
    return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))


@dataclasses.dataclass
class SyncPlan:
    """What one session changes, from the requester's side."""

    fetch: list[str] = dataclasses.field(default_factory=list)  # hashes to pull
    push: list[str] = dataclasses.field(default_factory=list)  # hashes to send
    bury_here: list[Tombstone] = dataclasses.field(default_factory=list)
    bury_there: list[Tombstone] = dataclasses.field(default_factory=list)
    expire_here: list[SyncEntry] = dataclasses.field(default_factory=list)
    expire_there: list[SyncEntry] = dataclasses.field(default_factory=list)


def plan_sync(
    mine: Iterable[SyncEntry],
    my_tombs: Iterable[Tombstone],
    theirs: Iterable[SyncEntry],
    their_tombs: Iterable[Tombstone],
) -> SyncPlan:
    """Compare two members' entries and tombstones for the same accounts. A deletion wins over
    a copy (within the tombstone's life); of two expiries the later-set one wins
    (:func:`session.storage.base.newer_expiry`); every other message ends up on both sides."""
    me = {e.hash: e for e in mine}
    them = {e.hash: e for e in theirs}
    my_dead = {t.hash: t for t in my_tombs}
    their_dead = {t.hash: t for t in their_tombs}
    p = SyncPlan()
    p.fetch = sorted(h for h in them if h not in me and h not in my_dead)
    p.push = sorted(h for h in me if h not in them and h not in their_dead)
    p.bury_here = [t for h, t in sorted(their_dead.items()) if h not in my_dead]
    p.bury_there = [t for h, t in sorted(my_dead.items()) if h not in their_dead]
    for h in sorted(me.keys() & them.keys()):
        a, b = me[h], them[h]
        if h in my_dead or h in their_dead or a.expiry_ms == b.expiry_ms:
            continue  # (the same expiry set at different moments is no difference)
        if newer_expiry((a.updated_ms, a.expiry_ms), (b.updated_ms, b.expiry_ms)):
            p.expire_here.append(b)
        elif newer_expiry((b.updated_ms, b.expiry_ms), (a.updated_ms, a.expiry_ms)):
            p.expire_there.append(a)
    return p


def _entry_rec(e: SyncEntry) -> list[Any]:
    return [e.owner, e.namespace, e.hash, e.expiry_ms, e.updated_ms]


def _tomb_rec(t: Tombstone) -> list[Any]:
    return [t.owner, t.hash, t.expiry_ms, t.deleted_ms]


def _msg_rec(m: StoredMessage) -> list[Any]:
    return [m.owner, m.namespace, m.hash, m.timestamp_ms, m.expiry_ms, bytes(m.data), m.updated_ms]


def _fields(r: Any, n: int, what: str) -> list[Any]:
    if not isinstance(r, list) or len(r) != n:
        raise ValueError(f"sync {what} record must have {n} fields")
    return r


def _entry(r: Any) -> SyncEntry:
    owner, ns, h, exp, upd = _fields(r, 5, "entry")
    StoredMessage(owner, ns, h, b"", 0, exp, upd).validate()
    return SyncEntry(owner, ns, h, exp, upd)


def _tomb(r: Any) -> Tombstone:
    return Tombstone(*_fields(r, 4, "tombstone")).validate()


def _msg(r: Any) -> StoredMessage:
    owner, ns, h, ts, exp, data, upd = _fields(r, 7, "message")
    return _checked(StoredMessage(owner, ns, h, data, ts, exp, upd))


def _checked(m: StoredMessage) -> StoredMessage:
    """``m`` validated, with its hash recomputed: a peer cannot plant data under a hash."""
    m.validate()
    if message_hash(m.owner, m.namespace, m.data) != m.hash:
        raise ValueError("a pushed message's hash does not match its data")
    return m


def _is_owner(o: str) -> bool:
    """Whether ``o`` is an account ID (a peer naming anything else gets nothing for it)."""
    try:
        check_owner(o)
    except InvalidInput:
        return False
    return True


def _strs(v: Any, what: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"sync request needs a list of strings '{what}'")
    return v


@dataclasses.dataclass
class SyncResult:
    """Counts of one session (for logs, metrics and tests)."""

    accounts: int = 0  # accounts whose digests differed
    pulled: int = 0
    pushed: int = 0
    deleted_here: int = 0
    deleted_there: int = 0
    expiries: int = 0


class Reconciler:
    """Keeps this member's accounts level with its swarm peers (see the comment above).

    ``catching_up`` is True from start-up (and again from joining a swarm later:
    :meth:`swarm_changed`) until a round of sessions with every reachable peer
    pulled nothing new (at most ``MAX_CATCH_UP_ROUNDS`` rounds), or no peer could be reached
    within ``catch_up_timeout``: the RPC
    handler then refuses reads with 503 so clients ask another member instead of seeing a
    partial mailbox. Afterwards one session runs every ``interval`` seconds with the next peer
    in turn, and one with any peer the links see answer again after being down.
    """

    def __init__(
        self,
        store: MessageStore,
        links: NodeLinks,
        view: SwarmView,
        *,
        interval: float = SYNC_INTERVAL,
        catch_up_timeout: float = CATCH_UP_TIMEOUT,
        clock: Callable[[], int] = now_ms,
        on_synced: Callable[[SyncResult], None] | None = None,
    ) -> None:
        self.store = store
        self.links = links
        self.view = view
        self.interval = interval
        self.catch_up_timeout = catch_up_timeout
        self.clock = clock
        self.on_synced = on_synced
        self.catching_up = True
        #: seconds between catch-up rounds while no member could be reached
        self.retry_pause = 1.0
        self._running: dict[str, asyncio.Task[SyncResult | None]] = {}
        self._probing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._aside: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._turn = 0

    def not_ready_reason(self) -> str | None:
        """For the RPC handler: why reads are refused, or None."""
        if self.catching_up and self.view.peers_in_my_swarm():  # (alone: nothing to catch up)
            return "still catching up with its swarm; ask another member"
        return None

    def mine(self, owner: str) -> bool:
        return owns(self.view, owner)

    # ------------------------------------------------------------ requester side
    async def _ask(self, node: ServiceNode, body: dict[str, Any]) -> Any:
        r = await self.links.request(
            node.pubkey_x25519, node.zmq_address, KIND_SYNC, body, SYNC_TIMEOUT
        )
        if not isinstance(r, dict):
            raise LinkError("sync reply is not a map")
        return r

    def sync_with(
        self, node: ServiceNode, *, settled: bool = False
    ) -> asyncio.Task[SyncResult | None]:
        """Start (or join) a session with ``node``; its result is None when it failed.
        ``settled``: compare only messages older than ``SETTLE_MS`` (the periodic sessions:
        writes still travelling to the members would otherwise make every account written in
        the last moments differ, and a busy swarm would re-list all its accounts each time)."""
        t = self._running.get(node.pubkey_ed25519)
        if t is None:
            t = self._running[node.pubkey_ed25519] = asyncio.ensure_future(
                self._session(node, settled)
            )
        return t

    async def _session(self, node: ServiceNode, settled: bool) -> SyncResult | None:
        try:
            return await self._sync(node, settled)
        except (LinkError, ValueError, KeyError, TypeError) as e:
            log.info("sync with %s… failed: %s", node.pubkey_ed25519[:12], e)
            return None
        except (StorageError, InvalidInput) as e:
            log.warning("sync with %s… could not be applied: %s", node.pubkey_ed25519[:12], e)
            return None
        finally:
            self._running.pop(node.pubkey_ed25519, None)

    async def _sync(self, node: ServiceNode, settled: bool = False) -> SyncResult:
        """One session: find the accounts that differ, plan, pull what we lack, push theirs
        (a part of the accounts at a time: see :meth:`_plan`)."""
        cutoff = self.clock() + CUTOFF_MARGIN_MS
        before = self.clock() - SETTLE_MS if settled else None
        res = SyncResult()
        owners = await self._differing_owners(node, cutoff, before)
        res.accounts = len(owners)
        i = 0
        while i < len(owners):
            part = owners[i : i + SYNC_ACCOUNTS]
            chosen, plan = await self._plan(node, cutoff, part)
            await self._pull(node, cutoff, plan, chosen, res)
            await self._push_plan(node, cutoff, plan, res)
            i += len(chosen)
        return self._done(node, res)

    async def _differing_owners(
        self, node: ServiceNode, cutoff: int, before: int | None
    ) -> list[str]:
        """Accounts of ours whose digests differ from the peer's: buckets first, then the
        accounts in the differing buckets (``before``: messages older than this only)."""
        await self.store.settle()
        ask: dict[str, Any] = {"op": "buckets", "c": cutoff, "x": SUMS}
        if before is not None:
            ask["s"] = before  # (a peer that ignores it differs more: still correct)
        r = await self._ask(node, ask)
        theirs_b = r["b"]
        if r.get("x") == SUMS:
            mine_b = await self.store.bucket_sums(self.mine, cutoff, before_ts=before)
            digests = self.store.account_sums
        else:  # a member from before running digests: compare its kind
            del ask["x"]
            mine_b = await self.store.bucket_digests(self.mine, cutoff, before_ts=before)
            digests = self.store.account_digests
        buckets = differing(mine_b, theirs_b)
        if not buckets:
            return []
        owners: list[str] = []
        for i in range(0, len(buckets), SYNC_BUCKETS):
            part = buckets[i : i + SYNC_BUCKETS]
            mine_a = await digests(self.mine, cutoff, part, before_ts=before)
            r = await self._ask(node, {**ask, "op": "accounts", "b": part})
            if r.get("x") != ask.get("x"):
                raise ValueError("sync accounts reply has another kind of digests")
            owners += [o for o in differing(mine_a, r["a"]) if self.mine(o)]
        return sorted(owners)  # (in the order a peer covers them in parts: see _plan)

    async def _plan(
        self, node: ServiceNode, cutoff: int, owners: list[str]
    ) -> tuple[set[str], SyncPlan]:
        """The plan for the first of ``owners`` (sorted) whose entries, on either side, stay
        within ``SYNC_ENTRIES`` (at least one account): returns those accounts and the plan
        from both sides' entries and tombstones of them. Bounds what a session holds by
        messages, however many each account has."""
        mine, k = await self.store.sync_index_part(owners, cutoff, SYNC_ENTRIES)
        asked = owners[:k]
        r = await self._ask(node, {"op": "entries", "c": cutoff, "o": asked, "n": SYNC_ENTRIES})
        upto = r.get("upto")  # the peer covered the accounts up to this one (None: all)
        if upto is not None and not isinstance(upto, str):
            raise ValueError("sync entries reply has a bad 'upto'")
        chosen = {o for o in asked if upto is None or o <= upto}
        if not chosen:
            raise ValueError("sync entries reply covers none of the accounts asked")
        return chosen, plan_sync(
            [e for e in mine if e.owner in chosen],
            await self.store.tombstones_of(chosen, cutoff),
            [e for e in map(_entry, r["e"]) if e.owner in chosen],
            [t for t in map(_tomb, r["t"]) if t.owner in chosen],
        )

    async def _pull(
        self, node: ServiceNode, cutoff: int, plan: SyncPlan, chosen: set[str], res: SyncResult
    ) -> None:
        """Pull: their messages, their tombstones, their newer expiries (applied here)."""
        for i in range(0, max(len(plan.fetch), 1), SYNC_BATCH):
            part = plan.fetch[i : i + SYNC_BATCH]
            got = []
            if part:
                got = (await self._ask(node, {"op": "fetch", "c": cutoff, "h": part}))["m"]
            msgs = [m for m in map(_msg, got) if m.owner in chosen]
            first = i == 0
            applied = await self.store.apply_sync(
                msgs, plan.bury_here if first else (), plan.expire_here if first else ()
            )
            res.pulled += applied.imported
            res.deleted_here += applied.deleted
            res.expiries += applied.expiries

    async def _push_plan(
        self, node: ServiceNode, cutoff: int, plan: SyncPlan, res: SyncResult
    ) -> None:
        """Push: ours they lack, our tombstones, our newer expiries (applied there)."""
        for i in range(0, max(len(plan.push), 1), SYNC_BATCH):
            part = plan.push[i : i + SYNC_BATCH]
            first = i == 0
            if not part and not (plan.bury_there or plan.expire_there):
                break
            msgs = await self.store.get_many(part) if part else []
            r = await self._ask(
                node,
                {
                    "op": "apply",
                    "c": cutoff,
                    "m": [_msg_rec(m) for m in msgs],
                    "t": [_tomb_rec(t) for t in plan.bury_there] if first else [],
                    "e": [_entry_rec(e) for e in plan.expire_there] if first else [],
                },
            )
            res.pushed += int(r.get("n", 0))
            res.deleted_there += int(r.get("d", 0))
            res.expiries += int(r.get("x", 0))

    def _done(self, node: ServiceNode, res: SyncResult) -> SyncResult:
        if res.accounts:
            log.info(
                "synced with %s…: %d accounts differed, %d pulled, %d pushed, %d deleted, "
                "%d expiries",
                node.pubkey_ed25519[:12],
                res.accounts,
                res.pulled,
                res.pushed,
                res.deleted_here + res.deleted_there,
                res.expiries,
            )
        if self.on_synced is not None:
            self.on_synced(res)
        return res

    # ------------------------------------------------------------ serving side
    async def serve(self, peer: str, body: Any) -> dict[str, Any]:
        """Link handler for ``KIND_SYNC`` (``peer`` is the requester's X25519 hex)."""
        node = self.view.node_by_x25519(peer)
        my = self.view.my_swarm_id()
        if node is None or my is None or node.swarm_id != my:
            raise ValueError("sync is served to members of this swarm only")
        if not isinstance(body, dict) or not isinstance(body.get("c"), int):
            raise TypeError("sync request must be a map with an integer cutoff 'c'")
        op, cutoff = body.get("op"), body["c"]
        before = body.get("s")
        if before is not None and (isinstance(before, bool) or not isinstance(before, int)):
            raise TypeError("sync request's 's' must be an integer timestamp")
        kind = body.get("x")
        if kind is not None and (isinstance(kind, bool) or not isinstance(kind, int)):
            raise TypeError("sync request's 'x' must be an integer")
        if op == "buckets":
            await self.store.settle()  # writes we took while it was down are in the snapshot
            if kind == SUMS:
                b = await self.store.bucket_sums(self.mine, cutoff, before_ts=before)
                return {"b": b, "x": SUMS}
            return {"b": await self.store.bucket_digests(self.mine, cutoff, before_ts=before)}
        if op == "accounts":
            wanted = set(_strs(body.get("b"), "b"))
            if not wanted <= _BUCKETS:
                raise ValueError("sync request names a bucket that does not exist")
            if kind == SUMS:
                sums = await self.store.account_sums(self.mine, cutoff, wanted, before_ts=before)
                return {"a": sums, "x": SUMS}
            return {
                "a": await self.store.account_digests(self.mine, cutoff, wanted, before_ts=before)
            }
        if op == "entries":
            picked = sorted(o for o in set(_strs(body.get("o"), "o")) if _is_owner(o))
            picked = [o for o in picked if self.mine(o)]
            limit = body.get("n")  # (absent from older members: every account at once)
            if limit is None:
                entries, k = await self.store.sync_index_of(picked, cutoff), len(picked)
            elif isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                entries, k = await self.store.sync_index_part(
                    picked, cutoff, min(limit, SYNC_ENTRIES)
                )
            else:
                raise TypeError("sync request's 'n' must be a positive integer")
            out: dict[str, Any] = {
                "e": [_entry_rec(e) for e in entries],
                "t": [_tomb_rec(t) for t in await self.store.tombstones_of(picked[:k], cutoff)],
            }
            if k < len(picked):
                out["upto"] = picked[k - 1]
            return out
        if op == "fetch":
            hashes = _strs(body.get("h"), "h")[:SYNC_BATCH]
            msgs = await self.store.get_many(hashes)
            return {"m": [_msg_rec(m) for m in msgs if self.mine(m.owner)]}
        if op == "apply":
            msgs = [m for m in map(_msg, body.get("m") or []) if self.mine(m.owner)]
            tombs = [t for t in map(_tomb, body.get("t") or []) if self.mine(t.owner)]
            exps = [e for e in map(_entry, body.get("e") or []) if self.mine(e.owner)]
            a = await self.store.apply_sync(msgs, tombs, exps)
            return {"n": a.imported, "d": a.deleted, "x": a.expiries}
        raise ValueError("unknown sync op")

    # ------------------------------------------------------------ background
    def peer_up(self, x25519_hex: str) -> None:
        """``NodeLinks.on_peer_up``: a member answers again; give it what it missed."""
        node = self.view.node_by_x25519(x25519_hex)
        if node is not None and node.pubkey_ed25519 != self.view.me and self.mine_node(node):
            self.sync_with(node)

    def mine_node(self, node: ServiceNode) -> bool:
        return node.swarm_id == self.view.my_swarm_id()

    def swarm_changed(self, change: SwarmChange) -> None:
        """``SwarmView.on_change`` (through the daemon): this node entered a swarm after its
        start-up catch-up (back in after a decommission, or moved to another swarm). It holds
        little or nothing of that swarm's accounts (it handed them over when it left), so reads
        are refused again until a catch-up with its new peers, as after a start."""
        if change.my_new_swarm in (INVALID_SWARM_ID, change.my_old_swarm) or self.catching_up:
            return  # still in the same swarm, in none, or the start's catch-up still runs
        if self._stopped:
            return  # (a change reported while the node stops: nobody would cancel the task)
        self.catching_up = True
        t = spawn(self.catch_up(), log, "catch-up with a swarm joined")
        self._aside.add(t)
        t.add_done_callback(self._aside.discard)

    async def catch_up(self) -> None:
        """Rounds of sessions with every peer until a round pulls nothing new (or no peer is
        reachable for ``catch_up_timeout`` seconds); then reads are served again."""
        loop = asyncio.get_running_loop()
        while self.view.my_swarm_id() is None:  # not serving anything before that anyway
            await asyncio.sleep(0.2)
        give_up = loop.time() + self.catch_up_timeout
        rounds = 0
        try:
            while True:
                peers = self.view.peers_in_my_swarm()
                if not peers:
                    break  # alone in the swarm: nobody to catch up with
                results = [
                    r
                    for r in await asyncio.gather(*(self.sync_with(p) for p in peers))
                    if r is not None
                ]
                rounds += 1
                # Done when a round brought nothing new: the first round brings the bulk, and
                # the peers it reached forward new writes to us from then on (it told them we
                # are up); a second round takes what they accepted in between.
                if results and (
                    rounds >= MAX_CATCH_UP_ROUNDS
                    or not any(r.pulled or r.deleted_here for r in results)
                ):
                    break
                if results:
                    continue
                if loop.time() >= give_up:
                    log.warning(
                        "could not reach any swarm member for %.0fs: serving reads "
                        "from what this node holds",
                        self.catch_up_timeout,
                    )
                    break
                await asyncio.sleep(self.retry_pause)
        finally:
            self.catching_up = False
        log.info("caught up with the swarm")

    async def _periodic(self) -> None:
        await self.catch_up()
        loop = asyncio.get_running_loop()
        next_sync = loop.time() + self.interval
        while True:
            await asyncio.sleep(min(PROBE_MIN, self.interval))
            self._probe()
            if loop.time() >= next_sync:
                next_sync = loop.time() + self.interval
                peers = [
                    p
                    for p in self.view.peers_in_my_swarm()
                    if not self.links.is_down(p.pubkey_x25519)
                ]
                if peers:
                    self._turn = (self._turn + 1) % len(peers)
                    await self.sync_with(peers[self._turn], settled=True)

    def _probe(self) -> None:
        """Ping members whose back-off elapsed; an answer makes the links call ``peer_up``."""
        for x in self.links.due_for_probe():
            node = self.view.node_by_x25519(x)
            if node is None:
                self.links.disconnect(x)  # left the network
                continue
            if x in self._probing:
                continue
            self._probing.add(x)
            t = spawn(self._ping(node), log, "probe of a down member")
            self._aside.add(t)
            t.add_done_callback(self._aside.discard)

    async def _ping(self, node: ServiceNode) -> None:
        try:
            # an answer marks it up; no answer: still down, the links doubled its back-off
            await ping(
                self.links, node.pubkey_x25519, node.zmq_address, self.view.version, PROBE_TIMEOUT
            )
        finally:
            self._probing.discard(node.pubkey_x25519)

    def start(self) -> None:
        if not self._tasks:
            self._tasks.append(spawn(self._periodic(), log, "swarm reconciliation loop"))

    async def stop(self) -> None:
        self._stopped = True
        await cancel_and_wait([*self._tasks, *self._running.values(), *self._aside])
        self._tasks.clear()
