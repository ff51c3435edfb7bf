"""Time ``riskdesk import invoices`` on a generated CSV; print rows/s and peak RSS.

    .venv/bin/python bench/bench_import.py --rows 1000000

Generates N invoices for ``--customers`` existing customers into a temporary directory,
imports them into a fresh SQLite database through the same code path as the CLI
(:func:`riskdesk.connectors.import_run.run_import`), and optionally imports the same file a
second time (every row ``unchanged``).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from riskdesk.connectors.import_run import paused_gc, run_import
from riskdesk.store.db import make_engine, migrate


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_customers(path: Path, n: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["external_id", "name", "industry", "country", "currency"])
        for i in range(n):
            w.writerow([f"C{i:07d}", f"Customer {i}", "machinery", "DE", "EUR"])


def write_invoices(path: Path, rows: int, customers: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    start = date(2023, 1, 1)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "external_id",
                "customer_id",
                "issue_date",
                "due_date",
                "amount",
                "currency",
                "disputed",
                "status",
            ]
        )
        for i in range(rows):
            issue = start + timedelta(days=rnd.randrange(700))
            due = issue + timedelta(days=rnd.choice((30, 45, 60, 90)))
            cents = rnd.randrange(1_000, 5_000_000)
            w.writerow(
                [
                    f"INV{i:09d}",
                    f"C{rnd.randrange(customers):07d}",
                    issue.isoformat(),
                    due.isoformat(),
                    f"{cents // 100}.{cents % 100:02d}",
                    "EUR",
                    "yes" if rnd.random() < 0.02 else "no",
                    "open",
                ]
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="invoices to import")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--twice", action="store_true", help="re-import the same file (unchanged)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        engine = make_engine(url)
        migrate(url, engine)
        cust, inv = work / "customers.csv", work / "invoices.csv"
        write_customers(cust, args.customers)
        t0 = time.perf_counter()
        write_invoices(inv, args.rows, args.customers)
        gen = time.perf_counter() - t0
        res = run_import(engine, "customers", cust, actor="bench")
        assert res.ok, res.errors[:5]
        rss_before = _peak_rss_mib()

        t0, c0 = time.perf_counter(), time.process_time()
        with paused_gc():  # as the CLI does
            res = run_import(engine, "invoices", inv, actor="bench", batch_size=args.batch_size)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert res.ok and res.inserted == args.rows, res.errors[:5]
        size_mib = inv.stat().st_size / 2**20
        print(f"file: {args.rows:,} invoices, {size_mib:.0f} MiB CSV (generated in {gen:.1f} s)")
        print(
            f"import (insert): {took:.1f} s, {args.rows / took:,.0f} rows/s, "
            f"{size_mib / took:.1f} MiB/s; CPU {cpu:.1f} s = {args.rows / cpu:,.0f} rows per CPU-s"
        )
        print(f"peak RSS: {_peak_rss_mib():.0f} MiB (before the import: {rss_before:.0f} MiB)")
        print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        if args.twice:
            t0, c0 = time.perf_counter(), time.process_time()
            with paused_gc():
                res = run_import(engine, "invoices", inv, actor="bench", batch_size=args.batch_size)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert res.ok and res.unchanged == args.rows
            print(
                f"re-import (all unchanged): {took:.1f} s, {args.rows / took:,.0f} rows/s; "
                f"CPU {cpu:.1f} s = {args.rows / cpu:,.0f} rows per CPU-s"
            )
            print(f"peak RSS: {_peak_rss_mib():.0f} MiB")
        engine.dispose()


if __name__ == "__main__":
    main()
