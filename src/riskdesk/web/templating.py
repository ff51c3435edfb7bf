"""Jinja2 templates with the request's language, user, CSRF token and formatting filters.

In every template: ``{{ t('key') }}`` (bound to the request's language), ``lang``,
``current_user``, ``csrf_token`` (put ``{{ csrf_field() }}`` in every POST form), ``nav`` and the
filters ``num``, ``money``, ``pct`` and ``date``.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from jinja2 import pass_context
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from riskdesk.api.security import CSRF_FIELD, csrf_token
from riskdesk.config import get_settings
from riskdesk.web.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    fmt_date,
    fmt_money,
    fmt_num,
    fmt_pct,
    negotiate,
    normalise_lang,
    t,
)
from riskdesk.web.nav import NavItem

log = logging.getLogger("riskdesk.web")
TEMPLATES = Path(__file__).parent / "templates"


def request_lang(request: Request) -> str:
    """The request's language: ``?lang=``, then the session (the user's choice), then the
    browser's ``Accept-Language``, then the configured default."""
    cached = getattr(request.state, "lang", None)
    if isinstance(cached, str):
        return cached
    lang: str | None = None
    query = request.query_params.get("lang")
    if query and normalise_lang(query) == query:
        lang = query
    if lang is None and "session" in request.scope:
        stored = request.session.get("lang")
        if isinstance(stored, str) and stored in LANGUAGES:
            lang = stored
    if lang is None:
        user = getattr(request.state, "user_view", None)
        if user is not None and user.language in LANGUAGES:
            lang = user.language
    if lang is None:
        lang = negotiate(request.headers.get("accept-language"), get_settings().default_language)
    request.state.lang = lang
    return lang


@lru_cache(maxsize=1)
def nav_items() -> tuple[NavItem, ...]:
    """Menu entries declared by page modules (``NAV = [...]``), by order."""
    import riskdesk.web.pages as pages

    items: list[NavItem] = []
    for info in pkgutil.iter_modules(pages.__path__):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"riskdesk.web.pages.{info.name}")
        except Exception:
            log.exception("page module %s cannot be imported", info.name)
            continue
        items.extend(i for i in getattr(mod, "NAV", []) if isinstance(i, NavItem))
    return tuple(sorted(items, key=lambda i: (i.order, i.path)))


def _context(request: Request) -> dict[str, Any]:
    lang = request_lang(request)
    user = getattr(request.state, "user_view", None)
    token = csrf_token(request.session) if "session" in request.scope else ""

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    visible_nav = [
        i for i in nav_items() if user is not None and (i.roles is None or user.role in i.roles)
    ]
    return {
        "lang": lang,
        "t": partial(t, lang=lang),
        "current_user": user,
        "csrf_token": token,
        "csrf_field": csrf_field,
        "nav": visible_nav,
        "languages": LANGUAGE_NAMES,
        "current_path": request.url.path,
    }


@pass_context
def _num(ctx: Any, value: Any, digits: int = 0) -> str:
    return fmt_num(value, ctx.get("lang", "en"), digits)


@pass_context
def _money(ctx: Any, value: Any, currency: str | None = "EUR") -> str:
    return fmt_money(value, currency, ctx.get("lang", "en"))


@pass_context
def _pct(ctx: Any, value: Any, digits: int = 1) -> str:
    return fmt_pct(value, ctx.get("lang", "en"), digits)


@pass_context
def _date(ctx: Any, value: Any, style: str = "medium") -> str:
    return fmt_date(value, ctx.get("lang", "en"), style)


def _safe(html: str) -> Markup:
    return Markup(html)  # noqa: S704 - panel HTML is produced by our own code


templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[_context])
templates.env.filters.update(num=_num, money=_money, pct=_pct, date=_date, safe_html=_safe)
templates.env.globals["escape"] = escape


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    """Render template ``name`` for ``request``."""
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code)
