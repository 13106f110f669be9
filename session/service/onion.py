"""Serving a v4 onion destination (``POST /oxen/v4/lsrpc``) on a service's own routes.

A file server or community server declares its HTTP routes once, in a :class:`Routes` table of
``async (V4Request) -> V4Response`` handlers. :meth:`Routes.mount` serves them as plain HTTP
routes, and :class:`OnionDestination` serves the same handlers behind onion requests: the last
node of a client's path POSTs the final layer (``LE32 ‖ ciphertext ‖ {"ephemeral_key",
"enc_type"}``, network spec §6.7) to ``/oxen/v4/lsrpc``; the destination opens it with its
X25519 key, decodes the bencoded v4 request (``l <meta JSON> [<body>] e``), dispatches it to the
matching route and answers the v4 response (``{"code", "headers"}`` + body) encrypted to the
client's ephemeral key, with HTTP 200.

A layer that cannot be opened gets a plain 400 (nobody to encrypt for); anything wrong after
that (bad v4 framing, unknown route, a handler's :class:`~session.errors.InvalidInput`) gets an
encrypted v4 response with the matching status and one sentence, like pysogs.

Route patterns use aiohttp's syntax for the plain routes (``/room/{token}``); a ``{name}``
matches one path segment.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aiohttp import web

from session import onion
from session.errors import InvalidInput, OnionError, StorageError, StorageFull

#: Targets a v4 destination answers on (Session's clients use the first).
LSRPC_PATHS = ("/oxen/v4/lsrpc", "/loki/v4/lsrpc")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class V4Request:
    """One request to a service route, from plain HTTP or from inside an onion."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)  # the route's {placeholders}
    #: The query exactly as it came (``a=1&b=2``, still percent-encoded): what a signature over
    #: the request covers (community servers, client spec §4.3).
    query_string: str = ""

    def json(self) -> Any:
        """The body as JSON; raises :class:`InvalidInput` with one sentence if it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise InvalidInput("request body is not valid JSON") from None


@dataclass(frozen=True, slots=True)
class V4Response:
    """A route's answer: status, body, headers (``content-type`` defaults to JSON)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, doc: Any, status: int = 200) -> V4Response:
        return cls(
            status,
            json.dumps(doc, separators=(",", ":")).encode(),
            {"content-type": "application/json"},
        )

    @classmethod
    def error(cls, status: int, message: str) -> V4Response:
        return cls(status, message.encode(), {"content-type": "text/plain; charset=utf-8"})

    def header_map(self) -> dict[str, str]:
        h = {k.lower(): v for k, v in self.headers.items()}
        h.setdefault("content-type", "application/json")
        return h

    def to_web(self) -> web.Response:
        """This answer as a plain HTTP response."""
        return web.Response(status=self.status, body=self.body, headers=self.header_map())


def store_failed(e: StorageError | OSError, server: str, log: logging.Logger) -> V4Response:
    """The answer of a file or community ``server`` whose store failed: 507 when it is full,
    503 with the store's sentence for another storage error, and 503 when the disk fails (the
    error logged by its text only: no path, no file ID)."""
    if isinstance(e, StorageFull):
        return V4Response.error(507, str(e))
    if isinstance(e, OSError):
        log.error("%s: file store I/O failed: %s", server, e.strerror)
        return V4Response.error(503, f"the {server} cannot store files right now")
    return V4Response.error(503, str(e))


V4Handler = Callable[[V4Request], Awaitable[V4Response]]
PlainHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: V4Handler
    plain: PlainHandler | None


