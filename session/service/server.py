"""Serving an aiohttp application the way every service does (node, registry, file and
community servers): TLS or plain, a bound port to report, a bounded shutdown.

``serve(app, host, port, ssl_context=..., limits=...)`` starts the site and returns a
:class:`Served` (``.port`` is the real port when ``port`` was 0); ``await served.close()`` stops
accepting and lets in-flight requests finish within the shutdown timeout.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from session.service.config import ConnectionLimits


class Served:
    """A running site: its runner, the port it listens on, and :meth:`close`."""

    def __init__(self, runner: web.AppRunner, site: web.BaseSite, port: int) -> None:
        self.runner = runner
        self.site = site
        self.port = port

    async def close(self) -> None:
        """Stop listening; in-flight requests get the runner's shutdown timeout to finish."""
        await self.runner.cleanup()


def _bound_port(site: web.TCPSite, asked: int) -> int:
    if asked:
        return asked
    server = site._server  # aiohttp keeps the asyncio Server here
    sockets = getattr(server, "sockets", None)
    return int(sockets[0].getsockname()[1]) if sockets else asked


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: ConnectionLimits | None = None,
    shutdown_timeout: float = 10.0,
    backlog: int = 1024,
) -> Served:
    """Start ``app`` on ``host:port`` (0 picks a free port); raises ``OSError`` if it cannot
    listen."""
    limits = limits or ConnectionLimits()
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_timeout,
                           keepalive_timeout=limits.idle_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=backlog,
                       reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return Served(runner, site, _bound_port(site, port))


__all__ = ["Served", "serve"]
