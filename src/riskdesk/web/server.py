"""Run the application with uvicorn."""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from riskdesk.api.app import create_app
from riskdesk.api.routers.monitor import EVENTS_PATH, intake


def _bearer_only(headers: list[tuple[bytes, bytes]]) -> bool:
    """A non-empty ``Authorization: Bearer`` token and no cookie."""
    bearer = False
    for name, value in headers:
        if name == b"cookie":
            return False
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            bearer = scheme.lower() == b"bearer" and bool(token.strip())
    return bearer


class EventIntakeFastPath:
    """Hands ``POST /api/v1/events`` with a bearer token (no cookie, no query string) straight
    to :func:`riskdesk.api.routers.monitor.intake`, past the route table and the middlewares
    that have nothing to do for it: no session cookie to read (SessionMiddleware), a bearer
    request needs no CSRF token, the path holds no NUL (RefuseNulMiddleware); the answers are
    those of the declared endpoint, which serves every other form of the request. It sits
    inside Starlette's error middleware, so an unexpected error is still the 500 problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == EVENTS_PATH
            and scope["method"] == "POST"
            and not scope.get("query_string")
            and not scope.get("root_path")
            and _bearer_only(scope["headers"])
        ):
            response = await intake(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_server_app(db_url: str | None = None) -> FastAPI:
    """The application of one ``riskdesk serve`` process, with the garbage collector tuned
    for a long-running server (see :func:`riskdesk.connectors.events.tune_gc_for_worker`).

    Measured on ``POST /api/v1/events`` (one server process, SQLite, batch 150, 30,000
    events, ``gc.callbacks`` timers): untuned, two full collections over the cached monitor
    books (257 and 431 ms) ran during the run; tuned, none over 10 ms. In the 2-process
    50,000-event benchmark they are rarer than 1 request in 100 (no p99 difference
    measured); over 200,000 events with reads in between the server used 66 instead of 74
    CPU seconds, with the same RSS (439 vs 438 MB). The tuning freezes what exists once the
    application is built and makes young collections rarer; full collections still run
    (less often), so cyclic garbage is still reclaimed. Uvicorn worker processes build their
    application with this factory (from ``RISKDESK_DATABASE_URL``)."""
    from riskdesk.connectors.events import tune_gc_for_worker

    app = create_app(db_url)
    app.add_middleware(EventIntakeFastPath)  # the outermost of the application's middlewares
    tune_gc_for_worker()
    return app


def serve(db_url: str | None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve riskdesk on ``host:port`` over ``db_url`` until interrupted.

    ``workers`` > 1 starts that many uvicorn worker processes (one per core is the usual
    choice); each builds its own application with :func:`create_server_app` from
    ``RISKDESK_DATABASE_URL``, which is set to ``db_url`` here. Every serving process gets the
    garbage-collector tuning of the intake processes.
    """
    if workers <= 1:
        uvicorn.run(
            create_server_app(db_url), host=host, port=port, log_level="info", proxy_headers=False
        )
        return
    if db_url:
        os.environ["RISKDESK_DATABASE_URL"] = db_url
    uvicorn.run(
        "riskdesk.web.server:create_server_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
    )