class Routes:
    """A service's route table, served both directly and behind onion requests."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self, method: str, pattern: str, handler: V4Handler, *, plain: PlainHandler | None = None
    ) -> None:
        """Route ``method pattern`` (``"/room/{token}"``) to ``handler``; ``plain``, if given,
        serves the plain HTTP route instead (e.g. one that streams the request body)."""
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/', not {pattern!r}")
        parts = _PLACEHOLDER.split(pattern)
        rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        self._routes.append(_Route(method.upper(), pattern, re.compile(rx + r"\Z"), handler, plain))

    def resolve(self, method: str, path: str) -> tuple[V4Handler, dict[str, str]] | V4Response:
        """The handler and placeholder values for ``method path``, or a 404/405 response."""
        allowed = False
        for r in self._routes:
            m = r.regex.match(path)
            if m is None:
                continue
            if r.method == method.upper():
                return r.handler, m.groupdict()
            allowed = True
        if allowed:
            return V4Response.error(405, f"method {method} is not allowed on this endpoint")
        return V4Response.error(404, "no such endpoint")

    async def dispatch(self, req: V4Request) -> V4Response:
        """Run ``req`` on its route; a handler's :class:`InvalidInput` becomes a 400."""
        found = self.resolve(req.method, req.path)
        if isinstance(found, V4Response):
            return found
        handler, params = found
        try:
            return await handler(
                V4Request(
                    req.method,
                    req.path,
                    req.query,
                    req.headers,
                    req.body,
                    params,
                    req.query_string,
                )
            )
        except InvalidInput as e:
            return V4Response.error(400, str(e))

    def mount(self, app: web.Application) -> None:
        """Serve every route as plain HTTP on ``app`` too."""
        for r in self._routes:
            app.router.add_route(r.method, r.pattern, r.plain or self._plain(r.handler))

    @staticmethod
    def _plain(handler: V4Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            req = V4Request(
                request.method,
                request.path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                await request.read(),
                dict(request.match_info),
                request.query_string,
            )
            try:
                resp = await handler(req)
            except InvalidInput as e:
                resp = V4Response.error(400, str(e))
            return resp.to_web()

        return route


def _decode(plain: bytes) -> V4Request:
    """The v4 request inside an opened layer; :class:`InvalidInput` if it is malformed (the
    codec already checked that ``method`` is a string and ``endpoint`` a path)."""
    meta, body = onion.v4_decode_request(plain)
    method, endpoint, headers = meta["method"], meta["endpoint"], meta.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InvalidInput("v4 request headers must be an object of strings")
    url = urlsplit(endpoint)
    try:  # decoded like aiohttp decodes a plain request's path
        path = unquote(url.path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("the request path is not valid percent-encoded UTF-8") from None
    return V4Request(
        method.upper(),
        path,
        dict(parse_qsl(url.query)),
        {str(k).lower(): v for k, v in headers.items()},
        body or b"",
        query_string=url.query,
    )


class OnionDestination:
    """``POST /oxen/v4/lsrpc``: open the final layer with ``x25519_secret``, run it on
    ``routes``, answer encrypted."""

    def __init__(self, x25519_secret: bytes, routes: Routes) -> None:
        self._peeler = onion.Peeler.from_x25519_secret(bytes(x25519_secret))
        self.routes = routes

    @property
    def x25519_public(self) -> bytes:
        return bytes(self._peeler.x25519_public)

    def attach(self, app: web.Application) -> None:
        """Add the lsrpc endpoints to ``app``."""
        for path in LSRPC_PATHS:
            app.router.add_post(path, self.lsrpc)

    async def lsrpc(self, request: web.Request) -> web.Response:
        """The aiohttp handler of the lsrpc endpoints."""
        try:
            plain, reply = self._peeler.open_request(await request.read())
        except OnionError as e:
            return web.Response(status=400, text=f"Invalid onion request: {e}")
        try:
            resp = await self.routes.dispatch(_decode(plain))
        except InvalidInput as e:
            resp = V4Response.error(400, str(e))
        framed = onion.v4_encode_response(
            {"code": resp.status, "headers": resp.header_map()}, resp.body
        )
        return web.Response(
            status=200, body=reply.encrypt(framed), content_type="application/octet-stream"
        )


__all__ = [
    "LSRPC_PATHS",
    "OnionDestination",
    "Routes",
    "V4Handler",
    "V4Request",
    "V4Response",
    "store_failed",
]
