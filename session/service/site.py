"""The site of a standalone server (the file server and the community server): its routes
served directly and as a v4 onion destination under the server's X25519 key, over HTTPS with
the certificate in its data directory (or plain HTTP), with the connection limits; and running
such a server until SIGTERM/SIGINT with its data directory locked. What both servers share
besides: their key (:func:`load_site_identity`) and refusing encoded bodies
(:func:`raw_bodies_only`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiohttp import web

from session.identity import Identity
from session.node import keys
from session.service import tls
from session.service.config import ConnectionLimits
from session.service.datadir import DataDirLock
from session.service.onion import OnionDestination, Routes
from session.service.server import Served, run_until_signal, serve


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class SiteNetwork(Protocol):
    """The ``network`` section every standalone server's config has."""

    @property
    def listen_host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> bool: ...


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Middleware = Callable[[web.Request, _Handler], Awaitable[web.StreamResponse]]


def load_site_identity(data_dir: Path) -> Identity:
    """A server's key (``data_dir/keys/ed25519.key``, the node's key-file format; its X25519
    key, derived, opens the server's onion requests), created if missing; a key file others
    can read is refused."""
    if keys.key_path(data_dir).exists():
        keys.check_permissions(keys.key_path(data_dir))
    return keys.load_or_generate(data_dir)


def raw_bodies_only(why: str) -> _Middleware:
    """A middleware refusing a request with a ``Content-Encoding`` with 400 and ``why``: a
    server that stores or checks a signature over the body as sent takes it raw (aiohttp's own
    decompression is off, so a body that is not what its header says cannot fail inside it)."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        coding = request.headers.get("Content-Encoding", "").strip().lower()
        if coding not in ("", "identity"):
            return web.Response(status=400, text=why)
        return await handler(request)

    return middleware


async def start_site(
    routes: Routes,
    identity: Identity,
    *,
    network: SiteNetwork,
    data_dir: Path,
    limits: ConnectionLimits,
    max_body: int,
    middlewares: Iterable[Any] = (),
) -> tuple[Served, str]:
    """Serve ``routes`` (and the onion destination reaching them) on ``network``; returns the
    running site and its base URL (``https://host:port``, ``http://`` without TLS). Bodies
    over ``max_body`` are refused; aiohttp never decompresses one (``middlewares`` decide
    what a body may be)."""
    app = web.Application(
        client_max_size=max_body,
        handler_args={"auto_decompress": False},
        middlewares=list(middlewares),
    )
    routes.mount(app)
    OnionDestination(identity.export_x25519_secret(), routes).attach(app)
    ssl_ctx = await asyncio.to_thread(tls.server_ssl_context, data_dir) if network.tls else None
    served = await serve(
        app, network.listen_host, network.port, ssl_context=ssl_ctx, limits=limits,
        max_body=max_body,
    )  # fmt: skip
    scheme = "https" if ssl_ctx is not None else "http"
    return served, f"{scheme}://{network.listen_host}:{served.port}"


async def run_standalone(
    start: Callable[[], Awaitable[S]], on_ready: Callable[[S], None], logger: logging.Logger,
    what: str, data_dir: Path, program: str,
) -> None:  # fmt: skip
    """Start the server ``program`` (its log calls it ``what``), serve until SIGTERM/SIGINT,
    close it; its data directory is locked meanwhile (a second one on it is refused)."""
    await run_until_signal(start, on_ready, logger, what, DataDirLock(data_dir, program))


__all__ = ["SiteNetwork", "load_site_identity", "raw_bodies_only", "run_standalone", "start_site"]
