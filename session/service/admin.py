"""The loopback admin site every service runs: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is the Prometheus text of the service's metrics, ``/healthz`` answers while the
process runs, ``/readyz`` is 200 once the service says it is ready, else 503 with the reason.
Served by :func:`session.http1.server.serve` (:func:`admin_routes`), whichever server the
service's public site runs on.
"""

from __future__ import annotations

from collections.abc import Callable

from session.http1.server import Request, Response, Routes
from session.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

#: ``() -> None`` when ready, else a short reason shown by ``/readyz``.
ReadyCheck = Callable[[], "str | None"]


def admin_routes(render_metrics: Callable[[], bytes], ready: ReadyCheck) -> Routes:
    """The admin site's routes: ``render_metrics()`` gives the Prometheus exposition text.
    No route reads a body."""

    async def get_metrics(request: Request) -> Response:
        return Response(200, render_metrics(), METRICS_CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return Response(200, b"ok\n")

    async def readyz(request: Request) -> Response:
        why = ready()
        if why is None:
            return Response(200, b"ready\n")
        return Response(503, f"not ready: {why}\n".encode())

    return {
        "/metrics": {"GET": get_metrics},
        "/healthz": {"GET": healthz},
        "/readyz": {"GET": readyz},
    }


__all__ = ["METRICS_CONTENT_TYPE", "ReadyCheck", "admin_routes"]
