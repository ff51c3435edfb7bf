"""Batch step ``control``: apply the control policies to the whole portfolio.

Closes reservations of invoiced/cancelled/expired orders, gives customers without a manual
limit their policy limit, creates insurer-deadline tasks, records concentration breaches and
reviews contracts against the avoidance policy (see :func:`riskdesk.store.control_repo.run_control`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine

NAME = "control"
ORDER = 40


def run(engine: Engine, as_of: date, progress: Any = None) -> dict[str, Any]:
    from riskdesk.store.control_repo import run_control

    return run_control(engine, as_of, progress)
