"""The loopback admin site every service runs: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is the Prometheus text of the service's registry, ``/healthz`` answers while the
process runs, ``/readyz`` is 200 once the service says it is ready, else 503 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

#: ``() -> None`` when ready, else a short reason shown by ``/readyz``.
ReadyCheck = Callable[[], "str | None"]


def admin_app(render_metrics: Callable[[], bytes], ready: ReadyCheck) -> web.Application:
    """The admin application: ``render_metrics()`` gives the Prometheus exposition text."""

    async def get_metrics(request: web.Request) -> web.Response:
        return web.Response(body=render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        why = ready()
        if why is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {why}\n")

    # no route reads a body: never decompress one (a bad one would log a traceback)
    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


__all__ = ["ReadyCheck", "admin_app"]
