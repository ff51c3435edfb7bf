"""Panels that stage modules add to the customer page and the dashboard.

A module ``riskdesk/web/panels/<area>.py`` defines ``customer_panels(session, customer, lang)``
and/or ``dashboard_panels(session, user, lang)``, each returning a list of :class:`Panel`.
A panel module that fails is logged and skipped; it never breaks the page.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("riskdesk.web")


@dataclass
class Panel:
    """A titled block of (already safe) HTML; panels are shown by ascending ``order``."""

    title: str
    html: str
    order: int = 100


def panel_modules() -> list[ModuleType]:
    mods: list[ModuleType] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
        except Exception:
            log.exception("panel module %s cannot be imported; skipped", info.name)
    return mods


def _collect(func_name: str, *args: Any) -> list[Panel]:
    panels: list[Panel] = []
    for mod in panel_modules():
        func = getattr(mod, func_name, None)
        if func is None:
            continue
        session = args[0]
        try:
            # a failing panel must not poison the page's transaction
            with session.begin_nested():
                got = list(func(*args) or [])
        except Exception:
            log.exception("panel %s.%s failed; skipped", mod.__name__, func_name)
            continue
        panels.extend(p for p in got if isinstance(p, Panel))
    return sorted(panels, key=lambda p: p.order)


def collect_customer_panels(session: Any, customer: Any, lang: str) -> list[Panel]:
    """Every module's ``customer_panels(session, customer, lang)``, sorted by order."""
    return _collect("customer_panels", session, customer, lang)


def collect_dashboard_panels(session: Any, user: Any, lang: str) -> list[Panel]:
    """Every module's ``dashboard_panels(session, user, lang)``, sorted by order."""
    return _collect("dashboard_panels", session, user, lang)
