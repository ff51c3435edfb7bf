"""Rebuilding real-time states from the stored events: events replayed per second.

    .venv/bin/python bench/bench_rebuild.py [--events 60000] [--customers 2000]
        [--db sqlite|postgresql|both]

The events of ``bench_events.py`` (30 per customer over 300 days) are ingested first (untimed,
batches of 500) into a fresh database; then ``monitor_repo.rebuild_states`` rebuilds every
customer's state from them (``riskdesk events rebuild --all``), once, in one transaction, and
again for 100 named customers (``riskdesk events rebuild C1 … C100``, which scans the event
table: it has no index on the customer). Prints the seconds, events replayed per second and the
customers whose figures changed (0: the intake's states equal the rebuilt ones).
"""

from __future__ import annotations

import argparse
import time

from bench_events import fresh_db, make_events

from riskdesk.store import monitor_repo
from riskdesk.store.db import make_engine, session_scope


def run(kind: str, n_events: int, n_customers: int) -> None:
    url = fresh_db(kind, n_customers)
    events = make_events(n_events, n_customers)
    eng = make_engine(url)
    try:
        for i in range(0, len(events), 500):
            with session_scope(eng) as s:
                monitor_repo.ingest(s, events[i : i + 500])
        t0 = time.perf_counter()
        with session_scope(eng) as s:
            out = monitor_repo.rebuild_states(s, actor="bench")
        secs = time.perf_counter() - t0
        seen = sorted({e["customer_id"] for e in events})
        named = seen[:: max(1, len(seen) // 100)][:100]
        t1 = time.perf_counter()
        with session_scope(eng) as s:
            some = monitor_repo.rebuild_states(s, named, actor="bench")
        secs_named = time.perf_counter() - t1
    finally:
        eng.dispose()
    print(
        {
            "db": kind,
            "events": out["events"],
            "customers": out["customers"],
            "all_seconds": round(secs, 2),
            "all_events_per_s": round(out["events"] / secs),
            "all_changed": out["changed"],
            "named_customers": some["customers"],
            "named_events": some["events"],
            "named_seconds": round(secs_named, 3),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60000)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--db", default="both")
    a = ap.parse_args()
    for kind in ("sqlite", "postgresql") if a.db == "both" else (a.db,):
        run(kind, a.events, a.customers)


if __name__ == "__main__":
    main()
