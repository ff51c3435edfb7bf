"""Navigation entries: a page module may define ``NAV = [NavItem(...)]`` to appear in the menu."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    """A menu entry: ``path``, an i18n ``key`` for its label, ``order``, optional ``roles``."""

    path: str
    key: str
    order: int = 100
    roles: tuple[str, ...] | None = None
