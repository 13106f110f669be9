"""The storage RPC handler of a service node: runs validated requests against a MessageStore.

Transport-free: the daemon hands it raw client bodies (HTTPS or decrypted onion payloads) and
forwarded peer requests, and injects the pieces it needs:

* ``store`` — a :class:`session.storage.MessageStore`;
* ``identity`` — the node's :class:`session.identity.Identity` (signs per-node results);
* ``swarm`` — a :class:`SwarmContext` (which swarm stores an account, who is in it, readiness);
* ``fanout`` — a :class:`SwarmFanout` (sends a validated recursive request to the other members
  of our swarm and returns their results);
* ``clock`` — milliseconds since the epoch.

store/delete*/expire*/revoke answer with every swarm member's signed result (our own plus the
fan-out); retrieve/get_expiries/info/get_swarm are answered locally.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, Protocol, assert_never, overload

from session.errors import RpcStatusError, StorageError, StorageFull
from session.proto import rpc as P
from session.proto.snodes import ServiceNode
from session.storage.base import MessageStore, StoredMessage, StoreResult
from session.swarm import message_hash

log = logging.getLogger("session.node.rpc")


class SwarmContext(Protocol):
    """What the handler needs to know about swarms (implemented by
    :class:`session.node.swarm_view.SwarmView`)."""

    def my_swarm_id(self) -> int | None:
        """Our swarm, or None while we are in none."""
        ...

    def swarm_id_for(self, account_id: str) -> int:
        """The swarm storing ``account_id`` (66 hex); raises LookupError if there are no swarms."""
        ...

    def members(self, swarm_id: int) -> Sequence[ServiceNode]:
        """Members of ``swarm_id`` (empty if unknown)."""
        ...

    def is_ready(self) -> bool:
        """Whether we may answer storage requests (in a swarm, synced)."""
        ...


class SwarmFanout(Protocol):
    async def forward(self, request_body: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
        """Send ``request_body`` (``{"method", "params"}``) to every other member of our swarm;
        return member Ed25519 hex → its result dict (``None`` on timeout / unreachable)."""
        ...


#: Where a fan-out's outcome goes when it is not awaited: the members' results as
#: :meth:`SwarmFanout.forward` returns them, or the exception it would have raised (a bug).
ForwardDone = Callable[[Mapping[str, Any] | BaseException], None]


class CallbackFanout(SwarmFanout, Protocol):
    """A :class:`SwarmFanout` that can also hand its outcome to a callback, with no task
    (:class:`session.node.replication.LinkFanout`); any other fan-out is run in a task."""

    def forward_then(self, request_body: dict[str, Any], done: ForwardDone) -> None:
        """:meth:`forward`, its outcome handed to ``done`` on the loop's thread (perhaps
        before this returns)."""
        ...


#: ``async (endpoint, params) -> result`` answering ``oxend_request`` (our registry stands in for
#: oxend); raise RpcStatusError for a failure the client should see.
OxendHandler = Callable[[str, Any], Awaitable[Any]]


#: The encoder of every JSON answer (``json.dumps`` with separators builds one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclasses.dataclass(frozen=True, slots=True)
class RpcResponse:
    """A response: JSON (dict) or plain-text body."""

    status: int
    body: dict[str, Any] | str

    @property
    def content_type(self) -> str:
        return "application/json" if isinstance(self.body, dict) else "text/plain; charset=utf-8"

    def to_bytes(self) -> bytes:
        """The body as sent: compact JSON (non-ASCII escaped), or UTF-8 text where anything
        that is not text (a lone surrogate a request smuggled in) is escaped."""
        if isinstance(self.body, dict):
            return _COMPACT.encode(self.body).encode()
        return self.body.encode("utf-8", "backslashreplace")

    def sub_result(self) -> dict[str, Any]:
        """This response as a batch/ifelse sub-result ``{"code", "body"}``."""
        return {"code": self.status, "body": self.body}


#: An answer now, or the rest of the request as a coroutine to await once.
RpcNow = RpcResponse | Coroutine[Any, Any, RpcResponse]


class RpcLater:
    """An answer that comes later from callbacks, with no coroutine and no task: a client's
    ``store``, answered when its group commit and its swarm's fan-out both report
    (:meth:`RpcHandler.respond_later`). Ends exactly once, with the response or with a bug
    (an exception: the transport answers 500, as for a task that raised); whoever answers
    the client registers with :meth:`then`."""

    __slots__ = ("_then", "outcome")

    def __init__(self) -> None:
        self._then: Callable[[RpcResponse | BaseException], None] | None = None
        #: the response or the bug, once ended
        self.outcome: RpcResponse | BaseException | None = None

    def then(self, fn: Callable[[RpcResponse | BaseException], None]) -> None:
        """Have ``fn`` get the outcome (at once if it has ended already)."""
        if self.outcome is not None:
            fn(self.outcome)
        else:
            self._then = fn

    def end_with(self, make: Callable[[], RpcResponse]) -> None:
        """End with ``make()``. The one guard of the RPC's code that runs in a callback
        (outside any task): what escapes ``make`` ends this as a bug (500, logged with its
        traceback by the transport) instead of escaping into the event loop's callback, which
        would leave the client without an answer and the store's other results undelivered."""
        try:
            outcome: RpcResponse | BaseException = make()
        except Exception as bug:
            # Bug guard, deliberately broad: refusals and store failures are answers made by
            # ``make``, so only a bug of ours lands here, and what it raises is not known.
            outcome = bug
        if self.outcome is not None:
            return
        self.outcome = outcome
        fn, self._then = self._then, None
        if fn is not None:
            fn(outcome)


