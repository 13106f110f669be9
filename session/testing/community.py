"""Helpers for tests of the community server: its config for a test, and a member who signs
requests as Session's apps do (15-blinded ``X-SOGS-*`` headers, pad160 posts)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from session import onion
from session.blinding import blind15_sign, blinded15_id, sogs_auth_headers
from session.client.transport import PathFailure
from session.community.config import CommunityConfig, LimitsConfig, NetworkConfig
from session.community.server import RunningCommunity
from session.identity import Identity
from session.protocol import pad as pad160


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


class DirectRoute:
    """Stands in for a client's onion transport (``client.transport.request_server =
    DirectRoute(server).request_server``): each v4 request the client built and signed goes
    straight to the real server over plain HTTP instead of through three nodes, so a client
    can use a community server in a test without a devnet. Refuses any other destination."""

    def __init__(self, server: RunningCommunity) -> None:
        self.server = server
        #: ``METHOD endpoint`` of every request, in order.
        self.requests: list[str] = []

    async def request_server(
        self,
        dest: onion.ServerDestination,
        meta: Mapping[str, Any],
        body: bytes | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        assert bytes(dest.x25519).hex() == self.server.pubkey_hex, "not this server's key"
        assert f"{dest.scheme}://{dest.host}:{dest.port}" == self.server.url, "not this server"
        method, endpoint = str(meta["method"]), str(meta["endpoint"])
        self.requests.append(f"{method} {endpoint}")
        headers = {str(k): str(v) for k, v in dict(meta.get("headers") or {}).items()}
        try:
            return await asyncio.to_thread(
                self._send, method, endpoint, headers, body, timeout or 30.0
            )
        except OSError as e:  # what the onion transport reports when nothing got through
            raise PathFailure(f"the community server is unreachable: {e.strerror or e}") from None

    def _send(
        self, method: str, endpoint: str, headers: dict[str, str], body: bytes | None, t: float
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.server.url.split("://")[1], timeout=t)
        try:
            conn.request(method, endpoint, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()


__all__ = ["DirectRoute", "Member", "community_config"]
