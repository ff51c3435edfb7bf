"""Time and peak RSS of the full batch cycle (identify → assess → rating → control → monitor).

    .venv/bin/python bench/bench_cycle.py --customers 2000
    .venv/bin/python bench/bench_cycle.py --customers 20000 --json

Builds a manufacturer demo portfolio of N customers in a SQLite file in a temporary folder
(``riskdesk demo --no-cycle``, not timed), then runs every batch step of
:func:`riskdesk.analytics.pipeline.steps` as of the demo's last day, each timed on its own.
The first run trains the portfolio's scorecard, which a daily run would not; it is reported as
part of the ``assess`` step. The DESIGN.md target is 1 M customers / 20 M invoices in ≤ 60 s
and ≤ 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from riskdesk.analytics.pipeline import steps
from riskdesk.store.db import make_engine


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 9, 30))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="riskdesk-cycle-"))
    url = f"sqlite:///{folder / 'cycle.db'}"
    riskdesk = Path(sys.executable).with_name("riskdesk")
    t = time.perf_counter()
    subprocess.run(
        [
            str(riskdesk),
            "--db",
            url,
            "demo",
            "--customers",
            str(args.customers),
            "--seed",
            str(args.seed),
            "--as-of",
            args.as_of.isoformat(),
            "--no-serve",
            "--no-cycle",
            "--json",
        ],
        check=True,
        capture_output=True,
    )
    build_s = time.perf_counter() - t
    engine = make_engine(url)
    timings: dict[str, float] = {}
    summaries: dict[str, object] = {}
    t_all = time.perf_counter()
    for step in steps():
        t = time.perf_counter()
        summaries[step.name] = step.run(engine, args.as_of)
        timings[step.name] = round(time.perf_counter() - t, 2)
    total = time.perf_counter() - t_all
    out = {
        "customers": args.customers,
        "build_s (not part of the cycle)": round(build_s, 1),
        "steps_s": timings,
        "cycle_s": round(total, 2),
        "customers_per_s": round(args.customers / total, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>30}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
