"""A node's mirror of the registry's Session names, answering ``oxend_request`` ``ons_resolve``.

Session's storage servers ask their local oxend, which answers from its copy of the chain; here
the registry stands in for the chain and every node keeps a copy of its name records (hash,
encrypted value, nonce, expiry: never a name, never an owner). A lookup is answered from that
copy, so the registry never learns which name was asked for, let alone by whom; the node logs
nothing about lookups either.

Cheap on a Pi: nothing is fetched until the first lookup; after that the copy is brought up to
date incrementally (``ons_names`` with ``since``) at most every :data:`REFRESH` seconds, and at
most every :data:`MISS_REFRESH` seconds when a lookup misses or finds a lapsed registration (a
name registered, or taken over, moments ago).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from session.errors import DecodeError, RegistryError, RpcStatusError
from session.names import NONCE_LEN, SESSION_TYPE, VALUE_LEN, parse_hash

log = logging.getLogger("session.node.ons")

#: Seconds between refreshes of the copy while lookups arrive.
REFRESH = 30.0
#: Least seconds between refreshes caused by lookups of names the copy does not hold.
MISS_REFRESH = 1.0
#: Most pages of records one refresh reads.
MAX_PAGES = 100

#: ``async (since) -> ons_names result`` (the registry client's ``fetch_names``).
Fetch = Callable[[int], Awaitable[Mapping[str, Any]]]


class NameMirror:
    """The node's copy of the registry's name records."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._wall = wall
        #: name hash (base64) -> (encrypted value hex, nonce hex, expiry Unix seconds)
        self.records: dict[str, tuple[str, str, int]] = {}
        self.revision = 0
        self._synced_at: float | None = None
        #: True once a copy was fetched (until then lookups are answered 503)
        self.ready = False
        self._lock = asyncio.Lock()

    async def resolve(self, params: Any) -> dict[str, Any]:
        """The ``ons_resolve`` result for ``params`` (``type`` 0 and ``name_hash``):
        ``{"encrypted_value", "nonce"}``, ``{}`` for an unknown name, ``{"expired": true}``
        for a lapsed one."""
        if not isinstance(params, Mapping):
            raise RpcStatusError(400, "ons_resolve params must be an object")
        kind = params.get("type", SESSION_TYPE)
        if isinstance(kind, bool) or kind != SESSION_TYPE:
            raise RpcStatusError(400, "only Session names (type 0) can be resolved here")
        try:
            key = parse_hash(params.get("name_hash"))
        except DecodeError as e:
            raise RpcStatusError(400, str(e)) from None
        await self._refresh(REFRESH)
        rec = self.records.get(key)
        if rec is None or rec[2] <= self._wall():
            # Unknown or lapsed here: it may have been (re-)registered since the last refresh.
            await self._refresh(MISS_REFRESH)
        if not self.ready:
            raise RpcStatusError(503, "names are not available yet; try again")
        rec = self.records.get(key)
        if rec is None:
            return {}
        value, nonce, expiry = rec
        if expiry <= self._wall():
            return {"expired": True}
        return {"encrypted_value": value, "nonce": nonce}

    async def _refresh(self, max_age: float) -> None:
        if self._synced_at is not None and self._clock() - self._synced_at < max_age:
            return
        async with self._lock:
            if self._synced_at is not None and self._clock() - self._synced_at < max_age:
                return  # another lookup refreshed while this one waited
            try:
                await self._sync()
                self.ready = True
            except (RegistryError, DecodeError) as e:
                log.warning("could not refresh names from the registry: %s", e)
            # Also after a failure: an unreachable registry is tried again only later.
            self._synced_at = self._clock()

    async def _sync(self) -> None:
        for _ in range(MAX_PAGES):
            doc = await self._fetch(self.revision)
            revision = doc.get("revision")
            names = doc.get("names")
            if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
                raise DecodeError("the registry's names answer has no revision")
            if not isinstance(names, list):
                raise DecodeError("the registry's names answer has no list of names")
            if revision < self.revision:
                # The registry started over (new state): take its records afresh.
                self.records.clear()
                self.revision = 0
                continue
            for r in names:
                self._apply(r)
            self.revision = revision
            if not doc.get("more"):
                return

    def _apply(self, r: Any) -> None:
        if not isinstance(r, Mapping):
            raise DecodeError("a name record is not an object")
        key = parse_hash(r.get("name_hash"))
        value, nonce, expiry = r.get("encrypted_value"), r.get("nonce"), r.get("expiry")
        if not (
            isinstance(value, str)
            and len(value) == 2 * VALUE_LEN
            and isinstance(nonce, str)
            and len(nonce) == 2 * NONCE_LEN
            and isinstance(expiry, int)
            and not isinstance(expiry, bool)
        ):
            raise DecodeError("a name record is malformed")
        self.records[key] = (value, nonce, expiry)


__all__ = ["MISS_REFRESH", "REFRESH", "NameMirror"]
