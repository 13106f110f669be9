"""Storage RPC through onion paths (spec network.md §4, §6.4–6.8).

:class:`OnionTransport` sends one JSON-RPC request to a destination node through a 3-hop path
(``POST https://<guard>/onion_req/v2``, certificates not verified) and decrypts the reply.
:class:`SwarmRPC` adds the storage methods, request signing, 421 (wrong swarm) handling,
clock resynchronisation on 406/425 and retries with backoff over fresh paths.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import json
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeGuard, cast

from session import onion
from session.client.network import NetworkClock, NodeDirectory
from session.client.paths import OnionPath, PathManager
from session.errors import (
    ClockOutOfSync,
    DecryptionError,
    HttpConnectError,
    HttpError,
    HttpResponseTooLarge,
    InvalidInput,
    NetworkError,
    NodeRequestFailed,
    NotEnoughNodes,
)
from session.http1.client import HttpClient
from session.proto import rpc
from session.proto.onion_status import named_next_node
from session.proto.rpc import Signer
from session.proto.snodes import ServiceNode, parse_node_list
from session.service.tls import client_ssl_context

REQUEST_TIMEOUT = 10.0
RETRIES = 4
#: Largest reply read from a guard: a node passes a proxied server's answer (at most 16 MiB,
#: ``session.node.relay.PROXY_MAX_REPLY``) back unchanged; storage replies are far smaller.
MAX_REPLY = 20 * 1024 * 1024
#: Connections open to one guard at a time.
GUARD_CONNECTIONS = 32


class AccountSigner(Protocol):
    """Signs for an account it does not own the key of: a group member's subaccount
    (:class:`session.groups.auth.SubaccountSigner`), which gives the whole ``Auth``. Told
    apart from an owner's key by :func:`is_account_signer` (not ``isinstance``)."""

    group_id: str

    def auth(self, text: bytes) -> rpc.Auth: ...


def is_account_signer(signer: object) -> TypeGuard[AccountSigner]:
    """Whether ``signer`` has :class:`AccountSigner`'s members: what a runtime-checkable
    protocol's ``isinstance`` would say, without typing's machinery, which looks the members
    up again on every call (a few % of a client's CPU per message, as every store and poll
    asks)."""
    return hasattr(signer, "group_id") and hasattr(signer, "auth")


def signed_params(req: Any, signer: Signer | AccountSigner) -> dict[str, Any]:
    """The wire params of ``req`` signed by an owner key (a Session ID or a group key) or by
    a member's subaccount."""
    if is_account_signer(signer):
        return dict(req.with_auth(signer.auth(req.signature_text())).to_params())
    return rpc.sign(req, cast(Signer, signer))


def owner_of(signer: Signer | AccountSigner) -> str:
    """The account a signer's requests are for."""
    if is_account_signer(signer):
        return signer.group_id
    return cast(Signer, signer).session_id


class PathFailure(NetworkError):
    """The request did not reach the destination (guard down, relay error)."""


#: Connection errors that mean nothing listens there (the node is down or moved).
_DOWN_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.EADDRNOTAVAIL,
    }
)


def node_is_down(e: BaseException) -> bool:
    """True when a connection error says nothing listens at the node's address (refused, no
    route, unknown name); False when the node accepted and then closed or reset the connection,
    which is what a live node at its connection cap (or restarting) does: that node is only
    refused for now."""
    if isinstance(e, HttpConnectError) and e.os_error is not None:
        e = e.os_error
    if isinstance(e, (ConnectionRefusedError, socket.gaierror)):
        return True
    return isinstance(e, OSError) and e.errno in _DOWN_ERRNOS


def retry_delay(failures: int) -> float:
    """libsession's retry delay: min(5 s, 100 ms · 2^failures)."""
    return min(5.0, 0.1 * 2**failures)