#: An answer now, later from callbacks, or the rest of the request as a coroutine.
RpcSoon = RpcResponse | RpcLater | Coroutine[Any, Any, RpcResponse]


def _system_clock() -> int:
    return time.time_ns() // 1_000_000


def _obfuscate(account_hex: str) -> str:
    return f"{account_hex[:4]}…{account_hex[-2:]}"


class RpcHandler:
    """Executes storage RPC requests for one service node."""

    def __init__(
        self,
        store: MessageStore,
        identity: P.Signer,
        swarm: SwarmContext,
        fanout: SwarmFanout | None = None,
        clock: Callable[[], int] = _system_clock,
        *,
        hardfork: tuple[int, int] = P.DEFAULT_HARDFORK,
        version: tuple[int, int, int] = P.STORAGE_SERVER_VERSION,
        height: Callable[[], int] = lambda: 0,
        oxend: OxendHandler | None = None,
        catching_up: Callable[[], str | None] = lambda: None,
    ) -> None:

        self.store = store
        self.identity = identity
        self.swarm = swarm
        self.fanout = fanout
        self.clock = clock
        self.hardfork = hardfork
        self.version = version
        self.height = height
        self.oxend = oxend
        #: why reads would see a partial mailbox (a restarted member catching up), or None
        self.catching_up = catching_up
        self._message_hash = message_hash
        self.ed25519_hex: str = identity.ed25519_public.hex()
        #: Requests handled, by method (client and forwarded), for metrics.
        self.counters: collections.Counter[str] = collections.Counter()

    # -- entry points -----------------------------------------------------------------------

    async def handle_client(self, body: bytes | str) -> tuple[int, bytes]:
        """A client request body → (HTTP status, response bytes). JSON bodies for 200/421 and
        recursive results; plain text for errors (as Session's storage server)."""
        r = await self.respond(body)
        return r.status, r.to_bytes()

    async def respond(self, body: bytes | str | Mapping[str, Any]) -> RpcResponse:
        """Like :meth:`handle_client` but returns the structured :class:`RpcResponse`."""
        r = self.respond_now(body)
        return r if isinstance(r, RpcResponse) else await r

    def respond_now(self, body: bytes | str | Mapping[str, Any]) -> RpcNow:
        """:meth:`respond` without a coroutine when nothing has to wait: ``info``,
        ``get_swarm``, every refusal, and a ``retrieve`` / ``get_expiries`` (and a subaccount's
        revocation check) the store reads at once (:meth:`MessageStore.retrieve_now`): the
        answer, returned at once. Otherwise a coroutine (to be awaited once) that finishes the
        request exactly as :meth:`respond` would from where this stopped (the node's site
        answers a request without a task this way: :mod:`session.node.http`)."""
        try:
            req = P.parse_request(body)
        except RpcStatusError as e:
            self.counters["invalid"] += 1
            return RpcResponse(e.status, e.message)
        return self.execute_now(req)

    def respond_later(self, body: bytes | str) -> RpcSoon:
        """:meth:`respond_now`, except that a client's ``store`` (the request most clients
        send that has to wait) is an :class:`RpcLater` answered from the completion callbacks
        of its group commit (:meth:`MessageStore.store_then`) and of the swarm's fan-out
        (:meth:`CallbackFanout.forward_then`), with no task: the same answer, status and
        counters as :meth:`respond`. The node's HTTPS site answers a client this way."""
        try:
            req = P.parse_request(body)
        except RpcStatusError as e:
            self.counters["invalid"] += 1
            return RpcResponse(e.status, e.message)
        return self.execute_now(req, later=True)

    async def handle_forwarded(
        self, body: Mapping[str, Any], *, counted: bool = False
    ) -> dict[str, Any]:
        """A recursive request forwarded by a swarm peer: validate it again, apply it locally
        (no further fan-out) and return this node's signed result, or a failure entry
        ``{"failed": true, "code", "reason"}``. Its store goes through the store's queue
        (:meth:`MessageStore.store`: a batch's writes commit together). ``counted``: this
        request was parsed and counted once already (a batch's write run again as a
        coroutine after its first attempt committed nothing)."""
        r = self.handle_forwarded_now(body, commit_now=False, counted=counted)
        return r if isinstance(r, dict) else await r

    def handle_forwarded_now(
        self, body: Mapping[str, Any], *, commit_now: bool = True, counted: bool = False
    ) -> dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
        """:meth:`handle_forwarded` without a coroutine where nothing has to wait: a refusal,
        and (``commit_now``) a store that needs no subaccount revocation lookup and that the
        store commits at once (:meth:`MessageStore.store_now`): the result, or failure entry,
        returned at once. Otherwise a coroutine (to be awaited, once) that finishes the request
        from where this stopped. Raises what :meth:`handle_forwarded` raises."""
        r = self.forwarded_now(body, counted=counted)
        if not isinstance(r, tuple):
            return r
        req, msg = r
        if commit_now:
            try:
                res = self.store.store_now(msg)
            except StorageError as e:
                return self._failure(req, e)
            if res is not None:
                return self._store_result(msg, res)
        return self._forwarded_rest(req, self.clock(), verified=True)

    def forwarded_now(
        self, body: Mapping[str, Any], *, counted: bool = False
    ) -> tuple[P.Store, StoredMessage] | dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
        """:meth:`handle_forwarded_now` up to the store's commit: a store checked and ready to
        commit (its request and message: commit it, then :meth:`forwarded_stored`), a result
        at once (a refusal), or a coroutine that finishes any other request."""
        try:
            req = self._parse_forwarded(body, counted)
            now = self.clock()
            if self._admit_checks(req, now, forwarded=True):
                return self._forwarded_rest(req, now, verified=False)
            self._admit_verify(req, revoked=False)
            if isinstance(req, P.Store):
                return req, self._stored_message(req)
            return self._forwarded_rest(req, now, verified=True)
        except (RpcStatusError, _WrongSwarm, StorageError) as e:
            return _forwarded_failure(e)

    def forwarded_stored(
        self, req: P.Store, msg: StoredMessage, outcome: StoreResult | StorageError
    ) -> dict[str, Any]:
        """The result entry of a forwarded store committed (or refused) after
        :meth:`forwarded_now`."""
        if isinstance(outcome, StorageError):
            return self._failure(req, outcome)
        return self._store_result(msg, outcome)

    def _parse_forwarded(self, body: Mapping[str, Any], counted: bool) -> P.RecursiveRequest:
        req = P.parse_request(body, forwarded=True)
        if not counted:
            self.counters[f"forwarded_{req.METHOD}"] += 1
        if not isinstance(req, P.RECURSIVE_TYPES):  # parse_request refused these already
            raise RpcStatusError(400, f"invalid request: {req.METHOD} cannot be forwarded")
        return req

    async def _forwarded_rest(
        self, req: P.RecursiveRequest, now: int, *, verified: bool
    ) -> dict[str, Any]:
        """The rest of :meth:`handle_forwarded` for a request parsed and checked up to the
        revocation lookup (``verified``: and its signature verified too)."""
        try:
            if not verified:
                self._admit_verify(req, revoked=await self._revoked(req))
            return await self._apply(req, now)
        except (RpcStatusError, _WrongSwarm, StorageError) as e:
            return _forwarded_failure(e)

    # -- dispatch ---------------------------------------------------------------------------

    async def execute(self, req: P.Request) -> RpcResponse:
        """Run an already parsed client request."""
        r = self.execute_now(req)
        return r if isinstance(r, RpcResponse) else await r

    @overload
    def execute_now(self, req: P.Request, *, later: Literal[False] = False) -> RpcNow: ...

    @overload
    def execute_now(self, req: P.Request, *, later: bool) -> RpcSoon: ...

    def execute_now(self, req: P.Request, *, later: bool = False) -> RpcSoon:
        """:meth:`execute` without a coroutine where nothing has to wait (as
        :meth:`respond_now`); ``later``: a store as an :class:`RpcLater` (as
        :meth:`respond_later`; the type is then :data:`RpcSoon`)."""
        self.counters[req.METHOD] += 1
        try:
            match req:
                case P.Batch():
                    return self._finish(self._batch(req))
                case P.IfElse():
                    return self._finish(self._ifelse(req))
                case P.Info():
                    now = self.clock()
                    return RpcResponse(
                        200, {"version": list(self.version), "timestamp": now, **self._misc(now)}
                    )
                case P.GetSwarm():
                    return RpcResponse(200, {**self._swarm_of(req.account.hex), **self._misc()})
                case P.OxendRequest():
                    return self._finish(self._oxend(req))
                case P.AccountMethod():
                    r = self._account_now(req, later)
                    return r if isinstance(r, RpcResponse | RpcLater) else self._finish(r)
                case _:
                    assert_never(req)
        except (RpcStatusError, _WrongSwarm, StorageError) as e:
            return self._refused(e)

    async def _finish(self, rest: Awaitable[RpcResponse]) -> RpcResponse:
        """The rest of a request :meth:`execute_now` could not answer at once, with the same
        answers to a refusal or a store failure."""
        try:
            return await rest
        except (RpcStatusError, _WrongSwarm, StorageError) as e:
            return self._refused(e)

    def _refused(self, e: RpcStatusError | _WrongSwarm | StorageError) -> RpcResponse:
        """The answer to a client request refused (its status and sentence; 421 with the right
        swarm) or failed in the store (500, logged with its traceback)."""
        if isinstance(e, RpcStatusError):
            return RpcResponse(e.status, e.message)
        if isinstance(e, _WrongSwarm):
            return RpcResponse(421, e.body)
        log.error("client request failed in the store", exc_info=e)
        return RpcResponse(500, "request failed")

    def _misc(self, now: int | None = None) -> dict[str, Any]:
        return P.misc_fields(self.clock() if now is None else now, self.hardfork)

    def _swarm_of(self, account_hex: str) -> dict[str, Any]:
        try:
            sid = self.swarm.swarm_id_for(account_hex)
        except LookupError:
            return P.swarm_json(None, ())
        return P.swarm_json(sid, self.swarm.members(sid))

    def _admit_checks(self, req: P.AccountRequest, now: int, *, forwarded: bool) -> bool:
        """An account request's admission up to the signature, in Session's order:
        readiness, swarm membership, time windows. Returns whether the signature needs the
        subaccount revocation lookup first (then :meth:`_admit_verify`)."""
        if not self.swarm.is_ready():
            reason = "not in a swarm yet" if self.swarm.my_swarm_id() is None else "still syncing"
            raise RpcStatusError(503, "Service node is not ready: " + reason)
        acct = req.account.hex
        try:
            sid = self.swarm.swarm_id_for(acct)
        except LookupError:
            raise RpcStatusError(
                503, "Service node is not ready: no swarms are known yet"
            ) from None
        mine = self.swarm.my_swarm_id()
        if sid != mine:
            raise _WrongSwarm({**P.swarm_json(sid, self.swarm.members(sid)), **self._misc(now)})
        req.precheck(now, forwarded=forwarded, hf=self.hardfork)
        auth = req.auth
        return (
            auth is not None
            and auth.subaccount is not None
            and req.needs_verification()
            and not req.skip_revoke_check()
        )

    async def _revoked(self, req: P.AccountRequest) -> bool:
        """Whether the subaccount signing ``req`` is revoked (only asked when
        :meth:`_admit_checks` said so)."""
        assert req.auth is not None and req.auth.subaccount is not None
        return await self.store.subaccount_revoked(req.account.hex, req.auth.subaccount)

    def _admit_verify(self, req: P.AccountRequest, *, revoked: bool) -> None:
        """The signature, after :meth:`_admit_checks` (and the revocation lookup)."""
        req.verify(revoked=revoked)
        if isinstance(req, P.Expire):
            req.extend_only()  # 400 for shorten by a subaccount without delete access

    def _account_now(self, req: P.AccountRequest, later: bool = False) -> RpcSoon:
        """An account's request: admitted (:meth:`_admit_checks`, the revocation lookup when
        one is needed, :meth:`_admit_verify`), then run; the answer at once, or the rest as a
        coroutine where something has to wait."""
        now = self.clock()
        if self._admit_checks(req, now, forwarded=False):
            assert req.auth is not None and req.auth.subaccount is not None
            revoked = self.store.subaccount_revoked_now(req.account.hex, req.auth.subaccount)
            if not isinstance(revoked, bool):
                return self._account_rest(req, now, revoked)
        else:
            revoked = False
        self._admit_verify(req, revoked=revoked)
        if later and isinstance(req, P.Store):
            return self._store_later(req, now)
        return self._admitted(req, now)

    async def _account_rest(
        self, req: P.AccountRequest, now: int, revoked: Awaitable[bool]
    ) -> RpcResponse:
        """:meth:`_account_now` from a revocation lookup that had to wait."""
        self._admit_verify(req, revoked=await revoked)
        r = self._admitted(req, now)
        return r if isinstance(r, RpcResponse) else await r

    def _admitted(self, req: P.AccountRequest, now: int) -> RpcNow:
        """An admitted account request, run."""
        if isinstance(req, P.Retrieve | P.GetExpiries) and (why := self.catching_up()):
            return RpcResponse(503, "Service node is not ready: " + why)
        match req:
            case P.Retrieve():
                return self._retrieve_now(req, now)
            case P.GetExpiries():
                exp = self.store.get_expiries_now(req.account.hex, req.messages)
                if isinstance(exp, dict):
                    return RpcResponse(200, {"expiries": exp})
                return self._expiries_rest(exp)
            case _:
                return self._recursive(req, now)

    async def _expiries_rest(self, exp: Awaitable[dict[str, int]]) -> RpcResponse:
        return RpcResponse(200, {"expiries": await exp})

    # -- local endpoints ------------------------------------------------------------------

    def _retrieve_now(self, req: P.Retrieve, now: int) -> RpcNow:
        count, size = req.limits()
        try:
            got = self.store.retrieve_now(
                req.account.hex, req.namespace, req.last_hash, count, size
            )
        except StorageError:
            return self._retrieve_failed(req)
        if isinstance(got, tuple):
            return self._retrieved(got, now)
        return self._retrieve_rest(req, now, got)

    async def _retrieve_rest(
        self, req: P.Retrieve, now: int, rest: Awaitable[tuple[list[StoredMessage], bool]]
    ) -> RpcResponse:
        """:meth:`_retrieve_now` from a read that had to wait (on the store's reader thread)."""
        try:
            got = await rest
        except StorageError:
            return self._retrieve_failed(req)
        return self._retrieved(got, now)

    def _retrieved(self, got: tuple[list[StoredMessage], bool], now: int) -> RpcResponse:
        msgs, more = got
        return RpcResponse(
            200,
            {"messages": [P.message_json(m) for m in msgs], "more": more, **self._misc(now)},
        )

    def _retrieve_failed(self, req: P.Retrieve) -> RpcResponse:
        """(In the ``except`` of a failed read: logged with its traceback.)"""
        log.exception("retrieve failed")
        return RpcResponse(
            500,
            "Internal Server Error. Could not retrieve messages for " + _obfuscate(req.account.hex),
        )

    async def _oxend(self, req: P.OxendRequest) -> RpcResponse:
        if self.oxend is None:
            return RpcResponse(400, "Unknown oxend error")
        result = await self.oxend(req.endpoint, req.params)
        return RpcResponse(200, {"result": result, **self._misc()})

    async def _batch(self, req: P.Batch) -> RpcResponse:
        if req.sequence:
            results = []
            for sub in req.requests:
                r = await self.execute(sub)
                results.append(r.sub_result())
                if not 200 <= r.status <= 299:
                    break
        else:
            rs = await asyncio.gather(*(self.execute(sub) for sub in req.requests))
            results = [r.sub_result() for r in rs]
        return RpcResponse(200, {"results": results})

    async def _ifelse(self, req: P.IfElse) -> RpcResponse:
        height = self.height()
        cond = req.condition.holds(self.hardfork, self.version, height)
        body: dict[str, Any] = {
            "hf": list(self.hardfork),
            "v": list(self.version),
            "height": height,
            "condition": cond,
        }
        branch = req.then if cond else req.otherwise
        if branch is not None:
            body["result"] = (await self.execute(branch)).sub_result()
        return RpcResponse(200, body)

    # -- recursive endpoints --------------------------------------------------------------

    def _peers(self) -> list[str]:
        """The other members of our swarm (Ed25519 hex)."""
        my_sid = self.swarm.my_swarm_id()
        return [
            n.pubkey_ed25519
            for n in (self.swarm.members(my_sid) if my_sid is not None else ())
            if n.pubkey_ed25519 != self.ed25519_hex
        ]

    async def _recursive(self, req: P.RecursiveRequest, now: int) -> RpcResponse:
        peers = self._peers()
        forwarded: asyncio.Future[Any] | None = None
        if self.fanout is not None and peers:
            # Forward first (as Session does), then apply locally while peers work.
            forwarded = asyncio.ensure_future(self.fanout.forward(P.forward_body(req)))
        mine = await self._apply(req, now)
        peer_results: Mapping[str, Any] = {}
        if forwarded is not None:
            # The fan-out reports each unreachable or slow member as None itself (LinkError is
            # handled per member there); anything else escaping it is a bug and surfaces.
            peer_results = await forwarded
        return self._swarm_answer(req, now, peers, mine, peer_results)

    def _store_later(self, req: P.Store, now: int) -> RpcLater:
        """A client's admitted store as :meth:`_recursive` runs it (forwarded to the swarm
        first, then written locally, answered once both are done) with no coroutine: the
        fan-out's and the group commit's completions go to a :class:`_StoreWait`."""
        peers = self._peers()
        wait = _StoreWait(self, req, now, peers)
        fanout = self.fanout
        if fanout is not None and peers:
            body = P.forward_body(req)
            # (a CallbackFanout's forward_then, else forward in a task)
            forward_then: Callable[[dict[str, Any], ForwardDone], None] | None = getattr(
                fanout, "forward_then", None
            )
            if forward_then is not None:
                forward_then(body, wait.forwarded)
            else:
                _forward_in_task(fanout, body, wait.forwarded)
        else:
            wait.forwarded({})
        msg = wait.msg = self._stored_message(req)
        try:
            self.store.store_then(msg, wait.stored)
        except StorageError as e:  # (closed: as _apply, this node's entry says so)
            wait.stored(False, e)
        return wait.later

    def _swarm_answer(
        self,
        req: P.RecursiveRequest,
        now: int,
        peers: Sequence[str],
        mine: dict[str, Any],
        peer_results: Mapping[str, Any],
    ) -> RpcResponse:
        """A recursive request's answer: every member's result (a failure entry for one that
        timed out or answered nonsense), ours last, and the status they add up to."""
        swarm: dict[str, dict[str, Any]] = {}
        for ed in peers:
            r = peer_results.get(ed)
            if r is None:
                swarm[ed] = P.failed_entry(timeout=True)
            elif not isinstance(r, dict):
                swarm[ed] = P.failed_entry()
            else:
                swarm[ed] = r
        if isinstance(req, P.Store):
            mine["t"] = now
        swarm[self.ed25519_hex] = mine
        body: dict[str, Any] = {"swarm": swarm, **self._misc(now)}
        if isinstance(req, P.Store) and "failed" not in mine:
            body["hash"] = mine["hash"]
        status = P.swarm_status(swarm)
        if (
            isinstance(req, P.Delete)
            and req.required
            and status == 200
            and not any(r.get("deleted") for r in swarm.values())
        ):
            status = 404
        return RpcResponse(status, body)

    def _sign(self, text: bytes) -> str:
        return P.b64(self.identity.sign(text))

    async def _apply(self, req: P.RecursiveRequest, now: int) -> dict[str, Any]:
        """Apply a validated recursive request locally; returns this node's result entry."""
        acct = req.account.hex
        try:
            match req:
                case P.Store():
                    return await self._apply_store(req)
                case P.Delete():
                    deleted = sorted(await self.store.delete_by_hash(acct, req.messages))
                    sig = P.delete_result_text(acct, req.messages, deleted)
                    return {"deleted": deleted, "signature": self._sign(sig)}
                case P.DeleteAll():
                    ns = P.namespace_or_none(req.namespace)
                    affected = await self.store.delete_all(acct, ns)
                    return self._ns_result(acct, "deleted", req.timestamp, affected, ns)
                case P.DeleteBefore():
                    ns = P.namespace_or_none(req.namespace)
                    affected = await self.store.delete_before(acct, req.before, ns)
                    return self._ns_result(acct, "deleted", req.before, affected, ns)
                case P.ExpireAll():
                    ns = P.namespace_or_none(req.namespace)
                    affected = await self.store.update_all_expiries(acct, req.expiry, ns)
                    return self._ns_result(acct, "updated", req.expiry, affected, ns)
                case P.Expire():
                    return await self._apply_expire(req, now)
                case P.RevokeSubaccount():
                    await self.store.revoke_subaccounts(acct, req.tokens, now)
                    sig = P.revoke_result_text(acct, req.timestamp, req.tokens)
                    return {"signature": self._sign(sig)}
                case P.UnrevokeSubaccount():
                    count = await self.store.unrevoke_subaccounts(acct, req.tokens)
                    sig = P.revoke_result_text(acct, req.timestamp, req.tokens)
                    return {"count": count, "signature": self._sign(sig)}
                case _:
                    assert_never(req)
        except StorageError as e:
            return self._failure(req, e)

    def _ns_result(
        self, acct: str, key: str, value: int, affected: Sequence[tuple[int, str]], ns: int | None
    ) -> dict[str, Any]:
        """The result of delete_all / delete_before / expire_all (``value``: the signed time)."""
        hashes, shown = P.affected_by_namespace(affected, ns is None)
        sig = P.ns_action_result_text(acct, value, hashes)
        return {key: shown, "signature": self._sign(sig)}

    async def _apply_store(self, req: P.Store) -> dict[str, Any]:
        msg = self._stored_message(req)
        return self._store_result(msg, await self.store.store(msg))

    def _stored_message(self, req: P.Store) -> StoredMessage:
        acct = req.account.hex
        h = self._message_hash(acct, req.namespace, req.data)
        return StoredMessage(acct, req.namespace, h, req.data, req.timestamp, req.expiry)

    def _store_result(self, msg: StoredMessage, res: StoreResult) -> dict[str, Any]:
        """This node's signed result entry of a store."""
        out: dict[str, Any] = {
            "hash": msg.hash,
            "signature": self._sign(P.store_result_text(msg.hash)),
            "expiry": res.expiry_ms,
        }
        if not res.new:
            out["already"] = True
        return out

    def _failure(self, req: P.RecursiveRequest, e: StorageError) -> dict[str, Any]:
        """This node's result entry of a request the store refused (full: a warning) or
        failed (an error), logged without the account."""
        acct = _obfuscate(req.account.hex)
        if isinstance(e, StorageFull):
            log.warning("%s refused for %s: %s", req.METHOD, acct, e)
        else:
            log.error("%s for %s failed: %s", req.METHOD, acct, e)
        return {"failed": True, "query_failure": True, "reason": str(e)}

    async def _apply_expire(self, req: P.Expire, now: int) -> dict[str, Any]:
        acct = req.account.hex
        exps = req.applied_expiries(now)
        extend_only = req.extend_only()
        updated = await self.store.update_expiry(
            acct, req.messages, exps, extend_only=extend_only, shorten_only=req.shorten
        )
        updated.sort(key=lambda u: u[0])
        updated_hashes = [h for h, _ in updated]
        unchanged: dict[str, int] = {}
        if req.extend or req.shorten:
            done = set(updated_hashes)
            rest = [m for m in req.messages if m not in done]
            if rest:
                unchanged = await self.store.get_expiries(acct, rest)
        applied = [e for _, e in updated] if len(req.expiries) > 1 else [exps[0]]
        sig = P.expire_result_text(acct, applied, req.messages, updated_hashes, unchanged)
        out: dict[str, Any] = {
            "expiry": applied if len(req.expiries) > 1 else applied[0],
            "updated": updated_hashes,
        }
        if req.shorten or req.extend:
            out["unchanged"] = unchanged
        out["signature"] = self._sign(sig)
        return out


