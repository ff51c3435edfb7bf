"""Time and peak RSS to generate and load a demo portfolio with full history.

    .venv/bin/python bench/bench_demo.py --customers 100000            # SQLite file in a temp dir
    .venv/bin/python bench/bench_demo.py --customers 100000 --db postgresql://root@127.0.0.1/bench
    .venv/bin/python bench/bench_demo.py --customers 1000000 --no-load  # generation only

Generation is :func:`riskdesk.demo.generator.generate` (numpy, no per-row loops); loading is
:func:`riskdesk.demo.load.load_portfolio` (SQLite ``executemany`` / PostgreSQL ``COPY`` in one
transaction). Peak RSS is ``getrusage(RUSAGE_SELF).ru_maxrss`` of this process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from riskdesk.demo.generator import (
    DEFAULT_AS_OF,
    LOAD_ORDER,
    Portfolio,
    combine_summaries,
    generate_parts,
)
from riskdesk.demo.load import customer_count, load_portfolio
from riskdesk.store.db import make_engine, migrate, normalise_url


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (user + system): robust when the machine is shared."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--case", choices=["manufacturer", "retailer"], default="manufacturer")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", type=date.fromisoformat, default=DEFAULT_AS_OF)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    ap.add_argument("--reset", action="store_true", help="wipe business tables of --db first")
    ap.add_argument("--no-load", action="store_true", help="only generate")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    out: dict[str, object] = {"case": args.case, "customers": args.customers, "seed": args.seed}
    counts: dict[str, int] = dict.fromkeys(LOAD_ORDER, 0)
    summaries: list[dict[str, object]] = []
    gen_s = 0.0
    gen_cpu = 0.0

    def parts() -> Iterator[Portfolio]:
        """Generate part by part (bounded memory), timing only the generation."""
        nonlocal gen_s, gen_cpu
        stream = generate_parts(args.case, args.customers, args.seed, args.as_of)
        while True:
            t, c = time.perf_counter(), _cpu_s()
            part = next(stream, None)
            gen_s += time.perf_counter() - t
            gen_cpu += _cpu_s() - c
            if part is None:
                return
            for name, table in part.tables.items():
                counts[name] += table.num_rows
            summaries.append(part.summary)
            yield part

    t0, cpu0 = time.perf_counter(), _cpu_s()
    if args.no_load:
        for _ in parts():
            pass
    else:
        tmp = None
        url = args.db
        if url is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench_demo_")
            url = f"sqlite:///{Path(tmp.name) / 'demo.db'}"
        url = normalise_url(url)
        eng = make_engine(url)
        migrate(url, eng)
        if customer_count(eng) and not args.reset:
            print("the database holds customers; pass --reset to wipe them", file=sys.stderr)
            return 2
        out["database"] = eng.dialect.name
        t0, cpu0 = time.perf_counter(), _cpu_s()
        load_portfolio(eng, parts(), reset=args.reset)
        load_s = time.perf_counter() - t0 - gen_s
        out["load_s"] = round(load_s, 2)
        out["load_cpu_s"] = round(_cpu_s() - cpu0 - gen_cpu, 2)
        eng.dispose()
        if tmp is not None:
            out["sqlite_mib"] = round((Path(tmp.name) / "demo.db").stat().st_size / 2**20)
            tmp.cleanup()
    rows = sum(counts.values())
    out["rows"] = rows
    out["counts"] = counts
    out["defaults"] = combine_summaries(summaries)["defaults"]  # type: ignore[arg-type]
    out["generate_s"] = round(gen_s, 2)
    out["generate_cpu_s"] = round(gen_cpu, 2)
    out["generate_rows_per_s"] = round(rows / max(gen_s, 1e-9))
    if "load_s" in out:
        out["load_rows_per_s"] = round(rows / max(float(out["load_s"]), 1e-9))  # type: ignore[arg-type]
    out["total_s"] = round(time.perf_counter() - t0, 2)
    out["total_cpu_s"] = round(_cpu_s() - cpu0, 2)
    out["load_average_1m"] = round(os.getloadavg()[0], 1)
    out["peak_rss_mib"] = round(_peak_rss_mib())

    if args.json:
        print(json.dumps(out))
    else:
        print(f"demo {args.case}: {args.customers:,} customers, {out['rows']:,} rows")
        for key, value in counts.items():
            print(f"  {key:<20} {value:>12,}")
        print(
            f"  generate            {out['generate_s']:>10} s  ({out['generate_rows_per_s']:,} rows/s, "
            f"{out['generate_cpu_s']} CPU s)"
        )
        if "load_s" in out:
            print(
                f"  load ({out['database']})     {out['load_s']:>10} s  "
                f"({out['load_rows_per_s']:,} rows/s, {out['load_cpu_s']} CPU s)"
            )
        print(
            f"  total               {out['total_s']:>10} s  peak RSS {out['peak_rss_mib']} MiB, "
            f"load average {out['load_average_1m']} on {os.cpu_count()} cores"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
