"""Driver calls per intake batch on PostgreSQL: count, time inside them, wall and CPU.

Direct ``ingest``, 1 process, batch 150, fresh database from ``bench_events.fresh_db`` (2,000
customers, the same event mix), statistics over the batches after the first 10,050 events;
psycopg's ``Cursor.execute`` / ``executemany`` and ``Connection.commit`` are wrapped by a
timer (which costs CPU itself: compare runs of this script with each other only).

    .venv/bin/python bench/intake_calls.py
"""

from __future__ import annotations

import collections
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_events as be  # noqa: E402

from riskdesk.store import monitor_repo  # noqa: E402
from riskdesk.store.db import make_engine, session_scope  # noqa: E402

WARM = 10_050
BATCH = 150

stats: dict[str, float] = {"n": 0, "t": 0.0}
kinds: collections.Counter[str] = collections.Counter()


def _wrap(cls: Any, name: str) -> None:
    orig = getattr(cls, name)

    def timed(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return orig(self, *a, **k)
        finally:
            stats["n"] += 1
            stats["t"] += time.perf_counter() - t
            kinds[" ".join(str(a[0]).split()[:3]) if a else "COMMIT"] += 1

    setattr(cls, name, timed)


def main() -> None:
    _wrap(psycopg.Cursor, "execute")
    _wrap(psycopg.Cursor, "executemany")
    _wrap(psycopg.Connection, "commit")
    url = be.fresh_db("postgresql", 2000)
    events = be.make_events(31_500, 2000)
    eng = make_engine(url)
    wall: list[float] = []
    cpu: list[float] = []
    calls: list[float] = []
    inside: list[float] = []
    for i in range(0, len(events), BATCH):
        if i == WARM:
            kinds.clear()
        stats["n"], stats["t"] = 0, 0.0
        w0, c0 = time.perf_counter(), time.process_time()
        with session_scope(eng) as s:
            res = monitor_repo.ingest(s, events[i : i + BATCH])
            assert not res.rejected, res.rejected[:3]
        if i >= WARM:
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            calls.append(stats["n"])
            inside.append(stats["t"])
    eng.dispose()
    nb = len(wall)
    print(
        f"batches {nb}: wall mean {1e3 * statistics.mean(wall):.1f} ms, median "
        f"{1e3 * statistics.median(wall):.1f}; CPU mean {1e3 * statistics.mean(cpu):.1f} ms; "
        f"driver calls {statistics.mean(calls):.1f}, in driver {1e3 * statistics.mean(inside):.1f} ms"
    )
    for k, v in kinds.most_common(30):
        print(f"  {v / nb:5.2f}  {k}")


if __name__ == "__main__":
    main()