#: fan-outs running in tasks (:func:`_forward_in_task`), held until they end (the loop keeps
#: only weak references to tasks)
_FORWARDING: set[asyncio.Task[Any]] = set()


def _forward_in_task(fanout: SwarmFanout, body: dict[str, Any], done: ForwardDone) -> None:
    """A fan-out without ``forward_then`` (tests' in-process swarms): run in a task. A task
    that ends cancelled (the loop closing) is handed on as a RuntimeError, which the RpcLater
    ends with (500), not as the CancelledError, which no callback's guard catches."""
    task = asyncio.ensure_future(fanout.forward(body))
    _FORWARDING.add(task)
    task.add_done_callback(_FORWARDING.discard)

    def finished(t: asyncio.Future[Any]) -> None:
        if t.cancelled():
            done(RuntimeError("the swarm fan-out was cancelled"))
        else:
            done(t.exception() or t.result())

    task.add_done_callback(finished)


class _StoreWait:
    """A client's store waiting for its two completions (:meth:`RpcHandler._store_later`):
    this node's write (:meth:`stored`) and the other members' results (:meth:`forwarded`).
    The answer is made when the second arrives, whichever it is."""

    __slots__ = ("handler", "later", "local", "msg", "now", "peer_results", "peers", "req")

    def __init__(self, handler: RpcHandler, req: P.Store, now: int, peers: list[str]) -> None:
        self.handler = handler
        self.req = req
        self.now = now
        self.peers = peers
        self.msg: StoredMessage | None = None
        self.later = RpcLater()
        #: this node's write: (ok, StoreResult or the exception), once done
        self.local: tuple[bool, Any] | None = None
        #: the members' results (or the fan-out's bug), once done
        self.peer_results: Mapping[str, Any] | BaseException | None = None

    def stored(self, ok: bool, value: Any) -> None:
        """(the store's completion callback)"""
        self.local = (ok, value)
        if self.peer_results is not None:
            self.later.end_with(self._answer)

    def forwarded(self, results: Mapping[str, Any] | BaseException) -> None:
        """(the fan-out's completion callback)"""
        self.peer_results = results
        if self.local is not None:
            self.later.end_with(self._answer)

    def _answer(self) -> RpcResponse:
        """The answer, as :meth:`RpcHandler._recursive` makes it (a bug raised)."""
        h = self.handler
        assert self.local is not None and self.msg is not None
        ok, value = self.local
        if ok:
            mine = h._store_result(self.msg, value)
        elif isinstance(value, StorageError):
            mine = h._failure(self.req, value)
        else:
            raise value  # a bug: surfaces, as from the task
        results = self.peer_results
        if isinstance(results, BaseException):
            raise results  # the fan-out's bug, as from the task
        assert results is not None
        return h._swarm_answer(self.req, self.now, self.peers, mine, results)


