"""Helpers for tests of the community server: its config for a test, a member who signs
requests as Session's apps do (15-blinded ``X-SOGS-*`` headers, pad160 posts), and stand-ins for
a client's onion transport to one server (:class:`ServerStandIn`: the real server reached
directly, :class:`DirectRoute`, or a scripted one in a test)."""

from __future__ import annotations

import abc
import asyncio
import base64
import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from session import onion
from session.blinding import blind15_sign, blinded15_id, sogs_auth_headers
from session.client.transport import PathFailure
from session.community.config import CommunityConfig, LimitsConfig, NetworkConfig
from session.community.server import RunningCommunity
from session.identity import Identity
from session.protocol import pad as pad160

if TYPE_CHECKING:
    from session.client import Client


def community_config(tmp: Path, **limits: Any) -> CommunityConfig:
    return CommunityConfig(
        data_dir=tmp,
        network=NetworkConfig(listen_host="127.0.0.1", port=0, tls=False, admin_port=-1),
        limits=replace(LimitsConfig(), **limits),
    )


class Member:
    """A member of the server: signs every request with its 15-blinded key."""

    def __init__(self, server: RunningCommunity, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.identity = Identity.generate()
        self.pk = server.pubkey_hex
        self.id = blinded15_id(self.identity, self.pk)

    def headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        return sogs_auth_headers(self.identity, self.pk, method, path, body)

    async def call(
        self,
        method: str,
        path: str,
        doc: Any = None,
        *,
        body: bytes | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``path`` unencoded (as signed); sent percent-encoded."""
        raw = body if body is not None else (b"" if doc is None else json.dumps(doc).encode())
        h = dict(headers or {})
        if signed:
            h.update(self.headers(method, path, raw))
        url = self.server.url + quote(path, safe="/?=&,:@-_.~")
        async with self.http.request(method, url, data=raw or None, headers=h) as r:
            data = await r.read()
            if r.content_type == "application/json" and data:
                return r.status, json.loads(data)
            return r.status, data

    def post_doc(self, text: bytes, **extra: Any) -> dict[str, Any]:
        data = pad160(text)
        sig = blind15_sign(self.identity, self.pk, data)
        return {
            "data": base64.b64encode(data).decode(),
            "signature": base64.b64encode(sig).decode(),
            **extra,
        }

    async def post(self, text: bytes, room: str = "lobby", **extra: Any) -> dict[str, Any]:
        status, doc = await self.call("POST", f"/room/{room}/message", self.post_doc(text, **extra))
        assert status == 201, doc
        return doc


@dataclass(frozen=True)
class ServerCall:
    """One v4 request a client sent to a server, as a :class:`ServerStandIn` gets it."""

    method: str
    endpoint: str  # as sent: percent-encoded, with its query
    headers: dict[str, str]
    body: bytes | None
    timeout: float | None  # seconds, as the caller gave it


class ServerStandIn(abc.ABC):
    """Stands in for a client's onion transport to one server (:meth:`install`): each v4
    request the client built and signed is checked to be for this server (its URL and X25519
    key; any other destination fails the test), recorded, and answered by :meth:`answer`
    instead of going through three nodes."""

    def __init__(self, base_url: str, pubkey_hex: str) -> None:
        self.base_url = base_url
        self.pubkey_hex = pubkey_hex
        #: ``METHOD endpoint`` of every request, in order.
        self.requests: list[str] = []

    def install(self, client: Client) -> None:
        """Route ``client``'s requests to servers here (its requests to nodes are untouched)."""
        # replacing the transport's method is what a stand-in is for
        client.transport.request_server = self.request_server  # type: ignore[method-assign]

    async def request_server(
        self,
        dest: onion.ServerDestination,
        meta: Mapping[str, Any],
        body: bytes | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """:meth:`session.client.transport.OnionTransport.request_server`, for this server."""
        assert bytes(dest.x25519).hex() == self.pubkey_hex, "not this server's key"
        assert f"{dest.scheme}://{dest.host}:{dest.port}" == self.base_url, "not this server"
        method, endpoint = str(meta["method"]), str(meta["endpoint"])
        self.requests.append(f"{method} {endpoint}")
        headers = {str(k): str(v) for k, v in dict(meta.get("headers") or {}).items()}
        return await self.answer(ServerCall(method, endpoint, headers, body, timeout))

    @abc.abstractmethod
    async def answer(self, call: ServerCall) -> tuple[int, dict[str, str], bytes]:
        """The server's (status, headers, body) for one request."""


class DirectRoute(ServerStandIn):
    """The real community server reached directly over plain HTTP (``DirectRoute(server)
    .install(client)``), so a client can use it in a test without a devnet."""

    def __init__(self, server: RunningCommunity) -> None:
        super().__init__(server.url, server.pubkey_hex)
        self.server = server

    async def answer(self, call: ServerCall) -> tuple[int, dict[str, str], bytes]:
        try:
            return await asyncio.to_thread(self._send, call)
        except OSError as e:  # what the onion transport reports when nothing got through
            raise PathFailure(f"the community server is unreachable: {e.strerror or e}") from None

    def _send(self, call: ServerCall) -> tuple[int, dict[str, str], bytes]:
        host = self.server.url.split("://")[1]
        conn = http.client.HTTPConnection(host, timeout=call.timeout or 30.0)
        try:
            conn.request(call.method, call.endpoint, body=call.body, headers=call.headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()


__all__ = ["DirectRoute", "Member", "ServerCall", "ServerStandIn", "community_config"]
