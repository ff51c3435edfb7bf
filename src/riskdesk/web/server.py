"""Run the application with uvicorn."""

from __future__ import annotations

import os

import uvicorn

from riskdesk.api.app import create_app


def serve(db_url: str | None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve riskdesk on ``host:port`` over ``db_url`` until interrupted.

    ``workers`` > 1 starts that many uvicorn worker processes (one per core is the usual
    choice); each builds its own application from ``RISKDESK_DATABASE_URL``, which is set to
    ``db_url`` here.
    """
    if workers <= 1:
        uvicorn.run(create_app(db_url), host=host, port=port, log_level="info", proxy_headers=False)
        return
    if db_url:
        os.environ["RISKDESK_DATABASE_URL"] = db_url
    uvicorn.run(
        "riskdesk.api.app:create_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
    )
