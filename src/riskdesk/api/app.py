"""The web application: REST API under ``/api/v1``, HTML pages at the root, static files.

Every module in :mod:`riskdesk.api.routers` that exports ``router`` is mounted under
``/api/v1``; every module in :mod:`riskdesk.web.pages` that exports ``router`` is mounted at the
root. Adding a router or a page therefore touches no shared file.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path
from types import ModuleType

import plotly
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

import riskdesk.api.routers as routers_pkg
import riskdesk.web.pages as pages_pkg
from riskdesk import __version__
from riskdesk.api.errors import RefuseNulMiddleware, install_error_handlers
from riskdesk.api.routers.monitor import EVENTS_PATH
from riskdesk.api.security import CSRFMiddleware, body_limit, session_secret
from riskdesk.config import get_settings
from riskdesk.store.db import engine_for, is_current, migrate, normalise_url, session_factory

log = logging.getLogger("riskdesk.api")

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).resolve().parents[1] / "web" / "static"
SESSION_COOKIE = "riskdesk_session"


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed plotly package."""
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _modules(pkg: ModuleType) -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            mods.append(importlib.import_module(f"{pkg.__name__}.{info.name}"))
        except Exception:
            log.exception("module %s.%s cannot be imported; skipped", pkg.__name__, info.name)
    return mods


def create_app(db_url: str | None = None) -> FastAPI:
    """Build the application over ``db_url`` (default: the configured database)."""
    settings = get_settings()
    url = normalise_url(db_url or settings.database_url)
    engine = engine_for(url)
    if not is_current(engine):
        migrate(url, engine)

    app = FastAPI(
        title="riskdesk",
        version=__version__,
        description="Customer risk management: identify, assess, control, monitor.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.db_url = url
    app.state.session_factory = session_factory(engine)

    install_error_handlers(app)
    # the last middleware added is the outermost: sessions must wrap the CSRF check
    app.add_middleware(CSRFMiddleware)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(engine, settings.secret_key),
        session_cookie=SESSION_COOKIE,
        same_site="lax",
        https_only=settings.cookie_secure,
        max_age=12 * 60 * 60,
    )
    # outermost: before any session or database work (the event intake rejects an event
    # with a NUL alone, with the field named, and takes the rest of its batch)
    app.add_middleware(RefuseNulMiddleware, body_exempt=(EVENTS_PATH,), body_limit=body_limit)

    api = APIRouter(prefix=API_PREFIX)
    for mod in _modules(routers_pkg):
        router = getattr(mod, "router", None)
        if isinstance(router, APIRouter):
            api.include_router(router)
    app.include_router(api)

    js = plotly_js_path()

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            js,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    for mod in _modules(pages_pkg):
        router = getattr(mod, "router", None)
        if isinstance(router, APIRouter):
            app.include_router(router)
    return app
