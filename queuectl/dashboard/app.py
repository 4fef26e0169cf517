"""The Starlette application: routes, static files, errors, and the guard in front of it all."""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from queuectl.dashboard.api import Api, error_response
from queuectl.dashboard.auth import Guard
from queuectl.dashboard.metrics import Metrics
from queuectl.dashboard.stores import ThreadStores
from queuectl.errors import QueuectlError
from queuectl.paths import DatabaseLocation

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


def create_app(
    location: DatabaseLocation, *, token: str | None, loopback_only: bool, port: int
) -> Starlette:
    """The dashboard for the store at `location`.

    `token`: required on every request when set. `loopback_only`: the server is bound
    to a loopback address, so only requests naming a loopback host are answered.
    """
    stores = ThreadStores(location)
    api = Api(stores.get)
    metrics = Metrics(stores.get)

    def index(request: Request) -> Response:
        return FileResponse(
            os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-store"}
        )

    async def queuectl_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QueuectlError)
        return error_response(exc)

    routes: list[Any] = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/api/stats", api.stats, methods=["GET", "HEAD"]),
        Route("/api/jobs", api.jobs, methods=["GET", "HEAD"]),
        Route("/api/jobs/{job_id:path}", api.job, methods=["GET", "HEAD"]),
        Route("/api/workers", api.workers, methods=["GET", "HEAD"]),
        Route("/api/dlq/retry", api.dlq_retry, methods=["POST"]),
        Route("/metrics", metrics.endpoint, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, loopback_only=loopback_only, port=port)],
        exception_handlers={QueuectlError: queuectl_error},
    )
