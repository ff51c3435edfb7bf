"""Batch step ``monitor``: bring the real-time state up to date with the stored history
(core records replayed as idempotent events), then age the portfolio to the date and evaluate
the rules (overdue crossings, stopped orders, SLA escalations)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine

from riskdesk.store import monitor_repo
from riskdesk.store.db import session_scope

NAME = "monitor"
ORDER = 50
BATCH = 5000


def run(engine: Engine, as_of: date, progress: Any = None) -> dict[str, Any]:
    with session_scope(engine) as s:
        events = monitor_repo.core_events(s, as_of)
    total = monitor_repo.IngestResult()
    for i in range(0, len(events), BATCH):
        with session_scope(engine) as s:
            total.add(monitor_repo.ingest(s, events[i : i + BATCH], actor="cycle"))
        if progress is not None:
            progress(min(i + BATCH, len(events)), len(events), "monitor: replaying history")
    with session_scope(engine) as s:
        tick = monitor_repo.clock_tick(s, as_of, actor="cycle")
    return {
        "events": len(events),
        "accepted": total.accepted,
        "duplicates": total.duplicates,
        "rejected": len(total.rejected),
        "alerts_new": total.alerts_new + tick["alerts_new"],
        "cases_escalated": tick["cases_escalated"],
        "customers_not_aged": len(tick["customers_failed"]),
    }
