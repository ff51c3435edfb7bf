"""Run the application with uvicorn."""

from __future__ import annotations

import uvicorn

from riskdesk.api.app import create_app


def serve(db_url: str | None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve riskdesk on ``host:port`` over ``db_url`` until interrupted."""
    uvicorn.run(create_app(db_url), host=host, port=port, log_level="info", proxy_headers=False)
