"""The batch cycle: every stage step that exists, in order."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from sqlalchemy import Engine

import riskdesk.analytics.steps as steps_pkg


class Progress(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None: ...


@dataclass(frozen=True)
class Step:
    name: str
    order: int
    run: Callable[..., dict[str, Any]]


def steps() -> list[Step]:
    """All batch steps, sorted by ``ORDER``."""
    found: list[Step] = []
    for info in pkgutil.iter_modules(steps_pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"riskdesk.analytics.steps.{info.name}")
        if hasattr(mod, "run"):
            found.append(
                Step(getattr(mod, "NAME", info.name), int(getattr(mod, "ORDER", 100)), mod.run)
            )
    return sorted(found, key=lambda s: (s.order, s.name))


def run_cycle(
    engine: Engine, as_of: date, progress: Progress | None = None, only: set[str] | None = None
) -> dict[str, Any]:
    """Run every step (or only the named ones) and collect their summaries."""
    out: dict[str, Any] = {}
    for step in steps():
        if only is not None and step.name not in only:
            continue
        out[step.name] = step.run(engine, as_of, progress=progress)
    return out