class _WrongSwarm(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("wrong swarm")
        self.body = body


def _forwarded_failure(e: RpcStatusError | _WrongSwarm | StorageError) -> dict[str, Any]:
    """The failure entry a forwarded request gets for a refusal or a store failure."""
    if isinstance(e, RpcStatusError):
        return P.failed_entry(code=e.status, reason=e.message)
    if isinstance(e, _WrongSwarm):
        return P.failed_entry(code=421, reason=json.dumps(e.body))
    log.exception("forwarded request failed in the store")
    return P.failed_entry(code=500, reason="request failed")


# ---- helpers for the daemon ------------------------------------------------------------------


async def sweep_forever(
    store: MessageStore, clock: Callable[[], int] = _system_clock, interval: float = 10.0
) -> None:
    """Delete expired messages every ``interval`` seconds (Session: 10 s). Run as a task; a
    failed sweep is logged and retried at the next interval."""
    while True:
        try:
            n = await store.sweep_expired(clock())
            if n:
                log.debug("swept %d expired messages", n)
        except StorageError as e:  # the store translates every database error into this
            log.error("expiry sweep failed: %s", e)
        await asyncio.sleep(interval)


__all__ = [
    "CallbackFanout",
    "ForwardDone",
    "OxendHandler",
    "RpcHandler",
    "RpcLater",
    "RpcResponse",
    "RpcSoon",
    "SwarmContext",
    "SwarmFanout",
    "sweep_forever",
]