class OnionTransport:
    """One request = one fresh onion over a path kept by the :class:`PathManager`."""

    def __init__(
        self,
        paths: PathManager,
        clock: NetworkClock,
        *,
        timeout: float = REQUEST_TIMEOUT,
        enc_type: str = "xchacha20",
    ) -> None:
        self.paths = paths
        self.clock = clock
        self.timeout = timeout
        self.enc_type = enc_type
        self._http: HttpClient | None = None
        #: Called with (destination, method, params, path) before each request is sent.
        self.observers: list[Callable[[ServiceNode, str, Mapping[str, Any], OnionPath], None]] = []

    def _client(self) -> HttpClient:
        if self._http is None or self._http.closed:
            # guards' certificates are self-signed and not verified: the onion layers carry
            # the security
            self._http = HttpClient(
                ssl_context=client_ssl_context(),
                per_host=GUARD_CONNECTIONS,
                timeout=self.timeout,
                max_size=MAX_REPLY,
                user_agent="session-client",
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _guard_failed(self, path: OnionPath, e: BaseException) -> PathFailure:
        """The guard did not take the request: down (refused: excluded for long) or refusing
        us for now (closed the connection: excluded briefly). The error to raise."""
        gid = path.guard.pubkey_ed25519[:12]
        if node_is_down(e):
            self.paths.guard_unreachable(path)
            return PathFailure(f"guard {gid}… unreachable: {type(e).__name__}")
        self.paths.guard_busy(path)
        return PathFailure(f"guard {gid}… closed the connection (busy?): {type(e).__name__}")

    async def request(
        self,
        dest: ServiceNode,
        method: str,
        params: Mapping[str, Any],
        path: OnionPath | None = None,
    ) -> tuple[int, Any]:
        """Send ``{"method", "params"}`` to ``dest``; returns (status, body JSON or text).
        Raises :class:`PathFailure` when the onion did not get through."""

        path = path or self.paths.choose(dest)
        for observe in self.observers:
            observe(dest, method, params, path)
        payload = json.dumps({"method": method, "params": dict(params)}).encode()
        hops = [onion.Hop(h.pubkey_ed25519, h.x25519) for h in path.hops]
        frame, reply_key = onion.build(
            hops, onion.NodeDestination(dest.pubkey_ed25519, dest.x25519), payload, self.enc_type
        )
        http = self._client()
        sent = self.clock.local_ms()
        try:
            r = await http.request(
                "POST", f"{path.guard.https_url}/onion_req/v2", body=bytes(frame)
            )
            status, raw = r.status, r.body
        except TimeoutError:  # HttpTimeout
            # Some hop (or the destination) stalled; we cannot tell which one.
            self.paths.path_timed_out(path)
            self.paths.node_failed(dest.pubkey_ed25519)
            raise PathFailure("onion request timed out") from None
        except HttpResponseTooLarge as e:
            self.paths.path_failed(path)
            raise PathFailure(f"onion reply refused: {e}") from None
        except HttpError as e:
            raise self._guard_failed(path, e) from None
        received = self.clock.local_ms()
        if status != 200:
            text = raw.decode(errors="replace")
            unreachable = named_next_node(status, raw)
            if unreachable is not None:
                # A relay on our path could not reach the node it names: avoid that node.
                self.paths.node_unreachable(path, unreachable)
            elif status == 504:
                # Some hop stalled and we cannot tell which: same as a timeout of our own.
                self.paths.path_timed_out(path)
            else:
                self.paths.path_failed(path)
            raise PathFailure(f"path error {status}: {text[:200]}")
        try:
            try:
                enc = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                enc = raw
            plain = bytes(reply_key.decrypt(enc))
        except (DecryptionError, ValueError) as e:
            self.paths.path_failed(path)
            raise PathFailure(f"undecryptable onion reply: {e}") from None
        self.paths.path_ok(path)
        code, body = _parse_reply(plain)
        if isinstance(body, Mapping) and isinstance(body.get("t"), int):
            self.clock.observe(body["t"], sent, received)
        return code, body

    async def request_server(
        self,
        dest: onion.ServerDestination,
        meta: Mapping[str, Any],
        body: bytes | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one v4 request (``meta`` = ``{"method", "endpoint", "headers"}``) to a server
        behind a 3-hop path (the last node proxies it to ``dest``); returns the server's
        (status, headers, body). Raises :class:`PathFailure` when it did not get through."""
        path = self.paths.choose()
        hops = [onion.Hop(h.pubkey_ed25519, h.x25519) for h in path.hops]
        frame, reply_key = onion.build(
            hops, dest, onion.v4_encode_request(dict(meta), body), self.enc_type
        )
        http = self._client()
        try:
            r = await http.request(
                "POST",
                f"{path.guard.https_url}/onion_req/v2",
                body=bytes(frame),
                timeout=timeout or self.timeout,
            )
            status, raw = r.status, r.body
        except TimeoutError:  # HttpTimeout
            self.paths.path_timed_out(path)
            raise PathFailure("onion request to the server timed out") from None
        except HttpResponseTooLarge as e:
            self.paths.path_failed(path)
            raise PathFailure(f"onion reply from the server's path refused: {e}") from None
        except HttpError as e:
            raise self._guard_failed(path, e) from None
        if status != 200:
            unreachable = named_next_node(status, raw)
            if unreachable is not None:
                self.paths.node_unreachable(path, unreachable)
            raise PathFailure(f"path error {status}: {raw[:200].decode(errors='replace')}")
        # A 200 is the server's own answer: the last node answers its own failures (server
        # unreachable 502, no answer in time 504) plain with their status, handled above,
        # since only the server's reply key is ours and a node's encrypted answer would not open.
        plain = _open_reply(reply_key, raw)
        if plain is None:
            self.paths.path_failed(path)
            raise PathFailure("undecryptable onion reply from the server's path")
        try:
            meta_out, payload = onion.v4_decode_response(plain)
            code = int(meta_out["code"])
            headers = dict(meta_out.get("headers") or {})
        except (ValueError, KeyError, TypeError) as e:
            raise PathFailure(f"malformed v4 reply from the server: {e}") from None
        self.paths.path_ok(path)
        return code, {str(k).lower(): str(v) for k, v in headers.items()}, payload or b""


def _open_reply(reply_key: Any, raw: bytes) -> bytes | None:
    """The decrypted reply (sent raw, or base64 when the layer asked for it), or None."""
    try:
        return bytes(reply_key.decrypt(raw))
    except (DecryptionError, ValueError):
        pass
    try:
        return bytes(reply_key.decrypt(base64.b64decode(raw, validate=True)))
    except (DecryptionError, ValueError, binascii.Error):
        return None


def _parse_reply(plain: bytes) -> tuple[int, Any]:
    try:
        doc = json.loads(plain)
    except ValueError:
        return 200, plain.decode(errors="replace")
    if not isinstance(doc, Mapping):
        return 200, doc
    if "result" in doc and "status" not in doc and isinstance(doc["result"], str):  # legacy wrapper
        return _parse_reply(base64.b64decode(doc["result"]))
    code = int(doc.get("status", doc.get("status_code", 200)))
    body = doc.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    return code, body


def _account(account_id: str) -> rpc.Account:
    acct = rpc.Account.parse(account_id)
    if acct is None:
        raise InvalidInput(f"not a Session ID: {account_id!r}")
    return acct


class SwarmRPC:
    """Storage methods with swarm routing, signing and retries."""

    def __init__(
        self,
        transport: OnionTransport,
        directory: NodeDirectory,
        clock: NetworkClock,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.t = transport
        self.dir = directory
        self.clock = clock
        #: Picks swarm members (injectable for deterministic tests).
        self.rng = rng or random.SystemRandom()
        #: Waits between attempts (injectable: tests script time instead of sleeping).
        self.sleep = sleep

    # ------------------------------------------------------------------ core retry loop

    async def call(
        self,
        owner: str,
        method: str,
        make_params: Any,
        *,
        node: ServiceNode | None = None,
        retries: int = RETRIES,
    ) -> tuple[ServiceNode, Any]:
        """Call ``method`` on a member of ``owner``'s swarm. ``make_params()`` is called per
        attempt (signatures use the current network time). Returns (node, body)."""
        failures = 0
        wrong_swarm = 0
        last: Exception | None = None
        tried: set[str] = set()
        while failures <= retries:
            target = node
            if target is None:
                members = self.dir.swarm(owner)
                if not members:
                    raise NetworkError(f"no swarm known for {owner[:10]}…")
                bad = self.t.paths.bad
                fresh = (
                    [m for m in members if m.pubkey_ed25519 not in tried | bad]
                    or [m for m in members if m.pubkey_ed25519 not in tried]
                    or members
                )
                target = self.rng.choice(fresh)
            try:
                code, body = await self.t.request(target, method, make_params())
            except (PathFailure, NotEnoughNodes) as e:
                # The path or the destination failed: next attempt uses a new path and, unless
                # the caller pinned a node, another swarm member.
                last = e
                tried.add(target.pubkey_ed25519)
                failures += 1
                await self.sleep(retry_delay(failures))
                continue
            if code == 200:
                return target, body
            if code == 421 and isinstance(body, Mapping):
                wrong_swarm += 1
                tried.add(target.pubkey_ed25519)
                self.dir.learn_swarm(owner, body)
                node = None
                if wrong_swarm <= 2:
                    continue
            if code in (406, 425):
                # Our clock (or offset) is off: learn the node's time and sign again.
                await self.sync_clock(target)
                failures += 1
                last = ClockOutOfSync(f"node rejected our timestamp (status {code})")
                continue
            if code in (400, 401, 403, 404):
                raise NodeRequestFailed(code, body)
            last = NodeRequestFailed(code, body)
            tried.add(target.pubkey_ed25519)
            node = None
            failures += 1
            await self.sleep(retry_delay(failures))
        assert last is not None
        raise last

    async def sync_clock(self, node: ServiceNode) -> None:
        try:
            await self.t.request(node, "info", {})
        except (PathFailure, NotEnoughNodes):
            pass

    # ------------------------------------------------------------------ methods

    async def store(
        self,
        owner: str,
        namespace: int,
        data: str,
        expiry_ms: int,
        identity: Signer | AccountSigner | None = None,
    ) -> str | None:
        """Store ``data`` (base64) in ``owner``'s swarm until ``expiry_ms`` (network time);
        returns the message hash. Each attempt is stamped with the current network time (the
        data, hence the swarm hash, never changes). ``identity`` signs stores to ``owner``'s
        own private namespaces; public inboxes take no signature."""
        public = rpc.is_public_inbox_namespace(namespace)
        max_ttl = rpc.TTL_MAXIMUM if public else rpc.TTL_MAXIMUM_PRIVATE
        acct = _account(owner)
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("message data must be base64") from None

        def params() -> dict[str, Any]:
            now = self.clock.now_ms()
            ttl = max(rpc.TTL_MINIMUM, min(max_ttl, expiry_ms - now))
            req = rpc.Store(acct, namespace, now, now + ttl, raw)
            if identity is not None and not public:
                return signed_params(req, identity)
            return req.to_params()

        _, body = await self.call(owner, "store", params)
        if isinstance(body, Mapping):
            h = body.get("hash")
            if h is None:
                for r in (body.get("swarm") or {}).values():
                    if isinstance(r, Mapping) and r.get("hash"):
                        h = r["hash"]
                        break
            return None if h is None else str(h)
        return None

    async def retrieve(
        self, identity: Signer | AccountSigner, namespace: int, node: ServiceNode, last_hash: str
    ) -> dict[str, Any]:
        owner = owner_of(identity)
        acct = _account(owner)

        def params() -> dict[str, Any]:
            req = rpc.Retrieve(acct, namespace, last_hash or None, timestamp=self.clock.now_ms())
            return signed_params(req, identity)

        # One retry only: the poller moves to another swarm member when this one fails.
        _, body = await self.call(owner, "retrieve", params, node=node, retries=1)
        return dict(body) if isinstance(body, Mapping) else {"messages": []}

    async def delete(self, identity: Signer, hashes: list[str]) -> None:
        params = rpc.sign(rpc.Delete(_account(identity.session_id), tuple(hashes)), identity)
        await self.call(identity.session_id, "delete", lambda: params)

    async def expire(
        self, identity: Signer, hashes: list[str], expiry_ms: int, shorten: bool = True
    ) -> None:
        acct = _account(identity.session_id)
        req = rpc.Expire(acct, tuple(hashes), (expiry_ms,), shorten=shorten)
        params = rpc.sign(req, identity)
        await self.call(identity.session_id, "expire", lambda: params)

    async def revoke_subaccounts(self, group: Signer, tokens: list[bytes]) -> None:
        """Admin: refuse these members' subaccount tokens on the group's swarm from now on."""
        await self._revocation(rpc.RevokeSubaccount, group, tokens)

    async def unrevoke_subaccounts(self, group: Signer, tokens: list[bytes]) -> None:
        """Admin: accept these members' subaccount tokens on the group's swarm again (a member
        removed, or who left, invited back; a token never revoked is left as it is)."""
        await self._revocation(rpc.UnrevokeSubaccount, group, tokens)

    async def _revocation(
        self,
        kind: type[rpc.RevokeSubaccount] | type[rpc.UnrevokeSubaccount],
        group: Signer,
        tokens: list[bytes],
    ) -> None:
        acct = _account(group.session_id)

        def params() -> dict[str, Any]:
            return rpc.sign(kind(acct, tuple(tokens), self.clock.now_ms()), group)

        await self.call(group.session_id, kind.METHOD, params)

    async def service_nodes(self, node: ServiceNode) -> list[ServiceNode]:
        code, body = await self.t.request(
            node,
            "oxend_request",
            {"endpoint": "get_service_nodes", "params": {"active_only": True}},
        )
        if code != 200 or not isinstance(body, Mapping):
            raise NodeRequestFailed(code, body)
        return parse_node_list(body)
