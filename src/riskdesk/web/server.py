"""Run the application with uvicorn."""

from __future__ import annotations

import asyncio
import mmap
import os
import struct
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
    _connection_table()  # a worker of serve --workers N: take its slot before any connection
    tune_gc_for_worker()
    return app


BALANCE_ENV = "RISKDESK_SERVE_BALANCE"
"""The file of the workers' connection table, set by :func:`serve` for its workers."""
_SLOT = struct.Struct("qq")  # a worker's pid and its number of open connections


class _ConnectionTable:
    """The open connections of every worker of one ``riskdesk serve`` (a small shared file,
    one slot per worker; each worker writes only its own slot)."""

    def __init__(self, path: str) -> None:
        import fcntl

        fd = os.open(path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # one worker claims a slot at a time
        try:
            size = os.fstat(fd).st_size
            self.map = mmap.mmap(fd, size)
            self.slots = size // _SLOT.size
            me = os.getpid()
            for i in range(self.slots):
                pid, _ = _SLOT.unpack_from(self.map, i * _SLOT.size)
                if pid in (0, me) or not _alive(pid):  # free, or left by a worker that died
                    break
            else:
                raise OSError("no free slot")
            _SLOT.pack_into(self.map, i * _SLOT.size, me, 0)
            self.mine = i
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)  # explicitly: the mapping holds a copy of the fd
            os.close(fd)

    def set(self, connections: int) -> None:
        struct.pack_into("q", self.map, self.mine * _SLOT.size + 8, connections)

    def surplus(self, connections: int) -> bool:
        """Whether this worker holds more than one connection above the least loaded one."""
        fewest = None
        for i in range(self.slots):
            if i != self.mine:
                pid, n = _SLOT.unpack_from(self.map, i * _SLOT.size)
                if pid and (fewest is None or n < fewest):
                    fewest = n
        return fewest is not None and connections > fewest + 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


_table: _ConnectionTable | None | bool = False  # False: not looked up yet


def _connection_table() -> _ConnectionTable | None:
    global _table
    if _table is False:
        path = os.environ.get(BALANCE_ENV)
        try:
            _table = _ConnectionTable(path) if path else None
        except (OSError, ValueError):
            _table = None
    return _table  # type: ignore[return-value]


class BalancedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol (httptools) for the workers of ``riskdesk serve --workers N``:
    they share one listening socket, and a kept-alive connection stays with the worker that
    accepted it, so a few clients' connections can all end up on one worker while another
    idles. Each worker records its open connections in a shared table; a worker holding more
    than one connection above the least loaded worker answers the next request on a
    connection in full, with ``Connection: close``, and the client's next request comes on a
    new connection, which the kernel hands to any worker. Nothing is lost or answered twice:
    the request is served; only the connection is not kept."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = _connection_table()
        if table is not None:
            table.set(len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        table = _connection_table()
        if table is not None:
            table.set(len(self.connections))

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        table = _connection_table()
        cycle: Any = self.cycle
        if table is not None and cycle is not before and cycle.keep_alive:
            if table.surplus(len(self.connections)):
                cycle.keep_alive = False


def serve(db_url: str | None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve riskdesk on ``host:port`` over ``db_url`` until interrupted.

    ``workers`` > 1 starts that many uvicorn worker processes (one per core is the usual
    choice); each builds its own application with :func:`create_server_app` from
    ``RISKDESK_DATABASE_URL``, which is set to ``db_url`` here. Every serving process gets the
    garbage-collector tuning of the intake processes. The workers keep their kept-alive
    connections balanced (:class:`BalancedHttpProtocol`).
    """
    if workers <= 1:
        uvicorn.run(
            create_server_app(db_url), host=host, port=port, log_level="info", proxy_headers=False
        )
        return
    if db_url:
        os.environ["RISKDESK_DATABASE_URL"] = db_url
    fd, table = tempfile.mkstemp(prefix="riskdesk-serve-")  # private (0600), removed at the end
    try:
        os.write(fd, bytes(_SLOT.size * workers))
        os.close(fd)
        os.environ[BALANCE_ENV] = table
        uvicorn.run(
            "riskdesk.web.server:create_server_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
            proxy_headers=False,
            # by name: imported by the worker once it answers uvicorn's health checks (a class
            # would be unpickled, importing the whole application, before it does)
            http="riskdesk.web.server:BalancedHttpProtocol",
            # a worker answers health checks only once it has imported riskdesk (its spawn
            # runs the CLI module first): on a loaded 2-core machine that took over uvicorn's
            # 5 s, and the workers were killed and restarted over and over
            timeout_worker_healthcheck=30,
        )
    finally:
        os.unlink(table)
